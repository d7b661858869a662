"""Configuration of the diffusion / consistency policies (no torch import: usable by tools and cards).

Shape legend used across :mod:`rl100.policy`:
``B`` batch, ``To`` observation history (``n_obs``), ``Ta`` action horizon (``horizon``), ``Da`` action
dim, ``N`` points per cloud, ``H, W`` image size, ``K`` DDIM steps, ``F`` per-step feature size.

Windows follow :mod:`rl100.data.sampler`: the action chunk ``(Ta, Da)`` starts ``n_obs - 1`` steps
before the current step, so the actions to execute now are ``action[n_obs - 1 : n_obs - 1 + n_action_steps]``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

OBS_KINDS = ("lowdim", "points", "rgb")
NORM_MODES = ("minmax", "meanstd", "identity", "image")
BETA_SCHEDULES = ("squaredcos_cap_v2", "linear")


@dataclass
class ObsSpec:
    """One observation input: ``key`` (e.g. ``observation.state``), per-step ``shape``, ``dtype``.

    ``kind``: which encoder reads it (lowdim: (D,), points: (N, 3|6), rgb: (H, W, 3) uint8).
    ``norm``: normaliser mode on the last axis (minmax -> [-1, 1]; image: uint8 -> [-1, 1]).
    """

    key: str
    shape: tuple[int, ...]
    kind: str = "lowdim"
    dtype: str = "float32"
    norm: str = "minmax"

    def __post_init__(self) -> None:
        self.shape = tuple(int(s) for s in self.shape)
        if self.kind not in OBS_KINDS:
            raise ValueError(f"obs {self.key!r}: kind must be one of {OBS_KINDS}, got {self.kind!r}")
        if self.norm not in NORM_MODES:
            raise ValueError(f"obs {self.key!r}: norm must be one of {NORM_MODES}, got {self.norm!r}")
        want_ndim = {"lowdim": 1, "points": 2, "rgb": 3}[self.kind]
        if len(self.shape) != want_ndim or any(s <= 0 for s in self.shape):
            raise ValueError(f"obs {self.key!r} ({self.kind}): per-step shape must have {want_ndim} positive dims, "
                             f"got {self.shape}")
        if self.kind == "points" and self.shape[1] not in (3, 6):
            raise ValueError(f"obs {self.key!r}: points must be (N, 3) or (N, 6), got {self.shape}")
        if self.kind == "rgb" and (self.shape[2] != 3 or self.dtype != "uint8"):
            raise ValueError(f"obs {self.key!r}: rgb must be (H, W, 3) uint8, got {self.shape} {self.dtype}")


@dataclass
class EncoderConfig:
    """Sizes of the observation encoders (one encoder per key; per-step features are concatenated)."""

    lowdim_hidden: int = 256
    lowdim_out: int = 64
    point_dims: tuple[int, ...] = (64, 128, 256)  # DP3 per-point MLP
    point_out: int = 64
    rgb_channels: tuple[int, ...] = (32, 64, 128)
    rgb_out: int = 64

    def __post_init__(self) -> None:
        self.point_dims = tuple(int(d) for d in self.point_dims)
        self.rgb_channels = tuple(int(d) for d in self.rgb_channels)
        sizes = [self.lowdim_hidden, self.lowdim_out, self.point_out, self.rgb_out, *self.point_dims,
                 *self.rgb_channels]
        if any(s <= 0 for s in sizes) or not self.point_dims or not self.rgb_channels:
            raise ValueError(f"encoder sizes must be positive and non-empty: {self}")


@dataclass
class PolicyConfig:
    """Everything needed to rebuild a policy network (saved as JSON beside the weights)."""

    obs: list[ObsSpec]
    action_dim: int
    n_obs: int = 2
    horizon: int = 16
    n_action_steps: int = 8
    # conditional 1-D U-Net: [256, 512, 1024] is the paper scale (~40M), [64, 128, 256] the small fast one (~4M)
    down_dims: tuple[int, ...] = (256, 512, 1024)
    kernel_size: int = 3  # 3: [256, 512, 1024] ~42M params, [64, 128, 256] ~3.5M
    n_groups: int = 8
    step_embed_dim: int = 128
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    # diffusion (epsilon prediction)
    num_train_timesteps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"
    clip_sample: bool = True
    num_inference_steps: int = 10
    eta: float = 1.0
    """DDIM eta of the deployed sampler: sets each step's mean and sigma (0: the probability-flow DDIM). The
    default, eta 1 without step noise, is the RL denoising MDP's mean chain (far better than eta 0 on the small
    checkpoints measured: BENCHMARKS.md, "The deployed DDIM sampler")"""
    step_noise: bool = False
    """add sigma * z at each step when eta > 0 (a stochastic sampler: the exported graph takes a step_noise
    input); False samples each step's mean, deterministic for any eta (eta = 1: the DDPM posterior mean)"""

    def __post_init__(self) -> None:
        self.obs = [o if isinstance(o, ObsSpec) else ObsSpec(**o) for o in self.obs]
        if isinstance(self.encoder, dict):
            self.encoder = EncoderConfig(**self.encoder)
        self.down_dims = tuple(int(d) for d in self.down_dims)
        if not self.obs:
            raise ValueError("a policy needs at least one observation key")
        keys = [o.key for o in self.obs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate observation keys: {keys}")
        if self.action_dim <= 0:
            raise ValueError(f"action_dim must be positive, got {self.action_dim}")
        if not 1 <= self.n_obs <= self.horizon:
            raise ValueError(f"need 1 <= n_obs <= horizon, got n_obs={self.n_obs}, horizon={self.horizon}")
        if not 1 <= self.n_action_steps <= self.horizon - self.n_obs + 1:
            raise ValueError(f"need 1 <= n_action_steps <= horizon - n_obs + 1 = {self.horizon - self.n_obs + 1}, "
                             f"got {self.n_action_steps}")
        if not self.down_dims or any(d <= 0 or d % self.n_groups for d in self.down_dims):
            raise ValueError(f"down_dims must be positive multiples of n_groups={self.n_groups}: {self.down_dims}")
        factor = 2 ** (len(self.down_dims) - 1)
        if self.horizon % factor:
            raise ValueError(f"horizon {self.horizon} must be divisible by 2**(len(down_dims)-1) = {factor}")
        if self.kernel_size % 2 == 0 or self.kernel_size < 1:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {self.beta_schedule!r}")
        if not 1 <= self.num_inference_steps <= self.num_train_timesteps:
            raise ValueError(f"need 1 <= num_inference_steps <= num_train_timesteps={self.num_train_timesteps}, "
                             f"got {self.num_inference_steps}")
        if self.eta < 0:
            raise ValueError(f"eta must be >= 0, got {self.eta}")
        if self.step_embed_dim % 2:
            raise ValueError(f"step_embed_dim must be even, got {self.step_embed_dim}")

    @property
    def stochastic(self) -> bool:
        """Whether the deployed sampler draws noise at its steps (beyond the initial x_T)."""
        return self.eta > 0 and self.step_noise

    @property
    def obs_keys(self) -> list[str]:
        return [o.key for o in self.obs]

    @property
    def action_start(self) -> int:
        """Index in the predicted chunk of the action for the current step."""
        return self.n_obs - 1

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return _listify(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolicyConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown PolicyConfig fields: {unknown}")
        return cls(**d)


def _listify(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _listify(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_listify(v) for v in x]
    return x
