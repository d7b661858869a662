"""Scripted experts for the Panda tasks, with a skill knob.

An expert reads the observation dict (it may use the privileged ``OBS_ENV_STATE``) and returns the
same absolute TCP-pose action a policy would, so its demonstrations are valid training data.

``skill`` in [0, 1]: 1 = a careful operator (deterministic, no noise); lower values add what novice
teleoperators do -- grasp and placement offsets, jitter, pauses, higher drops -- so that success
falls (juicing-place: 1.00 at skill 1, ~0.63 at 0.5, ~0.45 at 0.3; see rl100/sim/README.md) and RL
has room to improve. Each expert owns a seeded generator: the same seed and env seed give the same demo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rl100.geometry import mat_to_rotvec, rotvec_near, yaw_down_mat
from rl100.keys import OBS_ENV_STATE, OBS_STATE

DOWN_ROTVEC = mat_to_rotvec(yaw_down_mat(0.0))  # (pi, 0, 0): gripper pointing down, fingers along y


@dataclass(frozen=True)
class SkillProfile:
    """Imperfections derived from ``skill`` (all zero at skill 1).

    Attributes:
        grasp_err: m, std of the xy offset of the grasp point.
        place_err: m, std of the xy offset of the placement / aim point.
        jitter: m, std of per-step noise on the commanded position.
        pause_prob: chance per step of holding the previous command (hesitation).
        drop_height: m, upper bound of the extra release height (uniform).
        speed: m/s of the commanded motion.
        regrasps: how many times a missed or lost grasp is tried again (a careful operator,
            skill >= 0.9, notices the orange is not in the hand; a novice carries on).
    """

    grasp_err: float
    place_err: float
    jitter: float
    pause_prob: float
    drop_height: float
    speed: float
    regrasps: int = 0

    @classmethod
    def from_skill(cls, skill: float) -> SkillProfile:
        if not 0.0 <= skill <= 1.0:
            raise ValueError(f"skill must be in [0, 1], got {skill}")
        u = 1.0 - skill
        return cls(
            grasp_err=0.012 * u,
            place_err=0.022 * u,
            jitter=0.006 * u,
            pause_prob=0.3 * u,
            drop_height=0.08 * u,
            speed=0.3 - 0.12 * u,
            regrasps=2 if skill >= 0.9 else 0,
        )


class ScriptedExpert:
    """Waypoint follower: moves a commanded TCP position towards the current phase's goal."""

    def __init__(self, env, skill: float = 1.0, seed: int | None = None, control_hz: float | None = None) -> None:
        self.env = env.unwrapped
        self.skill = float(skill)
        self.profile = SkillProfile.from_skill(self.skill)
        self.rng = np.random.default_rng(seed)
        self.hz = float(control_hz or self.env.config.control_hz)
        self.reset()

    def reset(self) -> None:
        self.phase = 0
        self.timer = 0
        self.cmd: np.ndarray | None = None
        self.gripper = 0.0
        self.rotvec = DOWN_ROTVEC.copy()
        self._episode_setup()

    def _episode_setup(self) -> None:
        """Draw the per-episode imperfections (override)."""

    def _advance(self, goal: np.ndarray, speed: float | None = None) -> float:
        """Move ``cmd`` towards ``goal`` at the expert's speed; returns the remaining distance (m)."""
        step = (speed or self.profile.speed) / self.hz
        delta = goal - self.cmd
        dist = float(np.linalg.norm(delta))
        self.cmd = goal.copy() if dist <= step else self.cmd + delta * (step / dist)
        return max(dist - step, 0.0)

    def _action(self) -> np.ndarray:
        pos = self.cmd + self.rng.normal(0.0, self.profile.jitter, 3) if self.profile.jitter > 0 else self.cmd
        rot = rotvec_near(self.rotvec, DOWN_ROTVEC)
        return np.concatenate([pos, rot, [self.gripper]]).astype(np.float32)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """(7,) float32 absolute TCP target for observation ``obs``."""
        tcp = np.asarray(obs[OBS_STATE][:3], dtype=np.float64)
        if self.cmd is None:
            self.cmd = tcp.copy()
        if self.profile.pause_prob > 0 and self.rng.random() < self.profile.pause_prob:
            return self._action()  # hesitate: hold the previous command
        self._plan(obs, tcp)
        return self._action()

    def _plan(self, obs: dict[str, np.ndarray], tcp: np.ndarray) -> None:
        raise NotImplementedError


