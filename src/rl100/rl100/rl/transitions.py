"""Chunk-level transitions over a dataset for critic learning: ``(s_t, a_t:t+n, R_t, discount, s_{t+n})``.

With the sampler's default padding there is one window per episode step (window ``j`` of an episode has
current step ``j``), so the next chunk's state ``s_{t+n}`` is window ``i + n`` when ``t + n`` is inside the
episode. ``R_t = sum_{j<n} gamma^j r_{t+j}`` (padded steps past the end give 0) and
``discount = gamma^n * (1 - terminal within the chunk)``. A chunk that runs past a *truncated* end bootstraps
from the episode's last window (an approximation; a terminated one does not bootstrap).

Batch (all tensors): obs keys ``(B, To, *shape)``, ``action`` ``(B, Ta, Da)`` the dataset chunk,
``chunk`` ``(B, n, Da)`` its executed part, ``reward`` ``(B,)``, ``discount`` ``(B,)``, ``next.<obs key>``
``(B, To, *shape)``, ``episode_index``, ``step_index`` ``(B,)``.
"""

from __future__ import annotations

import numpy as np
import torch

from rl100.data import TERMINAL, Dataset, SequenceSampler
from rl100.data.sampler import EPISODE_INDEX, STEP_INDEX, VALID
from rl100.keys import ACTION, REWARD
from rl100.policy.config import PolicyConfig

NEXT = "next."
CHUNK = "chunk"
DISCOUNT = "discount"


class TransitionSource:
    """Deterministic batches of chunk transitions: ``batch(step)`` is a pure function of (seed, step)."""

    def __init__(self, dataset: Dataset, config: PolicyConfig, batch_size: int, seed: int, gamma: float,
                 device: torch.device | str = "cpu") -> None:
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
        self.sampler = SequenceSampler(dataset, keys=config.obs_keys, n_obs=config.n_obs, horizon=config.horizon)
        if len(self.sampler) == 0:
            raise ValueError(f"{dataset.root}: no windows")
        self.config = config
        self.batch_size = batch_size
        self.seed = seed
        self.gamma = gamma
        self.device = torch.device(device)
        n = len(dataset.lengths)
        counts = np.asarray(dataset.lengths, dtype=np.int64)
        self._first = np.cumsum(counts) - counts  # (N,) first window of each episode
        self._counts = counts
        if int(counts.sum()) != len(self.sampler) or n == 0:
            raise ValueError("TransitionSource needs the sampler's default padding (one window per step)")

    def __len__(self) -> int:
        return len(self.sampler)

    def indices(self, step: int) -> np.ndarray:
        return np.random.default_rng([self.seed, step]).integers(0, len(self.sampler), self.batch_size)

    def transition(self, i: int) -> dict[str, np.ndarray]:
        cfg = self.config
        s, n = cfg.action_start, cfg.n_action_steps
        cur = self.sampler[i]
        ep, t = int(cur[EPISODE_INDEX]), int(cur[STEP_INDEX])
        nxt = self.sampler[int(self._first[ep] + min(t + n, self._counts[ep] - 1))]
        valid = cur[VALID][s : s + n]
        rewards = cur[REWARD][s : s + n] * valid
        terminal = bool((cur[TERMINAL][s : s + n] & valid).any())
        out = {k: cur[k] for k in cfg.obs_keys}
        out |= {NEXT + k: nxt[k] for k in cfg.obs_keys}
        out[ACTION] = cur[ACTION]
        out[CHUNK] = cur[ACTION][s : s + n]
        out[REWARD] = np.float32(np.sum(rewards * self.gamma ** np.arange(n)))
        out[DISCOUNT] = np.float32(0.0 if terminal else self.gamma**n)
        out[EPISODE_INDEX], out[STEP_INDEX] = cur[EPISODE_INDEX], cur[STEP_INDEX]
        return out

    def transitions(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """:meth:`transition` of every window in ``indices`` (B,), stacked, with two vectorised sampler reads."""
        cfg = self.config
        s, n = cfg.action_start, cfg.n_action_steps
        cur = self.sampler.batch(indices, keys=[*cfg.obs_keys, ACTION, REWARD, TERMINAL, VALID,
                                                EPISODE_INDEX, STEP_INDEX])
        ep, t = cur[EPISODE_INDEX], cur[STEP_INDEX]  # (B,), (B,)
        nxt = self.sampler.batch(self._first[ep] + np.minimum(t + n, self._counts[ep] - 1), keys=cfg.obs_keys)
        valid = cur[VALID][:, s : s + n]  # (B, n)
        rewards = cur[REWARD][:, s : s + n] * valid
        terminal = (cur[TERMINAL][:, s : s + n] & valid).any(axis=1)  # (B,)
        out = {k: cur[k] for k in cfg.obs_keys}
        out |= {NEXT + k: nxt[k] for k in cfg.obs_keys}
        out[ACTION] = cur[ACTION]
        out[CHUNK] = cur[ACTION][:, s : s + n]
        out[REWARD] = np.sum(rewards * self.gamma ** np.arange(n), axis=1).astype(np.float32)  # as transition()
        out[DISCOUNT] = np.where(terminal, np.float32(0.0), np.float32(self.gamma**n)).astype(np.float32)
        out[EPISODE_INDEX], out[STEP_INDEX] = ep, t
        return out

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        items = self.transitions(self.indices(step))
        return {k: torch.as_tensor(np.ascontiguousarray(v)).to(self.device) for k, v in items.items()}


def next_obs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``next.*`` observations of a transition batch, under their plain keys."""
    return {k[len(NEXT):]: v for k, v in batch.items() if k.startswith(NEXT)}
