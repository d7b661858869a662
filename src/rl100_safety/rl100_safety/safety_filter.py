"""SafetyFilter: the decision of what reaches the robot at each control tick (no ROS in here).

Inputs arrive whenever they arrive (policy chunks, operator commands, robot observations);
``tick(now)`` then decides the one end-effector target sent to the robot:

- mode ESTOP (latched until an operator clears it) or HOLD: hold the pose;
- an active operator takeover replaces the policy's command (flagged as intervention);
- AUTONOMOUS: the policy chunk's action for this tick; TELEOP: the operator's command;
- the watchdog holds the pose when the newest observation, or in AUTONOMOUS the newest policy
  chunk, is older than ``watchdog_periods`` control periods (or the chunk is used up);
- every forwarded target is limited: per-tick translation / rotation / gripper steps relative
  to the previous target, then the workspace box. Non-finite or misshaped commands are
  rejected (counted, with the reason) and never reach the robot.

An action / target is (7,): position (3, m, base frame), rotation vector (3, rad), gripper
(1, 0 open .. 1 closed). Times are seconds on one clock (ROS time or sim time).
"""

from __future__ import annotations

from dataclasses import dataclass
import enum

import numpy as np
from rl100.geometry import mat_to_rotvec, rotvec_near, rotvec_to_mat

ACTION_DIM = 7


class Mode(enum.IntEnum):
    """Same values as rl100_msgs/SafetyStatus MODE_*."""

    AUTONOMOUS = 0
    TELEOP = 1
    HOLD = 2
    ESTOP = 3


class Clip(enum.IntFlag):
    """Same bits as rl100_msgs/SafetyStatus CLIP_*."""

    NONE = 0
    WORKSPACE = 1
    TRANSLATION_STEP = 2
    ROTATION_STEP = 4
    GRIPPER_STEP = 8


class Source(enum.IntEnum):
    """Who produced the forwarded target (HOLD: nobody, the pose is held)."""

    HOLD = 0
    POLICY = 1
    OPERATOR = 2


@dataclass(frozen=True)
class SafetyLimits:
    workspace_min: tuple = (0.25, -0.45, 0.0)  # m, base frame
    workspace_max: tuple = (0.80, 0.45, 0.60)
    max_translation_step: float = 0.05  # m per control tick
    max_rotation_step: float = 0.30  # rad per control tick
    max_gripper_step: float = 1.0  # per control tick (1 = open/close in one tick)
    period: float = 0.1  # s, control period
    watchdog_periods: float = 3.0  # hold after this many periods without fresh input

    def __post_init__(self):
        lo, hi = np.asarray(self.workspace_min, float), np.asarray(self.workspace_max, float)
        if lo.shape != (3,) or hi.shape != (3,) or not np.all(lo < hi):
            raise ValueError(f'workspace box must be 3 lows < 3 highs, got {lo} / {hi}')
        for name in ('max_translation_step', 'max_rotation_step', 'max_gripper_step', 'period',
                     'watchdog_periods'):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f'{name} must be a positive number, got {value}')


@dataclass
class TickResult:
    target: np.ndarray  # (7,) what the robot is commanded to
    source: Source
    mode: Mode
    clipped: Clip = Clip.NONE
    intervention: bool = False  # the operator's command replaced the policy's this tick
    watchdog_tripped: bool = False
    reason: str = ''


@dataclass
class _Chunk:
    stamp: float
    period: float
    actions: np.ndarray  # (H, 7)


@dataclass
class _State:
    mode: Mode = Mode.HOLD
    estop_latched: bool = False
    chunk: _Chunk | None = None
    operator: np.ndarray | None = None  # (7,) latest operator target
    operator_active: bool = False
    observed: np.ndarray | None = None  # (7,) latest measured ee pose + gripper
    observed_at: float = -np.inf
    last_target: np.ndarray | None = None
    last_emit: float = -np.inf  # time of last_target
    rejected: int = 0
    last_reason: str = 'started in HOLD'


