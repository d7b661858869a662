"""EpisodeBagWriter: round trip through two independent readers, atomic finalise, budgets."""

import json

from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
import pytest
from rl100_recorder.bag_writer import (
    BagWriterError,
    DiskBudgetError,
    EpisodeBagWriter,
    list_episodes,
    read_partial,
)
from rl100_recorder.msg_types import build_typestore
from rosbags.highlevel import AnyReader
from rosbags.typesys import get_typestore, Stores
import yaml

INTERVENTION = 'rl100_msgs/msg/Intervention'
CHUNK = 'rl100_msgs/msg/ActionChunk'
POSE = 'geometry_msgs/msg/PoseStamped'


@pytest.fixture(scope='module')
def typestore():
    return build_typestore()


def empty_pose(typestore):
    ts = typestore.types
    return ts[POSE](
        header=ts['std_msgs/msg/Header'](
            stamp=ts['builtin_interfaces/msg/Time'](sec=0, nanosec=0), frame_id=''),
        pose=ts['geometry_msgs/msg/Pose'](
            position=ts['geometry_msgs/msg/Point'](x=0.0, y=0.0, z=0.0),
            orientation=ts['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.0, w=1.0)))


def record(writer, typestore, n=6, label='success'):
    """One episode: n interventions (the last two active), n poses, one action chunk."""
    ts = typestore.types
    eid = writer.begin(task='juicing-place', meta={'source': 'rollout', 'seed': 3})
    for i in range(n):
        stamp = 1_000_000_000 + i * 100_000_000
        target = ts['geometry_msgs/msg/Pose'](
            position=ts['geometry_msgs/msg/Point'](x=0.1 * i, y=0.0, z=0.3),
            orientation=ts['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.0, w=1.0))
        header = ts['std_msgs/msg/Header'](
            stamp=ts['builtin_interfaces/msg/Time'](sec=1, nanosec=i), frame_id='base')
        msg = ts[INTERVENTION](header=header, active=i >= n - 2, source=4, target=target,
                               gripper=0.5)
        writer.write('/pose', POSE, ts[POSE](header=header, pose=target), stamp - 1)
        writer.write('/rl100/intervention', INTERVENTION,
                     typestore.serialize_cdr(msg, INTERVENTION), stamp)
    chunk = ts[CHUNK](header=header, horizon=1, action_dim=2,
                      period=ts['builtin_interfaces/msg/Duration'](sec=0, nanosec=100_000_000),
                      data=__import__('numpy').array([1.5, -2.0], dtype='float32'),
                      model_id='m', inference_latency=0.01)
    writer.write('/rl100/action_chunk', CHUNK, chunk, 2_000_000_000)
    return eid, writer.end(label, 'a note')


def test_round_trip_rosbags_and_mcap(tmp_path, typestore):
    writer = EpisodeBagWriter(tmp_path, typestore=typestore, fsync=False)
    eid, path = record(writer, typestore)
    assert path == tmp_path / eid and list_episodes(tmp_path) == [path]
    assert sorted(p.name for p in path.iterdir()) == [
        f'{eid}_0.mcap', 'episode.json', 'metadata.yaml']
    side = json.loads((path / 'episode.json').read_text())
    assert (side['label'], side['success'], side['task'], side['note']) == (
        'success', True, 'juicing-place', 'a note')
    assert (side['steps'], side['interventions']) == (6, 2)
    assert side['meta'] == {'source': 'rollout', 'seed': 3}
    assert side['topics']['/rl100/intervention'] == {'type': INTERVENTION, 'count': 6}
    assert side['start_ns'] == 999_999_999 and side['end_ns'] == 2_000_000_000

    # rosbags with an EMPTY store: every type comes from the definitions inside the bag
    with AnyReader([path], default_typestore=get_typestore(Stores.EMPTY)) as reader:
        got = [(c.topic, reader.deserialize(raw, c.msgtype)) for c, _, raw in reader.messages()]
    assert f'rl100.episode_id: {eid}' in (path / 'metadata.yaml').read_text()
    info = yaml.safe_load((path / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert info['version'] == 8  # what Humble's ros2 bag parses: QoS profiles as one string
    topics = info['topics_with_message_count']
    assert topics and all(isinstance(t['topic_metadata']['offered_qos_profiles'], str)
                          for t in topics)
    actives = [m.active for t, m in got if t == '/rl100/intervention']
    assert actives == [False] * 4 + [True] * 2
    chunk = next(m for t, m in got if t == '/rl100/action_chunk')
    assert list(chunk.data) == [1.5, -2.0] and chunk.period.nanosec == 100_000_000

    # the independent mcap + mcap_ros2 reader decodes with the embedded schemas alone
    with open(path / f'{eid}_0.mcap', 'rb') as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        decoded = [(ch.topic, schema.name, msg)
                   for schema, ch, _, msg in reader.iter_decoded_messages()]
    assert len(decoded) == 13
    inter = [m for t, _, m in decoded if t == '/rl100/intervention']
    assert [m.active for m in inter] == actives
    assert inter[3].target.position.x == pytest.approx(0.3)
    assert {s for _, s, _ in decoded} == {INTERVENTION, POSE, CHUNK}


def test_finalise_is_atomic_and_abort_discards(tmp_path, typestore):
    writer = EpisodeBagWriter(tmp_path, typestore=typestore, fsync=False, flush_interval_s=0)
    eid = writer.begin('ep1', task='t')
    writer.write('/pose', POSE, empty_pose(typestore), 5)
    assert [p.name for p in tmp_path.iterdir()] == ['ep1.partial']
    assert list_episodes(tmp_path) == []
    assert [m[:2] for m in read_partial(writer.path)] == [('/pose', POSE)]
    with pytest.raises(BagWriterError, match='ep1 is still open'):
        writer.begin('ep2')
    assert writer.abort() == eid
    assert list(tmp_path.iterdir()) == []
    writer.begin('ep1')
    assert writer.end(2).name == 'ep1'
    assert json.loads((tmp_path / 'ep1' / 'episode.json').read_text())['label'] == 'failure'
    with pytest.raises(BagWriterError, match="'ep1' already exists"):
        writer.begin('ep1')
    with pytest.raises(BagWriterError, match='no episode is open'):
        writer.end('success')


def test_refuses_to_start_without_disk_or_room(tmp_path, typestore):
    writer = EpisodeBagWriter(tmp_path, typestore=typestore, min_free_disk_gb=1e9)
    with pytest.raises(DiskBudgetError, match=r'GB free in .* \(< min_free_disk_gb 1e\+09\)'):
        writer.begin('x')
    writer = EpisodeBagWriter(tmp_path, typestore=typestore, min_free_disk_gb=0,
                              max_episodes=1, fsync=False)
    writer.begin('a')
    writer.end('unknown')
    with pytest.raises(DiskBudgetError, match='already holds 1 episodes'):
        writer.begin('b')
    assert not writer.is_open and [p.name for p in tmp_path.iterdir()] == ['a']


def test_bad_label_and_unknown_type(tmp_path, typestore):
    writer = EpisodeBagWriter(tmp_path, typestore=typestore, fsync=False)
    writer.begin('e')
    with pytest.raises(BagWriterError, match='not one of'):
        writer.end('great')
    with pytest.raises(LookupError, match="'nope_msgs/msg/X' is unknown"):
        writer.write('/x', 'nope_msgs/msg/X', b'\x00\x01\x00\x00', 1)
    assert writer.end('unknown').name == 'e'
