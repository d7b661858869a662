"""Off-policy evaluation gate: AM-Q with a learned transition-model ensemble, and the acceptance rule.

AM-Q (RL-100): from dataset start states, roll the candidate policy ``H`` chunk-steps through a learned model
(a random ensemble member per step) and score ``J(pi) = E[ sum_{h<H} gamma^{n h} Q(s_h, pi(s_h)) ]`` with the
IQL critics (``min(Q1, Q2)``); ``H = 1`` is the plain ``E_s[Q(s, pi(s))]`` (no model needed). A candidate is
accepted only when ``J(new) - J(old) >= delta * |J(old)|`` (paper: delta = 0.05).

The transition model works on low-dim observation keys (the flattened history ``(To * D)`` per key, predicted as a
delta); other observation kinds need ``H = 1``. Shapes: ``B`` batch, ``M`` ensemble members, ``n`` executed steps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from rl100.policy.config import PolicyConfig
from rl100.rl.critics import IQLCritics, mlp
from rl100.rl.transitions import CHUNK, next_obs

ChunkPolicy = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]
"""raw observations (B, To, ...) -> normalised executed chunk (B, n, Da)"""


def gate(j_new: float, j_old: float, delta: float = 0.05) -> tuple[bool, str]:
    """Accept iff ``j_new - j_old >= delta * |j_old|``; returns (accepted, a one-line reason)."""
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    need = delta * abs(j_old)
    gain = j_new - j_old
    if not (torch.isfinite(torch.tensor(j_new)) and torch.isfinite(torch.tensor(j_old))):
        return False, f"rejected: non-finite estimate (J_new={j_new}, J_old={j_old})"
    if gain >= need:
        return True, f"accepted: J_new - J_old = {gain:.4g} >= {delta} * |J_old| = {need:.4g}"
    return False, f"rejected: J_new - J_old = {gain:.4g} < {delta} * |J_old| = {need:.4g}"


class TransitionEnsemble(nn.Module):
    """``M`` MLPs: (normalised obs history, normalised chunk) -> delta of the raw flattened obs history."""

    def __init__(self, config: PolicyConfig, members: int = 5, hidden: int = 256, layers: int = 2) -> None:
        super().__init__()
        bad = [o.key for o in config.obs if o.kind != "lowdim"]
        if bad:
            raise ValueError(f"the transition model handles low-dim observations only; got {bad} (use H = 1)")
        if members < 1:
            raise ValueError(f"members must be >= 1, got {members}")
        self.config = config
        self.sizes = [config.n_obs * o.shape[0] for o in config.obs]
        self.obs_dim = sum(self.sizes)
        inp = self.obs_dim + config.n_action_steps * config.action_dim
        self.nets = nn.ModuleList(mlp(inp, hidden, layers, self.obs_dim) for _ in range(members))

    def flatten(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        to = self.config.n_obs
        return torch.cat([obs[k][:, -to:].reshape(obs[k].shape[0], -1).float() for k in self.config.obs_keys], 1)

    def unflatten(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = torch.split(x, self.sizes, dim=1)
        return {o.key: p.reshape(x.shape[0], self.config.n_obs, *o.shape) for o, p in zip(self.config.obs, parts,
                                                                                          strict=True)}

    def forward(self, obs: Mapping[str, torch.Tensor], chunk_norm: torch.Tensor, critics: IQLCritics
                ) -> torch.Tensor:
        """-> predicted raw next flattened obs per member (M, B, obs_dim)."""
        to = self.config.n_obs
        norm = critics.normalizer.normalize_obs({k: obs[k][:, -to:] for k in self.config.obs_keys})
        x = torch.cat([self.flatten(norm), chunk_norm.flatten(1)], dim=1)
        cur = self.flatten(obs)
        return torch.stack([cur + net(x) for net in self.nets])

    def loss(self, batch: Mapping[str, torch.Tensor], critics: IQLCritics) -> torch.Tensor:
        pred = self.forward(batch, critics.normalize_chunk(batch[CHUNK]), critics)
        return (pred - self.flatten(next_obs(batch)).unsqueeze(0)).square().mean()


@torch.no_grad()
def amq_estimate(policy_fn: ChunkPolicy, critics: IQLCritics, starts: Mapping[str, torch.Tensor],
                 model: TransitionEnsemble | None = None, horizon: int = 1, gamma: float = 0.99,
                 generator: torch.Generator | None = None) -> float:
    """``J(pi)`` from start states ``starts`` (B, To, ...); ``horizon > 1`` needs ``model``."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if horizon > 1 and model is None:
        raise ValueError("AM-Q with horizon > 1 needs a transition model")
    gamma_chunk = gamma ** critics.config.n_action_steps
    obs = {k: starts[k] for k in critics.config.obs_keys}
    total = torch.zeros(next(iter(obs.values())).shape[0])
    for h in range(horizon):
        chunk = policy_fn(obs)
        total += gamma_chunk**h * critics.q_min(obs, chunk).cpu()
        if h + 1 < horizon:
            preds = model(obs, chunk, critics)  # (M, B, D)
            pick = torch.randint(0, preds.shape[0], (preds.shape[1],), generator=generator).to(preds.device)
            obs = model.unflatten(preds[pick, torch.arange(preds.shape[1], device=preds.device)])
    return float(total.mean())
