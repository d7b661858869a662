"""Pieces shared by the training loops: device choice, seeding, and deterministic batches over a dataset."""

from __future__ import annotations

import numpy as np
import torch

from rl100.data import Dataset, SequenceSampler
from rl100.data.sampler import EPISODE_INDEX, STEP_INDEX
from rl100.keys import ACTION
from rl100.policy.config import PolicyConfig


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class BatchSource:
    """Training windows of ``config``'s shape over ``dataset``; ``batch(step)`` is a pure function of (seed, step).

    Indices are drawn with replacement from ``np.random.default_rng([seed, step])``: resuming at step ``s``
    sees exactly the batches an uninterrupted run would. Returns ``{obs key: (B, To, ...), action: (B, Ta, Da)}``.
    """

    def __init__(self, dataset: Dataset, config: PolicyConfig, batch_size: int, seed: int,
                 device: torch.device | str = "cpu") -> None:
        self.sampler = SequenceSampler(dataset, keys=config.obs_keys, n_obs=config.n_obs, horizon=config.horizon)
        if len(self.sampler) == 0:
            raise ValueError(f"{dataset.root}: no training windows (episodes shorter than the horizon?)")
        self.batch_size = batch_size
        self.seed = seed
        self.device = torch.device(device)
        self.keys = [*config.obs_keys, ACTION]

    def __len__(self) -> int:
        return len(self.sampler)

    def indices(self, step: int) -> np.ndarray:
        return np.random.default_rng([self.seed, step]).integers(0, len(self.sampler), self.batch_size)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        samples = [self.sampler[int(i)] for i in self.indices(step)]
        out = {k: torch.as_tensor(np.stack([s[k] for s in samples])).to(self.device) for k in self.keys}
        out[EPISODE_INDEX] = torch.as_tensor(np.stack([s[EPISODE_INDEX] for s in samples]))
        out[STEP_INDEX] = torch.as_tensor(np.stack([s[STEP_INDEX] for s in samples]))
        return out
