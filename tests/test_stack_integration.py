"""The simulated orange_juicer graph end to end: separate processes, real DDS, a recorded episode.

``python -m rl100_bringup.up orange_juicer`` starts the sim robot, safety, policy and recorder
nodes. This test plays the operator: it starts an episode, takes over with a Joy device
(deflection + takeover button) for a while, releases, labels the episode a success, stops the
graph, then reads the MCAP bag back and ingests it into the trainer's dataset: the steps under
takeover are flagged as interventions and the operator's motion is in the actions.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")


def _wait_line(proc, text: str, timeout: float) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"no {text!r} within {timeout} s:\n{''.join(lines)}")


def test_episode_with_takeover_is_recorded_and_ingested(ros_env, tmp_path):
    from rl100_safety.keyboard_teleop import JOY_TOPIC
    from rl100_safety.teleop import TeleopInput, input_to_joy
    from sensor_msgs.msg import Joy

    from rl100.data import Dataset
    from rl100.ingest import ingest
    from rl100.keys import ACTION, FLAG_INTERVENTION, FLAG_ROLLOUT, FLAGS
    from rl100_msgs.srv import EndEpisode, StartEpisode
    from rl100_ros import qos, topics

    record = tmp_path / "episodes"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rl100_bringup.up", "orange_juicer", "model:=none", f"record_dir:={record}"],
        env=ros_env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_env["ROS_DOMAIN_ID"]))
    node = rclpy.create_node("operator", context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    log = []
    try:
        log += _wait_line(proc, "graph 'orange_juicer' up", 90)
        joy = node.create_publisher(Joy, JOY_TOPIC, qos.COMMAND)

        def call(srv_type, name, request):
            client = node.create_client(srv_type, name)
            assert client.wait_for_service(timeout_sec=20), f"{name} not available"
            future = client.call_async(request)
            executor.spin_until_future_complete(future, timeout_sec=20)
            assert future.result() is not None, f"{name} did not answer"
            return future.result()

        def operate(seconds: float, sample: TeleopInput):
            axes, buttons = input_to_joy(sample)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                joy.publish(Joy(axes=axes, buttons=buttons))
                executor.spin_once(timeout_sec=0.05)

        started = call(StartEpisode, topics.START_EPISODE, StartEpisode.Request(task="juicing-place"))
        assert started.accepted, started.message
        operate(1.0, TeleopInput())  # hands off: the safety node holds the pose
        operate(2.0, TeleopInput(twist=np.array([0.0, 1.0, 0.0, 0.0, 0.0, 0.0]), takeover=True))
        operate(1.0, TeleopInput())  # released: control goes back (no policy loaded: hold)
        ended = call(EndEpisode, topics.END_EPISODE, EndEpisode.Request(label=1, note="integration"))
        assert ended.accepted and ended.path, ended.message
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        log.append(out)
    text = "".join(log)
    assert proc.returncode == 0, text

    episodes = [p for p in record.iterdir() if p.is_dir()]
    assert len(episodes) == 1 and not episodes[0].name.endswith(".partial"), text
    side = json.loads((episodes[0] / "episode.json").read_text())
    assert side["label"] == "success" and side["interventions"] > 0

    dataset = tmp_path / "dataset"
    report = ingest([record], dataset)
    assert len(report["ingested"]) == 1, report
    ds = Dataset(dataset)
    ep = ds.episode(0)
    flags = np.asarray(ep[FLAGS])
    assert (flags & FLAG_INTERVENTION).any() and (flags & FLAG_ROLLOUT).any()
    actions = np.asarray(ep[ACTION])
    moved = actions[flags & FLAG_INTERVENTION > 0, 1]
    assert moved.max() - moved.min() > 0.02  # the operator pushed the target along +y
    assert ds.episode_info(0).success