def _as_action(value, what: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != (ACTION_DIM,):
        raise ValueError(f'{what}: expected shape ({ACTION_DIM},), got {array.shape}')
    if not np.all(np.isfinite(array)):
        raise ValueError(f'{what}: non-finite values {array.tolist()}')
    return array


class SafetyFilter:

    def __init__(self, limits: SafetyLimits | None = None):
        self.limits = limits or SafetyLimits()
        self._lo = np.asarray(self.limits.workspace_min, float)
        self._hi = np.asarray(self.limits.workspace_max, float)
        self._s = _State()
        self._now = 0.0

    # --- state ----------------------------------------------------------------------------
    @property
    def operator_active(self) -> bool:
        """The operator's device is deflected / the takeover button held (as last reported)."""
        return self._s.operator_active

    @property
    def mode(self) -> Mode:
        return self._s.mode

    @property
    def estop_latched(self) -> bool:
        return self._s.estop_latched

    @property
    def rejected(self) -> int:
        return self._s.rejected

    @property
    def last_reason(self) -> str:
        return self._s.last_reason

    # --- inputs ---------------------------------------------------------------------------
    def set_mode(self, mode: Mode, clear_estop: bool = False, reason: str = '') -> tuple:
        """Request a mode change; returns (accepted, message). Leaving ESTOP needs clear_estop."""
        mode = Mode(mode)
        if self._s.estop_latched and mode != Mode.ESTOP and not clear_estop:
            return False, 'e-stop is latched: clearing it needs an explicit operator action'
        if mode == Mode.ESTOP:
            self.estop(reason or 'e-stop requested')
            return True, self._s.last_reason
        self._s.estop_latched = False
        leaving_hold = self._s.mode == Mode.HOLD and mode != Mode.HOLD
        self._s.mode = mode
        self._s.chunk = None  # never resume a chunk planned before the mode change
        if leaving_hold:  # whatever moved the robot meanwhile (a reset, a homing), start from it
            self._s.last_target = None
        self._s.last_reason = f'mode {mode.name.lower()}' + (f': {reason}' if reason else '') + (
            ' (from the measured pose)' if leaving_hold else '')
        return True, self._s.last_reason

    def reanchor(self, reason: str = '') -> None:
        """Take the measured pose and gripper as the reference of the next tick.

        For when something other than this filter moved the robot (a simulator reset, a homing
        routine): holding and step limits then start from where the robot is, not from the
        last command. Mode, e-stop latch and chunk are unchanged.
        """
        self._s.last_target = None
        self._s.last_reason = 're-anchored on the measured pose' + (
            f': {reason}' if reason else '')

    def estop(self, reason: str) -> None:
        self._s.mode = Mode.ESTOP
        self._s.estop_latched = True
        self._s.last_reason = f'E-STOP: {reason}'

    def observe(self, now: float, pose: np.ndarray) -> None:
        """The robot's measured end-effector pose + gripper, (7,)."""
        self._s.observed = _as_action(pose, 'observation')
        self._s.observed_at = float(now)

    def policy_chunk(self, stamp: float, period: float, actions: np.ndarray) -> bool:
        """A chunk of (H, 7) targets, action t meant for ``stamp + t * period``.

        Returns False (and counts a rejection) for a malformed or non-finite chunk.
        """
        actions = np.asarray(actions, dtype=np.float64)
        problem = ''
        if actions.ndim != 2 or actions.shape[1] != ACTION_DIM or actions.shape[0] == 0:
            problem = f'chunk shape {actions.shape} is not (H>0, {ACTION_DIM})'
        elif not np.all(np.isfinite(actions)):
            problem = 'chunk has non-finite values'
        elif not (np.isfinite(period) and period > 0 and np.isfinite(stamp)):
            problem = f'chunk stamp/period invalid ({stamp}, {period})'
        if problem:
            return self._reject(f'policy {problem}')
        self._s.chunk = _Chunk(float(stamp), float(period), actions)
        return True

    def operator_command(self, target: np.ndarray | None, active: bool) -> bool:
        """The operator's device: ``active`` while deflected / takeover button held."""
        if not active:
            self._s.operator_active = False
            return True
        try:
            self._s.operator = _as_action(target, 'operator command')
        except ValueError as exc:
            self._s.operator_active = False
            return self._reject(str(exc))
        self._s.operator_active = True
        return True

    def _reject(self, reason: str) -> bool:
        self._s.rejected += 1
        self._s.last_reason = f'rejected: {reason}'
        return False

    # --- the decision -----------------------------------------------------------------------
    def tick(self, now: float) -> TickResult | None:
        """The target for this tick; None until a pose has been observed (nothing to hold)."""
        s, lim = self._s, self.limits
        if s.observed is None:
            return None
        self._now = float(now)
        hold = s.last_target if s.last_target is not None else s.observed
        window = lim.watchdog_periods * lim.period
        if s.mode in (Mode.ESTOP, Mode.HOLD):
            return self._emit(hold, Source.HOLD, reason=s.last_reason)
        if now - s.observed_at > window:
            return self._emit(hold, Source.HOLD, watchdog=True,
                              reason=f'watchdog: no observation for {now - s.observed_at:.3f} s')
        if s.operator_active:
            return self._emit(s.operator, Source.OPERATOR, intervention=s.mode == Mode.AUTONOMOUS,
                              reason='operator takeover')
        if s.mode == Mode.TELEOP:
            return self._emit(hold, Source.HOLD, reason='teleop: operator idle')
        chunk = s.chunk
        if chunk is None:
            return self._emit(hold, Source.HOLD, reason='no policy command yet')
        index = int(np.floor((now - chunk.stamp) / chunk.period + 1e-6))
        if now - chunk.stamp > window and index >= chunk.actions.shape[0]:
            return self._emit(hold, Source.HOLD, watchdog=True,
                              reason=f'watchdog: policy chunk {now - chunk.stamp:.3f} s old')
        index = min(max(index, 0), chunk.actions.shape[0] - 1)
        return self._emit(chunk.actions[index], Source.POLICY, reason='')

    def _emit(self, wanted: np.ndarray, source: Source, intervention: bool = False,
              watchdog: bool = False, reason: str = '') -> TickResult:
        target, clipped = self._limit(wanted, self._now)
        self._s.last_target, self._s.last_emit = target, self._now
        return TickResult(target=target.copy(), source=source, mode=self._s.mode, clipped=clipped,
                          intervention=intervention, watchdog_tripped=watchdog, reason=reason)

    def _limit(self, wanted: np.ndarray, now: float) -> tuple:
        """Step limits relative to the previous target, then the workspace box.

        The step limits are per control period: a tick that comes sooner than one period after
        the previous target (an extra tick on chunk arrival, timer jitter) may move only the
        elapsed fraction of a step, so the commanded speed never exceeds step / period.
        """
        lim = self.limits
        ref = self._s.last_target if self._s.last_target is not None else self._s.observed
        fraction = 1.0 if self._s.last_target is None else min(
            max((now - self._s.last_emit) / lim.period, 0.0), 1.0)
        max_trans = lim.max_translation_step * fraction
        max_rot = lim.max_rotation_step * fraction
        max_grip = lim.max_gripper_step * fraction
        out = np.array(wanted, dtype=np.float64)
        clipped = Clip.NONE
        step = out[:3] - ref[:3]
        dist = float(np.linalg.norm(step))
        if dist > max_trans + 1e-12:
            out[:3] = ref[:3] + step * (max_trans / dist)
            clipped |= Clip.TRANSLATION_STEP
        r_ref, r_new = rotvec_to_mat(ref[3:6]), rotvec_to_mat(out[3:6])
        delta = mat_to_rotvec(r_new @ r_ref.T)
        angle = float(np.linalg.norm(delta))
        if angle > max_rot + 1e-12:
            delta *= max_rot / angle
            out[3:6] = rotvec_near(mat_to_rotvec(rotvec_to_mat(delta) @ r_ref), ref[3:6])
            clipped |= Clip.ROTATION_STEP
        grip_step = out[6] - ref[6]
        if abs(grip_step) > max_grip + 1e-12:
            out[6] = ref[6] + np.sign(grip_step) * max_grip
            clipped |= Clip.GRIPPER_STEP
        boxed = np.clip(out[:3], self._lo, self._hi)
        if not np.array_equal(boxed, out[:3]):
            out[:3] = boxed
            clipped |= Clip.WORKSPACE
        out[6] = min(max(out[6], 0.0), 1.0)
        return out, clipped
