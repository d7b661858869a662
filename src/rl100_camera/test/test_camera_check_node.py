"""camera_check node: the sim robot's (knocked) camera watched over DDS, on /diagnostics."""

import json
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

pytest.importorskip('rl100.sim')
from rl100_camera.camera_check_node import CameraCheckNode  # noqa: E402
from rl100_sim.sim_robot_node import SimRobotNode  # noqa: E402

KNOCK = {'family': 'camera_pose', 'offset': [0.012, -0.008, 0.006], 'turn': [0.8, -1.5, 1.2]}


def _watch(disturbance: str, timeout: float = 60.0):
    """Sim robot and check node until a check ran: (result, error, statuses, status before)."""
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    nodes, seen = [], []
    try:
        nodes.append(SimRobotNode(context=context, parameter_overrides=[
            Parameter('enable_camera', value=True), Parameter('real_time_factor', value=2.0),
            Parameter('disturbance', value=disturbance)]))
        check = CameraCheckNode(context=context, parameter_overrides=[
            Parameter('period', value=0.5)])
        nodes.append(check)
        before = check._status()
        listener = Node('diag_listener', context=context)
        nodes.append(listener)
        listener.create_subscription(
            DiagnosticArray, '/diagnostics',
            lambda m: seen.extend(s for s in m.status if 'camera check' in s.name), 10)
        for node in nodes:
            executor.add_node(node)
        spin = threading.Thread(target=executor.spin, daemon=True)
        spin.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (check._checks and len(seen) > 2):
            time.sleep(0.2)
        time.sleep(1.2)  # one more diagnostics period after the check
        return check._result, check._error, list(seen), before
    finally:
        executor.shutdown(timeout_sec=2.0)
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_a_knocked_camera_is_reported_and_a_calibrated_one_is_not():
    result, error, seen, before = _watch(json.dumps([KNOCK]))
    assert not error and result is not None, error
    assert result['moved_mm'] == pytest.approx(15.6, abs=2.0)
    assert seen[-1].level == DiagnosticStatus.WARN and 'check_camera' in seen[-1].message
    assert before[0] == DiagnosticStatus.WARN and 'not checked yet' in before[1]
    result, error, seen, _ = _watch('none')
    assert not error and result['moved_mm'] < 1.0 and result['turned_deg'] < 0.05
    assert seen[-1].level == DiagnosticStatus.OK and 'where calibrated' in seen[-1].message
