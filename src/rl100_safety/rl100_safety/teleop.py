"""Operator input, device-independent: what a SpaceMouse, gamepad or keyboard means (no ROS).

Every device reader produces ``TeleopInput`` samples: a normalised end-effector twist
(each component in [-1, 1]), a gripper request, whether the operator is taking over, and
discrete operator events (episode success / failure / abort, e-stop, ...). ``TeleopMapper``
turns the stream into absolute targets for the SafetyFilter by integrating the twist from the
pose the robot is at when the takeover starts.

Takeover follows HIL-SERL: the operator is in control while the device is deflected beyond a
dead zone or the takeover button is held; releasing hands control back to the policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import enum

import numpy as np
from rl100.geometry import mat_to_rotvec, rotvec_near, rotvec_to_mat


class Event(enum.Enum):
    """Discrete operator requests (keys / buttons), handled by the safety and recorder nodes."""

    SUCCESS = 'success'  # label the current episode a success and end it
    FAILURE = 'failure'  # label it a failure and end it
    ABORT = 'abort'  # discard the current episode
    START = 'start'  # start a new episode
    ESTOP = 'estop'  # latch the e-stop
    CLEAR_ESTOP = 'clear_estop'  # clear the latch (explicit operator action)
    TOGGLE_TELEOP = 'toggle_teleop'  # switch between autonomous and teleop mode
    GRIPPER_TOGGLE = 'gripper_toggle'  # open <-> close


@dataclass
class TeleopInput:
    # (6,) vx vy vz wx wy wz, each in [-1, 1]
    twist: np.ndarray = field(default_factory=lambda: np.zeros(6))
    gripper: float | None = None  # absolute request 0 open .. 1 closed, None = unchanged
    takeover: bool = False  # the takeover button is held
    events: tuple = ()  # of Event


@dataclass(frozen=True)
class TeleopConfig:
    max_linear_speed: float = 0.10  # m/s at full deflection
    max_angular_speed: float = 0.6  # rad/s at full deflection
    dead_zone: float = 0.08  # deflection (normalised) below which the device counts as idle
    idle_release_s: float = 0.5  # takeover ends this long after the last deflection

    def __post_init__(self):
        for name in ('max_linear_speed', 'max_angular_speed', 'idle_release_s'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')
        if not 0.0 <= self.dead_zone < 1.0:
            raise ValueError(f'dead_zone must be in [0, 1), got {self.dead_zone}')


class TeleopMapper:
    """Integrates operator twists into absolute (7,) targets; decides when a takeover is active."""

    def __init__(self, config: TeleopConfig | None = None):
        self.config = config or TeleopConfig()
        self._target: np.ndarray | None = None  # (7,) current operator target
        self._last_deflection = -np.inf
        self._gripper = 0.0

    @property
    def active(self) -> bool:
        return self._target is not None

    def update(self, now: float, sample: TeleopInput, robot_pose: np.ndarray,
               dt: float) -> np.ndarray | None:
        """Feed one sample; the operator's (7,) target while a takeover is active, else None.

        robot_pose: (7,) measured pose + gripper, used as the start point of a new takeover.
        """
        cfg = self.config
        twist = np.asarray(sample.twist, dtype=np.float64)
        twist = np.clip(np.nan_to_num(twist, nan=0.0), -1.0, 1.0)
        if twist.shape != (6,):
            raise ValueError(f'teleop twist must have shape (6,), got {twist.shape}')
        twist[np.abs(twist) < cfg.dead_zone] = 0.0
        deflected = bool(np.any(twist)) or sample.gripper is not None
        if deflected or sample.takeover:
            self._last_deflection = now
        if Event.GRIPPER_TOGGLE in sample.events:
            self._last_deflection = now
        idle = now - self._last_deflection > cfg.idle_release_s
        if idle and not sample.takeover:
            self._target = None
            return None
        if self._target is None:  # takeover starts where the robot is
            self._target = np.asarray(robot_pose, dtype=np.float64).copy()
            self._gripper = float(self._target[6])
        target = self._target
        target[:3] += twist[:3] * cfg.max_linear_speed * dt
        rot = rotvec_to_mat(twist[3:] * cfg.max_angular_speed * dt) @ rotvec_to_mat(target[3:6])
        target[3:6] = rotvec_near(mat_to_rotvec(rot), target[3:6])
        if sample.gripper is not None:
            self._gripper = float(np.clip(sample.gripper, 0.0, 1.0))
        if Event.GRIPPER_TOGGLE in sample.events:
            self._gripper = 0.0 if self._gripper > 0.5 else 1.0
        target[6] = self._gripper
        return target.copy()


# --- sensor_msgs/Joy layout ------------------------------------------------------------------
# Devices that run in their own process (the keyboard node in its terminal, a gamepad through
# gamepad_teleop) reach the safety node as sensor_msgs/Joy on JOY_TOPIC with this layout:
# axes[0:6] = twist (vx vy vz wx wy wz, each -1..1); buttons[0] = takeover (held);
# buttons[1:] = one button per event in JOY_EVENTS (a press is a 0 -> 1 edge).
JOY_TOPIC = '/rl100/teleop/joy'
JOY_EVENTS = (Event.GRIPPER_TOGGLE, Event.SUCCESS, Event.FAILURE, Event.ABORT, Event.START,
              Event.ESTOP, Event.CLEAR_ESTOP, Event.TOGGLE_TELEOP)
JOY_BUTTONS = 1 + len(JOY_EVENTS)


def input_to_joy(sample: TeleopInput) -> tuple:
    """TeleopInput -> (axes list of 6 floats, buttons list of JOY_BUTTONS ints)."""
    buttons = [int(sample.takeover)] + [int(e in sample.events) for e in JOY_EVENTS]
    return [float(v) for v in np.asarray(sample.twist, dtype=np.float64)], buttons


class JoyDecoder:
    """sensor_msgs/Joy axes + buttons -> TeleopInput, turning button edges into events."""

    def __init__(self):
        self._previous = [0] * JOY_BUTTONS

    def decode(self, axes, buttons) -> TeleopInput:
        if len(axes) < 6 or len(buttons) < JOY_BUTTONS:
            raise ValueError(f'Joy message needs >= 6 axes and >= {JOY_BUTTONS} buttons, '
                             f'got {len(axes)} and {len(buttons)}')
        buttons = [int(b) for b in buttons[:JOY_BUTTONS]]
        events = tuple(e for i, e in enumerate(JOY_EVENTS, start=1)
                       if buttons[i] and not self._previous[i])
        self._previous = buttons
        return TeleopInput(twist=np.asarray(axes[:6], dtype=np.float64), takeover=bool(buttons[0]),
                           events=events)


class JoyStream:
    """Operator input arriving as a Joy message stream, released when the stream goes silent.

    A Joy publisher repeats its state (gamepad_teleop ``autorepeat_rate``, keyboard_teleop
    ``rate``), so a held takeover is a stream of messages. When the stream stops -- the teleop
    node died, its host lost the network -- the last message must not keep steering the robot:
    after ``timeout`` seconds without a message the input reads as released (zero twist, no
    takeover) until the next message. ``timeout`` <= 0 disables the check (for publishers that
    only send changes). Times are wall-clock seconds (the operator's clock, not simulated time).
    """

    def __init__(self, timeout: float):
        self.timeout = float(timeout)
        self._decoder = JoyDecoder()
        self._held = TeleopInput()
        self._events: tuple = ()
        self._last = float('-inf')
        self.timeouts = 0  # how often the stream went silent while it had control input

    def push(self, axes, buttons, now: float) -> TeleopInput:
        """Decode one message (ValueError on a malformed one); its events wait for ``take``."""
        sample = self._decoder.decode(axes, buttons)
        self._held = TeleopInput(twist=sample.twist, takeover=sample.takeover)
        self._events += sample.events
        self._last = now
        return sample

    def stale(self, now: float) -> bool:
        return self.timeout > 0.0 and now - self._last > self.timeout

    def peek(self, now: float) -> TeleopInput:
        """The held input (no events), released once stale; consumes nothing."""
        if self.stale(now):
            return TeleopInput()
        return TeleopInput(twist=self._held.twist, takeover=self._held.takeover)

    def take(self, now: float) -> TeleopInput:
        """The held input plus the events received since the last ``take`` (consumed).

        A stream that went silent while holding a takeover or a deflection is counted in
        ``timeouts`` once and its held state dropped.
        """
        if self.stale(now) and (self._held.takeover or np.any(self._held.twist != 0.0)):
            self.timeouts += 1
            self._held = TeleopInput()
        sample = self.peek(now)
        sample.events, self._events = self._events, ()
        return sample


class PoseStream:
    """Operator input from a device that commands absolute poses (rl100_msgs/TeleopTarget).

    A leader arm, a VR controller or the simulated scripted operator send where the tool should
    be, not how fast to move it; the safety node passes the target on (through its limits)
    while ``takeover`` is held. Like :class:`JoyStream`, a stream that goes silent for
    ``timeout`` wall seconds reads as released (counted in ``timeouts``), so a dead device
    cannot keep steering. ``frame``: the only frame a target may come in.
    """

    def __init__(self, timeout: float, frame: str):
        self.timeout, self.frame = float(timeout), frame
        self._target: np.ndarray | None = None  # (7,) while taken over
        self._source = 0
        self._last = float('-inf')
        self.timeouts = 0
        self.rejected = 0

    def push(self, frame_id: str, target, takeover: bool, source: int, now: float) -> None:
        """One message: target (7,) position, rotation vector, gripper 0..1; ValueError if bad."""
        target = np.asarray(target, dtype=np.float64)
        if frame_id != self.frame:
            self.rejected += 1
            raise ValueError(f"teleop target in frame '{frame_id}', not the base frame "
                             f"'{self.frame}'")
        if target.shape != (7,) or not np.all(np.isfinite(target)):
            self.rejected += 1
            raise ValueError(f'teleop target must be 7 finite numbers, got {target}')
        self._target = target.copy() if takeover else None
        self._source, self._last = int(source), now

    @property
    def source(self) -> int:
        return self._source

    def held(self, now: float) -> bool:
        """A takeover is held and fresh (no side effects, unlike ``command``)."""
        return self._target is not None and not (
            self.timeout > 0.0 and now - self._last > self.timeout)

    def command(self, now: float) -> np.ndarray | None:
        """The (7,) operator target while a takeover is held and fresh, else None."""
        if self._target is not None and self.timeout > 0.0 and now - self._last > self.timeout:
            self.timeouts += 1
            self._target = None
        return None if self._target is None else self._target.copy()
