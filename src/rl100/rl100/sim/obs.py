"""Observation names accepted by ``make_env(obs=...)`` and the dictionary keys they produce.

The shared keys live in :mod:`rl100.keys`; the wrist camera's keys are sim-specific for now and
are defined here (``OBS_WRIST_RGB``, ``OBS_WRIST_DEPTH``).
"""

from __future__ import annotations

from rl100.keys import OBS_DEPTH, OBS_ENV_STATE, OBS_POINTS, OBS_RGB, OBS_STATE

OBS_WRIST_RGB = "observation.wrist_rgb"  # (H, W, 3) uint8, camera on the hand
OBS_WRIST_DEPTH = "observation.wrist_depth"  # (H, W) float32 metres, 0 = no return

# name used on the command line / in make_env -> observation key
OBS_NAMES: dict[str, str] = {
    "state": OBS_STATE,
    "env_state": OBS_ENV_STATE,
    "rgb": OBS_RGB,
    "depth": OBS_DEPTH,
    "points": OBS_POINTS,
    "wrist_rgb": OBS_WRIST_RGB,
    "wrist_depth": OBS_WRIST_DEPTH,
}
ALWAYS = ("state", "env_state")  # cheap, always present (env_state is privileged: never a policy input)


def parse_obs(obs: tuple[str, ...] | list[str] | str) -> tuple[str, ...]:
    """Validate observation names; returns them de-duplicated with ``ALWAYS`` first.

    Accepts a tuple/list of names or a comma-separated string (``"state,points"``).
    """
    names = [s.strip() for s in obs.split(",")] if isinstance(obs, str) else list(obs)
    unknown = [n for n in names if n not in OBS_NAMES]
    if unknown:
        raise ValueError(f"unknown observation name(s) {unknown}; choose from {sorted(OBS_NAMES)}")
    out = list(ALWAYS)
    out += [n for n in names if n not in out]
    return tuple(out)
