"""Diffusion policy (epsilon prediction): normaliser + observation encoder + conditional U-Net + DDPM/DDIM.

Contract (diffusion_policy's): raw observations ``{key: (B, To, *shape)}`` in, unnormalised actions
``(B, Ta, Da)`` out; the normaliser is a submodule, so it is saved and exported with the weights.
Actions to execute now: ``actions[:, n_obs - 1 : n_obs - 1 + n_action_steps]``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from rl100.keys import ACTION
from rl100.policy.base import PolicyBase

KIND = "diffusion"


class DiffusionPolicy(PolicyBase):
    kind = KIND

    # ------------------------------------------------------------------------------------------ helpers
    def denoise(self, x: torch.Tensor, t: int | torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Predicted epsilon for ``x`` (B, Ta, Da) at timestep ``t`` (int, or (B,) tensor)."""
        if not torch.is_tensor(t):
            t = torch.full((1,), float(t), device=x.device)
        return self.unet(x, t, cond)

    # ------------------------------------------------------------------------------------------ training
    def compute_loss(self, batch: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        """DDPM epsilon-MSE on a batch of windows (``batch[ACTION]``: (B, Ta, Da), observations (B, To, ...))."""
        cond = self.encode(batch)
        x0 = self.normalizer.action(batch[ACTION].float())  # (B, Ta, Da) in [-1, 1]
        b = x0.shape[0]
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        t = self.schedule.sample_timesteps(b, generator=generator, device=x0.device)
        xt = self.schedule.add_noise(x0, noise, t)
        return F.mse_loss(self.unet(xt, t, cond), noise)

    # ------------------------------------------------------------------------------------------ sampling
    def step_distribution(self, x: torch.Tensor, i: int, cond: torch.Tensor, k: int, eta: float,
                          sigma_range: tuple[float, float] | None = None) -> tuple[torch.Tensor, float]:
        """Step ``i`` (0-based) of the K-step DDIM chain as the Gaussian ``N(mean, sigma^2 I)`` over x_{t'}.

        ``x`` (B, Ta, Da) is the state before the step; ``sigma_range`` clips sigma (the RL denoising MDP),
        None keeps the DDIM sigma (0 when ``eta = 0``). The mean is the DDIM mean at ``eta`` either way.
        """
        t = self.schedule.ddim_timesteps(k)[i]
        mean, sigma = self.schedule.ddim_step(x, self.denoise(x, t, cond), t, t - self.schedule.num_steps // k, eta)
        if sigma_range is not None:
            sigma = min(max(sigma, sigma_range[0]), sigma_range[1])
        return mean, sigma

    def sample_normalized(self, cond: torch.Tensor, noise: torch.Tensor, k: int | None = None,
                          eta: float | None = None, step_noise: torch.Tensor | None = None,
                          return_chain: bool = False, sigma_range: tuple[float, float] | None = None,
                          stochastic: bool | None = None):
        """DDIM chain from ``noise`` = x_T (B, Ta, Da) to normalised actions (B, Ta, Da).

        ``stochastic``: add ``sigma * z`` at each step (None: the config's ``step_noise``; given ``step_noise``
        implies True); otherwise each step goes to its mean. ``step_noise`` (B, K, Ta, Da): the per-step draws
        ``z`` (drawn here if None). ``return_chain``: also return the list of the K+1 states ``[x_T, ..., x_0]``.
        ``sigma_range``: clip each step's sigma (see :meth:`step_distribution`).
        """
        k = self.config.num_inference_steps if k is None else k
        eta = self.config.eta if eta is None else eta
        if stochastic is None:
            stochastic = self.config.step_noise or step_noise is not None
        x = noise
        chain = [x]
        for i in range(k):
            mean, sigma = self.step_distribution(x, i, cond, k, eta, sigma_range)
            if stochastic and sigma > 0:
                z = step_noise[:, i] if step_noise is not None else torch.randn_like(mean)
                x = mean + sigma * z
            else:
                x = mean
            chain.append(x)
        return (x, chain) if return_chain else x

    @torch.no_grad()
    def predict_action(self, obs: Mapping[str, torch.Tensor], noise: torch.Tensor | None = None,
                       k: int | None = None, eta: float | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """Raw observations (B, To, ...) -> unnormalised action chunk (B, Ta, Da)."""
        cond = self.encode(obs)
        if noise is None:
            shape = (cond.shape[0], self.config.horizon, self.config.action_dim)
            noise = torch.randn(shape, generator=generator, device=cond.device)
        x = self.sample_normalized(cond, noise, k, eta)
        return self.normalizer.action.inverse(x)

    def forward(self, obs: Mapping[str, torch.Tensor], noise: torch.Tensor) -> torch.Tensor:
        return self.predict_action(obs, noise)
