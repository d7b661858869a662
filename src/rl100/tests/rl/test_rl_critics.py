"""IQL critics: expectile-loss properties, chunk transitions, and Q ordering on a synthetic bandit dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rl100.data import Dataset
from rl100.keys import ACTION, OBS_STATE, REWARD
from rl100.rl.critics import CriticConfig, IQLCritics, expectile_loss, normalize_advantages
from rl100.rl.offline import train_critics
from rl100.rl.transitions import CHUNK, DISCOUNT, NEXT, TransitionSource


def test_expectile_loss_properties():
    d = torch.tensor([-2.0, -0.5, 0.5, 3.0])
    torch.testing.assert_close(expectile_loss(d, 0.5), 0.5 * d.square().mean())
    assert float(expectile_loss(torch.tensor([1.0]), 0.7)) == pytest.approx(0.7)
    assert float(expectile_loss(torch.tensor([-1.0]), 0.7)) == pytest.approx(0.3)
    # the minimising constant is the tau-expectile: above the mean for tau > 0.5, below for tau < 0.5
    x = torch.tensor([0.0, 0.0, 0.0, 1.0])
    grid = torch.linspace(-1, 2, 3001)
    best = {tau: float(grid[torch.stack([expectile_loss(x - c, tau) for c in grid]).argmin()])
            for tau in (0.3, 0.5, 0.9)}
    assert best[0.3] < 0.25 - 0.01 and best[0.5] == pytest.approx(0.25, abs=2e-3) and best[0.9] > 0.25 + 0.1
    a = normalize_advantages(torch.tensor([1.0, 2.0, 3.0, 6.0]))
    assert abs(float(a.mean())) < 1e-6 and float(a.std()) == pytest.approx(1.0, abs=1e-5)


def test_chunk_transitions(h, bandit_root):
    cfg = h.tiny_config()
    ds = Dataset(bandit_root)
    src = TransitionSource(ds, cfg, 4, seed=0, gamma=0.9)
    ep = ds.episode(0)
    first = src.transition(0)  # episode 0, step 0: chunk = actions 0, 1; next state = step 2
    torch.testing.assert_close(torch.as_tensor(first[CHUNK]), torch.as_tensor(np.array(ep[ACTION][0:2])))
    rewards = np.asarray(ep[REWARD])
    assert first[REWARD] == pytest.approx(rewards[0] + 0.9 * rewards[1])
    assert first[DISCOUNT] == pytest.approx(0.81)
    np.testing.assert_array_equal(first[NEXT + OBS_STATE][-1], np.asarray(ep[OBS_STATE][2]))
    last = src.transition(ep.length - 1)  # last step of a truncated episode: one real reward, bootstraps
    assert last[REWARD] == pytest.approx(rewards[-1]) and last[DISCOUNT] == pytest.approx(0.81)
    b = src.batch(0)
    assert b[CHUNK].shape == (4, cfg.n_action_steps, h.ACTION_DIM) and b[NEXT + OBS_STATE].shape == (4, 2, 2)


def test_iql_learns_q_ordering(h, bandit_root):
    torch.manual_seed(0)
    policy = h.make_policy(bandit_root)
    critics = IQLCritics(policy.config, CriticConfig(hidden=64, layers=2, gamma=0.9, lr=3e-3))
    critics.normalizer.load_state_dict(policy.normalizer.state_dict())
    src = TransitionSource(Dataset(bandit_root), policy.config, 64, seed=0, gamma=0.9)
    logs = train_critics(critics, src, 250)
    assert np.isfinite(logs["critic/loss_q"])
    obs = {OBS_STATE: torch.rand(32, 2, h.STATE_DIM) * 2 - 1}
    n = policy.config.n_action_steps

    def q(a):
        return critics.q_min(obs, critics.normalize_chunk(torch.full((32, n, 1), a)))

    good, mid, bad = q(h.A_STAR), q(-0.2), q(-0.9)
    assert (good > mid).float().mean() > 0.9 and (mid > bad).float().mean() > 0.9
    adv = critics.advantages(obs, critics.normalize_chunk(torch.full((32, n, 1), h.A_STAR)), normalize=False)
    assert float(adv.mean()) > 0  # the best action beats the (expectile) value of the behaviour policy
