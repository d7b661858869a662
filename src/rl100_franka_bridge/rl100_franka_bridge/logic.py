"""The bridge's decisions, without ROS: when to send a gripper goal, how to recover from a reflex.

The policy commands the gripper as a continuous value (0 open .. 1 closed) at control rate;
the Franka Hand takes discrete, slow actions (``move`` to a width, ``grasp`` with a force).
``GripperCommander`` turns the stream into as few goals as needed, with hysteresis so that a
value hovering around 0.5 does not chatter the hand.

``RecoveryMachine`` follows franka_ros2's error handling: when the robot reports a reflex
(collision / limit violation) the arm stops; the bridge asks the safety node to HOLD, sends
``error_recovery``, and after it succeeds leaves the safety node in HOLD, so that an operator
(or the supervising loop) decides when to resume. Repeated failures latch the e-stop.
"""

from __future__ import annotations

from dataclasses import dataclass
import enum


@dataclass(frozen=True)
class GripperGoal:
    kind: str  # 'move' (open to width) or 'grasp' (close on an object)
    width: float  # m
    speed: float  # m/s
    force: float = 0.0  # N, grasp only
    epsilon_inner: float = 0.005  # m, grasp success tolerance below width
    epsilon_outer: float = 0.08  # m, grasp success tolerance above width


@dataclass(frozen=True)
class GripperConfig:
    close_above: float = 0.6  # command above this closes (grasp)
    open_below: float = 0.4  # command below this opens (move to max width)
    max_width: float = 0.08  # m
    grasp_width: float = 0.0  # m, nominal object width for grasp (epsilons absorb the rest)
    speed: float = 0.1  # m/s
    force: float = 40.0  # N

    def __post_init__(self):
        if not 0.0 <= self.open_below < self.close_above <= 1.0:
            raise ValueError('need 0 <= open_below < close_above <= 1, got '
                             f'{self.open_below} / {self.close_above}')
        if not (self.max_width > 0 and self.speed > 0 and self.force > 0):
            raise ValueError('max_width, speed and force must be > 0')


class GripperCommander:
    """Continuous gripper commands in, a goal only when the wanted state changes."""

    def __init__(self, config: GripperConfig | None = None):
        self.config = config or GripperConfig()
        self._wanted: str | None = None  # 'open' / 'closed': the last goal sent

    def update(self, command: float) -> GripperGoal | None:
        cfg = self.config
        if command != command:  # NaN: never act on it
            raise ValueError('gripper command is NaN')
        if command >= cfg.close_above:
            wanted = 'closed'
        elif command <= cfg.open_below:
            wanted = 'open'
        else:
            return None  # inside the hysteresis band: keep what we have
        if wanted == self._wanted:
            return None
        self._wanted = wanted
        if wanted == 'closed':
            return GripperGoal('grasp', cfg.grasp_width, cfg.speed, cfg.force,
                               epsilon_outer=cfg.max_width)
        return GripperGoal('move', cfg.max_width, cfg.speed)

    def done(self, succeeded: bool) -> None:
        """Report the result of the last goal.

        A grasp that closes on nothing "fails" but the hand is closed, which is what was
        asked; a failed move is retried on the next command.
        """
        if not succeeded and self._wanted == 'open':
            self._wanted = None


class RobotMode(enum.IntEnum):
    """franka_msgs/FrankaRobotState robot_mode values."""

    OTHER = 0
    IDLE = 1
    MOVE = 2
    GUIDING = 3
    REFLEX = 4
    USER_STOPPED = 5
    AUTOMATIC_ERROR_RECOVERY = 6


class Recovery(enum.Enum):
    OK = 'ok'
    RECOVERING = 'recovering'  # error_recovery goal sent, waiting for its result
    FAILED = 'failed'  # gave up: e-stop latched, an operator must look


@dataclass
class RecoveryAction:
    hold: bool = False  # ask the safety node for HOLD (it re-targets the current pose)
    send_recovery: bool = False  # send franka's error_recovery goal
    estop: bool = False  # latch the e-stop
    message: str = ''


class RecoveryMachine:

    def __init__(self, max_attempts: int = 3):
        if max_attempts < 1:
            raise ValueError(f'max_attempts must be >= 1, got {max_attempts}')
        self.max_attempts = max_attempts
        self.state = Recovery.OK
        self.attempts = 0

    def on_robot_mode(self, mode: int) -> RecoveryAction:
        """Feed each robot state; returns what to do now."""
        if self.state == Recovery.OK and mode == RobotMode.REFLEX:
            self.state, self.attempts = Recovery.RECOVERING, 1
            return RecoveryAction(hold=True, send_recovery=True,
                                  message='robot reflex: holding and running error recovery')
        if self.state == Recovery.OK and mode == RobotMode.USER_STOPPED:
            return RecoveryAction(hold=True, message='robot user stop pressed: holding')
        return RecoveryAction()

    def on_recovery_result(self, succeeded: bool) -> RecoveryAction:
        if self.state != Recovery.RECOVERING:
            return RecoveryAction()
        if succeeded:
            self.state = Recovery.OK
            return RecoveryAction(hold=True, message='error recovery succeeded: holding until '
                                                     'an operator resumes')
        if self.attempts >= self.max_attempts:
            self.state = Recovery.FAILED
            return RecoveryAction(hold=True, estop=True,
                                  message=f'error recovery failed {self.attempts} times: e-stop')
        self.attempts += 1
        return RecoveryAction(hold=True, send_recovery=True,
                              message=f'error recovery failed, retry {self.attempts}')
