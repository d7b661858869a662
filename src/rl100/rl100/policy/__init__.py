"""Policies of rl100: diffusion policy (epsilon prediction, DDIM sampling) and its one-step consistency student.

Modules: :mod:`~rl100.policy.config` (dataclass configs, no torch), :mod:`~rl100.policy.schedule` (DDPM/DDIM),
:mod:`~rl100.policy.normalizer`, :mod:`~rl100.policy.encoders`, :mod:`~rl100.policy.unet`,
:mod:`~rl100.policy.base` (their shared body), :mod:`~rl100.policy.diffusion`,
:mod:`~rl100.policy.consistency` (+ ``distillation_loss``), :mod:`~rl100.policy.ema`,
:mod:`~rl100.policy.checkpoint` (safetensors + JSON, strict), :mod:`~rl100.policy.bench` (latency command).
Torch is imported only when a torch-backed name is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from rl100.policy.config import EncoderConfig, ObsSpec, PolicyConfig

_LAZY = {
    "PolicyBase": "rl100.policy.base",
    "DiffusionPolicy": "rl100.policy.diffusion",
    "ConsistencyPolicy": "rl100.policy.consistency",
    "distillation_loss": "rl100.policy.consistency",
    "NoiseSchedule": "rl100.policy.schedule",
    "EMA": "rl100.policy.ema",
    "save_policy": "rl100.policy.checkpoint",
    "load_policy": "rl100.policy.checkpoint",
    "CheckpointError": "rl100.policy.checkpoint",
}

__all__ = ["EncoderConfig", "ObsSpec", "PolicyConfig", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
