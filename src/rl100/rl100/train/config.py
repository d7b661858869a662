"""Training run configuration: a dataclass with one docstring per field, YAML presets, ``--set`` overrides.

A preset (``rl100/configs/<name>.yaml``, or any YAML path) has two sections: ``train`` (fields of
:class:`TrainConfig`) and ``policy`` (fields of :class:`rl100.policy.config.PolicyConfig` except ``obs`` and
``action_dim``, which come from the dataset). Overrides: ``train.steps=2000``, ``policy.down_dims=[64,128,256]``
(values parsed as YAML).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rl100.keys import ACTION, OBS_POINTS, OBS_RGB, OBS_STATE
from rl100.policy.config import ObsSpec, PolicyConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass
class TrainConfig:
    dataset: str = ""
    """dataset root (rl100.data format)"""
    out: str = "runs/il"
    """run directory: checkpoints, metrics.csv, tb/, learning_curve.png, policy.{safetensors,json}"""
    obs_keys: list[str] = field(default_factory=lambda: [OBS_STATE])
    """observation keys fed to the policy (kind from the key: points / rgb / low-dim)"""
    steps: int = 20000
    """optimiser steps"""
    batch_size: int = 256
    lr: float = 1.4e-4
    """AdamW peak learning rate"""
    weight_decay: float = 1e-6
    betas: tuple[float, float] = (0.95, 0.999)
    warmup_steps: int = 500
    min_lr_ratio: float = 0.0
    """cosine decays to lr * min_lr_ratio"""
    grad_clip: float = 1.0
    """global grad-norm clip (0: off)"""
    ema_decay: float = 0.999
    """max EMA decay (0: no EMA; the EMA weights are what gets saved as the policy)"""
    seed: int = 0
    device: str = "auto"
    """auto | cpu | cuda (under torchrun: cuda:<LOCAL_RANK>)"""
    backend: str = "auto"
    """process-group backend when started by torchrun with several processes: auto (nccl on CUDA, gloo on CPU) |
    nccl | gloo; unused in a single process. ``batch_size`` is then per rank (rl100.train.distributed)"""
    log_every: int = 50
    ckpt_every: int = 1000
    """steps between exact-resume checkpoints (state.*) and policy snapshots"""
    init: str = ""
    """policy checkpoint (policy.json) to start from instead of random weights -- fine-tuning, or re-imitation on
    merged data; its normaliser is kept (unless refit_normalizer) and its config must match. Distillation:
    a consistency checkpoint to start the student from instead of the teacher's weights (normaliser: the
    teacher's)"""
    refit_normalizer: bool = False
    """with ``init``: fit the normaliser to this dataset instead of keeping the init policy's (re-imitation on data
    that outgrew the demonstrations' range: min-max ranges from a few demos put new object poses far outside
    [-1, 1])"""
    intervention_share: float = 0.0
    """fraction of each batch drawn from windows whose current step is an operator intervention (HIL-SERL's
    oversampling of human corrections), the rest from the other windows; 0: uniform over all windows. A dataset
    without intervention steps (or with nothing else) is sampled uniformly"""
    traj_weight: float = 0.0
    """distillation only: weight of the LCM-style trajectory-consistency term"""
    policy: dict[str, Any] = field(default_factory=dict)
    """PolicyConfig fields (without obs / action_dim)"""
    augment: dict[str, Any] = field(default_factory=dict)
    """observation augmentation (:class:`rl100.train.augment.AugmentConfig` fields, e.g. state_pos_std=0.003);
    empty: none. The state normaliser's ranges are widened by the noise (also when starting from ``init``)"""

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)
        self.obs_keys = list(self.obs_keys)
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"steps, batch_size and lr must be positive: {self.steps}, {self.batch_size}, {self.lr}")
        if not 0 <= self.warmup_steps <= self.steps:
            raise ValueError(f"warmup_steps must be in [0, steps], got {self.warmup_steps}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0 <= self.intervention_share < 1:
            raise ValueError(f"intervention_share must be in [0, 1), got {self.intervention_share}")
        if self.log_every < 1 or self.ckpt_every < 1:
            raise ValueError("log_every and ckpt_every must be >= 1")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto|cpu|cuda, got {self.device!r}")
        if self.backend not in ("auto", "nccl", "gloo"):
            raise ValueError(f"backend must be auto|nccl|gloo, got {self.backend!r}")
        from rl100.train.augment import AugmentConfig

        self.augment = dict(self.augment or {})
        try:
            AugmentConfig(**self.augment)
        except TypeError as exc:
            raise ValueError(f"augment: {exc}") from None
        bad = {"obs", "action_dim"} & set(self.policy)
        if bad:
            raise ValueError(f"policy.{sorted(bad)} come from the dataset; do not set them")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(d["betas"])
        return d


def parse_value(text: str) -> Any:
    """YAML value of a ``--set`` override; a number YAML 1.1 reads as a string (``3e-6``, no dot) becomes a float."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def set_dotted(d: dict[str, Any], dotted: str, value: Any) -> None:
    """``d["a"]["b"] = value`` for ``dotted == "a.b"``, creating the inner dicts."""
    parts = dotted.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = value


def load_config(preset: str | None = None, overrides: list[str] | None = None, **fields: Any) -> TrainConfig:
    """``preset``: a name in ``rl100/configs`` or a YAML path; ``overrides``: ``section.field=value`` strings."""
    raw: dict[str, Any] = {"train": {}, "policy": {}}
    if preset:
        path = Path(preset)
        if not path.exists():
            path = CONFIG_DIR / f"{preset}.yaml"
        if not path.exists():
            names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
            raise FileNotFoundError(f"no preset {preset!r} (presets: {names})")
        loaded = yaml.safe_load(path.read_text()) or {}
        unknown = sorted(set(loaded) - {"train", "policy"})
        if unknown:
            raise ValueError(f"{path}: unknown sections {unknown} (expected train, policy)")
        raw["train"].update(loaded.get("train") or {})
        raw["policy"].update(loaded.get("policy") or {})
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        key = key if key.split(".")[0] in ("train", "policy") else f"train.{key}"
        set_dotted(raw, key, parse_value(value))
    raw["train"].update({k: v for k, v in fields.items() if v is not None})
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(raw["train"]) - names)
    if unknown:
        raise ValueError(f"unknown train fields {unknown}")
    return TrainConfig(**raw["train"], policy=raw["policy"])


def obs_spec_for(key: str, shape: tuple[int, ...], dtype: str) -> ObsSpec:
    if key == OBS_RGB:
        return ObsSpec(key, shape, kind="rgb", dtype=dtype, norm="image")
    if key == OBS_POINTS:
        return ObsSpec(key, shape, kind="points", dtype=dtype, norm="minmax")
    return ObsSpec(key, shape, kind="lowdim", dtype=dtype, norm="minmax")


def policy_config_for(cfg: TrainConfig, specs: dict[str, Any]) -> PolicyConfig:
    """PolicyConfig from the run config and the dataset's key specs (``rl100.data.KeySpec``: shape, dtype)."""
    missing = [k for k in [*cfg.obs_keys, ACTION] if k not in specs]
    if missing:
        raise ValueError(f"keys {missing} not in the dataset (keys: {sorted(specs)})")
    obs = [obs_spec_for(k, tuple(specs[k].shape), str(np.dtype(specs[k].dtype))) for k in cfg.obs_keys]
    return PolicyConfig(obs=obs, action_dim=int(specs[ACTION].shape[0]), **cfg.policy)


def reduce_axes_for(config: PolicyConfig) -> dict[str, tuple[int, ...]]:
    """Axes reduced by compute_stats so that statistics are per channel (last axis)."""
    return {o.key: tuple(range(len(o.shape) - 1)) for o in config.obs if len(o.shape) > 1}
