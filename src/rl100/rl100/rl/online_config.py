"""Configuration of ``rl100 online``: one dataclass per concern, validated in ``__post_init__``, YAML presets.

A preset (``rl100/configs/online_<name>.yaml``, or any YAML path) is a mapping of :class:`OnlineConfig` fields;
``ppo``, ``denoising`` and ``value`` are nested sections (:class:`~rl100.rl.ppo.PPOConfig`,
:class:`~rl100.rl.denoising_mdp.DenoisingConfig`, :class:`ValueConfig`). Overrides are ``key=value`` strings with
dotted keys (``ppo.lr=3e-6``, ``value.clip=0.2``, ``task_options.max_steps=100``), values parsed as YAML.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rl100.rl.denoising_mdp import DenoisingConfig
from rl100.rl.ppo import PPOConfig
from rl100.train.config import CONFIG_DIR, parse_value, set_dotted

EVAL_SAMPLERS = ("ddim", "mdp")


@dataclass
class ValueConfig:
    """The state-value function ``V(s)``: an MLP on its own observation encoder (IQL critics' layout)."""

    hidden: int = 256
    layers: int = 2
    """must equal the offline critics' ``critic.hidden`` / ``critic.layers`` to warm-start from them"""
    lr: float = 3e-4
    clip: float = 0.2
    """PPO value clipping: ``V`` moves at most this far from its rollout-time value per update (0: off)"""
    grad_clip: float = 10.0
    warmup_iters: int = 0
    """iterations at the start that train only ``V`` (the actor stays put while a fresh critic catches up)"""

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.layers < 1:
            raise ValueError(f"value.hidden and value.layers must be >= 1, got {self.hidden}, {self.layers}")
        if self.lr <= 0:
            raise ValueError(f"value.lr must be positive, got {self.lr}")
        if self.clip < 0 or self.grad_clip < 0 or self.warmup_iters < 0:
            raise ValueError("value.clip, value.grad_clip and value.warmup_iters must be >= 0")


@dataclass
class OnlineConfig:
    policy: str = ""
    """diffusion policy JSON to fine-tune (train-il or an accepted offline round)"""
    task: str = ""
    """rl100.sim task name (or metaworld/<task>-v3); observations are the policy's"""
    task_options: dict[str, Any] = field(default_factory=dict)
    """task config fields passed to make_env (e.g. max_steps)"""
    disturbances: list[str] = field(default_factory=list)
    """robustness families (:mod:`rl100.sim.disturbances` specs, ``none`` for nominal) the training episodes run
    under: the episode seeded s under entry s mod their number; evaluation stays nominal; empty: nominal"""
    critics: str = ""
    """offline-round critics.safetensors: warm-start V from its encoder + V head (strict); empty: fresh V"""
    student: str = ""
    """consistency policy JSON to continue distilling (empty: a copy of the teacher, as rl100 distill does)"""
    out: str = "runs/online"
    """run directory: policy.*, student.*, value.safetensors, state_*.*, metrics.csv, tb/, result.json"""
    iterations: int = 50
    """collect -> update cycles"""
    n_envs: int = 8
    """environments stepped together (one batched policy call per chunk)"""
    episodes_per_iter: int = 8
    """complete episodes collected per iteration (in waves of n_envs)"""
    gamma: float = 0.99
    """per environment step; one MDP step is one executed chunk, discounted by gamma ** n_action_steps"""
    gae_lambda: float = 0.95
    normalize_advantages: bool = True
    minibatch_size: int = 256
    ppo: PPOConfig = field(default_factory=lambda: PPOConfig(lr=3e-6, epochs=5))
    denoising: DenoisingConfig = field(default_factory=DenoisingConfig)
    value: ValueConfig = field(default_factory=ValueConfig)
    min_lr_ratio: float = 1.0
    """actor / value / student learning rates decay by cosine to lr * min_lr_ratio over the run (1: constant)"""
    student_lr: float = 1e-4
    student_ema_decay: float = 0.999
    """max EMA decay of the student (0: off); the EMA weights are what gets saved, as in rl100 distill"""
    cd_traj_weight: float = 0.0
    """LCM-style trajectory term of the distillation loss"""
    eval_episodes: int = 10
    """evaluation episodes per evaluation (0: none); the same seeds every time"""
    eval_every: int = 1
    eval_seed: int = 100_000
    """evaluation episode j is reset with seed eval_seed + j"""
    eval_sampler: str = "ddim"
    """ddim: the deployed sampler (the policy's own K and eta); mdp: the stochastic denoising MDP trained here"""
    eval_student: bool = True
    """also evaluate the one-step student when distilling"""
    ckpt_every: int = 1
    """iterations between resume points (state_*) and policy snapshots"""
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        for name, cls in (("ppo", PPOConfig), ("denoising", DenoisingConfig), ("value", ValueConfig)):
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, cls(**value))
        self.task_options = dict(self.task_options or {})
        self.disturbances = list(self.disturbances or [])
        if self.disturbances:
            from rl100.sim.disturbances import check_specs

            self.disturbances = check_specs(self.disturbances)
        if min(self.iterations, self.n_envs, self.episodes_per_iter, self.minibatch_size, self.eval_every,
               self.ckpt_every) < 1:
            raise ValueError("iterations, n_envs, episodes_per_iter, minibatch_size, eval_every, ckpt_every "
                             "must be >= 1")
        if not 0 < self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ValueError(f"need gamma in (0, 1] and gae_lambda in [0, 1], got {self.gamma}, {self.gae_lambda}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.student_lr <= 0 or not 0 <= self.student_ema_decay < 1 or self.cd_traj_weight < 0:
            raise ValueError("need student_lr > 0, student_ema_decay in [0, 1), cd_traj_weight >= 0")
        if self.eval_episodes < 0:
            raise ValueError(f"eval_episodes must be >= 0, got {self.eval_episodes}")
        if self.eval_sampler not in EVAL_SAMPLERS:
            raise ValueError(f"eval_sampler must be one of {EVAL_SAMPLERS}, got {self.eval_sampler!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto|cpu|cuda, got {self.device!r}")

    @property
    def distill(self) -> bool:
        return self.ppo.lambda_cd > 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_online_config(preset: str | None = None, overrides: list[str] | None = None,
                       **fields: Any) -> OnlineConfig:
    """``preset``: a name in ``rl100/configs`` or a YAML path; ``overrides``: ``key=value`` (dotted keys);
    ``fields``: top-level values that win over both (None values are skipped)."""
    raw: dict[str, Any] = {}
    if preset:
        path = Path(preset)
        if not path.exists():
            path = CONFIG_DIR / f"{preset}.yaml"
        if not path.exists():
            names = sorted(p.stem for p in CONFIG_DIR.glob("online_*.yaml"))
            raise FileNotFoundError(f"no preset {preset!r} (online presets: {names})")
        raw = yaml.safe_load(path.read_text()) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a mapping of OnlineConfig fields")
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        set_dotted(raw, key, parse_value(value))
    raw.update({k: v for k, v in fields.items() if v is not None})
    names = {f.name for f in dataclasses.fields(OnlineConfig)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"unknown online config fields {unknown} (known: {sorted(names)})")
    return OnlineConfig(**raw)
