"""Recorder node over real DDS: a subprocess on a private domain records a labelled episode."""

import json
import os
import signal
import subprocess
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
import rclpy
from rclpy.node import Node
from rl100_msgs.msg import EpisodeEvent, Intervention, SafetyStatus
from rl100_msgs.srv import EndEpisode, StartEpisode
from rl100_recorder.bag_writer import list_episodes
from rl100_ros import qos, topics
from rosbags.highlevel import AnyReader
from rosbags.typesys import get_typestore, Stores

POSE = '/franka_robot_state_broadcaster/current_pose'


def spin_until(executor, predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, 'timed out'
        executor.spin_once(timeout_sec=0.05)


def call(executor, client, request):
    assert client.wait_for_service(timeout_sec=15.0)
    future = client.call_async(request)
    spin_until(executor, future.done)
    return future.result()


def test_records_a_labelled_episode(tmp_path, ros_env):
    topic_list = f'[{topics.INTERVENTION},{topics.SAFETY_STATUS},{topics.EPISODE_EVENT},{POSE}]'
    proc = subprocess.Popen(
        [sys.executable, '-m', 'rl100_recorder.recorder_node', '--ros-args',
         '-p', f'record_dir:={tmp_path}', '-p', 'task:=juicing-place', '-p', 'source:=demo',
         '-p', f'topics:={topic_list}', '-p', 'min_free_disk_gb:=0.0', '-p', 'table_dz:=0.01'],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_env['ROS_DOMAIN_ID']))
    try:
        node = Node('recorder_test', context=context)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        events = []
        node.create_subscription(EpisodeEvent, topics.EPISODE_EVENT, events.append, qos.LATCHED)
        heard = []  # per recorder report: the topics it says a message came on

        def on_diagnostics(msg):
            for st in msg.status:
                if st.name.startswith('recorder_node:'):
                    heard.append(json.loads({kv.key: kv.value for kv in st.values}['heard']))
        node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
        status_pub = node.create_publisher(SafetyStatus, topics.SAFETY_STATUS, qos.LATCHED)
        status_pub.publish(SafetyStatus(mode=SafetyStatus.MODE_TELEOP, reason='latched'))
        inter_pub = node.create_publisher(Intervention, topics.INTERVENTION, qos.RELIABLE)
        pose_pub = node.create_publisher(PoseStamped, POSE, qos.SENSOR)
        for pub in (status_pub, inter_pub, pose_pub):
            spin_until(executor, lambda p=pub: p.get_subscription_count() > 0)

        # a new stand measured while the node runs (the camera check): the next episode has it
        params = node.create_client(SetParameters, '/recorder_node/set_parameters')
        for value, ok in ((float('nan'), False), (0.02, True)):
            result = call(executor, params, SetParameters.Request(parameters=[Parameter(
                name='table_dz', value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE,
                                                      double_value=value))])).results[0]
            assert result.successful == ok, result.reason
        starter = node.create_client(StartEpisode, '/rl100/start_episode')
        # nothing was published on these yet: an episode that must have them is refused
        early = call(executor, starter, StartEpisode.Request(
            note='early', require_topics=[topics.INTERVENTION, POSE]))
        assert not early.accepted and early.unheard_topics == [topics.INTERVENTION, POSE]
        assert early.message.startswith(f'not receiving {topics.INTERVENTION}, {POSE} yet')
        start = call(executor, starter, StartEpisode.Request(note='first'))
        assert start.accepted, start.message
        for i in range(5):
            pose = PoseStamped()
            pose.pose.position.x = float(i)
            pose_pub.publish(pose)
            inter_pub.publish(Intervention(active=i == 4, gripper=0.25 * i))
            time.sleep(0.02)
        time.sleep(0.5)  # let the reliable messages arrive before the episode ends
        end = call(executor, node.create_client(EndEpisode, '/rl100/end_episode'),
                   EndEpisode.Request(label=EpisodeEvent.LABEL_SUCCESS, note='good'))
        assert end.accepted and end.episode_id == start.episode_id, end.message
        spin_until(executor, lambda: [e.event for e in events][-1:] == [EpisodeEvent.EVENT_END])
        # its diagnostics name the topics it received on (the episode runner waits for them)
        n_reports = len(heard)
        spin_until(executor, lambda: len(heard) > n_reports)
        assert heard[-1] == sorted([topics.INTERVENTION, topics.SAFETY_STATUS, POSE])
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=15)[0]
    assert proc.returncode == 0, out

    path = tmp_path / start.episode_id
    assert end.path == str(path) and list_episodes(tmp_path) == [path]
    side = json.loads((path / 'episode.json').read_text())
    assert (side['label'], side['task'], side['note']) == ('success', 'juicing-place', 'good')
    assert side['meta']['source'] == 'demo' and side['meta']['note'] == 'first'
    assert side['meta']['table_dz'] == 0.02  # the stand it was recorded on, for rl100 ingest
    assert 'table_dz must be finite' in out  # the refused value was not silent
    assert (side['steps'], side['interventions']) == (5, 1)
    with AnyReader([path], default_typestore=get_typestore(Stores.EMPTY)) as reader:
        got = {}
        for conn, _, raw in reader.messages():
            got.setdefault(conn.topic, []).append(reader.deserialize(raw, conn.msgtype))
    assert [m.gripper for m in got[topics.INTERVENTION]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [m.reason for m in got[topics.SAFETY_STATUS]] == ['latched']
    assert [m.pose.position.x for m in got[POSE]] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [(e.event, e.label) for e in got[topics.EPISODE_EVENT]] == [
        (EpisodeEvent.EVENT_START, 0), (EpisodeEvent.EVENT_END, EpisodeEvent.LABEL_SUCCESS)]
    assert os.listdir(tmp_path) == [start.episode_id]
