"""SequenceSampler.batch: vectorised windows equal stacking ``sampler[i]``, in-RAM cache and memmap paths,
and BatchSource batches as a pure, unchanged function of (seed, step)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rl100.data import EPISODE_INDEX, STEP_INDEX, VALID, SequenceSampler
from rl100.keys import ACTION, FLAG_INTERVENTION, FLAGS, OBS_RGB, OBS_STATE
from rl100.policy.config import ObsSpec, PolicyConfig
from rl100.train.common import BatchSource
from rl100.train.config import TrainConfig

LENGTHS = [5, 1, 9, 2, 14, 3]  # several episodes of different lengths, some shorter than the window


def stacked(sampler: SequenceSampler, indices) -> dict[str, np.ndarray]:
    items = [sampler[int(i)] for i in indices]
    return {k: np.stack([it[k] for it in items]) for k in items[0]}


def assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, k
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


@pytest.mark.parametrize("cache_bytes", [None, 0], ids=["ram-cache", "memmap"])
@pytest.mark.parametrize(("n_obs", "horizon", "pad_before", "pad_after"),
                         [(2, 4, None, None), (1, 1, None, None), (3, 6, None, None), (2, 5, 0, 0), (2, 6, 4, 5)])
def test_batch_equals_stacked_items(small_dataset, cache_bytes, n_obs, horizon, pad_before, pad_after):
    ds = small_dataset(LENGTHS)
    kw = {} if cache_bytes is None else {"cache_bytes": cache_bytes}
    sampler = SequenceSampler(ds, n_obs=n_obs, horizon=horizon, pad_before=pad_before, pad_after=pad_after, **kw)
    assert len(sampler) > 0
    rng = np.random.default_rng(0)
    every = np.arange(len(sampler))  # includes the first and last window of every episode (both edges)
    for indices in (every, every[::-1], rng.integers(0, len(sampler), 64), np.array([0, 0, len(sampler) - 1]),
                    np.array([-1, -len(sampler), 3])):
        assert_same(sampler.batch(indices), stacked(sampler, indices))
    windows = [sampler.window(i) for i in every]
    edge = [s for e, s in windows if s < 0 or s + horizon > LENGTHS[e]]
    if pad_before or pad_after:
        assert edge  # padded windows at the episode edges are exercised
    # a field subset returns those fields only, in the canonical order
    sub = sampler.batch(every, keys=[STEP_INDEX, OBS_RGB, ACTION])
    assert list(sub) == [OBS_RGB, ACTION, STEP_INDEX]
    assert_same(sub, {k: v for k, v in stacked(sampler, every).items() if k in sub})
    # the cache path copies at most the budget
    assert (sampler._cached_bytes > 0) == (cache_bytes is None)


def test_batch_errors_and_empty(small_dataset):
    sampler = SequenceSampler(small_dataset(LENGTHS), [OBS_STATE], n_obs=2, horizon=4)
    with pytest.raises(IndexError):
        sampler.batch([0, len(sampler)])
    with pytest.raises(IndexError):
        sampler.batch([-len(sampler) - 1])
    with pytest.raises(KeyError):
        sampler.batch([0], keys=["observation.nope"])
    empty = sampler.batch(np.zeros(0, np.int64))
    assert empty[OBS_STATE].shape == (0, 2, 4) and empty[VALID].shape == (0, 4) and empty[EPISODE_INDEX].shape == (0,)


def test_batch_partial_cache_budget(small_dataset):
    """Keys over the budget fall back to the memmaps; the result does not change."""
    ds = small_dataset(LENGTHS)
    state_bytes = sum(LENGTHS) * 4 * 4
    sampler = SequenceSampler(ds, [OBS_STATE, OBS_RGB], n_obs=2, horizon=4, cache_bytes=state_bytes)
    idx = np.random.default_rng(1).integers(0, len(sampler), 40)
    assert_same(sampler.batch(idx), stacked(sampler, idx))
    assert sampler._cache[OBS_STATE] is not None and sampler._cache[OBS_RGB] is None
    assert sampler._cached_bytes <= state_bytes


def _reference_batch(source: BatchSource, step: int) -> dict[str, torch.Tensor]:
    """BatchSource.batch as it was before vectorising: a Python loop over ``sampler[i]``."""
    samples = [source.sampler[int(i)] for i in source.indices(step)]
    out = {k: torch.as_tensor(np.stack([s[k] for s in samples])) for k in source.keys}
    out[EPISODE_INDEX] = torch.as_tensor(np.stack([s[EPISODE_INDEX] for s in samples]))
    out[STEP_INDEX] = torch.as_tensor(np.stack([s[STEP_INDEX] for s in samples]))
    return out


def test_batch_source_bit_identical_and_pure(small_dataset, h):
    ds = small_dataset(LENGTHS)
    cfg = PolicyConfig(obs=[ObsSpec(OBS_STATE, (h.STATE_DIM,)), ObsSpec(OBS_RGB, h.IMAGE_SHAPE, kind="rgb",
                                                                       dtype="uint8", norm="image")],
                       action_dim=h.ACTION_DIM, n_obs=2, horizon=4, n_action_steps=2, down_dims=(16, 32))
    source = BatchSource(ds, cfg, 32, seed=7)
    again = BatchSource(ds, cfg, 32, seed=7)
    for step in (0, 1, 5, 1000):
        got, want = source.batch(step), _reference_batch(source, step)
        assert list(got) == list(want)
        for k in want:
            assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), (step, k)
        redo = again.batch(step)  # a fresh source (e.g. after resume) gives the same batch
        assert all(torch.equal(redo[k], got[k]) for k in got)
    assert not torch.equal(source.batch(0)[ACTION], source.batch(1)[ACTION])
    other = BatchSource(ds, cfg, 32, seed=8)
    assert not torch.equal(other.batch(0)[ACTION], source.batch(0)[ACTION])


def test_batch_source_intervention_share(small_dataset, h):
    """``intervention_share``: that fraction of every batch has an intervention at its current step; 0 keeps the
    uniform draw; ranks split the single-process draw; a dataset without interventions is sampled uniformly."""
    ds = small_dataset(LENGTHS)  # odd episodes: an intervention at every third step
    cfg = PolicyConfig(obs=[ObsSpec(OBS_STATE, (h.STATE_DIM,))], action_dim=h.ACTION_DIM, n_obs=2, horizon=4,
                       n_action_steps=2, down_dims=(16, 32))

    def flagged(source: BatchSource, step: int) -> np.ndarray:  # (B,) current step is an intervention
        return np.array([bool(source.sampler[int(i)][FLAGS][1] & FLAG_INTERVENTION) for i in source.indices(step)])

    uniform = BatchSource(ds, cfg, 64, seed=3)
    np.testing.assert_array_equal(uniform.indices(5), np.random.default_rng([3, 5]).integers(0, len(uniform), 64))
    natural = np.mean([flagged(uniform, s).mean() for s in range(20)])
    assert 0.05 < natural < 0.3
    source = BatchSource(ds, cfg, 64, seed=3, intervention_share=0.5)
    for step in range(5):
        rows = flagged(source, step)
        assert rows.sum() == 32, step
        np.testing.assert_array_equal(source.indices(step), BatchSource(ds, cfg, 64, seed=3,
                                                                        intervention_share=0.5).indices(step))
    assert len(set(source.indices(0).tolist())) > 20  # both groups drawn with replacement, rows shuffled
    assert flagged(source, 0)[:32].sum() not in (0, 32)
    ranks = [BatchSource(ds, cfg, 32, seed=3, rank=r, world_size=2, intervention_share=0.5) for r in range(2)]
    np.testing.assert_array_equal(np.concatenate([r.indices(4) for r in ranks]), source.indices(4))
    plain = small_dataset([9], name="plain")  # episode 0: demo steps only
    none = BatchSource(plain, cfg, 16, seed=3, intervention_share=0.5)
    assert none.flagged is None
    np.testing.assert_array_equal(none.indices(2), np.random.default_rng([3, 2]).integers(0, len(none), 16))
    with pytest.raises(ValueError, match="intervention_share"):
        TrainConfig(intervention_share=1.0)
