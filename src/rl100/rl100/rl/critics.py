"""IQL critics over action chunks: double ``Q(s, a_chunk)`` + ``V(s)``, expectile regression, Polyak target.

Observations are encoded by the critic's own :class:`~rl100.policy.encoders.ObsEncoder` built from the policy's
config (so any mix of low-dim / point / RGB keys works) behind a copy of the policy's normaliser; the chunk is
the *executed* part of the action chunk, ``(n_action_steps, Da)``, in normalised action space.

Losses on a chunk transition (:mod:`rl100.rl.transitions`), ``R`` the discounted chunk reward and
``d = gamma^n (1 - terminal)``::

    L_V = E[ |tau - 1(u < 0)| u^2 ],  u = min(Q1', Q2')(s, a) - V(s)     (Q' = Polyak target, expectile tau)
    L_Q = sum_i E[ (R + d V(s') - Q_i(s, a))^2 ]

Advantages ``A = min(Q1, Q2)(s, a) - V(s)``, normalised over the batch. Shapes: ``B`` batch, ``n`` executed
steps, ``Da`` action dim, ``F`` encoder features.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from rl100.keys import REWARD
from rl100.policy.config import PolicyConfig
from rl100.policy.ema import EMA
from rl100.policy.encoders import ObsEncoder
from rl100.policy.normalizer import Normalizer
from rl100.rl.transitions import CHUNK, DISCOUNT, next_obs


@dataclass
class CriticConfig:
    hidden: int = 256
    layers: int = 2
    expectile: float = 0.7
    gamma: float = 0.99
    polyak: float = 0.005
    """target update rate (1 - max EMA decay)"""
    lr: float = 3e-4
    grad_clip: float = 10.0

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.layers < 1:
            raise ValueError(f"hidden and layers must be >= 1, got {self.hidden}, {self.layers}")
        if not 0 < self.expectile < 1:
            raise ValueError(f"expectile must be in (0, 1), got {self.expectile}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if not 0 < self.polyak <= 1:
            raise ValueError(f"polyak must be in (0, 1], got {self.polyak}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


def mlp(inp: int, hidden: int, layers: int, out: int = 1) -> nn.Sequential:
    mods: list[nn.Module] = []
    for _ in range(layers):
        mods += [nn.Linear(inp, hidden), nn.LayerNorm(hidden), nn.Mish()]
        inp = hidden
    return nn.Sequential(*mods, nn.Linear(inp, out))


def expectile_loss(diff: torch.Tensor, tau: float) -> torch.Tensor:
    """``mean(|tau - 1(diff < 0)| diff^2)``: tau = 0.5 is half the MSE; tau > 0.5 weighs positive ``diff`` more."""
    weight = torch.where(diff < 0, 1.0 - tau, tau)
    return (weight * diff.square()).mean()


def normalize_advantages(adv: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit std over the batch (unchanged shape)."""
    if adv.numel() < 2:
        return adv - adv.mean()
    return (adv - adv.mean()) / (adv.std() + eps)


class IQLCritics(nn.Module):
    """Double Q over (s, executed chunk) and V over s; ``policy_config`` gives obs keys, chunk size and shapes."""

    def __init__(self, policy_config: PolicyConfig, cfg: CriticConfig | None = None) -> None:
        super().__init__()
        self.config = policy_config
        self.cfg = cfg or CriticConfig()
        self.normalizer = Normalizer(policy_config)
        self.encoder = ObsEncoder(policy_config)
        act = policy_config.n_action_steps * policy_config.action_dim
        h, n = self.cfg.hidden, self.cfg.layers
        self.q1 = mlp(self.encoder.out_dim + act, h, n)
        self.q2 = mlp(self.encoder.out_dim + act, h, n)
        self.v = mlp(self.encoder.out_dim, h, n)

    def features(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Raw ``{key: (B, To, *shape)}`` -> (B, F)."""
        to = self.config.n_obs
        return self.encoder(self.normalizer.normalize_obs({k: obs[k][:, -to:] for k in self.config.obs_keys}))

    def normalize_chunk(self, chunk: torch.Tensor) -> torch.Tensor:
        """Raw executed actions (B, n, Da) -> normalised (B, n, Da)."""
        return self.normalizer.action(chunk.float())

    def q_values(self, feat: torch.Tensor, chunk_norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feat (B, F), normalised chunk (B, n, Da) -> (Q1 (B,), Q2 (B,))."""
        x = torch.cat([feat, chunk_norm.flatten(1)], dim=1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)

    def value(self, feat: torch.Tensor) -> torch.Tensor:
        return self.v(feat).squeeze(-1)

    @torch.no_grad()
    def advantages(self, obs: Mapping[str, torch.Tensor], chunk_norm: torch.Tensor,
                   normalize: bool = True) -> torch.Tensor:
        """``A = min(Q1, Q2) - V`` (B,) for normalised executed chunks (B, n, Da)."""
        feat = self.features(obs)
        adv = torch.minimum(*self.q_values(feat, chunk_norm)) - self.value(feat)
        return normalize_advantages(adv) if normalize else adv

    @torch.no_grad()
    def q_min(self, obs: Mapping[str, torch.Tensor], chunk_norm: torch.Tensor) -> torch.Tensor:
        return torch.minimum(*self.q_values(self.features(obs), chunk_norm))


def iql_loss(critics: IQLCritics, target: IQLCritics, batch: Mapping[str, torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, float]]:
    """``L_V + L_Q`` on a chunk-transition batch (see the module docstring) and scalar logs."""
    cfg = critics.cfg
    chunk = critics.normalize_chunk(batch[CHUNK])
    with torch.no_grad():
        q_t = torch.minimum(*target.q_values(target.features(batch), chunk))
        v_next = critics.value(critics.features(next_obs(batch)))
        y = batch[REWARD].float() + batch[DISCOUNT].float() * v_next
    feat = critics.features(batch)
    v = critics.value(feat)
    loss_v = expectile_loss(q_t - v, cfg.expectile)
    q1, q2 = critics.q_values(feat, chunk)
    loss_q = (q1 - y).square().mean() + (q2 - y).square().mean()
    logs = {"critic/loss_v": float(loss_v.detach()), "critic/loss_q": float(loss_q.detach()),
            "critic/q": float(q1.detach().mean()), "critic/v": float(v.detach().mean())}
    return loss_v + loss_q, logs


def make_target(critics: IQLCritics) -> EMA:
    """Polyak target (an :class:`~rl100.policy.ema.EMA` with max decay ``1 - polyak``)."""
    return EMA(critics, max_decay=1.0 - critics.cfg.polyak)
