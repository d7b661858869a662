"""camera_check node: the sim robot's (knocked) camera watched over DDS, on /diagnostics."""

import contextlib
import json
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rl100_ros import topics
from rl100_ros.node_main import SideExecutors
from std_srvs.srv import Trigger

pytest.importorskip('rl100.sim')
from rl100_camera.camera_check_node import CameraCheckNode  # noqa: E402
from rl100_sim.sim_robot_node import SimRobotNode  # noqa: E402

KNOCK = {'family': 'camera_pose', 'offset': [0.012, -0.008, 0.006], 'turn': [0.8, -1.5, 1.2]}
STAND = {'family': 'table_height', 'shift': [0.015, 0.015]}  # the table 1.5 cm higher


@contextlib.contextmanager
def _graph(disturbance: str, **check_params):
    """A sim robot (camera on, 2x real time) and a check node spun in threads, as run_node does.

    Yields ``(context, sim, check, add)``: ``add(node)`` spins one more node of the context.
    """
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    nodes, side = [], None
    try:
        nodes.append(SimRobotNode(context=context, parameter_overrides=[
            Parameter('enable_camera', value=True), Parameter('real_time_factor', value=2.0),
            Parameter('disturbance', value=disturbance)]))
        nodes.append(CameraCheckNode(context=context, parameter_overrides=[
            Parameter(k, value=v) for k, v in check_params.items()]))
        side = SideExecutors(nodes[1])

        def add(node):
            nodes.append(node)
            executor.add_node(node)
            return node

        for node in nodes:
            executor.add_node(node)
        threading.Thread(target=executor.spin, daemon=True).start()
        yield context, nodes[0], nodes[1], add
    finally:
        if side is not None:
            side.close(2.0)
        executor.shutdown(timeout_sec=2.0)
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=context)


def _watch(disturbance: str, timeout: float = 60.0):
    """Sim robot and check node until a check ran: (result, error, statuses, status before)."""
    seen = []
    with _graph(disturbance, period=0.5) as (context, _, check, add):
        before = check._status()
        listener = add(Node('diag_listener', context=context))
        listener.create_subscription(
            DiagnosticArray, '/diagnostics',
            lambda m: seen.extend(s for s in m.status if 'camera check' in s.name), 10)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (check._checks and len(seen) > 2):
            time.sleep(0.2)
        time.sleep(1.2)  # one more diagnostics period after the check
        return check._result, check._error, list(seen), before


def test_a_knocked_camera_is_reported_and_a_calibrated_one_is_not():
    result, error, seen, before = _watch(json.dumps([KNOCK]))
    assert not error and result is not None, error
    assert result['moved_mm'] == pytest.approx(15.6, abs=2.0)
    assert seen[-1].level == DiagnosticStatus.WARN and 'check_camera' in seen[-1].message
    assert before[0] == DiagnosticStatus.WARN and 'not checked yet' in before[1]
    result, error, seen, _ = _watch('none')
    assert not error and result['moved_mm'] < 1.0 and result['turned_deg'] < 0.05
    assert seen[-1].level == DiagnosticStatus.OK and 'where calibrated' in seen[-1].message


def test_check_camera_service_corrects_the_cloud_nodes_calibration():
    """With correct on, a check_camera call corrects the sim robot's camera_pose and table_dz.

    The first call finds the knock and the stand 1.5 cm higher: it sets the corrected pose on
    the sim robot (whose cloud then comes from it) and the table's height on the table node
    that runs (a stand-in for the policy node); the second finds nothing left to correct.
    """
    from rl100.geometry import pose7_to_matrix
    from rl100.sim.bench_camera_check import task_area_error

    answers = []
    with _graph(json.dumps([KNOCK, STAND]), period=3600.0, correct=True,
                table_nodes=['/stand_in', '/not_running']) as (context, sim, check, add):
        stand_in = Node('stand_in', context=context)
        stand_in.declare_parameter('table_dz', 0.0)
        add(stand_in)
        caller = add(Node('check_caller', context=context))
        client = caller.create_client(Trigger, topics.CHECK_CAMERA)
        assert client.wait_for_service(timeout_sec=10.0)
        for _ in range(2):
            future = client.call_async(Trigger.Request())
            deadline = time.monotonic() + 60.0
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert future.done(), (f'no answer from check_camera (call {len(answers) + 1}: '
                                   f'{check._checks} checks, {check._depths} images)')
            answers.append(future.result())
        robot = sim._robot
        true = robot.env.unwrapped._get_renderer().info(
            robot.env.unwrapped.data, robot.env.unwrapped.scene_camera).base_T_cam
        applied = robot.camera_pose
        status = check._status()
        table_dz = stand_in.get_parameter('table_dz').value
    first, second = answers
    assert first.success, first.message
    result = json.loads(first.message)
    assert result['cloud_node'] == '/sim_robot' and result['corrected']
    assert result['moved_mm'] == pytest.approx(15.6, abs=2.0)
    assert result['table_set'] == ['/stand_in'] and table_dz == pytest.approx(0.015, abs=0.001)
    assert applied is not None and task_area_error(applied, true).max() < 0.003
    np.testing.assert_allclose(applied, pose7_to_matrix(result['camera_pose']), atol=1e-5)
    assert second.success, second.message
    again = json.loads(second.message)
    assert not again['corrected'] and again['moved_mm'] < 3.0 and again['turned_deg'] < 0.3, again
    assert again['table_set'] == []
    assert status[0] == DiagnosticStatus.OK and status[2]['corrections'] == 1


