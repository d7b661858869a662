"""Per-key statistics for normalisers, computed in one streaming pass over the memmaps.

Memory stays bounded by ``chunk_bytes`` whatever the dataset size: rows are read in chunks and
merged with the parallel mean/variance update of Chan et al. (float64 accumulators), which is
exact up to rounding, unlike a running sum of squares.

Shapes: for a key stored as ``(T, *shape)``, every statistic has shape ``shape`` with the axes in
``reduce_axes[key]`` (indices into ``shape``) removed, e.g. ``{OBS_RGB: (0, 1)}`` -> per channel ``(3,)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from rl100.data.format import TERMINAL
from rl100.data.reader import Dataset
from rl100.keys import DONE, FLAGS

DEFAULT_CHUNK_BYTES = 64 << 20
NOT_STATS_KEYS = (DONE, TERMINAL, FLAGS)  # booleans / bit fields: statistics make no sense


@dataclass(frozen=True)
class KeyStats:
    """Element-wise min/max/mean/std (population, ddof=0) over ``count`` samples; arrays share one shape."""

    min: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    count: int

    def __post_init__(self) -> None:
        arrays = [np.asarray(a, dtype=np.float64) for a in (self.min, self.max, self.mean, self.std)]
        if len({a.shape for a in arrays}) != 1:
            raise ValueError(f"stat shapes differ: {[a.shape for a in arrays]}")
        if self.count <= 0:
            raise ValueError(f"count must be positive, got {self.count}")
        for name, a in zip(("min", "max", "mean", "std"), arrays, strict=True):
            object.__setattr__(self, name, a)

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly (lists)."""
        return {"min": self.min.tolist(), "max": self.max.tolist(), "mean": self.mean.tolist(),
                "std": self.std.tolist(), "count": self.count}  # fmt: skip


class _Accumulator:
    def __init__(self) -> None:
        self.count = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None
        self.min: np.ndarray | None = None
        self.max: np.ndarray | None = None

    def update(self, x: np.ndarray) -> None:
        """``x``: (n, *stat_shape) float64 samples."""
        n = x.shape[0]
        if n == 0:
            return
        mean = x.mean(axis=0)
        m2 = np.square(x - mean).sum(axis=0)
        lo, hi = x.min(axis=0), x.max(axis=0)
        if self.mean is None:
            self.count, self.mean, self.m2, self.min, self.max = n, mean, m2, lo, hi
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + np.square(delta) * (self.count * n / total)
        self.min, self.max = np.minimum(self.min, lo), np.maximum(self.max, hi)
        self.count = total

    def result(self) -> KeyStats:
        assert self.mean is not None and self.m2 is not None
        return KeyStats(self.min, self.max, self.mean, np.sqrt(self.m2 / self.count), self.count)


def _as_samples(chunk: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """(n, *shape) -> (n * prod(shape[axes]), *kept_shape) float64."""
    per_step = [a + 1 for a in axes]
    kept = [a for a in range(1, chunk.ndim) if a not in per_step]
    moved = np.transpose(np.asarray(chunk, dtype=np.float64), (0, *per_step, *kept))
    return moved.reshape(-1, *(chunk.shape[a] for a in kept))


def compute_stats(
    dataset: Dataset,
    keys: Iterable[str] | None = None,
    *,
    reduce_axes: Mapping[str, Iterable[int]] | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> dict[str, KeyStats]:
    """Statistics of ``keys`` (default: every key but done/terminal/flags) over all steps of ``dataset``.

    ``reduce_axes``: per key, per-step axes also reduced over (e.g. image H, W -> per-channel stats).
    Raises ValueError on an unknown key or axis, or an empty dataset.
    """
    keys = [k for k in dataset.specs if k not in NOT_STATS_KEYS] if keys is None else list(keys)
    reduce_axes = {k: tuple(sorted(int(a) for a in v)) for k, v in (reduce_axes or {}).items()}
    for key in [*keys, *reduce_axes]:
        if key not in dataset.specs:
            raise ValueError(f"key {key!r} not in the dataset (keys: {sorted(dataset.specs)})")
    for key, axes in reduce_axes.items():
        ndim = len(dataset.specs[key].shape)
        if any(not 0 <= a < ndim for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(f"key {key!r}: reduce axes {axes} invalid for per-step shape {dataset.specs[key].shape}")
    if dataset.num_steps == 0:
        raise ValueError(f"{dataset.root}: no steps to compute statistics over")
    accumulators = {key: _Accumulator() for key in keys}
    for episode in dataset:  # episodes outer: each episode's files are mapped once
        for key, acc in accumulators.items():
            array = episode[key]
            rows = max(1, chunk_bytes // max(8 * array[0].size, 1))
            for lo in range(0, len(array), rows):
                acc.update(_as_samples(array[lo : lo + rows], reduce_axes.get(key, ())))
    return {key: acc.result() for key, acc in accumulators.items()}
