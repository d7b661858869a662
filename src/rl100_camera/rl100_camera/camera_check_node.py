"""Camera check node: watches, all day, that the scene camera stays where its calibration says.

A camera knocked during the day silently breaks a point-cloud policy (BENCHMARKS: 0/20 episodes
after a 15 mm / 2 deg knock). Every ``period`` s, when the arm is still (no joint moved more
than ``still_rad``), this node takes the newest aligned depth image with its camera_info and the
joint angles of its moment, checks it against the robot and the table rendered from the
calibration in use (``rl100_camera.camera_check``) and reports on ``/diagnostics``: OK while the
camera is within ``warn_mm`` / ``warn_deg`` of it, WARN past that (naming the move and what to
run: ``python -m rl100_bringup.check_camera``), ERROR when the check is refused (the scene does
not match).

The calibration in use is read before every check from the node that makes the base-frame
cloud (the first of ``cloud_nodes`` that answers: cloud_to_base on the robot, the sim robot in
simulation; this node's own ``camera_pose`` when none does). ``/rl100/check_camera``
(std_srvs/Trigger) checks on the next still frame that arrives after the call (what an episode
runner asks before each episode, the arm at home) and answers with the result as JSON. With
``correct`` on (default off: an operator looks first), a check that finds the camera moved past
the warn limits sets the corrected ``camera_pose`` on that cloud node, and a table found more
than ``table_tol_mm`` from the ``table_dz`` of the ``table_nodes`` (policy node, recorder) sets
the measured one there (the check measures the table's height with the camera's pose: the
robot tells a raised table from a camera moved up); a refused check never changes anything.
A depth image is checked with the joint state of its own stamp, and only when the arm was still
over the moment before it (``rl100_camera.camera_check.StillFrames``); a correction is set only
when two consecutive still frames agree on it within ``warn_mm`` (the first and the next, or,
when those disagree, the next pair, up to ``confirm_frames``; otherwise the result says
``unconfirmed``). Checks run in a side node's thread (they take 0.1-0.3 s and render with
MuJoCo), never in the thread that takes the images.
"""

from __future__ import annotations

from collections import deque
import json
import threading
import time

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.node import Node
from rclpy.parameter import Parameter
from rl100_ros import diagnostics, qos, topics
from rl100_ros.conversions import seconds
from rl100_ros.node_main import run_node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_srvs.srv import Trigger

from .calibration_param import (
    CLOUD_NODES,
    get_camera_pose,
    get_double,
    set_camera_pose,
    set_double,
    TABLE_DZ,
    TABLE_NODES,
)
from .camera_check import (
    believed_pose,
    CameraCheck,
    check_two_starts,
    depth_metres,
    Frame,
    robot_state,
    status,
    StillFrames,
)

LEVELS = {0: diagnostics.OK, 1: diagnostics.WARN, 2: diagnostics.ERROR}  # camera_check -> bytes
FRESH_FRAMES = 2  # depth images after a check_camera call before one is used (one in flight)
CLOCK_MISMATCH_S = 10.0  # s between an image's stamp and this node's clock: other timebases


