"""Training windows over a dataset: observation history + action chunk + per-step RL signals.

A window of ``horizon`` consecutive steps starts at ``s`` (possibly before the episode start or
running past its end, up to ``pad_before`` / ``pad_after`` steps) and is read with edge padding
(the first / last real step repeated), like diffusion_policy's sequence sampler. With the defaults
``pad_before = n_obs - 1`` and ``pad_after = horizon - n_obs`` every step of every episode is the
*current* step of exactly one window. Window position ``j`` is episode step ``s + j``; the current
step is ``t = s + n_obs - 1``.

One sample (``sampler[i]``), as numpy arrays::

    <obs key>        (n_obs, *shape)  steps s .. t                  edge padded
    action           (horizon, D_a)   steps s .. s + horizon - 1    edge padded (hold the last target)
    reward           (horizon,)       float32                       0 on padded positions
    done, terminal   (horizon,)       bool                          edge padded (True after the end)
    flags            (horizon,)       uint8                         edge padded
    valid            (horizon,)       bool                          False on padded positions
    episode_index    ()               int64 position of the episode in the dataset
    step_index       ()               int64 current step t

A batch (``sampler.batch(indices)``) holds the same fields stacked on a leading ``B`` axis
(``episode_index`` / ``step_index`` become ``(B,)``); it is bit-identical to stacking ``sampler[i]`` and is
built with numpy index arithmetic instead of a Python loop over windows.

Memory: ``batch`` gathers each key from one concatenated in-RAM copy of that key over all episodes
(``num_steps * row_bytes``, built on first use) while the copies fit in ``cache_bytes`` (default 2 GiB for
all keys together; e.g. 100 episodes of 512x3 float32 points ~40 MB). A key that does not fit is read from
the episodes' memmaps, one contiguous slice per distinct episode in the batch (rows grouped by episode),
so datasets larger than RAM still work. ``cache_bytes=0`` never copies.

For chunk-level RL, the executed chunk of ``n_act`` actions starting at ``t`` is
``action[n_obs - 1 : n_obs - 1 + n_act]`` and its rewards are ``reward[n_obs - 1 : n_obs - 1 + n_act]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rl100.data.format import TERMINAL
from rl100.data.reader import Dataset
from rl100.keys import ACTION, DONE, FLAGS, REWARD

VALID = "valid"
EPISODE_INDEX = "episode_index"
STEP_INDEX = "step_index"
EDGE_PADDED_STEP_KEYS = (DONE, TERMINAL, FLAGS)
DEFAULT_CACHE_BYTES = 2 << 30


def _read_rows(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``array[rows]`` for non-decreasing ``rows``, as one contiguous read of the memmap (a copy)."""
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    return np.asarray(array[lo:hi])[rows - lo]


