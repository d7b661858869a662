"""A scripted operator for human-in-the-loop collection: it watches a rollout and takes over near failure.

HIL-SERL's recipe with the human replaced by a rule: the operator sees a small, task-agnostic view of the
scene every control step (:class:`TaskView`: gripper, object, target) and, once a failure sign shows, takes
control for the rest of the episode (the caller then drives the scripted expert; every such step is flagged
``FLAG_INTERVENTION``). It never hands control back: the expert finishes the task or the episode ends.

Failure signs (each can be switched off by a zero threshold in :class:`OperatorConfig`):

- ``dropped``: the object had been lifted and now rests on its support (table) away from the target;
- ``empty_grasp``: the gripper has been closed on nothing (finger width below ``closed_width``) for
  ``closed_steps`` consecutive steps;
- ``stalled``: no progress for ``stall_steps`` steps; progress is a new minimum, by ``progress_eps``, of
  ``phi = |tcp - object| + |object - target|`` (remaining reach + remaining carry);
- ``missed_approach``: the tool has come down to less than ``approach_height`` above the object's centre while
  more than ``approach_xy`` from it horizontally: it is about to grasp or push where the object is not. The
  earliest of the signs (a policy that ignores where the object is shows it as it descends, before it stalls),
  so the operator's correction starts near the states the policy will see again (HG-DAgger's point). Off by
  default (``approach_xy = 0``): on juicing-place the tool passes low beside the orange on good approaches.
- ``misaimed``: for tasks that strike or push the object towards the target (bowling): the object is at rest, the
  tool is low and within ``aim_dist`` (xy) of it, and the line from the tool through the object misses the target
  direction by more than ``aim_deg``: a strike from there sends the object off line, and once it has rolled away
  no takeover can save the episode. Off by default (``aim_deg = 0``).

Pure numpy and free of simulator internals: the simulation builds a :class:`TaskView` from the privileged
state (:func:`juicing_view`, :func:`bowling_view`, :func:`metaworld_view`); the ROS stack can build the same view
from its own object tracking. Units: metres, robot base frame, ``z`` up, table top at ``table_z``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rl100.keys import OBS_ENV_STATE, OBS_STATE

DROPPED = "dropped"
EMPTY_GRASP = "empty_grasp"
STALLED = "stalled"
MISSED_APPROACH = "missed_approach"
MISAIMED = "misaimed"
REASONS = (DROPPED, EMPTY_GRASP, STALLED, MISSED_APPROACH, MISAIMED)

# OBS_STATE layout (rl100.robot_state): TCP position (3), TCP quaternion (4), gripper width (1), joints (7)
STATE_TCP = slice(0, 3)
STATE_WIDTH = 7
# juicing-place OBS_ENV_STATE layout (rl100.sim.juicing): orange pos (3), quat (4), velocity (3), radius (1), crown (3)
JUICING_POS, JUICING_VEL, JUICING_RADIUS, JUICING_CROWN = slice(0, 3), slice(7, 10), 10, slice(11, 14)


@dataclass(frozen=True)
class TaskView:
    """What the operator watches at one control step (metres, base frame)."""

    tcp: np.ndarray
    """(3,) tool centre point"""
    gripper_width: float
    """finger opening (0 = closed on nothing)"""
    obj: np.ndarray
    """(3,) centre of the manipulated object"""
    obj_speed: float
    """m/s"""
    obj_half_height: float
    """height of the object's centre above its support when it rests (a sphere: its radius)"""
    target: np.ndarray
    """(3,) where the object's centre should end up"""
    table_z: float = 0.0

    def __post_init__(self) -> None:
        for name in ("tcp", "obj", "target"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != (3,) or not np.all(np.isfinite(value)):
                raise ValueError(f"TaskView.{name} must be 3 finite numbers, got {getattr(self, name)!r}")
            object.__setattr__(self, name, value)

    @property
    def height(self) -> float:
        """Object centre height above its resting height on the table (0: on the table)."""
        return float(self.obj[2] - self.obj_half_height - self.table_z)


@dataclass
class OperatorConfig:
    """Thresholds of the scripted operator (see the module docstring); a zero count switches a sign off."""

    stall_steps: int = 40
    """steps without progress before taking over (0: off)"""
    progress_eps: float = 0.01
    """m: a decrease of phi smaller than this is no progress"""
    lift_height: float = 0.03
    """m above the resting height: the object counts as lifted"""
    rest_height: float = 0.01
    """m above the resting height: the object counts as back on the table"""
    rest_speed: float = 0.05
    """m/s: a resting object is slower than this"""
    target_tol: float = 0.03
    """m, xy: an object resting closer than this to the target was not dropped off-target"""
    closed_width: float = 0.01
    """m: finger width below which the gripper holds nothing"""
    closed_steps: int = 5
    """consecutive closed-on-nothing steps before taking over (0: off)"""
    approach_height: float = 0.06
    """m: the tool is low once it is less than this above the object's centre"""
    approach_xy: float = 0.0
    """m: a low tool farther than this from the object horizontally has missed it (0: off)"""
    aim_deg: float = 0.0
    """deg: a low tool within ``aim_dist`` of the object whose line through it misses the target direction by more
    than this is misaimed (0: off)"""
    aim_dist: float = 0.12
    """m, xy: how close to the object the tool is watched for its aim"""

    def __post_init__(self) -> None:
        if self.stall_steps < 0 or self.closed_steps < 0:
            raise ValueError(f"stall_steps and closed_steps must be >= 0, got {self.stall_steps}, {self.closed_steps}")
        for name in ("progress_eps", "lift_height", "rest_height", "rest_speed", "target_tol", "closed_width",
                     "approach_height", "approach_xy", "aim_deg", "aim_dist"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.rest_height >= self.lift_height > 0:
            raise ValueError(f"rest_height ({self.rest_height}) must be below lift_height ({self.lift_height})")


class ScriptedOperator:
    """``reset()`` at each episode start, then ``update(view) -> in control`` once per control step.

    After a takeover, ``reason`` (one of :data:`REASONS`) and ``takeover_step`` (0-based index of the first step
    under operator control) say why and when.
    """

    def __init__(self, config: OperatorConfig | None = None) -> None:
        self.config = config or OperatorConfig()
        self.reset()

    def reset(self) -> None:
        self.step = 0
        self.active = False
        self.reason: str | None = None
        self.takeover_step: int | None = None
        self._lifted = False
        self._closed_count = 0
        self._best_phi = float("inf")
        self._last_progress = 0

    def update(self, view: TaskView) -> bool:
        """Watch one step; returns True when the operator is in control of this step (and all later ones)."""
        if not self.active:
            reason = self._check(view)
            if reason is not None:
                self.active, self.reason, self.takeover_step = True, reason, self.step
        self.step += 1
        return self.active

    def _check(self, view: TaskView) -> str | None:
        cfg = self.config
        height = view.height
        if cfg.lift_height > 0:
            self._lifted = self._lifted or height > cfg.lift_height
            off_target = float(np.linalg.norm(view.obj[:2] - view.target[:2])) > cfg.target_tol
            if self._lifted and height < cfg.rest_height and view.obj_speed < cfg.rest_speed and off_target:
                return DROPPED
        if cfg.closed_steps > 0:
            self._closed_count = self._closed_count + 1 if view.gripper_width < cfg.closed_width else 0
            if self._closed_count >= cfg.closed_steps:
                return EMPTY_GRASP
        if cfg.approach_xy > 0 and view.tcp[2] - view.obj[2] < cfg.approach_height:
            if float(np.linalg.norm(view.tcp[:2] - view.obj[:2])) > cfg.approach_xy:
                return MISSED_APPROACH
        if cfg.aim_deg > 0 and view.obj_speed < cfg.rest_speed and view.tcp[2] - view.obj[2] < cfg.approach_height:
            line, wanted = view.obj[:2] - view.tcp[:2], view.target[:2] - view.obj[:2]
            dist = float(np.linalg.norm(line))
            if 1e-6 < dist < cfg.aim_dist and float(np.linalg.norm(wanted)) > 1e-6:
                cos = float(np.dot(line, wanted)) / (dist * float(np.linalg.norm(wanted)))
                if np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))) > cfg.aim_deg:
                    return MISAIMED
        if cfg.stall_steps > 0:
            phi = float(np.linalg.norm(view.tcp - view.obj) + np.linalg.norm(view.obj - view.target))
            if phi < self._best_phi - cfg.progress_eps:
                self._best_phi, self._last_progress = phi, self.step
            elif self.step - self._last_progress >= cfg.stall_steps:
                return STALLED
        return None


