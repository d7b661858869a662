"""The orange_juicer params give the recorder the default topics plus the policy's point cloud."""

from pathlib import Path

from rl100_recorder.recorder_node import DEFAULT_TOPICS
from rl100_ros import topics
import yaml

PARAMS = Path(__file__).resolve().parents[2] / 'rl100_bringup' / 'config' / 'orange_juicer.yaml'


def test_orange_juicer_records_the_defaults_and_the_point_cloud():
    recorded = yaml.safe_load(PARAMS.read_text())['recorder_node']['ros__parameters']['topics']
    # no default is lost when the list is overridden
    assert recorded == DEFAULT_TOPICS + [topics.POINTS]
    assert topics.POINTS not in DEFAULT_TOPICS  # opt-in: the cloud is most of a bag
