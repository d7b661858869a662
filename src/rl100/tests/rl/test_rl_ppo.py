"""PPO over denoising steps: ratio exactly 1 at the reference, and there the gradient is -A grad log pi."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from rl100.keys import OBS_STATE
from rl100.rl.denoising_mdp import DenoisingConfig, chain_log_prob, sample_chain
from rl100.rl.ppo import PPOConfig, ppo_loss


def _grads(model):
    return torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel()) for p in model.parameters()])


def test_ratio_one_and_gradient_at_reference(h, bandit_root):
    policy = h.make_policy(bandit_root)
    cfg = DenoisingConfig()
    obs = {OBS_STATE: torch.rand(6, 2, h.STATE_DIM) * 2 - 1}
    with torch.no_grad():
        cond = policy.encode(obs)
        _, chain = sample_chain(policy, cond, cfg, generator=torch.Generator().manual_seed(0))
        old = chain_log_prob(policy, cond, chain, cfg)
    adv = torch.tensor([1.0, -0.5, 2.0, 0.0, -1.5, 0.3])

    loss, logs = ppo_loss(policy, policy.encode(obs), chain, old, adv, clip=0.2, denoising=cfg)
    assert logs["ppo/ratio_mean"] == 1.0 and logs["ppo/clipfrac"] == 0.0 and abs(logs["ppo/approx_kl"]) < 1e-7
    policy.zero_grad()
    loss.backward()
    g_ppo = _grads(policy)

    ref = copy.deepcopy(policy)
    ref.zero_grad()
    logp = chain_log_prob(ref, ref.encode(obs), chain, cfg)
    (-(adv[:, None] * logp).sum(dim=1).mean()).backward()
    torch.testing.assert_close(g_ppo, _grads(ref), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(loss.detach(), -adv.mean() * policy.config.num_inference_steps)  # ratio 1, summed over K


def test_clipped_ratio_gives_no_gradient(h, bandit_root):
    """A positive-advantage sample whose ratio already exceeds 1 + eps contributes no gradient."""
    policy = h.make_policy(bandit_root)
    cfg = DenoisingConfig()
    obs = {OBS_STATE: torch.rand(2, 2, h.STATE_DIM)}
    with torch.no_grad():
        cond = policy.encode(obs)
        _, chain = sample_chain(policy, cond, cfg)
        old = chain_log_prob(policy, cond, chain, cfg) - 1.0  # ratio = e > 1.2 on every step
    loss, logs = ppo_loss(policy, policy.encode(obs), chain, old, torch.ones(2), clip=0.2, denoising=cfg)
    assert logs["ppo/clipfrac"] == 1.0
    policy.zero_grad()
    loss.backward()
    assert float(_grads(policy).abs().max()) == 0.0


def test_mean_logp_is_the_per_dimension_ratio(h, bandit_root):
    """logp="mean": ratio 1 and gradient -A grad(log pi / D) at the reference; a shifted old_logp gives the ratio
    exp(shift / D), so a log-ratio that the sum clips (e^1) is inside the clip per dimension."""
    policy = h.make_policy(bandit_root)
    cfg = DenoisingConfig()
    obs = {OBS_STATE: torch.rand(4, 2, h.STATE_DIM) * 2 - 1}
    d = policy.config.horizon * policy.config.action_dim
    with torch.no_grad():
        cond = policy.encode(obs)
        _, chain = sample_chain(policy, cond, cfg, generator=torch.Generator().manual_seed(1))
        old = chain_log_prob(policy, cond, chain, cfg)
    adv = torch.tensor([1.0, -0.5, 2.0, -1.5])
    loss, logs = ppo_loss(policy, policy.encode(obs), chain, old, adv, clip=0.2, denoising=cfg, logp="mean")
    assert logs["ppo/ratio_mean"] == 1.0 and logs["ppo/clipfrac"] == 0.0
    policy.zero_grad()
    loss.backward()
    g_mean = _grads(policy)
    ref = copy.deepcopy(policy)
    ref.zero_grad()
    (-(adv[:, None] * chain_log_prob(ref, ref.encode(obs), chain, cfg) / d).sum(dim=1).mean()).backward()
    torch.testing.assert_close(g_mean, _grads(ref), rtol=1e-4, atol=1e-7)

    shift = 0.5 * d * 0.2  # per dimension 0.1 nats: ratio e^0.1 inside 1.2 (the sum's e^(0.1 d) is far outside)
    _, logs = ppo_loss(policy, policy.encode(obs), chain, old - shift, adv, clip=0.2, denoising=cfg, logp="mean")
    assert abs(logs["ppo/ratio_mean"] - math.exp(shift / d)) < 1e-4 and logs["ppo/clipfrac"] == 0.0
    _, logs = ppo_loss(policy, policy.encode(obs), chain, old - shift, adv, clip=0.2, denoising=cfg)
    assert logs["ppo/clipfrac"] == 1.0
    with pytest.raises(ValueError, match="logp"):
        ppo_loss(policy, policy.encode(obs), chain, old, adv, logp="max")
    with pytest.raises(ValueError, match="logp"):
        PPOConfig(logp="median")
