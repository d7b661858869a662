"""TransitionSource.batch (vectorised) equals stacking the per-item ``transition(i)``, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rl100.data import Dataset, DatasetWriter
from rl100.keys import FLAG_ROLLOUT, OBS_STATE
from rl100.rl.transitions import TransitionSource


def _write(root, lengths, terminals):
    rng = np.random.default_rng(0)
    with DatasetWriter(root, meta={"task": "unit"}, fsync=False) as w:
        for length, terminal in zip(lengths, terminals, strict=True):
            ep = w.begin_episode()
            for _ in range(length):
                ep.add_step({OBS_STATE: rng.uniform(-1, 1, 2).astype(np.float32)},
                            rng.uniform(-1, 1, 1).astype(np.float32), float(rng.uniform(0, 1)), FLAG_ROLLOUT)
            ep.end(success=terminal, terminal=terminal)
    return Dataset(root)


@pytest.mark.parametrize("gamma", [0.9, 1.0])
@pytest.mark.parametrize(("n_obs", "horizon", "n_act"), [(2, 4, 2), (1, 8, 8), (2, 8, 3)])
def test_transition_batch_equals_items(tmp_path, h, gamma, n_obs, horizon, n_act):
    ds = _write(tmp_path / "ds", [7, 1, 12, 3, 5], [True, False, False, True, True])
    cfg = h.tiny_config(n_obs=n_obs, horizon=horizon, n_action_steps=n_act)
    src = TransitionSource(ds, cfg, 48, seed=3, gamma=gamma)
    for indices in (np.arange(len(src)), src.indices(0), src.indices(9)):  # every step: both episode edges
        got = src.transitions(indices)
        items = [src.transition(int(i)) for i in indices]
        assert list(got) == list(items[0])
        for k in got:
            want = np.stack([it[k] for it in items])
            assert got[k].dtype == want.dtype and got[k].shape == want.shape, k
            np.testing.assert_array_equal(got[k], want, err_msg=k)
    for step in (0, 4):
        b = src.batch(step)
        items = [src.transition(int(i)) for i in src.indices(step)]
        for k, v in b.items():
            assert torch.equal(v, torch.as_tensor(np.stack([it[k] for it in items]))), (step, k)
