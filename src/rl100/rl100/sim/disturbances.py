"""Robustness families for the simulated Panda tasks: named, seeded disturbances and shifted conditions.

::

    from rl100.sim import disturbances
    env = disturbances.make_env("juicing-place", disturbance="push_arm:severe", seed=0, obs=("state",))
    env = rl100.sim.make_env("juicing-place"); disturbances.attach(env, "latency,sensor_noise:mild")
    disturbances.attach(env, [{"family": "latency", "steps": 3}])   # data-only configs (JSON-ready)
    disturbances.attach(env, None)                                   # back to the nominal task

A spec is ``None`` / ``"none"``, a family name, ``"name:severity"``, a comma-separated list of those,
a dict ``{"family": name, "severity": ..., "seed": ..., **params}`` (:meth:`Family.to_dict`), a list
of any of these, or the JSON text of a dict or list (what the ROS sim robot's ``disturbance``
parameter takes). Families take effect from the next ``reset()``; the same reset seed gives the same
episode, disturbance included; with no family attached the environment is the nominal one, at its
nominal speed (``env.disturbances is None``: one attribute test per hook).

| family | kind | what (moderate preset) |
|---|---|---|
| ``push_arm`` | disturbance | 35 N on the hand for 2 steps, random horizontal direction, from a step in [5, 60] |
| ``push_object`` | disturbance | 0.6 N through the object's centre for 1 step, starting at a step in [2, 12] |
| ``move_object`` | disturbance | object jumps 2.5 cm (between the finger pads) when the gripper first closes near it |
| ``friction`` | condition | table and object sliding friction x [0.35, 2.5] (log-uniform) |
| ``table_height`` | condition | table top (and everything on it) moved by [-2.5, 2.5] cm |
| ``object_size`` | condition | object radius x [0.95, 1.15] of the task's draw |
| ``object_shape`` | condition | ellipsoid, each semi-axis x [1/1.25, 1.25] |
| ``camera_pose`` | condition | scene camera moved +-1.5 cm, turned <= 3 deg; reported extrinsics stay nominal |
| ``appearance`` | condition | colours x [0.75, 1.25] per channel, lights x [0.6, 1.4], tilted <= 25 deg |
| ``sensor_noise`` | observation | state 3 mm, 0.015 rad, joints 0.005 rad; depth 5 mm at 1 m (~z^2), 2 % holes; rgb 5 |
| ``frame_drop`` | observation | camera frame repeated with probability 0.3 per step |
| ``latency`` | observation | observations delayed by 2 control steps |

Presets per severity and the parameters are in each class's docstring (:mod:`rl100.sim.disturbances_physical`,
:mod:`rl100.sim.disturbances_obs`). ``env.disturbances.events`` lists what happened in the current
episode (step, family, description).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from rl100.sim import disturbances_obs, disturbances_physical  # noqa: F401 - registers the families
from rl100.sim.disturbances_base import (
    FAMILIES,
    KINDS,
    SEVERITIES,
    Family,
    family_from_dict,
    family_names,
    make_family,
)
from rl100.sim.disturbances_obs import ObservationFilter

__all__ = ["FAMILIES", "SEVERITIES", "DisturbanceCycle", "DisturbanceSet", "Family", "applicability", "attach",
           "cycle", "detach",
           "family_from_dict", "family_names", "make_env", "make_family", "manipuland", "parse_families", "to_json"]


@dataclass(frozen=True)
class Manipuland:
    """The object a task manipulates: body id, its colliding geoms, free-joint qpos / qvel addresses."""

    body: int
    geoms: tuple[int, ...]
    qadr: int
    dadr: int


def manipuland(env) -> Manipuland | None:
    """The registered manipulated object of a Panda task environment, when it is a free body; else None."""
    import mujoco

    from rl100.sim.registry import TASKS

    path = f"{type(env).__module__}:{type(env).__qualname__}"
    names = [e.manipuland for e in TASKS.values() if e.env == path and e.manipuland]
    if not names:
        return None
    m = env.model
    body = m.body(names[0]).id
    jnt = m.body_jntadr[body]
    if m.body_jntnum[body] != 1 or m.jnt_type[jnt] != mujoco.mjtJoint.mjJNT_FREE:
        return None
    first, count = m.body_geomadr[body], m.body_geomnum[body]
    geoms = tuple(g for g in range(first, first + count) if m.geom_contype[g] or m.geom_conaffinity[g])
    return Manipuland(body, geoms, int(m.jnt_qposadr[jnt]), int(m.jnt_dofadr[jnt]))


class DisturbanceSet:
    """The families attached to one Panda task environment, called by its hooks (see ``PandaTaskEnv``).

    Attributes: ``families`` (applied in kind order: conditions, disturbances, observations),
    ``step`` (index of the control step being run), ``events`` (this episode's log),
    ``reported_extrinsics`` (camera name -> the (4, 4) pose ``camera_info()`` reports instead),
    ``paused`` (set from outside: the physical disturbances neither act nor count steps, so a
    window "steps 2-12" means 2-12 steps of the policy's control; the ROS sim robot pauses them
    while the safety node is not autonomous, as in-process step 0 is the policy's first action).
    """

    def __init__(self, env, families: list[Family]) -> None:
        from rl100.sim.base import PandaTaskEnv

        if not isinstance(env, PandaTaskEnv):
            raise ValueError(f"robustness families need a Panda task (PandaTaskEnv), got {type(env).__name__}")
        names = [f.name for f in families]
        if len(set(names)) != len(names):
            raise ValueError(f"a family may be attached once per environment, got {names}")
        m = env.model
        self.env = env
        self.families = sorted(families, key=lambda f: (KINDS.index(f.kind), f.order))
        self.manipuland = manipuland(env)
        self.table_geom = m.geom("table").id
        skip = {m.body("robot_base").id, *env.arm.robot_bodies}
        self.table_bodies = [b for b in range(1, m.nbody)
                             if m.body_parentid[b] == 0 and b not in skip and m.body_mocapid[b] < 0]
        problems = [f"{f.name}: {why}" for f in self.families if (why := f.applicable(env, self))]
        if problems:
            raise ValueError(f"robustness families that do not apply to {type(env).__name__}: {'; '.join(problems)}")
        fields = sorted({name for f in self.families for name in f.model_fields})
        self._nominal = {name: getattr(m, name).copy() for name in fields}
        head = m.vis.headlight
        self.nominal_headlight = (head.diffuse.copy(), head.ambient.copy(), head.specular.copy())
        self.conditions = [f for f in self.families if f.kind == "condition"]
        self.physical = [f for f in self.families if f.kind == "disturbance"]
        observation = [f for f in self.families if f.kind == "observation"]
        self.obs_filter = ObservationFilter(observation) if observation else None
        self.started = False
        self.paused = False
        self.step, self.pushed = 0, False
        self.events: list[dict[str, Any]] = []
        self.reported_extrinsics: dict[str, np.ndarray] = {}

    # -- hooks called by PandaTaskEnv --------------------------------------------------------------
    def begin_episode(self, env, rng: np.random.Generator) -> None:
        """At reset, before the task's randomisation: nominal model back, this episode's draws."""
        self.restore_model()
        entropy = int(copy.deepcopy(rng).integers(2**63))  # a copy: the task's own draws stay nominal
        self.step, self.pushed, self.started = 0, False, True
        self.events, self.reported_extrinsics = [], {}
        for f in self.families:
            f.begin_episode(env, self, np.random.default_rng([entropy, f.seed, zlib.crc32(f.name.encode())]))

    def apply_conditions(self, env) -> None:
        for f in self.conditions:
            f.apply(env, self)

    def before_physics(self, env, action: np.ndarray) -> None:
        if self.started and not self.paused:
            for f in self.physical:
                f.before_physics(env, self, action)

    def after_physics(self, env) -> None:
        if self.pushed:
            env.data.xfrc_applied[:] = 0.0
            self.pushed = False
        if not self.paused:
            self.step += 1

    def filter_observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.obs_filter is None or not self.started:
            return obs
        return self.obs_filter(obs)

    def reported_camera_info(self, info):
        pose = self.reported_extrinsics.get(info.name)
        return info if pose is None else dataclasses.replace(info, base_T_cam=pose.copy())

    # -- helpers -----------------------------------------------------------------------------------
    def log(self, family: str, what: str) -> None:
        self.events.append({"step": self.step, "family": family, "what": what})

    def restore_model(self, model=None) -> None:
        """The nominal values of every model field a family edits back into ``model`` (default: the env's)."""
        m = self.env.model if model is None else model
        for name, value in self._nominal.items():
            getattr(m, name)[...] = value
        head = m.vis.headlight
        head.diffuse, head.ambient, head.specular = (v.copy() for v in self.nominal_headlight)

    def configs(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self.families]


# -- API ---------------------------------------------------------------------------------------------
def parse_families(spec: Any, severity: str = "moderate", seed: int = 0) -> list[Family]:
    """A spec (see the module docstring) -> families; ``severity`` / ``seed`` for names given bare."""
    if spec is None:
        return []
    if isinstance(spec, Family):
        return [spec]
    if isinstance(spec, dict):
        return [family_from_dict(spec)]
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() in ("", "none"):
            return []
        if text[0] in "[{":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"bad JSON in disturbance spec {text!r}: {exc}") from exc
            return parse_families(data, severity, seed)
        out = []
        for item in text.split(","):
            name, _, level = item.strip().partition(":")
            if name.strip().lower() != "none":
                out.append(make_family(name.strip(), level.strip() or severity, seed))
        return out
    if isinstance(spec, list | tuple):
        return [f for item in spec for f in parse_families(item, severity, seed)]
    raise ValueError(f"a disturbance spec is a name, 'name:severity', a dict, a list or JSON; got {spec!r}")


def to_json(families: list[Family]) -> str:
    """Families -> JSON text that :func:`parse_families` (and the sim robot's parameter) reads back."""
    return json.dumps([f.to_dict() for f in families])


def attach(env, spec: Any, *, severity: str = "moderate", seed: int = 0) -> DisturbanceSet | None:
    """Attach the families of ``spec`` to ``env`` (replacing any); they act from the next ``reset()``.

    Returns the :class:`DisturbanceSet`, or None for an empty spec (the environment is nominal again).
    A bad spec raises ValueError before anything changes; a family that does not apply to ``env``
    raises ValueError with the environment left nominal.
    """
    base = env.unwrapped
    families = parse_families(spec, severity, seed)
    detach(base)  # the nominal model back before the new set records it
    base.disturbances = DisturbanceSet(base, families) if families else None
    return base.disturbances


def detach(env) -> None:
    """Remove the families (the model is restored to the nominal one now)."""
    base = env.unwrapped
    dset = getattr(base, "disturbances", None)
    if dset is not None:
        dset.restore_model()
        base.disturbances = None


def make_env(task: str, disturbance: Any = None, *, severity: str = "moderate", **kwargs):
    """``rl100.sim.make_env(task, **kwargs)`` with ``disturbance`` (a spec) attached."""
    from rl100.sim import make_env as make_nominal

    env = make_nominal(task, **kwargs)
    try:
        attach(env, disturbance, severity=severity, seed=0)
    except Exception:
        env.close()
        raise
    return env


def check_specs(specs) -> list[str]:
    """``specs`` as strings, each parsed once (ValueError naming the family or parameter) before any episode."""
    out = [str(s) for s in specs or []]
    for spec in out:
        parse_families(spec)
    return out


def events_meta(dset: DisturbanceSet) -> list[dict[str, Any]]:
    """What the families did in the current episode, JSON-ready for an episode's meta (``disturbance_events``)."""
    return [{"step": int(e["step"]), "family": str(e["family"]), "what": str(e["what"])} for e in dset.events]


class DisturbanceCycle:
    """A task environment whose episode seeded ``s`` runs under ``specs[s % len(specs)]`` (``"none"``: nominal).

    For training under a mix of families (the loop's collection, online RL): :meth:`reset` attaches the entry first,
    ``current`` names it. Every other attribute is the wrapped environment's. A reset without a seed is refused: the
    family would not follow from the episode."""

    def __init__(self, env, specs: list[str]) -> None:
        if not specs:
            raise ValueError("DisturbanceCycle needs at least one spec")
        self.env, self.specs, self.current = env, check_specs(specs), None

    def reset(self, *, seed: int | None = None, options: Any = None):
        if seed is None:
            raise ValueError("DisturbanceCycle.reset needs a seed (it picks the episode's family)")
        self.current = self.specs[int(seed) % len(self.specs)]
        attach(self.env, self.current, seed=int(seed))
        return self.env.reset(seed=seed, options=options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)


def cycle(env, specs: list[str] | None):
    """``env`` under :class:`DisturbanceCycle` when ``specs`` are given, else ``env`` itself."""
    return DisturbanceCycle(env, list(specs)) if specs else env


def applicability(env) -> dict[str, str | None]:
    """Family name -> None if it applies to ``env`` (at its moderate preset), else the reason."""
    out: dict[str, str | None] = {}
    for name in family_names():
        try:
            DisturbanceSet(env.unwrapped, [make_family(name)])
            out[name] = None
        except ValueError as exc:
            out[name] = str(exc)
    return out
