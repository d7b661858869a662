"""Safety node: the only path from the policy (and the operator) to the robot.

Thin wiring over ``SafetyFilter`` (limits, watchdog, e-stop latch, takeover) and the operator
device readers. At every control tick it publishes the robot target (PoseStamped + gripper),
an Intervention message (who was in control) and the SafetyStatus. Operator keys / buttons
latch the e-stop, switch modes and label episodes through the recorder's services.
"""

from __future__ import annotations

import time

from geometry_msgs.msg import PoseStamped
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rl100_msgs.msg import ActionChunk, EpisodeEvent, Intervention, SafetyStatus, TeleopTarget
from rl100_msgs.srv import EndEpisode, SetMode, StartEpisode
from rl100_ros import diagnostics, qos, topics
from rl100_ros.conversions import array_to_pose, finger_width_to_gripper, pose_to_array, seconds
from rl100_ros.node_main import run_node
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Float32

from .devices import SpaceMouseReader
from .safety_filter import ACTION_DIM, Mode, SafetyFilter, SafetyLimits, Source
from .teleop import Event, JOY_TOPIC, JoyStream, PoseStream, TeleopConfig, TeleopMapper

DEVICE_SOURCE = {'spacemouse': Intervention.SOURCE_SPACEMOUSE,
                 'joy': Intervention.SOURCE_GAMEPAD,
                 'gamepad': Intervention.SOURCE_GAMEPAD,
                 'none': Intervention.SOURCE_NONE}
POSE_DEVICE = 'pose'  # absolute targets arrive as rl100_msgs/TeleopTarget on TELEOP_TARGET
JOY_DEVICES = ('joy', 'gamepad')  # operator input arrives as sensor_msgs/Joy on JOY_TOPIC
LABELS = {Event.SUCCESS: EpisodeEvent.LABEL_SUCCESS, Event.FAILURE: EpisodeEvent.LABEL_FAILURE}


