"""The denoising MDP of RL-100: each DDIM step of the diffusion policy as a Gaussian policy step.

Step ``i`` of the K-step chain ``x_K -> ... -> x_0`` (``x_K`` = initial noise, ``x_0`` = normalised action chunk)
is ``x_{k-1} ~ N(mu_theta(x_k, t_k, s), sigma_k^2 I)`` with ``sigma_k = clip(eta * sqrt(posterior var), sigma_min,
sigma_max)`` (paper: eta = 1, [0.01, 0.1] for chunked tasks). Its log-prob is summed over the whole latent
``(Ta, Da)`` (action dims and chunk). The chain is recorded when sampling, so the same transitions can be scored
again under updated parameters (PPO ratios).

Shapes: ``B`` batch, ``K`` denoising steps, ``Ta`` horizon, ``Da`` action dim, ``C`` condition size.
``chain``: (B, K + 1, Ta, Da), ``chain[:, 0]`` = x_K (noise), ``chain[:, K]`` = x_0 (the action chunk).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rl100.policy.diffusion import DiffusionPolicy

LOG_2PI = math.log(2 * math.pi)


@dataclass
class DenoisingConfig:
    """How the DDIM sampler is read as a stochastic policy."""

    k: int = 0
    """denoising steps K (0: the policy's num_inference_steps)"""
    eta: float = 1.0
    """DDIM eta: sigma = eta * sqrt(posterior variance), before clipping"""
    sigma_min: float = 0.01
    sigma_max: float = 0.1

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ValueError(f"k must be >= 0, got {self.k}")
        if self.eta < 0:
            raise ValueError(f"eta must be >= 0, got {self.eta}")
        if not 0 < self.sigma_min <= self.sigma_max:
            raise ValueError(f"need 0 < sigma_min <= sigma_max, got {self.sigma_min}, {self.sigma_max}")

    def steps(self, policy: DiffusionPolicy) -> int:
        return self.k or policy.config.num_inference_steps

    @property
    def sigma_range(self) -> tuple[float, float]:
        return (self.sigma_min, self.sigma_max)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, sigma: float) -> torch.Tensor:
    """``log N(x; mean, sigma^2 I)`` summed over every dim but the first: (B, ...) -> (B,)."""
    d = x[0].numel()
    sq = (x - mean).square().flatten(1).sum(dim=1)
    return -0.5 * sq / sigma**2 - d * math.log(sigma) - 0.5 * d * LOG_2PI


def step_sigmas(policy: DiffusionPolicy, cfg: DenoisingConfig) -> list[float]:
    """The K clipped per-step standard deviations (they depend on the schedule only)."""
    sched, k = policy.schedule, cfg.steps(policy)
    ts = sched.ddim_timesteps(k)
    r = sched.num_steps // k
    return [min(max(sched.sigma(t, t - r, cfg.eta), cfg.sigma_min), cfg.sigma_max) for t in ts]


def sample_chain(policy: DiffusionPolicy, cond: torch.Tensor, cfg: DenoisingConfig | None = None,
                 noise: torch.Tensor | None = None, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample the stochastic chain: cond (B, C) -> (x_0 (B, Ta, Da), chain (B, K + 1, Ta, Da)). Not differentiable."""
    cfg = cfg or DenoisingConfig()
    k = cfg.steps(policy)
    b, shape = cond.shape[0], (policy.config.horizon, policy.config.action_dim)
    if noise is None:
        noise = torch.randn((b, *shape), generator=generator, device=cond.device)
    step_noise = torch.randn((b, k, *shape), generator=generator, device=cond.device)
    with torch.no_grad():
        x0, chain = policy.sample_normalized(cond, noise, k=k, eta=cfg.eta, step_noise=step_noise,
                                             stochastic=True,
                                             return_chain=True, sigma_range=cfg.sigma_range)
    return x0, torch.stack(chain, dim=1)


def chain_log_prob(policy: DiffusionPolicy, cond: torch.Tensor, chain: torch.Tensor,
                   cfg: DenoisingConfig | None = None) -> torch.Tensor:
    """Per-step log-probs (B, K) of the recorded transitions ``chain[:, i] -> chain[:, i + 1]`` under ``policy``.

    Differentiable w.r.t. the policy's parameters (and ``cond``); the chain itself is treated as data.
    """
    cfg = cfg or DenoisingConfig()
    k = cfg.steps(policy)
    if chain.shape[1] != k + 1:
        raise ValueError(f"chain has {chain.shape[1]} states, expected K + 1 = {k + 1}")
    out = []
    for i in range(k):
        mean, sigma = policy.step_distribution(chain[:, i], i, cond, k, cfg.eta, cfg.sigma_range)
        out.append(gaussian_log_prob(chain[:, i + 1], mean, sigma))
    return torch.stack(out, dim=1)


def executed_actions(policy: DiffusionPolicy, x: torch.Tensor) -> torch.Tensor:
    """The executed part of a (normalised) chunk: (B, Ta, Da) -> (B, n_action_steps, Da)."""
    s = policy.config.action_start
    return x[:, s : s + policy.config.n_action_steps]