class SequenceSampler:
    """Index of all windows of ``horizon`` steps over ``dataset`` (see the module docstring).

    ``keys``: observation keys to return (None: every ``observation.*`` key of the dataset).
    Episodes shorter than ``horizon - pad_before - pad_after`` yield no window.
    ``cache_bytes``: RAM budget of the per-key concatenated copies used by :meth:`batch` (module docstring).
    """

    def __init__(
        self,
        dataset: Dataset,
        keys: Sequence[str] | None = None,
        n_obs: int = 2,
        horizon: int = 16,
        pad_before: int | None = None,
        pad_after: int | None = None,
        *,
        action_key: str = ACTION,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        pad_before = n_obs - 1 if pad_before is None else int(pad_before)
        pad_after = horizon - n_obs if pad_after is None else int(pad_after)
        if not 1 <= n_obs <= horizon:
            raise ValueError(f"need 1 <= n_obs <= horizon, got n_obs={n_obs}, horizon={horizon}")
        if not (0 <= pad_before < horizon and 0 <= pad_after < horizon):
            raise ValueError(f"need 0 <= pad_before, pad_after < horizon, got {pad_before}, {pad_after}")
        obs_keys = [k for k in dataset.specs if k.startswith("observation.")] if keys is None else list(keys)
        needed = [*obs_keys, action_key, *EDGE_PADDED_STEP_KEYS, REWARD]
        missing = [k for k in needed if k not in dataset.specs]
        if missing and len(dataset):
            raise ValueError(f"keys not in the dataset: {missing} (dataset keys: {sorted(dataset.specs)})")
        self.dataset = dataset
        self.obs_keys = obs_keys
        self.action_key = action_key
        self.n_obs = int(n_obs)
        self.horizon = int(horizon)
        self.pad_before = pad_before
        self.pad_after = pad_after
        n_windows = np.maximum(dataset.lengths - horizon + pad_before + pad_after + 1, 0)  # (N,)
        first = np.cumsum(n_windows) - n_windows  # (N,) first window of each episode
        self._episode = np.repeat(np.arange(len(n_windows), dtype=np.int64), n_windows)  # (W,)
        self._start = np.arange(int(n_windows.sum()), dtype=np.int64) - np.repeat(first, n_windows) - pad_before  # (W,)
        self._lengths = np.asarray(dataset.lengths, dtype=np.int64)  # (N,)
        self._offsets = np.cumsum(self._lengths) - self._lengths  # (N,) first row of each episode in a concatenation
        self.cache_bytes = int(cache_bytes)
        self._cache: dict[str, np.ndarray | None] = {}  # key -> (num_steps, *shape) copy, None: read the memmaps
        self._cached_bytes = 0

    def __len__(self) -> int:
        return len(self._episode)

    def window(self, i: int) -> tuple[int, int]:
        """(episode position, start step ``s``) of window ``i``; ``s`` may be negative."""
        return int(self._episode[i]), int(self._start[i])

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        pos, start = self.window(i)
        episode = self.dataset.episode(pos)
        steps = np.arange(start, start + self.horizon)  # (horizon,)
        rows = np.clip(steps, 0, episode.length - 1)
        valid = (steps >= 0) & (steps < episode.length)
        sample = {k: _read_rows(episode[k], rows[: self.n_obs]) for k in self.obs_keys}
        sample[self.action_key] = _read_rows(episode[self.action_key], rows)
        sample[REWARD] = np.where(valid, _read_rows(episode[REWARD], rows), 0).astype(np.float32)
        for k in EDGE_PADDED_STEP_KEYS:
            sample[k] = _read_rows(episode[k], rows)
        sample[VALID] = valid
        sample[EPISODE_INDEX] = np.int64(pos)
        sample[STEP_INDEX] = np.int64(start + self.n_obs - 1)
        return sample

    # ------------------------------------------------------------------------------------------ batches

    def batch(self, indices: Sequence[int] | np.ndarray, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Windows ``indices`` (B,) stacked: exactly ``np.stack([self[i][k] for i in indices])`` for every field.

        ``keys``: which fields to return (None: all of them, as ``self[i]``); skipping fields skips their reads.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)  # (B,)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            bad = idx[(idx < -n) | (idx >= n)][0]
            raise IndexError(f"window {int(bad)} out of range for {n} windows")
        fields = [*self.obs_keys, self.action_key, REWARD, *EDGE_PADDED_STEP_KEYS, VALID, EPISODE_INDEX, STEP_INDEX]
        if keys is not None:
            unknown = [k for k in keys if k not in fields]
            if unknown:
                raise KeyError(f"unknown batch fields {unknown} (known: {fields})")
            fields = [k for k in fields if k in set(keys)]
        idx = idx % n if n else idx
        ep = self._episode[idx]  # (B,)
        start = self._start[idx]  # (B,)
        steps = start[:, None] + np.arange(self.horizon)  # (B, horizon)
        length = self._lengths[ep][:, None]  # (B, 1)
        rows = np.clip(steps, 0, length - 1)  # (B, horizon) episode rows, edge padded
        valid = (steps >= 0) & (steps < length)  # (B, horizon)
        out: dict[str, np.ndarray] = {}
        for k in fields:
            if k == VALID:
                out[k] = valid
            elif k == EPISODE_INDEX:
                out[k] = ep.copy()
            elif k == STEP_INDEX:
                out[k] = start + self.n_obs - 1
            elif k == REWARD:
                out[k] = np.where(valid, self._gather(k, ep, rows), 0).astype(np.float32)
            else:
                out[k] = self._gather(k, ep, rows[:, : self.n_obs] if k in self.obs_keys else rows)
        return out

    def _gather(self, key: str, ep: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``episode(ep[b])[key][rows[b]]`` for every b: (B, h, *shape)."""
        flat = self._concatenated(key)
        if flat is not None:
            return flat[self._offsets[ep][:, None] + rows]
        spec = self.dataset.specs[key]
        out = np.empty((*rows.shape, *spec.shape), dtype=spec.dtype)
        order = np.argsort(ep, kind="stable")
        bounds = np.flatnonzero(np.diff(ep[order])) + 1
        for group in (np.split(order, bounds) if len(order) else []):
            r = rows[group]  # (g, h)
            lo, hi = int(r.min()), int(r.max()) + 1
            out[group] = np.asarray(self.dataset.episode(int(ep[group[0]]))[key][lo:hi])[r - lo]
        return out

    def _concatenated(self, key: str) -> np.ndarray | None:
        """The (num_steps, *shape) in-RAM concatenation of ``key`` when it fits the cache budget, else None."""
        if key in self._cache:
            return self._cache[key]
        spec = self.dataset.specs[key]
        nbytes = int(self._lengths.sum()) * int(np.prod(spec.shape, dtype=np.int64)) * np.dtype(spec.dtype).itemsize
        flat = None
        if len(self._lengths) and self._cached_bytes + nbytes <= self.cache_bytes:
            parts = [self.dataset.episode(pos)[key] for pos in range(len(self._lengths))]
            if [len(p) for p in parts] != self._lengths.tolist():
                raise ValueError(f"{self.dataset.root}: key {key!r} lengths differ from the episode lengths")
            flat = np.concatenate(parts)
            self._cached_bytes += nbytes
        self._cache[key] = flat
        return flat
