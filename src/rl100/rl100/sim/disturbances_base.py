"""The robustness-family base class and registry (no MuJoCo here; see :mod:`rl100.sim.disturbances`).

A *family* is a small dataclass: its physical parameters, a ``severity`` (``mild``, ``moderate``,
``severe``) whose preset fills every parameter left ``None``, and a ``seed``. It is plain data
(:meth:`Family.to_dict` / :func:`family_from_dict` round-trip through JSON), so a family can travel
as a ROS parameter. Its random draws come from a generator seeded by ``(episode entropy, seed,
family name)``, where the episode entropy is drawn from a *copy* of the environment's generator at
reset: the same reset seed gives the same disturbance, and the task's own randomisation (object
placement, joint noise) is the nominal one.

Kinds, and when the environment calls them:

- ``condition``: once per episode, after the task placed its objects (:meth:`Family.apply`);
- ``disturbance``: every control step, around the physics (:meth:`Family.before_physics`,
  :meth:`Family.after_physics`);
- ``observation``: every observation, before the point cloud is made from the depth image
  (:meth:`Family.filter`), in the order noise -> dropped frames -> latency.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

SEVERITIES = ("mild", "moderate", "severe")
KINDS = ("condition", "disturbance", "observation")
FAMILIES: dict[str, type[Family]] = {}


@dataclass(kw_only=True)
class Family:
    """Base of the robustness families (subclasses are dataclasses whose parameters default to ``None``).

    Attributes:
        severity: ``mild``, ``moderate`` or ``severe``: the preset used for parameters left ``None``.
        seed: mixed with the episode's reset seed into this family's random draws.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    order: ClassVar[int] = 0  # application order within a kind (lower first)
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    model_fields: ClassVar[tuple[str, ...]] = ()  # MjModel arrays it edits (restored at every reset)

    severity: str = "moderate"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"{self.name}: severity must be one of {SEVERITIES}, got {self.severity!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer) or self.seed < 0:
            raise ValueError(f"{self.name}: seed must be an integer >= 0, got {self.seed!r}")
        self.seed = int(self.seed)
        preset = self.presets[self.severity]
        for f in dataclasses.fields(self):
            if getattr(self, f.name) is None and f.name in preset:
                setattr(self, f.name, preset[f.name])
        self.validate()

    # -- to override --------------------------------------------------------------------------
    def validate(self) -> None:
        """Check (and normalise, e.g. list -> tuple) the parameters; raise ValueError naming the problem."""

    def applicable(self, env: Any, dset: Any) -> str | None:
        """Why this family cannot act on ``env`` (a reason), or None if it can (``dset``: the set it joins)."""
        return None

    def begin_episode(self, env: Any, dset: Any, rng: np.random.Generator) -> None:
        """Draw this episode's values (the model is nominal again here)."""

    def apply(self, env: Any, dset: Any) -> None:
        """``condition``: edit the model / object state after the task's own randomisation."""

    def before_physics(self, env: Any, dset: Any, action: np.ndarray) -> None:
        """``disturbance``: act before the control step's physics (``dset.step`` = its index, from 0)."""

    def filter(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``observation``: return the observation the robot's consumers see (never edit arrays in place)."""
        return obs

    # -- data ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """``{"family": name, **fields}``: JSON-ready (tuples become lists)."""
        return {"family": self.name, **json.loads(json.dumps(dataclasses.asdict(self)))}

    def label(self) -> str:
        return f"{self.name}:{self.severity}"


def register(cls: type[Family]) -> type[Family]:
    """Class decorator: add a family to :data:`FAMILIES` (its presets must name every ``None`` parameter)."""
    if not cls.name or cls.kind not in KINDS:
        raise ValueError(f"{cls.__name__}: a family needs a name and a kind in {KINDS}")
    if cls.name in FAMILIES or cls.name == "none":
        raise ValueError(f"family {cls.name!r} is already registered (or reserved)")
    if set(cls.presets) != set(SEVERITIES):
        raise ValueError(f"{cls.name}: presets must be given for {SEVERITIES}")
    FAMILIES[cls.name] = cls
    return cls


def family_names() -> list[str]:
    """Registered family names (sorted)."""
    return sorted(FAMILIES)


def family_class(name: str) -> type[Family]:
    if name not in FAMILIES:
        raise ValueError(f"unknown robustness family {name!r}; choose from {family_names()} (or 'none')")
    return FAMILIES[name]


def make_family(name: str, severity: str = "moderate", seed: int = 0, **params: Any) -> Family:
    """A family by name; ``params`` override the severity preset (e.g. ``make_family("latency", steps=3)``)."""
    cls = family_class(name)
    try:
        return cls(severity=severity, seed=seed, **params)
    except TypeError as exc:  # an unknown parameter: name the valid ones
        valid = [f.name for f in dataclasses.fields(cls)]
        raise ValueError(f"bad parameter for family {name!r}: {exc}; valid parameters: {valid}") from exc


def family_from_dict(config: dict[str, Any]) -> Family:
    """Inverse of :meth:`Family.to_dict`: ``{"family": name, "severity": ..., "seed": ..., **params}``."""
    if not isinstance(config, dict) or "family" not in config:
        raise ValueError(f"a family config is a dict with a 'family' key, got {config!r}")
    params = dict(config)
    return make_family(params.pop("family"), **params)


def uniform(rng: np.random.Generator, bounds: tuple[float, float], log: bool = False) -> float:
    """One draw in ``bounds`` (log-uniform for positive factors when ``log``)."""
    lo, hi = bounds
    if log:
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return float(rng.uniform(lo, hi))


def check_range(family: str, name: str, value: Any, lo: float = -np.inf, hi: float = np.inf) -> tuple[float, float]:
    """A ``(min, max)`` pair with ``lo <= min <= max <= hi``, as a tuple of floats."""
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{family}.{name} must be a (min, max) pair, got {value!r}") from exc
    if not lo <= a <= b <= hi:
        raise ValueError(f"{family}.{name} must satisfy {lo} <= min <= max <= {hi}, got {(a, b)}")
    return a, b


def check_number(family: str, name: str, value: Any, lo: float = -np.inf, hi: float = np.inf) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{family}.{name} must be a number, got {value!r}") from exc
    if not lo <= v <= hi:
        raise ValueError(f"{family}.{name} must be in [{lo}, {hi}], got {v}")
    return v