def juicing_view(obs: Mapping[str, Any]) -> TaskView:
    """juicing-place: the orange is the object, the juicer's crown centre the target (privileged sim state)."""
    state = np.asarray(obs[OBS_STATE], dtype=np.float64)
    env = np.asarray(obs[OBS_ENV_STATE], dtype=np.float64)
    return TaskView(tcp=state[STATE_TCP], gripper_width=float(state[STATE_WIDTH]), obj=env[JUICING_POS],
                    obj_speed=float(np.linalg.norm(env[JUICING_VEL])), obj_half_height=float(env[JUICING_RADIUS]),
                    target=env[JUICING_CROWN])


# bowling OBS_ENV_STATE layout (rl100.sim.bowling): ball pos (3), velocity (3), radius (1), pin positions (3 x 3),
# pin uprightness (3)
BOWLING_POS, BOWLING_VEL, BOWLING_RADIUS, BOWLING_HEAD_PIN = slice(0, 3), slice(3, 6), 6, slice(7, 10)


def bowling_view(obs: Mapping[str, Any]) -> TaskView:
    """bowling: the ball is the object, the head pin the target. The fingers stay closed by design (the expert
    strikes with them), so run the operator with the empty-grasp sign off (``closed_steps=0``); the ball never
    lifts, so the dropped sign stays quiet; the stall sign sees a policy that never strikes, the misaimed sign
    (``aim_deg``) one about to strike off line."""
    state = np.asarray(obs[OBS_STATE], dtype=np.float64)
    env = np.asarray(obs[OBS_ENV_STATE], dtype=np.float64)
    return TaskView(tcp=state[STATE_TCP], gripper_width=float(state[STATE_WIDTH]), obj=env[BOWLING_POS],
                    obj_speed=float(np.linalg.norm(env[BOWLING_VEL])), obj_half_height=float(env[BOWLING_RADIUS]),
                    target=env[BOWLING_HEAD_PIN])


