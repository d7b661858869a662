"""Why a pick-and-place episode failed, read from the object's trajectory (tasks with a place target).

A success rate says how often; an engineer deciding what data to collect next needs to know how it fails.
:class:`OutcomeTracker` watches the manipulated object once per control step and names each episode's outcome:

| mode | what happened |
|---|---|
| ``success`` | the task's success flag |
| ``never_lifted`` | the robot never held the object above its start height + ``lift`` |
| ``dropped`` | it was held, last let go more than ``near`` (xy) from the target |
| ``missed_target`` | last let go within ``near`` of the target, yet no success (off-centre, rolled off) |
| ``holding`` | still held at the end (ran out of time carrying or hovering) |

"Held" is the object above start + ``lift``, touched by the robot and by nothing else (carried: an orange set on
the crown and brushed by a finger is not held); a release is the step where that stops. The mode names how the
episode ended (the last release); ``releases`` lists every release in order (``target`` within ``near``, else
``away``), so an episode that missed the cone, then dropped the orange on its way back is told apart from one that
never reached the cone. ``regrasps`` counts holds after the first; ``release_error_m`` is the xy distance of the
object from the target at the last release (None when never released). The target is the environment's
``place_target()`` (juicing-place: the juicer's crown); tasks without one (bowling, pouring) are not supported:
:func:`supported` says so and :class:`OutcomeTracker` refuses them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

MODES = ("success", "never_lifted", "dropped", "missed_target", "holding")
"""every outcome :meth:`OutcomeTracker.outcome` returns, in report order"""


def _target(env) -> np.ndarray | None:
    fn = getattr(env.unwrapped, "place_target", None)
    return None if fn is None else fn()


def supported(env) -> bool:
    """True when ``env`` has a manipulated free body and a place target."""
    from rl100.sim.disturbances import manipuland

    return manipuland(env.unwrapped) is not None and _target(env) is not None


class OutcomeTracker:
    """``reset()`` after ``env.reset()``, ``step()`` after every ``env.step()``, ``outcome(success)`` at the end.

    ``lift``: m above the start height that counts as lifted; ``near``: m (xy) from the target that counts as
    let go at the target.
    """

    def __init__(self, env, lift: float = 0.02, near: float = 0.05) -> None:
        from rl100.sim.disturbances import manipuland

        self.env = env.unwrapped
        self.man = manipuland(self.env)
        if self.man is None or _target(env) is None:
            raise ValueError(f"{type(self.env).__name__}: episode outcomes need a manipulated object and a place "
                             "target (place_target())")
        if lift <= 0 or near <= 0:
            raise ValueError(f"lift and near must be > 0, got {lift}, {near}")
        self.lift, self.near = float(lift), float(near)
        self.reset()

    def _pos(self) -> np.ndarray:
        q = self.man.qadr
        return self.env.data.qpos[q : q + 3].copy()

    def reset(self) -> None:
        self.start_z = float(self._pos()[2])
        self.held = False
        self.holds = 0
        self.last_release: np.ndarray | None = None
        self.releases: list[str] = []

    def step(self) -> None:
        pos = self._pos()
        held = False
        if pos[2] > self.start_z + self.lift:
            robot, other = self.env.touches(self.man.body)
            held = robot and not other
        if held and not self.held:
            self.holds += 1
        elif self.held and not held:
            self.last_release = pos
            self.releases.append("target" if self.release_error_m <= self.near else "away")
        self.held = held

    @property
    def release_error_m(self) -> float | None:
        if self.last_release is None:
            return None
        return float(np.linalg.norm(self.last_release[:2] - _target(self.env)[:2]))

    def outcome(self, success: bool) -> str:
        if success:
            return "success"
        if self.holds == 0:
            return "never_lifted"
        if self.held or self.last_release is None:
            return "holding"
        return "missed_target" if self.release_error_m <= self.near else "dropped"

    def record(self, success: bool) -> dict[str, Any]:
        """The episode's outcome with its numbers (JSON-ready)."""
        err = self.release_error_m
        return {"mode": self.outcome(success), "regrasps": max(self.holds - 1, 0),
                "release_error_m": None if err is None else round(err, 4), "releases": list(self.releases)}


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-episode records -> counts per mode (every mode listed), failed episodes that let go at the target at
    least once, mean regrasps, median release error of the ``missed_target`` episodes."""
    counts = Counter(r["mode"] for r in records)
    missed = [r["release_error_m"] for r in records if r["mode"] == "missed_target"]
    return {"modes": {m: counts.get(m, 0) for m in MODES},
            "failed_after_target_release": sum(r["mode"] != "success" and "target" in r["releases"] for r in records),
            "mean_regrasps": float(np.mean([r["regrasps"] for r in records])) if records else 0.0,
            "missed_release_error_m": float(np.median(missed)) if missed else None}


def mode_text(summary: dict[str, Any]) -> str:
    """``"dropped 12, missed_target 7 (9 let go at the target)"``: the failure modes that occurred, most frequent
    first, and how many failed episodes let go at the target at some point."""
    fails = [(n, m) for m, n in summary["modes"].items() if m != "success" and n]
    text = ", ".join(f"{m} {n}" for n, m in sorted(fails, key=lambda x: -x[0])) or "-"
    at = summary.get("failed_after_target_release", 0)
    return text + (f" ({at} let go at the target)" if at else "")
