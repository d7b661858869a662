"""The denoising MDP: recorded chains, clipped sigmas, per-step log-probs against a direct Gaussian computation."""

from __future__ import annotations

import pytest
import torch

from rl100.keys import OBS_STATE
from rl100.rl.denoising_mdp import DenoisingConfig, chain_log_prob, gaussian_log_prob, sample_chain, step_sigmas


def _obs(b, h, seed=0):
    return {OBS_STATE: torch.rand((b, 2, h.STATE_DIM), generator=torch.Generator().manual_seed(seed)) * 2 - 1}


def test_chain_log_prob_matches_direct_gaussian(h, bandit_root):
    policy = h.make_policy(bandit_root)
    cfg = DenoisingConfig(eta=1.0, sigma_min=0.01, sigma_max=0.1)
    cond = policy.encode(_obs(5, h))
    x0, chain = sample_chain(policy, cond, cfg, generator=torch.Generator().manual_seed(1))
    k = policy.config.num_inference_steps
    assert chain.shape == (5, k + 1, policy.config.horizon, h.ACTION_DIM)
    assert torch.equal(chain[:, -1], x0)
    logp = chain_log_prob(policy, cond, chain, cfg)
    assert logp.shape == (5, k)

    sched = policy.schedule
    ts = sched.ddim_timesteps(k)
    r = sched.num_steps // k
    with torch.no_grad():
        for i, t in enumerate(ts):
            mean, sigma = sched.ddim_step(chain[:, i], policy.unet(chain[:, i], torch.tensor([float(t)]), cond),
                                          t, t - r, 1.0)
            sigma = min(max(sigma, 0.01), 0.1)
            direct = torch.distributions.Normal(mean, sigma).log_prob(chain[:, i + 1]).flatten(1).sum(1)
            torch.testing.assert_close(logp[:, i], direct, rtol=1e-5, atol=1e-4)


def test_sigmas_are_clipped_and_gaussian_log_prob(h, bandit_root):
    policy = h.make_policy(bandit_root)
    sig = step_sigmas(policy, DenoisingConfig(sigma_min=0.01, sigma_max=0.1))
    assert len(sig) == policy.config.num_inference_steps
    assert all(0.01 <= s <= 0.1 for s in sig) and sig[-1] == 0.01  # the last DDIM step has zero posterior variance
    x, m = torch.randn(3, 4, 2), torch.randn(3, 4, 2)
    want = torch.distributions.Normal(m, 0.3).log_prob(x).sum(dim=(1, 2))
    torch.testing.assert_close(gaussian_log_prob(x, m, 0.3), want)


def test_config_validation():
    with pytest.raises(ValueError):
        DenoisingConfig(sigma_min=0.2, sigma_max=0.1)
    with pytest.raises(ValueError):
        DenoisingConfig(eta=-1.0)