def test_a_refused_check_is_tried_once_more_from_the_first_calibration():
    """From a corrected calibration a new knock is further off: the first one is a second start."""
    from rl100.geometry import matrix_to_pose7

    first, in_use, found = np.eye(4), np.eye(4), np.eye(4)
    in_use[:3, 3] = [0.02, 0.0, 0.0]  # corrected after an earlier knock
    found[:3, 3] = [0.0, 0.01, 0.0]  # where the camera is now

    class Stub:
        believed, starts = None, []

        def __call__(self, frames):
            self.starts.append(self.believed.copy())
            if self.believed is not first:
                raise ValueError('the camera moved 143 mm / turned 10.6 deg (limits 100 mm / '
                                 '10 deg): recalibrate')
            return {'moved_mm': 10.0, 'turned_deg': 0.0, 'table_dz': 0.0,
                    'camera_pose': [float(v) for v in matrix_to_pose7(found)]}

        def close(self):
            pass

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = CameraCheckNode(context=context)
        node._check.close()
        node._check, node._first = Stub(), first
        frame = None  # the stub does not look at it
        result = node.check_from(in_use, [frame])
        assert len(node._check.starts) == 2 and result['retried']
        assert result['moved_mm'] == pytest.approx(22.36, abs=0.01)  # from the one in use
        with pytest.raises(ValueError, match='recalibrate'):
            node.check_from(np.eye(4), [frame])  # equal to the first: nothing else to try

        class BothFit(Stub):  # both starts fit; the one that pairs more of the image wins
            paired = {}

            def __call__(self, frames):
                self.starts.append(self.believed.copy())
                pose = found if self.believed is first else in_use
                return {'paired': self.paired[self.believed is first], 'moved_mm': 0.0,
                        'camera_pose': [float(v) for v in matrix_to_pose7(pose)]}

        node._check = BothFit()
        node._check.starts = []
        node._check.paired = {True: 0.95, False: 0.88}  # the first start pairs more
        result = node.check_from(in_use, [frame])
        assert len(node._check.starts) == 2 and result['retried']
        assert result['moved_mm'] == pytest.approx(22.36, abs=0.01)
        node._check.paired = {True: 0.90, False: 0.93}  # the calibration in use pairs more
        result = node.check_from(in_use, [frame])
        assert 'retried' not in result and result['moved_mm'] == 0.0
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


def test_a_correction_is_confirmed_on_a_second_still_frame():
    """Two frames that disagree by more than warn_mm correct nothing; agreeing ones do."""
    from sensor_msgs.msg import Image

    def depth_image(sec):
        msg = Image(height=2, width=2, encoding='32FC1', step=8, data=bytes(16))
        msg.header.stamp.sec = sec
        return msg

    class Stub:
        believed, spread = None, 0.0

        def __call__(self, frames):
            return {'spread_mm': self.spread if len(frames) > 1 else 0.0, 'camera_pose': []}

        def close(self):
            pass

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = CameraCheckNode(context=context, parameter_overrides=[
            Parameter('check_timeout', value=0.2)])
        node._check.close()
        node._check, node._info = Stub(), (50.0, 50.0, 1.0, 1.0)
        for t in np.arange(9.5, 11.01, 0.1):  # joint states at 10 Hz, the arm still
            node._frames.add(float(t), 0.04, np.zeros(7))
        node._recent.extend([(1, depth_image(10)), (2, depth_image(11))])
        frame = node._frame(node._recent[0][1], 0.04, np.zeros(7))
        # fresh after a call: stamped after the clock read at the call, not only counted
        assert node._pick(0, since=10.5)[0] == 2 and node._pick(0, since=11.0) is None
        assert node._call_time() == 0.0  # wall clock here, images at 10-11 s: count only
        node._check.spread = 2.0  # 4 mm apart
        both, why = node._confirm(np.eye(4), frame, 1)
        assert both is None and why == 'two frames disagree by 4.0 mm'
        node._check.spread = 1.0
        both, why = node._confirm(np.eye(4), frame, 1)
        assert both is not None and not why
        both, why = node._confirm(np.eye(4), frame, 2)  # no newer frame comes
        assert both is None and why == 'no second still frame to confirm it'
        # frames 1 and 2 disagree (frame 1's fit was wrong), 2 and 3 agree: corrected
        spreads, pairs = iter([2.0, 1.0]), []

        def pair_check(frames):
            pairs.append(len(frames))
            if len(pairs) == 1:  # frame 3 arrives while the first pair is checked
                node._recent.append((3, depth_image(11)))
            return {'spread_mm': next(spreads), 'camera_pose': []}
        node._check.__class__.__call__ = lambda self, frames: pair_check(frames)
        both, why = node._confirm(np.eye(4), frame, 1)
        assert both is not None and not why and pairs == [2, 2] and both['confirmed_at_frame'] == 3
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