class JuicingExpert(ScriptedExpert):
    """approach -> descend -> close -> lift -> carry -> lower -> release -> retreat.

    With ``profile.regrasps`` > 0, a grasp that closed on nothing (the orange moved or was missed)
    or an orange lost while lifting or carrying is tried again: open, rise, approach it where it
    is now.
    """

    RECOVER = 10  # phase: open and rise before approaching again

    CARRY_Z = 0.24  # m, TCP height while carrying (clears the juicer with the orange below)
    GRASP_ABOVE_CENTRE = 0.02  # m, TCP above the orange centre when grasping
    MIN_GRASP_Z = 0.052  # m, keeps the fingertips off the table

    def _episode_setup(self) -> None:
        p = self.profile
        self.grasp_off = self.rng.normal(0.0, p.grasp_err, 2) if p.grasp_err > 0 else np.zeros(2)
        self.place_off = self.rng.normal(0.0, p.place_err, 2) if p.place_err > 0 else np.zeros(2)
        self.drop = self.rng.uniform(0.0, p.drop_height) if p.drop_height > 0 else 0.0
        self.hold_offset = self.GRASP_ABOVE_CENTRE
        self.regrasps_left = self.profile.regrasps

    def _lost(self, obs: dict[str, np.ndarray], tcp: np.ndarray, orange: np.ndarray, radius: float) -> bool:
        """True when the orange is not in the hand (checked after closing and while carrying it)."""
        if self.regrasps_left <= 0:
            return False
        width = float(obs[OBS_STATE][7])
        off_axis = float(np.linalg.norm(tcp[:2] - orange[:2]))
        below = float(tcp[2] - orange[2]) - self.hold_offset
        return width < radius or off_axis > 0.8 * radius or below > 0.03

    def _plan(self, obs: dict[str, np.ndarray], tcp: np.ndarray) -> None:
        es = np.asarray(obs[OBS_ENV_STATE], dtype=np.float64)
        orange, radius, crown = es[:3], float(es[10]), es[11:14]
        grasp_z = max(orange[2] + self.GRASP_ABOVE_CENTRE, self.MIN_GRASP_Z)
        grasp_xy = orange[:2] + self.grasp_off
        self.timer += 1
        if self.phase == 0:  # approach above the orange
            rest = self._advance(np.array([*grasp_xy, grasp_z + 0.1]))
            if rest == 0.0 and np.linalg.norm(tcp - self.cmd) < 0.015:
                self._next()
        elif self.phase == 1:  # descend around it
            rest = self._advance(np.array([*grasp_xy, grasp_z]), speed=0.6 * self.profile.speed)
            if rest == 0.0 and np.linalg.norm(tcp - self.cmd) < 0.006:
                self._next()
        elif self.phase == 2:  # close and let the grip settle
            self.gripper = 1.0
            if self.timer >= 6:
                if self._lost(obs, tcp, orange, radius):
                    self._recover()
                    return
                self.hold_offset = tcp[2] - orange[2]
                self._next()
        elif self.phase in (3, 4) and self._lost(obs, tcp, orange, radius):
            self._recover()
        elif self.phase == 3:  # lift
            self._advance(np.array([*self.cmd[:2], self.CARRY_Z]))
            if tcp[2] > self.CARRY_Z - 0.03:
                self._next()
        elif self.phase == self.RECOVER:  # open, rise clear of the orange, then approach again
            self.gripper = 0.0
            rest = self._advance(np.array([*self.cmd[:2], grasp_z + 0.08]))
            if rest == 0.0 and self.timer >= 4:
                self.phase, self.timer = 0, 0
        elif self.phase == 4:  # carry over the cone
            aim = crown[:2] + self.place_off
            rest = self._advance(np.array([*aim, self.CARRY_Z]))
            if rest == 0.0 and np.linalg.norm(tcp[:2] - aim) < 0.008:
                self._next()
        elif self.phase == 5:  # lower until the orange is just above the crown
            rest_h = np.sqrt(max((radius + 0.005) ** 2 - 0.022**2, 0.0))
            z = crown[2] + rest_h + 0.008 + self.drop + self.hold_offset
            rest = self._advance(np.array([*self.cmd[:2], z]), speed=0.5 * self.profile.speed)
            if rest == 0.0 and abs(tcp[2] - z) < 0.006:
                self._next()
        elif self.phase == 6:  # let go
            self.gripper = 0.0
            if self.timer >= 5:
                self._next()
        else:  # retreat straight up
            self._advance(np.array([*self.cmd[:2], min(self.cmd[2] + 0.1, self.CARRY_Z)]))

    def _next(self) -> None:
        self.phase += 1
        self.timer = 0

    def _recover(self) -> None:
        self.regrasps_left -= 1
        self.hold_offset = self.GRASP_ABOVE_CENTRE
        self.phase, self.timer = self.RECOVER, 0
