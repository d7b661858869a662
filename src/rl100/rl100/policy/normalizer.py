"""Per-key affine normaliser that lives inside the model (so it is saved, loaded and exported with it).

Each key gets ``y = x * scale + offset`` on its last axis (``scale``, ``offset``: (C,) buffers).
Modes: ``minmax`` maps [min, max] to [-1, 1] (a constant channel maps to 0), ``meanstd`` standardises,
``image`` maps uint8 [0, 255] to [-1, 1], ``identity`` leaves values alone. Actions always use minmax.

Observation channels that barely move in the demonstrations (the end-effector quaternion of a top-down
grasp varies by ~1e-3) are not stretched to [-1, 1]: their range is floored at ``OBS_MIN_RANGE`` (1 cm,
~0.6 deg), so closed-loop noise of that size does not look like a huge out-of-distribution input.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from rl100.keys import ACTION
from rl100.policy.config import PolicyConfig

RANGE_EPS = 1e-4
OBS_MIN_RANGE = 1e-2


def module_name(key: str) -> str:
    """Observation keys contain dots, which module names may not: ``observation.state`` -> ``observation__state``."""
    return key.replace(".", "__")


class AffineNorm(nn.Module):
    def __init__(self, channels: int, mode: str, min_range: float = RANGE_EPS) -> None:
        super().__init__()
        self.mode = mode
        self.min_range = min_range
        scale, offset = (torch.full((channels,), 2 / 255), torch.full((channels,), -1.0)) if mode == "image" else (
            torch.ones(channels), torch.zeros(channels))
        self.register_buffer("scale", scale)
        self.register_buffer("offset", offset)

    def set_stats(self, stats: Mapping[str, np.ndarray]) -> None:
        """``stats``: min/max/mean/std arrays of shape (C,) (e.g. :class:`rl100.data.KeyStats` fields)."""
        if self.mode in ("image", "identity"):
            return
        if self.mode == "minmax":
            lo, hi = np.asarray(stats["min"], np.float64), np.asarray(stats["max"], np.float64)
            rng = hi - lo
            if self.min_range > RANGE_EPS:
                scale = 2.0 / np.maximum(rng, self.min_range)
                offset = -(lo + hi) / 2 * scale
            else:
                ok = rng > RANGE_EPS
                scale = np.where(ok, 2.0 / np.where(ok, rng, 1.0), 1.0)
                offset = np.where(ok, -1.0 - lo * scale, -(lo + hi) / 2)
        else:
            mean, std = np.asarray(stats["mean"], np.float64), np.asarray(stats["std"], np.float64)
            scale = 1.0 / np.maximum(std, RANGE_EPS)
            offset = -mean * scale
        if scale.shape != tuple(self.scale.shape):
            raise ValueError(f"stats shape {scale.shape} does not match normaliser channels {tuple(self.scale.shape)}")
        self.scale.copy_(torch.as_tensor(scale, dtype=torch.float32))
        self.offset.copy_(torch.as_tensor(offset, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.scale.dtype) * self.scale + self.offset

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.offset) / self.scale


class Normalizer(nn.Module):
    """Normalisers for every observation key of ``config`` and for the action."""

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.keys = config.obs_keys
        self.obs = nn.ModuleDict({module_name(o.key): AffineNorm(o.shape[-1], o.norm, OBS_MIN_RANGE)
                                   for o in config.obs})
        self.action = AffineNorm(config.action_dim, "minmax")

    def set_stats(self, stats: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        """``stats[key]`` with min/max/mean/std per key (points/images: per channel), ``stats[ACTION]`` too."""
        missing = [k for k in [*self.keys, ACTION] if k not in stats and self._needs_stats(k)]
        if missing:
            raise ValueError(f"normaliser statistics missing for keys {missing}")
        for key in self.keys:
            if key in stats:
                self.obs[module_name(key)].set_stats(_as_mapping(stats[key]))
        self.action.set_stats(_as_mapping(stats[ACTION]))

    def _needs_stats(self, key: str) -> bool:
        return key == ACTION or self.obs[module_name(key)].mode in ("minmax", "meanstd")

    def normalize_obs(self, obs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: self.obs[module_name(k)](obs[k]) for k in self.keys}

    def to_json(self) -> dict[str, dict[str, object]]:
        """Human-readable copy of the parameters (the weights file is authoritative)."""
        out = {k: self.obs[module_name(k)] for k in self.keys} | {ACTION: self.action}
        return {k: {"mode": m.mode, "scale": m.scale.tolist(), "offset": m.offset.tolist()} for k, m in out.items()}


def _as_mapping(s: object) -> Mapping[str, np.ndarray]:
    if isinstance(s, Mapping):
        return s
    return {name: getattr(s, name) for name in ("min", "max", "mean", "std")}
