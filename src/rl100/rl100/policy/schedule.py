"""DDPM noise schedule and DDIM sampling steps (epsilon prediction), written for this project.

Training: ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` for ``t`` in ``0 .. T-1`` (T = 100).
Sampling: DDIM over ``K`` evenly spaced ("leading") timesteps ``[(K-1) r, ..., r, 0]`` with ``r = T // K``;
the step from ``t`` to ``t' = t - r`` (``abar_{-1} = 1``) is the Gaussian ``N(mean, sigma^2 I)`` with
``sigma = eta * sqrt((1 - abar_t') / (1 - abar_t) * (1 - abar_t / abar_t'))``. With ``K = T`` and ``eta = 1``
this is DDPM ancestral sampling; ``eta = 0`` is the deterministic DDIM (probability-flow) sampler.
:meth:`NoiseSchedule.ddim_step` returns ``(mean, sigma)`` so RL code can score the step's log-prob.
Timesteps and coefficients are Python floats, so a traced sampler unrolls into a static ONNX graph.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def cosine_betas(num_steps: int, max_beta: float = 0.999, s: float = 0.008) -> np.ndarray:
    """``squaredcos_cap_v2`` (Nichol & Dhariwal): ``abar(u) = cos^2((u + s) / (1 + s) * pi / 2)``, betas capped."""

    def abar(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    betas = [min(1 - abar((i + 1) / num_steps) / abar(i / num_steps), max_beta) for i in range(num_steps)]
    return np.asarray(betas, dtype=np.float64)


class NoiseSchedule:
    """Discrete DDPM schedule of ``num_steps`` steps (float64 tables, cast at use)."""

    def __init__(self, num_steps: int = 100, beta_schedule: str = "squaredcos_cap_v2", clip_sample: bool = True):
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        if beta_schedule == "squaredcos_cap_v2":
            betas = cosine_betas(num_steps)
        elif beta_schedule == "linear":
            betas = np.linspace(1e-4, 2e-2, num_steps, dtype=np.float64)
        else:
            raise ValueError(f"unknown beta_schedule {beta_schedule!r}")
        self.num_steps = num_steps
        self.clip_sample = clip_sample
        self.betas = betas  # (T,)
        self.alphas_cumprod = np.cumprod(1.0 - betas)  # (T,) abar_t
        self._abar_t = torch.as_tensor(self.alphas_cumprod, dtype=torch.float32)

    # ----------------------------------------------------------------------------------------- training
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Forward process. ``x0``, ``noise``: (B, ...); ``t``: (B,) int64 in [0, T)."""
        abar = self._abar_t.to(x0.device)[t].reshape(-1, *([1] * (x0.dim() - 1)))
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def sample_timesteps(self, batch: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        return torch.randint(0, self.num_steps, (batch,), generator=generator, device=device)

    # ----------------------------------------------------------------------------------------- sampling
    def ddim_timesteps(self, k: int) -> list[int]:
        """The ``k`` DDIM timesteps, descending (e.g. T=100, k=10 -> [90, 80, ..., 0])."""
        if not 1 <= k <= self.num_steps:
            raise ValueError(f"need 1 <= k <= {self.num_steps}, got {k}")
        ratio = self.num_steps // k
        return [i * ratio for i in reversed(range(k))]

    def abar(self, t: int) -> float:
        """``abar_t`` with ``abar_{-1} = 1`` (the clean end of the chain)."""
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def predict_x0(self, x: torch.Tensor, eps: torch.Tensor, t: int) -> torch.Tensor:
        a = self.abar(t)
        x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
        return x0.clamp(-1.0, 1.0) if self.clip_sample else x0

    def sigma(self, t: int, t_prev: int, eta: float) -> float:
        a, a_prev = self.abar(t), self.abar(t_prev)
        return eta * math.sqrt(max((1 - a_prev) / (1 - a) * (1 - a / a_prev), 0.0))

    def ddim_step(
        self, x: torch.Tensor, eps: torch.Tensor, t: int, t_prev: int, eta: float = 0.0
    ) -> tuple[torch.Tensor, float]:
        """One DDIM step ``x_t -> x_{t_prev}``: returns ``(mean, sigma)``; sample = mean + sigma * z.

        ``x``, ``eps``: (B, Ta, Da) in normalised action space. When ``clip_sample`` is set, ``x0`` is clipped to
        [-1, 1] and eps is re-derived from it (so the mean stays on the clipped estimate, as in DDPM).
        """
        a, a_prev = self.abar(t), self.abar(t_prev)
        x0 = self.predict_x0(x, eps, t)
        if self.clip_sample:
            eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
        sigma = self.sigma(t, t_prev, eta)
        mean = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
        return mean, sigma

    def posterior(self, x: torch.Tensor, x0: torch.Tensor, t: int) -> tuple[torch.Tensor, float]:
        """DDPM posterior ``q(x_{t-1} | x_t, x_0)``: (mean, variance) -- the reference for tests."""
        a, a_prev = self.abar(t), self.abar(t - 1)
        beta = 1 - a / a_prev
        c0 = math.sqrt(a_prev) * beta / (1 - a)
        ct = math.sqrt(1 - beta) * (1 - a_prev) / (1 - a)
        return c0 * x0 + ct * x, (1 - a_prev) / (1 - a) * beta
