"""``torch.utils.data.Dataset`` over a :class:`~rl100.data.sampler.SequenceSampler` (needs torch).

Import it as ``from rl100.data import SequenceDataset``; torch is imported only then, so the rest
of :mod:`rl100.data` works without it. Samples are dicts of tensors with the shapes documented in
:mod:`rl100.data.sampler`; images stay uint8 (normalisation belongs to the model). The memmaps are
opened lazily per process, so ``DataLoader(num_workers > 0)`` workers read the files themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from rl100.data.sampler import SequenceSampler


class SequenceDataset(TorchDataset):
    """Windows of ``sampler`` as ``{key: torch.Tensor}``; ``transform`` (optional) maps that dict."""

    def __init__(self, sampler: SequenceSampler, transform: Callable[[dict[str, torch.Tensor]], Any] | None = None):
        self.sampler = sampler
        self.transform = transform

    def __len__(self) -> int:
        return len(self.sampler)

    def __getitem__(self, i: int) -> Any:
        sample = {k: torch.as_tensor(np.asarray(v)) for k, v in self.sampler[int(i)].items()}  # arrays are copies
        return sample if self.transform is None else self.transform(sample)
