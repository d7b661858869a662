"""Simulated robot node: a MuJoCo task behind the topics of franka_ros2 and realsense-ros.

Publishes ``/joint_states``, ``/franka_robot_state_broadcaster/current_pose``,
``/franka_gripper/joint_states``, the camera topics (``enable_camera``), the scene camera's
point cloud in the robot base frame on ``/rl100/points`` (``enable_points``: PointCloud2, the
full cloud cropped to the task's box, not downsampled) and ``/clock``, all stamped with the
tick's simulated time; takes
``/rl100/target_pose`` and ``/rl100/gripper_command`` like the real robot side; serves
``/rl100/sim/reset`` (std_srvs/Trigger; the next seed) and ``/rl100/sim/success``
(std_srvs/Trigger: success = the task's success detector now, message = JSON details: seed,
steps and ``episode_time`` since the last reset, ``success_time`` (episode time of the first
successful tick since the reset, null before), the task's own ``time_limit`` (s), simulated
``time``, ``resets`` applied since start-up, ``lockstep_timeouts`` since start-up). Setting the
``seed`` parameter while the node runs (``ros2 param set /sim_robot seed 1000``) makes the next
reset use that seed, so an evaluation can rerun the same scenes in a graph that stays up
(``camera_pose`` set at run time replaces the cloud's calibration at once); ``paused`` true stops
the simulation (no stepping, no topics, no ``/clock``), so a graph kept up between batches of
episodes costs nothing while a trainer runs beside it. With ``scripted_operator`` the node also
plays the human operator of the RL loop (:mod:`rl100_sim.sim_operator`): near failure it takes over
with the task's scripted expert, publishing absolute targets on ``/rl100/teleop/target`` for a
safety node with ``teleop_device: pose``; the success status then also reports the episode's
``takeover`` (step and reason, null before one). Robustness families (``disturbance``) act from
each reset; their pushes count control steps only while a safety node reports AUTONOMOUS on
``/rl100/safety_status`` (as in-process, where step 0 is the policy's first action), so the
hold around a reset or a camera check does not swallow them.

Time: simulated time is published on ``/clock``; the other nodes run with
``use_sim_time:=true``. With ``real_time_factor`` 0 the simulation runs in lockstep as fast
as the graph answers: after publishing the state of tick k it waits (up to
``lockstep_timeout`` wall seconds) for a target stamped at or after tick k, then steps.
With ``real_time_factor`` > 0 it steps on a wall-clock schedule and never waits.
``/diagnostics`` (``sim_robot: sim``, wall clock): steps, resets, the real-time factor over
the last second and the lockstep timeouts (WARN in a second with new ones: some node of the
graph is not answering).
"""

from __future__ import annotations

import json
import os
import threading
import time

from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rl100_ros import diagnostics, qos, topics
from rl100_ros.conversions import seconds
from rl100_ros.node_main import run_node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32
from std_srvs.srv import Trigger

from .sim_robot import ARM_JOINTS, CommandRejectedError, FINGER_JOINTS, SimRobot

SIM_RESET = '/rl100/sim/reset'
SIM_SUCCESS = '/rl100/sim/success'