class CameraCheckNode(Node):

    def __init__(self, **node_kwargs):
        super().__init__('camera_check', **node_kwargs)
        p = self._declare
        self._task = p('task', 'juicing-place', 'simulated task whose robot and table model is '
                       'the expected scene')
        pose = p('camera_pose', [float('nan')] * 7, 'the calibration in use when no cloud node '
                 'answers: x y z qx qy qz qw of the camera optical frame in the base frame; '
                 "NaN: the simulated task camera's own")
        self._period = float(p('period', 60.0, 's between checks (only while the arm is still)'))
        self._warn_mm = float(p('warn_mm', 3.0, 'WARN when the camera moved more than this (mm)'))
        self._warn_deg = float(p('warn_deg', 0.3, 'WARN when it turned more than this (deg)'))
        self._still = float(p('still_rad', 0.002, 'the arm counts as still when no joint moved '
                              'more than this (rad) over the 0.25 s before a depth image'))
        depth_topic = p('depth_topic', '/camera/camera/aligned_depth_to_color/image_raw',
                        'aligned depth image (16UC1 mm or 32FC1 m)')
        info_topic = p('info_topic', '/camera/camera/aligned_depth_to_color/camera_info',
                       'its camera_info')
        self._cloud_nodes = [str(n) for n in p(
            'cloud_nodes', list(CLOUD_NODES), 'nodes that make the base-frame cloud from a '
            'camera_pose parameter: the first one that answers holds the calibration in use '
            '(read before every check) and gets the corrections')]
        self._correct = bool(p('correct', False, 'set the corrected camera_pose on the cloud '
                               'node when a check finds the camera moved past warn_mm / '
                               'warn_deg (false: report only, an operator runs check_camera)'))
        self._table_nodes = [str(n) for n in p(
            'table_nodes', list(TABLE_NODES), "nodes with a table_dz parameter (the table's "
            'height over the training one): with correct, set to the measured height when it '
            'is off by more than table_tol_mm')]
        self._confirm_frames = int(p('confirm_frames', 3, 'with correct: still frames a '
                                     'correction may take to be seen on two consecutive ones '
                                     '(2: only the next frame may confirm it)'))
        if self._confirm_frames < 2:
            raise ValueError(f'confirm_frames must be >= 2, got {self._confirm_frames}')
        self._table_tol = float(p('table_tol_mm', 3.0, 'with correct: how far (mm) the '
                                  "measured table may be from the nodes' table_dz")) / 1000.0
        self._wait = float(p('check_timeout', 10.0, 's (wall) a check_camera call waits for a '
                             'fresh depth image with the arm still'))
        if not self._period > 0:
            raise ValueError(f'period must be > 0 s, got {self._period}')
        if not self._wait > 0:
            raise ValueError(f'check_timeout must be > 0 s, got {self._wait}')
        self._own = [] if all(v != v for v in pose) else list(pose)  # all NaN: the sim's own
        self._check = CameraCheck(believed_pose(self._own, self._task), self._task)
        self._sim_own = self._check.believed if not self._own else None
        self._info = self._gripper = None
        self._depths = 0  # depth images received
        self._recent: deque = deque(maxlen=8)  # (number, depth image) of the newest ones
        self._frames = StillFrames(self._still)  # joint states, to pair with a depth stamp
        self._result, self._error, self._checks, self._skipped = None, '', 0, 0
        self._corrections, self._cloud = 0, ''
        self._first = None  # (4, 4) the first calibration read: the operator's, presumably
        self._lock = threading.Lock()  # one check at a time (service and timer)
        self.create_subscription(Image, depth_topic, self._on_depth, qos.SENSOR)
        self.create_subscription(CameraInfo, info_topic, self._on_info, qos.SENSOR)
        self.create_subscription(JointState, topics.JOINT_STATES, self._on_joints, qos.SENSOR)
        self.create_subscription(JointState, topics.GRIPPER_STATE, self._on_gripper, qos.SENSOR)
        # the parameter clients answer through this node's executor; the worker waits on them
        self._param_clients = {(kind, f'{n}/{srv}'): self.create_client(kind, f'{n}/{srv}')
                               for n in ('/' + c.strip('/')
                                         for c in (*self._cloud_nodes, *self._table_nodes))
                         for kind, srv in ((GetParameters, 'get_parameters'),
                                           (SetParameters, 'set_parameters'))}
        # the checks: a side node with an executor thread of its own (rl100_ros.run_node)
        self.worker = Node(f'{self.get_name()}_worker', namespace=self.get_namespace(),
                           context=self.context, start_parameter_services=False,
                           cli_args=['--ros-args', '-r', f'__node:={self.get_name()}_worker'],
                           parameter_overrides=[Parameter('use_sim_time', value=bool(
                               self.get_parameter('use_sim_time').value))])
        self.worker.create_timer(self._period, self.check_now)
        self.worker.create_service(Trigger, topics.CHECK_CAMERA, self._on_check)
        self.side_nodes = (self.worker,)
        self._diagnostics = diagnostics.Diagnostics(self, 'camera check', self._status)

    def _declare(self, name, default, description):
        self.declare_parameter(name, default, ParameterDescriptor(description=description))
        return self.get_parameter(name).value

    def _on_depth(self, msg: Image) -> None:
        self._depths += 1
        self._recent.append((self._depths, msg))

    def _on_info(self, msg: CameraInfo) -> None:
        self._info = (msg.k[0], msg.k[4], msg.k[2], msg.k[5])

    def _on_joints(self, msg: JointState) -> None:
        from rl100.robot_state import split_joint_state

        try:
            width, arm = split_joint_state(list(msg.name), msg.position)
        except ValueError as exc:
            self.get_logger().warn(f'joint_states: {exc}', throttle_duration_sec=10.0)
            return
        self._frames.add(seconds(msg.header.stamp), width, arm)

    def _on_gripper(self, msg: JointState) -> None:
        self._gripper = float(sum(msg.position))

    # --- checks (worker thread) ---------------------------------------------------------------
    def _call(self, srv_type, service: str, request, timeout: float = 2.0):
        """A parameter service call answered through the main executor; None when none came."""
        client = self._param_clients.get((srv_type, service))
        if client is None or not client.service_is_ready():
            return None
        future = client.call_async(request)
        answered = threading.Event()
        future.add_done_callback(lambda _: answered.set())
        if not answered.wait(timeout):
            client.remove_pending_request(future)
            return None
        return future.result()

    def _calibration(self):
        """(cloud node or '', its parameter type, (4, 4) pose): the calibration in use."""
        from rl100.geometry import pose7_to_matrix

        for name in self._cloud_nodes:
            try:
                kind, pose = get_camera_pose(self._call, name)
            except ValueError:
                continue  # not running here (the other one of the pair) or no such parameter
            if pose:
                return name, kind, pose7_to_matrix(pose)
            if self._sim_own is None:
                self._sim_own = believed_pose([], self._task)
            return name, kind, self._sim_own
        return '', None, believed_pose(self._own, self._task) if self._own else self._sim_own

    def _pick(self, after: int = 0, since: float = 0.0):
        """The newest still frame: numbered above ``after``, stamped after ``since`` (s).

        Still: the arm did not move over the moment before the image's stamp.

        Returns (number, image, (width, arm)) with the joint state of that moment, or None.
        """
        if self._info is None:
            return None
        for number, msg in reversed(list(self._recent)):
            if number <= after:
                break
            stamp = seconds(msg.header.stamp)
            if stamp <= since:
                break
            state = self._frames.state_at(stamp)
            if state is not None:
                return number, msg, state
        return None

    def _wait_pick(self, after: int, deadline: float, since: float = 0.0):
        while (pick := self._pick(after, since)) is None:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.01)
        return pick

    def _frame(self, msg, width: float, arm) -> Frame:
        return Frame(depth_metres(msg), self._info, robot_state(
            self._gripper if self._gripper is not None else width, arm))

    def check_now(self) -> bool:
        """Check the newest frame if there is one and the arm is still; True when a check ran."""
        pick = self._pick()
        if pick is None:
            self._skipped += 1
            return False
        self._run(pick)
        return True

    def _confirm(self, believed: np.ndarray, frame: Frame, number: int) -> tuple:
        """A correction must be seen twice: on two consecutive still frames that agree.

        ``frame`` is checked together with the next still frame; when the two disagree by more
        than warn_mm, the newer one is paired with the frame after it, up to ``confirm_frames``
        frames in all (a single frame's wrong fit is outvoted instead of leaving the camera
        uncorrected). Returns (the check over the agreeing pair, with ``confirmed_at_frame``: 2
        or more, the frame that confirmed it, '') or (None, why not).
        """
        why = 'no second still frame to confirm it'
        for seen in range(2, self._confirm_frames + 1):
            pick = self._wait_pick(number, time.monotonic() + self._wait)
            if pick is None:
                return None, why
            number, msg, (width, arm) = pick
            newer = self._frame(msg, width, arm)
            both = self.check_from(believed, [frame, newer])
            if 2.0 * both['spread_mm'] <= self._warn_mm:
                return both | {'confirmed_at_frame': seen}, ''
            why = f'two frames disagree by {2.0 * both["spread_mm"]:.1f} mm'
            frame = newer
        return None, why

    def _run(self, pick) -> dict | None:
        """One check of a picked frame (and a correction when asked for); the result."""
        number, msg, (width, arm) = pick
        with self._lock:
            corrected, unconfirmed = False, ''
            try:
                self._cloud, kind, believed = self._calibration()
                if self._first is None:
                    self._first = believed
                frame = self._frame(msg, width, arm)
                result = self.check_from(believed, [frame])
                level, message = status(result, self._warn_mm, self._warn_deg)
                if self._correct and level and self._cloud:
                    both, unconfirmed = self._confirm(believed, frame, number)
                    if both is not None:
                        result = both
                        set_camera_pose(self._call, self._cloud, result['camera_pose'], kind)
                        self._corrections, corrected = self._corrections + 1, True
                        message = message.split(':')[0] + f': corrected on {self._cloud}'
                    else:
                        message += f' (not corrected: {unconfirmed})'
                tables = self._correct_table(result['table_dz']) if self._correct else []
                self._result = result | {'corrected': corrected, 'table_set': tables}
                if unconfirmed:
                    self._result['unconfirmed'] = unconfirmed
                self._error = ''
            except ValueError as exc:  # refused, a depth image it cannot read, a refused pose
                self._result, self._error = None, str(exc)
                self.get_logger().error(f'camera check: {exc}')
            self._checks += 1
            if self._result is None:
                return None
            if level:  # one call site per severity: rclpy refuses a site that changes it
                self.get_logger().warn(message)
            else:
                self.get_logger().info(message)
            return self._result | {'cloud_node': self._cloud}

    def check_from(self, believed: np.ndarray, frames: list) -> dict:
        """``frames`` checked from ``believed`` (4, 4) and from the first calibration read.

        See :func:`rl100_camera.camera_check.check_two_starts`.
        """
        result, refused = check_two_starts(self._check, believed, frames, self._first)
        if refused:
            self.get_logger().warn(f'camera check refused ({refused}); the fit from the first '
                                   'calibration is used')
        return result

    def _correct_table(self, table_dz: float) -> list:
        """Set the measured ``table_dz`` on the table nodes it is off on; the nodes set."""
        done = []
        for name in self._table_nodes:
            try:
                now = get_double(self._call, name, TABLE_DZ)
            except ValueError:
                continue  # not in this graph
            if abs(table_dz - now) > self._table_tol:
                set_double(self._call, name, TABLE_DZ, round(table_dz, 4))
                done.append(name)
                self.get_logger().warn(f'table {table_dz * 1000:+.1f} mm from the model, '
                                       f'{name} had {now * 1000:+.1f} mm: set')
        return done

    def _on_check(self, request, response):
        """check_camera: the next still frame after the call; the result JSON, or why not.

        After the call means both: arrived as the FRESH_FRAMES-th image or later, and stamped
        after the node's clock (simulated time in simulation) read at the call. On a loaded
        machine more than one image rendered before the call (before the reset that knocked the
        camera) can still be on its way: counting alone, 12 of 477 checks in a soak beside a
        training run found no move (0.1-2.1 mm) at a new knock and left it uncorrected; with the
        stamp, 3 of 271 (BENCHMARKS, the camera check).
        """
        start, since = self._depths, self._call_time()
        pick = self._wait_pick(start + FRESH_FRAMES - 1, time.monotonic() + self._wait, since)
        if pick is None:
            response.success = False
            response.message = (f'no fresh depth image with the arm still at its moment within '
                                f'{self._wait:g} s ({self._depths - start} new images)')
            return response
        result = self._run(pick)
        response.success = result is not None
        response.message = json.dumps(result) if result is not None else self._error
        return response

    def _call_time(self) -> float:
        """This node's clock now (s), or 0 when the images are stamped on another timebase.

        The camera's stamps and this node's clock agree when both follow the same clock
        (``use_sim_time`` like the camera's publisher); when the newest image is more than
        CLOCK_MISMATCH_S away from it, only the image count says what is fresh (and a WARN says
        why).
        """
        now = self.get_clock().now().nanoseconds * 1e-9
        if not self._recent:
            return 0.0  # every image from now on arrives after the call
        newest = seconds(self._recent[-1][1].header.stamp)
        if abs(now - newest) > CLOCK_MISMATCH_S:
            self.get_logger().warn(
                f"depth images are stamped {newest - now:+.1f} s from this node's clock: "
                "use_sim_time must match the camera publisher's (fresh frames are told by "
                'count only)', throttle_duration_sec=60.0)
            return 0.0
        return now

    def _status(self):
        values = {'checks': self._checks, 'skipped (no frame or arm moving)': self._skipped,
                  'corrections': self._corrections, 'cloud node': self._cloud or 'none'}
        if self._error:
            return diagnostics.ERROR, f'check refused: {self._error}', values
        if self._result is None:
            return (diagnostics.WARN, 'not checked yet (no depth image, or the arm never still)',
                    values)
        level, message = status(self._result, self._warn_mm, self._warn_deg)
        if self._result.get('corrected'):  # moved, and the calibration now follows it
            level, message = 0, message.split(':')[0] + f': corrected on {self._cloud}'
        level = LEVELS[level]
        values.update({k: v for k, v in self._result.items() if k != 'camera_pose'})
        values['camera_pose'] = ' '.join(f'{v:.6f}' for v in self._result['camera_pose'])
        return level, message, values

    def destroy_node(self):
        worker = getattr(self, 'worker', None)
        if worker is not None:
            worker.destroy_node()
        self._check.close()
        return super().destroy_node()


def main(args=None) -> int:
    return run_node(CameraCheckNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
