"""Observation encoders: low-dim MLP, DP3-style point-cloud encoder, small RGB CNN, and their combination.

Every encoder maps one normalised step ``(B*To, *shape)`` to ``(B*To, F)``; :class:`ObsEncoder` runs one
per key and concatenates over keys and history into the global condition ``(B, To * sum(F))``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from rl100.policy.config import EncoderConfig, ObsSpec, PolicyConfig
from rl100.policy.normalizer import module_name


class LowDimEncoder(nn.Module):
    """(B, D) -> (B, F): Linear-LayerNorm-Mish-Linear."""

    def __init__(self, dim: int, hidden: int, out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.LayerNorm(hidden), nn.Mish(), nn.Linear(hidden, out))
        self.out_dim = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PointCloudEncoder(nn.Module):
    """DP3 encoder: (B, N, C) -> per-point MLP (Linear-LayerNorm-ReLU) -> max over N -> Linear-LayerNorm -> (B, F)."""

    def __init__(self, channels: int, dims: tuple[int, ...], out: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = channels
        for d in dims:
            layers += [nn.Linear(prev, d), nn.LayerNorm(d), nn.ReLU()]
            prev = d
        self.point_mlp = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(prev, out), nn.LayerNorm(out))
        self.out_dim = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.point_mlp(x)  # (B, N, dims[-1])
        return self.head(feat.amax(dim=1))  # (B, F)


class RgbEncoder(nn.Module):
    """(B, H, W, 3) in [-1, 1] -> stride-2 conv blocks (Conv-GroupNorm-ReLU) -> global average -> Linear -> (B, F)."""

    def __init__(self, channels: tuple[int, ...], out: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = 3
        for c in channels:
            layers += [nn.Conv2d(prev, c, 3, stride=2, padding=1), nn.GroupNorm(min(8, c), c), nn.ReLU()]
            prev = c
        self.conv = nn.Sequential(*layers)
        self.head = nn.Linear(prev, out)
        self.out_dim = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x.permute(0, 3, 1, 2))  # (B, C, H', W')
        return self.head(feat.mean(dim=(2, 3)))


def make_encoder(spec: ObsSpec, cfg: EncoderConfig) -> nn.Module:
    if spec.kind == "lowdim":
        return LowDimEncoder(spec.shape[0], cfg.lowdim_hidden, cfg.lowdim_out)
    if spec.kind == "points":
        return PointCloudEncoder(spec.shape[1], cfg.point_dims, cfg.point_out)
    return RgbEncoder(cfg.rgb_channels, cfg.rgb_out)


class ObsEncoder(nn.Module):
    """Normalised ``{key: (B, To, *shape)}`` -> global condition ``(B, To * F_total)``."""

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.specs = list(config.obs)
        self.n_obs = config.n_obs
        self.encoders = nn.ModuleDict({module_name(s.key): make_encoder(s, config.encoder) for s in self.specs})
        self.out_dim = config.n_obs * sum(e.out_dim for e in self.encoders.values())

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        feats = []
        for s in self.specs:
            x = obs[s.key]  # (B, To, *shape)
            b, to = x.shape[0], x.shape[1]
            f = self.encoders[module_name(s.key)](x.reshape(b * to, *s.shape))  # (B*To, F)
            feats.append(f.reshape(b, to, -1))
        return torch.cat(feats, dim=-1).reshape(feats[0].shape[0], -1)  # (B, To * F_total)