class SafetyNode(Node):

    def __init__(self, **node_kwargs):
        super().__init__('safety_node', **node_kwargs)
        p = self._declare
        rate = p('control_rate', 10.0, 'rate of the command loop to the robot in Hz')
        if not rate > 0.0:
            raise ValueError(f'control_rate must be > 0 Hz, got {rate}')
        limits = SafetyLimits(
            workspace_min=tuple(p('workspace_min', [0.25, -0.45, 0.0], 'workspace low corner, m')),
            workspace_max=tuple(p('workspace_max', [0.80, 0.45, 0.60], 'workspace top corner, m')),
            max_translation_step=p('max_translation_step', 0.05, 'largest move per tick, m'),
            max_rotation_step=p('max_rotation_step', 0.30, 'largest rotation per tick, rad'),
            max_gripper_step=p('max_gripper_step', 1.0, 'largest gripper change per tick, 0..1'),
            period=1.0 / rate,
            watchdog_periods=p('watchdog_periods', 3.0, 'hold after this many idle periods'))
        self._frame = p('base_frame', 'fr3_link0', 'robot base frame of all targets')
        initial = p('initial_mode', 'autonomous', 'mode at start: autonomous, teleop or hold')
        self._device_name = p('teleop_device', 'joy',
                              'operator device: spacemouse (read here from hidraw), gamepad '
                              '(sensor_msgs/Joy from gamepad_teleop), joy (sensor_msgs/Joy '
                              'from keyboard_teleop or another publisher), pose (absolute '
                              'targets, rl100_msgs/TeleopTarget on /rl100/teleop/target: a '
                              "leader arm, VR, the sim robot's scripted operator) or none")
        self._device_path = p('teleop_device_path', '',
                              'spacemouse: /dev/hidrawN (default: auto-detect)')
        joy_timeout = float(p('joy_timeout', 0.5, 'Joy (and pose) input reads as released (no '
                              'takeover, zero twist) this many wall seconds after the last '
                              'message, so a dead teleop node cannot keep steering; 0 '
                              'disables (only for publishers that send changes only)'))
        self._task = p('task', 'juicing-place', 'task name sent with StartEpisode')
        self._tick_on_chunk = bool(p('tick_on_chunk', True, 'send a command as soon as a policy '
                                     'chunk arrives (lower latency; limits scale with the '
                                     'elapsed time, so the speed limit holds); the timer then '
                                     'sends one only in periods without a chunk, so commands '
                                     'and recorded steps stay at the control rate'))
        self._wait_for_policy = bool(p(
            'wait_for_policy', False, 'lockstep simulation: in autonomous mode a tick waits for '
            'the chunk planned from the observation of this tick (that chunk ticks instead; '
            'older ones only update the plan), so every simulated step runs the plan made from '
            'its own state, however slow the policy; when no chunk arrived for '
            'policy_patience wall seconds, ticks run as usual (hold). Off on a real robot'))
        self._patience = float(p('policy_patience', 1.0, 'wait_for_policy: wall seconds without '
                                 'any chunk after which ticks stop waiting for the policy'))
        self._chunk_stamp = float('-inf')
        self._chunk_wall = float('-inf')  # time.monotonic() of the last chunk
        self._last_tick = None
        self._last_chunk_tick = float('-inf')  # node clock of the last tick a chunk triggered
        self._period = 1.0 / rate
        self._filter = SafetyFilter(limits)
        self._mapper = TeleopMapper(TeleopConfig())
        self._device = self._open_device()
        self._joy = JoyStream(joy_timeout)
        self._pose_input = PoseStream(joy_timeout, self._frame)
        self._gripper_state = 0.0
        self._observed = None
        self._ticks = 0

        self._target_pub = self.create_publisher(PoseStamped, topics.TARGET_POSE, qos.COMMAND)
        self._gripper_pub = self.create_publisher(Float32, topics.GRIPPER_COMMAND, qos.COMMAND)
        self._iv_pub = self.create_publisher(Intervention, topics.INTERVENTION, qos.RELIABLE)
        self._status_pub = self.create_publisher(SafetyStatus, topics.SAFETY_STATUS, qos.LATCHED)
        self.create_subscription(ActionChunk, topics.ACTION_CHUNK, self._on_chunk, qos.COMMAND)
        self.create_subscription(PoseStamped, topics.CURRENT_POSE, self._on_pose, qos.SENSOR)
        self.create_subscription(JointState, topics.GRIPPER_STATE, self._on_gripper, qos.SENSOR)
        self.create_subscription(EpisodeEvent, topics.EPISODE_EVENT, self._on_episode_event,
                                 qos.LATCHED)
        if self._device_name in JOY_DEVICES:
            self.create_subscription(Joy, JOY_TOPIC, self._on_joy, qos.COMMAND)
        if self._device_name == POSE_DEVICE:
            self.create_subscription(TeleopTarget, topics.TELEOP_TARGET, self._on_teleop_target,
                                     qos.COMMAND)
        self.create_service(SetMode, topics.SET_MODE, self._on_set_mode)
        self._start_client = self.create_client(StartEpisode, topics.START_EPISODE)
        self._end_client = self.create_client(EndEpisode, topics.END_EPISODE)
        self._timer = self.create_timer(self._period, self._timer_tick)
        self._rate_meter = diagnostics.RateMeter()  # safety ticks per second (node clock)
        self._diagnostics = diagnostics.Diagnostics(self, 'safety', self._status)
        if initial not in ('autonomous', 'teleop', 'hold'):
            raise ValueError(f"initial_mode must be autonomous, teleop or hold, got '{initial}'")
        self._filter.set_mode(Mode[initial.upper()], reason='initial mode')
        self._publish_status(None)

    def _declare(self, name, default, description):
        self.declare_parameter(name, default, ParameterDescriptor(description=description))
        return self.get_parameter(name).value

    def _open_device(self):
        name = self._device_name
        if name in ('none', POSE_DEVICE) or name in JOY_DEVICES:
            return None  # joy / pose input arrives as messages
        if name == 'spacemouse':
            return SpaceMouseReader.open(self._device_path or None)
        raise ValueError(f"teleop_device must be spacemouse, gamepad, joy, pose or none, got "
                         f"'{name}'")

    # --- inputs -------------------------------------------------------------------------------
    def _on_chunk(self, msg: ActionChunk) -> None:
        n = msg.horizon * msg.action_dim
        if msg.action_dim != ACTION_DIM or len(msg.data) != n:
            self._filter.policy_chunk(0.0, 1.0, np.zeros((0, ACTION_DIM)))  # counted rejection
            self.get_logger().warn(f'rejected chunk: {len(msg.data)} values for '
                                   f'{msg.horizon}x{msg.action_dim}')
            return
        stamp, period = seconds(msg.header.stamp), seconds(msg.period)
        actions = np.asarray(msg.data, dtype=np.float64).reshape(msg.horizon, msg.action_dim)
        self._chunk_stamp = max(self._chunk_stamp, stamp)
        self._chunk_wall = time.monotonic()
        if not self._filter.policy_chunk(stamp, period, actions):
            self.get_logger().warn(self._filter.last_reason)
        elif self._tick_on_chunk and not self._mapper_active() \
                and not (self._wait_for_policy and stamp < self._now() - 1e-6):
            self._last_chunk_tick = self._now()
            self._tick()  # (under a takeover the chunk changes nothing: the timer ticks)

    def _on_pose(self, msg: PoseStamped) -> None:
        self._observed = pose_to_array(msg, self._gripper_state)
        if np.all(np.isfinite(self._observed)):
            self._filter.observe(self._now(), self._observed)

    def _on_joy(self, msg: Joy) -> None:
        try:  # events are edges: the stream keeps them until the next tick consumes them
            self._joy.push(msg.axes, msg.buttons, time.monotonic())
        except ValueError as exc:
            self.get_logger().warn(f'ignored Joy message: {exc}')

    def _on_teleop_target(self, msg: TeleopTarget) -> None:
        try:
            self._pose_input.push(msg.header.frame_id, pose_to_array(msg, msg.gripper),
                                  msg.takeover, msg.source, time.monotonic())
        except ValueError as exc:
            self.get_logger().warn(f'ignored teleop target: {exc}', throttle_duration_sec=1.0)

    def _on_episode_event(self, msg: EpisodeEvent) -> None:
        if msg.event == EpisodeEvent.EVENT_START:  # an episode starts where the robot is
            self._filter.reanchor(f'episode {msg.episode_id} started')

    def _on_gripper(self, msg: JointState) -> None:
        if len(msg.position) >= 2:
            self._gripper_state = finger_width_to_gripper(msg.position)

    def _on_set_mode(self, request, response):
        try:
            accepted, message = self._filter.set_mode(Mode(request.mode), request.clear_estop,
                                                      request.reason)
        except ValueError:
            accepted, message = False, f'unknown mode {request.mode}'
        response.accepted, response.message = accepted, message
        response.mode = int(self._filter.mode)
        self._publish_status(None)
        return response

    # --- the control tick ---------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _timer_tick(self) -> None:
        if not self._wait_for_policy and self._now() - self._last_chunk_tick < self._period:
            return  # a chunk's tick sent this period's command (lockstep waits below instead)
        if self._wait_for_policy and self._filter.mode == Mode.AUTONOMOUS \
                and not self._mapper_active():
            now = self._now()
            if self._chunk_stamp < now - 1e-6 \
                    and time.monotonic() - self._chunk_wall < self._patience:
                return  # the policy is streaming but has not answered this tick yet
        self._tick()

    def _mapper_active(self) -> bool:
        now = time.monotonic()
        if self._device_name == POSE_DEVICE:
            return self._pose_input.held(now) or self._filter.operator_active
        return bool(self._joy.peek(now).takeover) or self._filter.operator_active

    def _tick(self) -> None:
        now = self._now()
        dt = self._period if self._last_tick is None else min(max(now - self._last_tick, 0.0),
                                                              self._period)
        self._last_tick = now
        if self._device_name == POSE_DEVICE:
            timeouts = self._pose_input.timeouts
            op = self._pose_input.command(time.monotonic())
            if self._pose_input.timeouts > timeouts:
                self.get_logger().error(f'no teleop target for {self._pose_input.timeout:.2f} s '
                                        'while the operator had control: takeover released')
            self._filter.operator_command(op, active=op is not None)
            sample = None
        elif self._device is not None:
            sample = self._device.poll(0.0)
        else:
            timeouts = self._joy.timeouts
            sample = self._joy.take(time.monotonic())
            if self._joy.timeouts > timeouts:
                self.get_logger().error(f'no Joy message for {self._joy.timeout:.2f} s while '
                                        'the operator held input: takeover released '
                                        '(teleop node down?)')
        if sample is not None:
            self._handle_events(sample.events)
        if sample is not None and self._observed is not None:
            op = self._mapper.update(now, sample, self._observed, dt)
            self._filter.operator_command(op, active=op is not None)
        result = self._filter.tick(now)
        if result is None:
            return  # no robot pose yet: nothing to hold, nothing sent
        self._ticks += 1
        stamp = self.get_clock().now().to_msg()
        self._target_pub.publish(array_to_pose(result.target, self._frame, stamp))
        self._gripper_pub.publish(Float32(data=float(result.target[6])))
        iv = Intervention(active=result.intervention, gripper=float(result.target[6]))
        iv.header.stamp, iv.header.frame_id = stamp, self._frame
        device_source = self._pose_input.source if self._device_name == POSE_DEVICE else \
            DEVICE_SOURCE.get(self._device_name, Intervention.SOURCE_NONE)
        iv.source = device_source if result.source == Source.OPERATOR else \
            Intervention.SOURCE_NONE
        iv.target = array_to_pose(result.target, self._frame, stamp).pose
        self._iv_pub.publish(iv)
        self._publish_status(result)

    def _handle_events(self, events) -> None:
        for event in events:
            if event == Event.ESTOP:
                self._filter.estop('operator key')
                self.get_logger().error('E-STOP latched by the operator')
            elif event == Event.CLEAR_ESTOP:
                self._filter.set_mode(Mode.HOLD, clear_estop=True, reason='operator cleared')
            elif event == Event.TOGGLE_TELEOP:
                new = Mode.TELEOP if self._filter.mode == Mode.AUTONOMOUS else Mode.AUTONOMOUS
                self._filter.set_mode(new, reason='operator key')
            elif event == Event.START:
                self._call(self._start_client, StartEpisode.Request(task=self._task))
            elif event in (Event.SUCCESS, Event.FAILURE, Event.ABORT):
                label = LABELS.get(event, EpisodeEvent.LABEL_UNKNOWN)
                self._call(self._end_client,
                           EndEpisode.Request(label=label, abort=event == Event.ABORT))

    def _call(self, client, request) -> None:
        if not client.service_is_ready():
            self.get_logger().warn(f'{client.srv_name} not available: is the recorder running?')
            return
        client.call_async(request)

    def _publish_status(self, result) -> None:
        f = self._filter
        status = SafetyStatus(mode=int(f.mode), estop_latched=f.estop_latched,
                              rejected_commands=f.rejected,
                              reason=result.reason if result else f.last_reason)
        if result is not None:
            status.clipped = int(result.clipped)
            status.watchdog_tripped = result.watchdog_tripped
        status.header.stamp = self.get_clock().now().to_msg()
        self._status_pub.publish(status)

    def _status(self):
        level = diagnostics.ERROR if self._filter.estop_latched else diagnostics.OK
        rate = self._rate_meter.rate(self._ticks, self.get_clock().now().nanoseconds * 1e-9)
        return level, self._filter.mode.name.lower(), {
            'ticks': self._ticks, 'rate_hz': diagnostics.rate_value(rate),
            'rejected_commands': self._filter.rejected,
            'last_reason': self._filter.last_reason, 'joy_timeouts': self._joy.timeouts,
            'pose_timeouts': self._pose_input.timeouts,
            'pose_rejected': self._pose_input.rejected}

    def destroy_node(self):
        if self._device is not None:
            self._device.close()
        return super().destroy_node()


def main(args=None) -> int:
    return run_node(SafetyNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