def _time_msg(t: float) -> Time:
    ns = int(round(t * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


class SimRobotNode(Node):

    def __init__(self, **node_kwargs):
        super().__init__('sim_robot', **node_kwargs)
        p = self._declare
        task = p('task', 'juicing-place', 'simulated task (rl100.sim task name)')
        self._seed = int(p('seed', 0, 'seed of the first episode; each reset uses the next one; '
                           'set while running: the seed of the next reset'))
        self._next_seed: int | None = None  # set at run time: the next reset's seed
        self._resets = 0
        self._rtf = float(p('real_time_factor', 0.0, '0: lockstep, as fast as the graph '
                            'answers; > 0: wall-clock paced at this multiple of real time'))
        self._lockstep_timeout = float(p('lockstep_timeout', 1.0, 'lockstep: wall seconds to '
                                         'wait for a target before stepping on the held one'))
        cameras = bool(p('enable_camera', False, 'render and publish the scene camera'))
        points = bool(p('enable_points', False, 'publish the scene camera point cloud (base '
                        'frame, cropped to the task box) on /rl100/points'))
        self._frame = p('base_frame', 'fr3_link0', 'robot base frame')
        disturbance = str(p('disturbance', 'none', 'robustness families (rl100.sim.disturbances) '
                            "acting from each reset: 'none', names or name:severity, "
                            "comma-separated ('push_arm,latency:mild'), or a JSON list of "
                            'family configs'))
        operator = bool(p('scripted_operator', False, 'play the human operator: take over near '
                          'failure with the scripted expert, as absolute targets on '
                          '/rl100/teleop/target (the safety node needs teleop_device: pose); '
                          'when started true, settable at run time (false: the operator '
                          'watches no more, true: from the next tick)'))
        self._paused = bool(p('paused', False, 'stop stepping and publishing (no /clock: the '
                              'graph idles at no cost) until set false; settable at run time'))
        operator_skill = float(p('operator_skill', 1.0, 'skill of the expert the scripted '
                                 'operator drives, 0..1'))
        operator_config = str(p('operator_config', '{}', 'scripted operator thresholds: a JSON '
                                'object of rl100.loop.operator.OperatorConfig fields '
                                '(e.g. {"stall_steps": 30}); {} = defaults'))
        depth_filter = str(p('depth_filter', 'none', 'the camera-side depth filter before the '
                             "cloud is made (rl100.pointcloud.filter_depth): 'none', 'median3', "
                             "'median5'; match the model card's depth_filter"))
        camera_pose = str(p('camera_pose', '', 'the hand-eye calibration the /rl100/points cloud '
                            'is made with, x y z qx qy qz qw of the camera optical frame in the '
                            "base frame (what cloud_to_base's camera_pose is on the robot; "
                            'python -m rl100_bringup.check_camera prints it); empty: the '
                            "simulator's own"))
        from rl100.sim import make_config, make_env  # imports MuJoCo: not at module import

        obs = ('state',) + (('rgb', 'depth') if cameras else ('depth',) if points else ())
        obs += ('env_state',) if operator else ()
        env = make_env(task, seed=self._seed, obs=obs, max_steps=10**9,
                       points_depth_filter=depth_filter)
        self._disturbances = None
        if disturbance.strip().lower() not in ('', 'none'):  # a bad spec fails start-up
            from rl100.sim.disturbances import attach
            self._disturbances = attach(env, disturbance)
            self.get_logger().info(f'disturbance: {json.dumps(self._disturbances.configs())}')
            # pushes count control steps of the policy's control, as in-process: paused while
            # a safety node says it is not autonomous (a reset's hold, a camera check)
            from rl100_msgs.msg import SafetyStatus
            self._autonomous = SafetyStatus.MODE_AUTONOMOUS
            self.create_subscription(SafetyStatus, topics.SAFETY_STATUS, self._on_safety,
                                     qos.LATCHED)
        self._robot = SimRobot(env, self._frame)
        if camera_pose.strip():  # a bad pose fails start-up, naming the parameter
            self._robot.camera_pose = parse_camera_pose(camera_pose)
            self.get_logger().info(f'camera_pose (hand-eye calibration): {camera_pose}')
        self._operator = None
        self._operator_on = operator
        if operator:
            from rl100_msgs.msg import Intervention, TeleopTarget

            from .sim_operator import operator_config_from_json, SimOperator
            self._operator = SimOperator(task, env, skill=operator_skill, seed=self._seed,
                                         config=operator_config_from_json(operator_config))
            self._teleop_msg = (TeleopTarget, Intervention.SOURCE_SCRIPTED)
            self._teleop_pub = self.create_publisher(TeleopTarget, topics.TELEOP_TARGET,
                                                     qos.COMMAND)
        # episodes never truncate here; the task's own limit is reported for episode runners
        self._time_limit = make_config(task).max_steps * self._robot.dt
        self._episode_start = 0.0  # simulated time of the last reset
        self._success_time = None  # episode time of the first successful tick since then
        self._lock = threading.Lock()
        self._target_stamp = -1.0
        self._target_event = threading.Event()
        self._reset_requested = False
        self._pubs = {
            'clock': self.create_publisher(Clock, '/clock', 10),
            'joints': self.create_publisher(JointState, topics.JOINT_STATES, qos.SENSOR),
            'pose': self.create_publisher(PoseStamped, topics.CURRENT_POSE, qos.SENSOR),
            'gripper': self.create_publisher(JointState, topics.GRIPPER_STATE, qos.SENSOR),
        }
        self._camera = self._make_camera_publishers() if cameras else None
        self._points = None
        if points:
            from rl100_camera.messages import pointcloud_msg  # shared with the camera node
            from sensor_msgs.msg import PointCloud2
            self._pointcloud_msg = pointcloud_msg
            self._points = self.create_publisher(PointCloud2, topics.POINTS, qos.SENSOR)
        self.create_subscription(PoseStamped, topics.TARGET_POSE, self._on_target, qos.COMMAND)
        self.create_subscription(Float32, topics.GRIPPER_COMMAND, self._on_gripper, qos.COMMAND)
        self.create_service(Trigger, SIM_RESET, self._on_reset)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_service(Trigger, SIM_SUCCESS, self._on_success)
        # the loop thread resets, steps, renders and closes the env: an EGL context (camera,
        # points) is current in one thread only
        self._reading = None
        self._ready = threading.Event()
        self._start_error: Exception | None = None
        self._running = True
        self._steps = 0
        self._lockstep_timeouts = 0  # ticks stepped on a held target: the graph did not answer
        self._wall_start = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name='sim_loop', daemon=True)
        self._thread.start()
        try:
            self._ready.wait()
        except BaseException:  # SIGINT while the loop thread resets: it finishes first, then
            self._running = False  # closes the renderer in its own thread, before we exit
            self._thread.join(timeout=30.0)
            raise
        if self._start_error is not None:
            self._running = False
            self._thread.join(timeout=5.0)
            raise self._start_error
        self._rtf_meter = diagnostics.RateMeter()  # simulated s per wall s
        self._timeouts_seen = 0
        self._diagnostics = diagnostics.Diagnostics(self, 'sim', self._status)
        self.get_logger().info(f'sim robot: {task}, seed {self._seed}, dt {self._robot.dt} s, '
                               f'{"lockstep" if self._rtf == 0 else f"{self._rtf}x real time"}')

    def _on_safety(self, msg) -> None:
        self._disturbances.paused = msg.mode != self._autonomous

    def _declare(self, name, default, description):
        self.declare_parameter(name, default, ParameterDescriptor(description=description))
        return self.get_parameter(name).value

    def _make_camera_publishers(self):
        # message builders shared with the RealSense node (imported only when rendering)
        from rl100_camera.messages import camera_info_msg, image_msg
        from rl100_camera.realsense_source import Intrinsics
        from sensor_msgs.msg import CameraInfo, Image
        self._camera_msgs = (camera_info_msg, image_msg, Intrinsics)
        ns = '/camera/camera'
        return {
            'color': self.create_publisher(Image, f'{ns}/color/image_raw', qos.SENSOR),
            'color_info': self.create_publisher(CameraInfo, f'{ns}/color/camera_info', qos.SENSOR),
            'depth': self.create_publisher(Image, f'{ns}/aligned_depth_to_color/image_raw',
                                           qos.SENSOR),
            'depth_info': self.create_publisher(
                CameraInfo, f'{ns}/aligned_depth_to_color/camera_info', qos.SENSOR),
        }

    # --- commands -----------------------------------------------------------------------------
    def _on_target(self, msg: PoseStamped) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        try:
            with self._lock:
                self._robot.command_pose(msg.header.frame_id, [p.x, p.y, p.z],
                                         [q.x, q.y, q.z, q.w])
        except CommandRejectedError as exc:
            self.get_logger().warn(f'rejected target: {exc}', throttle_duration_sec=1.0)
            return
        self._target_stamp = seconds(msg.header.stamp)
        self._target_event.set()

    def _on_gripper(self, msg: Float32) -> None:
        try:
            with self._lock:
                self._robot.command_gripper(float(msg.data))
        except CommandRejectedError as exc:
            self.get_logger().warn(f'rejected gripper command: {exc}', throttle_duration_sec=1.0)

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        for param in parameters:
            if param.name == 'paused':
                self._paused = bool(param.value)
                continue
            if param.name == 'scripted_operator':
                if param.value and self._operator is None:
                    return SetParametersResult(successful=False, reason='the scripted operator '
                                               'exists only when the node starts with '
                                               'scripted_operator true')
                with self._lock:
                    if bool(param.value) != self._operator_on and self._operator is not None:
                        self._operator.reset()
                    self._operator_on = bool(param.value)
                continue
            if param.name == 'camera_pose':  # a new calibration (check_camera --apply)
                try:
                    pose = parse_camera_pose(param.value) if str(param.value).strip() else None
                except ValueError as exc:
                    return SetParametersResult(successful=False, reason=str(exc))
                self._robot.camera_pose = pose  # one reference swap: the loop reads it whole
                self.get_logger().info(f'camera_pose set: {param.value!r}')
                continue
            if param.name != 'seed':
                continue
            value = param.value
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
                return SetParametersResult(successful=False, reason=f'seed must be an integer '
                                           f'in [0, 2**32), got {value!r}')
            with self._lock:
                self._next_seed = value
        return SetParametersResult(successful=True)

    def _on_reset(self, request, response):
        del request
        with self._lock:
            seed = self._seed + 1 if self._next_seed is None else self._next_seed
        self._reset_requested = True
        response.success, response.message = True, f'reset to seed {seed} queued'
        return response

    def _on_success(self, request, response):
        del request
        with self._lock:
            r, start, success_time = self._reading, self._episode_start, self._success_time
            seed, resets = self._seed, self._resets
            takeover = self._operator.takeover if self._operator and self._operator_on else None
        response.success = r.success
        response.message = json.dumps({
            'success': r.success, 'steps': r.steps, 'seed': seed, 'time': round(r.time, 6),
            'episode_time': round(r.time - start, 6),
            'success_time': None if success_time is None else round(success_time, 6),
            'time_limit': round(self._time_limit, 6), 'rejected_commands': self._robot.rejected,
            'resets': resets, 'takeover': takeover,
            'lockstep_timeouts': self._lockstep_timeouts})
        return response

    # --- the simulation loop ------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            try:
                with self._lock:
                    self._reading = self._robot.reset(self._seed)
            except Exception as exc:  # noqa: BLE001 - handed to the constructor to raise
                self._start_error = exc
                return
            finally:
                self._ready.set()
            self._run_loop()
        except Exception as exc:  # noqa: BLE001 - decide by whether we are shutting down
            if not self._running or not self.context.ok():
                return  # the context went away under a publish during shutdown: expected
            self.get_logger().fatal(f'simulation loop failed: {exc.__class__.__name__}: {exc}')
            os._exit(1)  # a dead simulator must be visible to the supervisor
        finally:
            self._robot.env.close()  # frees the renderer in the thread that made it current

    def _run_loop(self) -> None:
        wall0 = time.monotonic()
        while self._running:
            if self._paused:  # nothing stepped, nothing published: the graph waits at no cost
                time.sleep(0.05)
                if self._rtf > 0:  # paced: the schedule resumes from now
                    wall0 = time.monotonic() - self._reading.time / self._rtf
                continue
            with self._lock:
                if self._reset_requested:
                    if self._next_seed is None:
                        self._seed += 1
                    else:
                        self._seed, self._next_seed = self._next_seed, None
                    self._reading = self._robot.reset(self._seed)
                    self._resets += 1
                    if self._operator is not None:
                        self._operator.reset()
                    self._episode_start, self._success_time = self._reading.time, None
                    self._reset_requested = False
                reading = self._reading
                operator_target = (self._operator.update(reading.obs)
                                   if self._operator is not None and self._operator_on else None)
            self._publish(reading)
            if self._operator is not None:
                self._publish_operator(operator_target, reading.time)
            if self._rtf > 0:
                wait = wall0 + reading.time / self._rtf - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            else:  # lockstep: the safety node's answer for this tick, or time out and hold
                deadline = time.monotonic() + self._lockstep_timeout
                while self._running and self._target_stamp < reading.time - 1e-6:
                    self._target_event.wait(max(0.0, deadline - time.monotonic()))
                    self._target_event.clear()
                    if time.monotonic() >= deadline:
                        if self._target_stamp < reading.time - 1e-6:
                            self._lockstep_timeouts += 1
                        break
            with self._lock:
                self._reading = self._robot.advance()
                if self._reading.success and self._success_time is None:
                    self._success_time = self._reading.time - self._episode_start
            self._steps += 1

    def _publish(self, r) -> None:
        stamp = _time_msg(r.time)
        self._pubs['clock'].publish(Clock(clock=stamp))
        finger = r.gripper_width / 2
        joints = JointState(name=ARM_JOINTS + FINGER_JOINTS,
                            position=[*map(float, r.joints), finger, finger])
        joints.header.stamp = stamp
        self._pubs['joints'].publish(joints)
        gripper = JointState(name=FINGER_JOINTS, position=[finger, finger])
        gripper.header.stamp = stamp
        self._pubs['gripper'].publish(gripper)
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, self._frame
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = map(float, r.position)
        o = pose.pose.orientation
        o.x, o.y, o.z, o.w = map(float, r.quat_xyzw)
        self._pubs['pose'].publish(pose)
        if self._camera is not None:
            self._publish_camera(stamp)
        if self._points is not None:
            with self._lock:
                cloud = self._robot.points()
            self._points.publish(self._pointcloud_msg(cloud, self._frame, stamp))

    def _publish_operator(self, target, t: float) -> None:
        """The scripted operator's TeleopTarget for this tick (takeover false: not in control)."""
        from rl100.geometry import rotvec_to_quat_wxyz

        teleop_target, source = self._teleop_msg
        msg = teleop_target(takeover=target is not None, source=source)
        msg.header.stamp, msg.header.frame_id = _time_msg(t), self._frame
        if target is not None:
            p, o = msg.pose.position, msg.pose.orientation
            p.x, p.y, p.z = (float(v) for v in target[:3])
            o.w, o.x, o.y, o.z = (float(v) for v in rotvec_to_quat_wxyz(target[3:6]))
            msg.gripper = float(np.clip(target[6], 0.0, 1.0))
        self._teleop_pub.publish(msg)

    def _publish_camera(self, stamp) -> None:
        camera_info_msg, image_msg, Intrinsics = self._camera_msgs  # noqa: N806
        rgb, depth = self._robot.camera_images()
        info = self._robot.env.camera_info()
        intr = Intrinsics(width=info.width, height=info.height, fx=info.fx, fy=info.fy,
                          cx=info.cx, cy=info.cy, model='brown_conrady')
        frame = 'camera_color_optical_frame'
        depth_mm = np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16)
        self._camera['color'].publish(image_msg(rgb, frame, stamp))
        self._camera['color_info'].publish(camera_info_msg(intr, frame, stamp))
        self._camera['depth'].publish(image_msg(depth_mm, frame, stamp))
        self._camera['depth_info'].publish(camera_info_msg(intr, frame, stamp))

    def _status(self):
        """Diagnostics: WARN while lockstep ticks time out (a node is not answering)."""
        timeouts, new = self._lockstep_timeouts, self._lockstep_timeouts - self._timeouts_seen
        self._timeouts_seen = timeouts
        rtf = self._rtf_meter.rate(self._robot.time, time.monotonic())
        level = diagnostics.WARN if new else diagnostics.OK
        message = ('paused' if self._paused else
                   f'{new} lockstep timeouts ({self._lockstep_timeout} s each)' if new else
                   'lockstep' if self._rtf == 0 else f'{self._rtf}x real time')
        return level, message, {'steps': self._steps, 'resets': self._resets,
                                'sim_time_s': f'{self._robot.time:.2f}',
                                'real_time_factor': diagnostics.rate_value(rtf),
                                'lockstep_timeouts': timeouts}

    def destroy_node(self):
        wall = time.monotonic() - self._wall_start
        rtf = self._robot.time / max(wall, 1e-9)
        # printed, not logged: at shutdown the context (and /rosout) may already be gone
        print(f'simulated {self._robot.time:.1f} s ({self._steps} steps) in '
              f'{wall:.1f} s wall: real-time factor {rtf:.2f}; '
              f'{self._lockstep_timeouts} lockstep timeouts', flush=True)
        self._running = False
        self._target_event.set()
        self._thread.join(timeout=5.0)  # the loop closes the env on its way out
        return super().destroy_node()


def parse_camera_pose(value) -> np.ndarray:
    """'x y z qx qy qz qw' (spaces or commas) -> (4, 4); ValueError naming the parameter."""
    from rl100.geometry import pose7_to_matrix

    try:
        return pose7_to_matrix([float(v) for v in str(value).replace(',', ' ').split()])
    except ValueError as exc:
        raise ValueError(f'camera_pose: {exc}') from None


def main(args=None) -> int:
    return run_node(SimRobotNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