# Meta-World v3 (rl100.sim.metaworld_env): OBS_ENV_STATE is Meta-World's own observation: hand (0:3), gripper (3),
# first object position (4:7) and quaternion (7:11), second object (11:18), the previous frame's copy of 0:18 (18:36),
# goal (36:39). Metres, Meta-World's world frame, table top at z = 0.
MW_OBJ, MW_PREV_OBJ, MW_GOAL = slice(4, 7), slice(22, 25), slice(36, 39)
MW_DT = 0.0125
"""s per Meta-World step (5 MuJoCo steps of 2.5 ms): the object speed is its move since the previous frame / MW_DT"""
MW_PADS_CLOSED = 0.0216
"""m between the Sawyer's finger pads closed on nothing (OBS_STATE's width; on the push-v3 puck 0.04 with the
script's grip effort, 0.025-0.028 with a stronger one: too close for a width threshold to tell them apart)"""
MW_OBJ_HALF_HEIGHT = 0.019
"""m: the puck / block centre above the table when it rests (push-v3, pick-place-v3)"""


def metaworld_view(obs: Mapping[str, Any]) -> TaskView:
    """Meta-World tasks that carry one object to a goal (push-v3, pick-place-v3): the first object, the goal.

    The gripper width is the pads' distance less their closed-on-nothing distance, so 0 means closed on nothing as
    for the Panda."""
    state = np.asarray(obs[OBS_STATE], dtype=np.float64)
    env = np.asarray(obs[OBS_ENV_STATE], dtype=np.float64)
    speed = float(np.linalg.norm(env[MW_OBJ] - env[MW_PREV_OBJ])) / MW_DT
    return TaskView(tcp=state[STATE_TCP], gripper_width=float(state[STATE_WIDTH]) - MW_PADS_CLOSED, obj=env[MW_OBJ],
                    obj_speed=speed, obj_half_height=MW_OBJ_HALF_HEIGHT, target=env[MW_GOAL])


TASK_VIEWS: dict[str, Callable[[Mapping[str, Any]], TaskView]] = {
    "juicing-place": juicing_view, "bowling": bowling_view, "metaworld/push-v3": metaworld_view,
    "metaworld/pick-place-v3": metaworld_view}
"""simulated task -> observation dict -> :class:`TaskView`"""


def view_for(task: str) -> Callable[[Mapping[str, Any]], TaskView]:
    if task not in TASK_VIEWS:
        raise ValueError(f"no scripted-operator view for task {task!r} (tasks with one: {sorted(TASK_VIEWS)})")
    return TASK_VIEWS[task]
