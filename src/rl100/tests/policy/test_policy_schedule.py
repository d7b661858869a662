"""DDPM schedule and DDIM sampler properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rl100.policy.config import ObsSpec, PolicyConfig
from rl100.policy.schedule import NoiseSchedule, cosine_betas


def test_cosine_schedule_properties():
    betas = cosine_betas(100)
    assert betas.shape == (100,)
    assert np.all(betas > 0) and np.all(betas <= 0.999)
    assert np.all(np.diff(betas) > 0)  # cosine schedule: noise added faster and faster
    s = NoiseSchedule(100)
    abar = s.alphas_cumprod
    assert np.all(np.diff(abar) < 0)
    assert abar[0] > 0.999 and abar[-1] < 1e-3
    # closed form: abar_t = f(t + 1) / f(0) with f(u) = cos^2((u / T + s) / (1 + s) * pi / 2) where uncapped
    f = np.cos((np.arange(101) / 100 + 0.008) / 1.008 * np.pi / 2) ** 2
    np.testing.assert_allclose(abar[:90], (f[1:] / f[0])[:90], rtol=1e-10)


def test_add_noise_statistics():
    s = NoiseSchedule(100)
    x0 = torch.ones(20000, 1)
    t = torch.full((20000,), 50)
    xt = s.add_noise(x0, torch.randn(20000, 1, generator=torch.Generator().manual_seed(0)), t)
    a = s.alphas_cumprod[50]
    assert abs(xt.mean().item() - np.sqrt(a)) < 0.02
    assert abs(xt.var().item() - (1 - a)) < 0.02


def test_ddim_timesteps():
    s = NoiseSchedule(100)
    assert s.ddim_timesteps(10) == [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]
    assert s.ddim_timesteps(100) == list(range(99, -1, -1))
    assert s.ddim_timesteps(1) == [0]
    with pytest.raises(ValueError):
        s.ddim_timesteps(101)


def test_ddim_with_k_equal_t_and_eta_1_is_ddpm_ancestral():
    """With K = T, eta = 1 each DDIM step is the DDPM posterior q(x_{t-1} | x_t, x0_hat)."""
    s = NoiseSchedule(100, clip_sample=False)
    g = torch.Generator().manual_seed(0)
    for t in (99, 60, 10, 1):
        x = torch.randn(4, 8, 2, generator=g)
        eps = torch.randn(4, 8, 2, generator=g)
        mean, sigma = s.ddim_step(x, eps, t, t - 1, eta=1.0)
        x0 = s.predict_x0(x, eps, t)
        ref_mean, ref_var = s.posterior(x, x0, t)
        torch.testing.assert_close(mean, ref_mean, atol=1e-5, rtol=1e-5)
        assert sigma**2 == pytest.approx(ref_var, rel=1e-9)
        assert sigma**2 == pytest.approx(s.betas[t] * (1 - s.abar(t - 1)) / (1 - s.abar(t)), rel=1e-9)
    assert s.sigma(0, -1, 1.0) == 0.0  # the last step is deterministic


@pytest.mark.parametrize("k", [1, 10, 100])
def test_deterministic_ddim_with_oracle_eps_recovers_the_data_point(k):
    """Data = one point x*: the exact eps is (x_t - sqrt(abar) x*) / sqrt(1 - abar); eta = 0 DDIM lands on x*."""
    s = NoiseSchedule(100)
    target = torch.tensor([[0.3, -0.7]]).expand(8, 2)  # (Ta, Da)
    x = torch.randn(3, 8, 2, generator=torch.Generator().manual_seed(1))
    ts = s.ddim_timesteps(k)
    r = 100 // k
    for t in ts:
        a = s.abar(t)
        eps = (x - np.sqrt(a) * target) / np.sqrt(1 - a)
        x, sigma = s.ddim_step(x, eps, t, t - r, eta=0.0)
        assert sigma == 0.0
    torch.testing.assert_close(x, target.expand(3, 8, 2), atol=1e-5, rtol=0)


def test_config_validation():
    obs = [ObsSpec("observation.state", (3,))]
    PolicyConfig(obs=obs, action_dim=2, horizon=16, down_dims=(16, 32, 64))
    with pytest.raises(ValueError, match="divisible"):
        PolicyConfig(obs=obs, action_dim=2, horizon=10, down_dims=(16, 32, 64))
    with pytest.raises(ValueError, match="n_action_steps"):
        PolicyConfig(obs=obs, action_dim=2, horizon=8, n_obs=2, n_action_steps=8, down_dims=(16, 32))
    with pytest.raises(ValueError, match="num_inference_steps"):
        PolicyConfig(obs=obs, action_dim=2, num_inference_steps=0)
    with pytest.raises(ValueError, match="kind"):
        ObsSpec("observation.x", (3,), kind="lidar")
    with pytest.raises(ValueError, match="rgb"):
        ObsSpec("observation.rgb", (8, 8, 3), kind="rgb", dtype="float32")
    cfg = PolicyConfig(obs=obs, action_dim=2, horizon=8, down_dims=(16, 32), n_action_steps=4)
    assert PolicyConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        PolicyConfig.from_dict(cfg.to_dict() | {"bogus": 1})
