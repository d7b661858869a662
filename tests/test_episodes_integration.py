"""The main job, small: evaluation episodes through the real simulated orange_juicer graph.

``python -m rl100_bringup.up orange_juicer --episodes 2`` starts the sim robot, policy, safety and
recorder nodes as separate processes talking over DDS, runs two short episodes (sim reset, a
recorded episode, the policy in control through the safety node, the success detector polled),
stops the graph and prints the results. The policy is a tiny untrained one-step model on the
shipped model's inputs (robot state + point cloud), so both episodes run to their time limit:
the results, the printed table and one labelled, readable MCAP bag per episode are checked, and
the bags go through the trainer's ingest.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("rclpy")
TIME_LIMIT = 1.5  # s simulated per episode


@pytest.fixture(scope="module")
def points_model(tmp_path_factory):
    """A tiny untrained one-step policy on state + points, exported with the task's crop box."""
    torch = pytest.importorskip("torch")
    sim = pytest.importorskip("rl100.sim")
    from rl100.export.onnx_export import export_onnx
    from rl100.keys import OBS_POINTS, OBS_STATE
    from rl100.policy.config import EncoderConfig, ObsSpec, PolicyConfig
    from rl100.policy.consistency import ConsistencyPolicy

    torch.manual_seed(0)
    config = PolicyConfig(
        obs=[ObsSpec(OBS_STATE, (15,)), ObsSpec(OBS_POINTS, (64, 3), kind="points")],
        action_dim=7, n_obs=2, horizon=8, n_action_steps=4, down_dims=(16, 32), n_groups=8,
        step_embed_dim=16,
        encoder=EncoderConfig(lowdim_hidden=32, lowdim_out=16, point_dims=(16, 32), point_out=16))
    task = sim.make_config("juicing-place")
    path = tmp_path_factory.mktemp("model") / "tiny_points.onnx"
    export_onnx(ConsistencyPolicy(config), path, control_rate_hz=10.0, points_preprocessing={
        "crop_lo": list(task.points_lo), "crop_hi": list(task.points_hi), "sampler": "random"})
    return path


def test_episodes_through_the_graph_are_measured_and_recorded(ros_env, tmp_path, points_model):
    from rl100_recorder.bag_writer import list_episodes
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    from rl100.data import Dataset
    from rl100.ingest import ingest
    from rl100_msgs.msg import EpisodeEvent
    from rl100_ros import topics

    record, results = tmp_path / "episodes", tmp_path / "results.json"
    cmd = [sys.executable, "-m", "rl100_bringup.up", "orange_juicer", f"model:={points_model}",
           f"record_dir:={record}", "--episodes", "2", "--time-limit", str(TIME_LIMIT),
           "--results-json", str(results), "--duration", "100"]
    proc = subprocess.run(cmd, env=ros_env, capture_output=True, text=True, timeout=150)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "[episodes] 1/2 seed 1: failure after" in out and "[episodes] 2/2 seed 2:" in out
    table = out[out.index("episode   seed  result"):]
    assert "success rate      0/2 = 0 %" in table and "policy latency    p50" in table
    assert "mean cycle time   n/a" in table  # no successful episode to time

    data = json.loads(results.read_text())
    summary, episodes = data["summary"], data["episodes"]
    assert (summary["episodes"], summary["successes"]) == (2, 0)
    assert data["meta"]["model"] == str(points_model) and data["meta"]["error"] == ""
    assert [e["seed"] for e in episodes] == [1, 2]
    for e in episodes:
        assert not e["success"] and TIME_LIMIT <= e["duration"] < TIME_LIMIT + 1.5  # polls lag
        assert e["actions"] > 0, e  # the policy drove the robot through the safety node
    assert 0.0 < summary["control_rate"] <= 11.0 and summary["nominal_rate"] == pytest.approx(10.0)
    assert summary["predictions"] >= 2 and 0.0 < summary["latency_p50_ms"] <= summary["latency_p99_ms"]

    bags = list_episodes(record)
    assert [b.name for b in bags] == [e["episode_id"] for e in episodes]
    assert [str(b) for b in bags] == [e["bag"] for e in episodes]
    for bag, episode in zip(bags, episodes, strict=True):
        side = json.loads((bag / "episode.json").read_text())
        assert side["label"] == "failure" and side["task"] == "juicing-place"
        assert f"seed {episode['seed']}" in side["meta"]["note"]
        with AnyReader([bag], default_typestore=get_typestore(Stores.EMPTY)) as reader:
            got: dict = {}
            for conn, _, raw in reader.messages():
                got.setdefault(conn.topic, []).append(reader.deserialize(raw, conn.msgtype))
        assert [(e.event, e.label) for e in got[topics.EPISODE_EVENT]] == [
            (EpisodeEvent.EVENT_START, EpisodeEvent.LABEL_UNKNOWN),
            (EpisodeEvent.EVENT_END, EpisodeEvent.LABEL_FAILURE)]
        assert len(got[topics.ACTION_CHUNK]) > 0 and len(got[topics.INTERVENTION]) > 0
        assert not any(m.active for m in got[topics.INTERVENTION])  # nobody took over
        modes = {m.mode for m in got[topics.SAFETY_STATUS]}
        assert 0 in modes  # autonomous (rl100_msgs/SafetyStatus MODE_AUTONOMOUS) during the run

    report = ingest([record], tmp_path / "dataset")
    assert len(report["ingested"]) == 2, report
    ds = Dataset(tmp_path / "dataset")
    assert not ds.episode_info(0).success and not ds.episode_info(1).success
    assert np.isfinite(np.asarray(ds.episode(0)["action"])).all()
