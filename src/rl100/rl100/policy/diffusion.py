"""Diffusion policy (epsilon prediction): normaliser + observation encoder + conditional U-Net + DDPM/DDIM.

Contract (diffusion_policy's): raw observations ``{key: (B, To, *shape)}`` in, unnormalised actions
``(B, Ta, Da)`` out; the normaliser is a submodule, so it is saved and exported with the weights.
Actions to execute now: ``actions[:, n_obs - 1 : n_obs - 1 + n_action_steps]``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from rl100.keys import ACTION
from rl100.policy.config import PolicyConfig
from rl100.policy.encoders import ObsEncoder
from rl100.policy.normalizer import Normalizer
from rl100.policy.schedule import NoiseSchedule
from rl100.policy.unet import ConditionalUnet1D

KIND = "diffusion"


class DiffusionPolicy(nn.Module):
    kind = KIND

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.config = config
        self.normalizer = Normalizer(config)
        self.obs_encoder = ObsEncoder(config)
        self.unet = ConditionalUnet1D(config.action_dim, self.obs_encoder.out_dim, config.down_dims,
                                      config.kernel_size, config.n_groups, config.step_embed_dim)
        self.schedule = NoiseSchedule(config.num_train_timesteps, config.beta_schedule, config.clip_sample)

    # ------------------------------------------------------------------------------------------ helpers
    def encode(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Raw ``{key: (B, To, *shape)}`` (only the last ``n_obs`` steps are used) -> condition (B, C)."""
        to = self.config.n_obs
        obs = {k: obs[k][:, -to:] for k in self.config.obs_keys}
        return self.obs_encoder(self.normalizer.normalize_obs(obs))

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
    def sample_normalized(self, cond: torch.Tensor, noise: torch.Tensor, k: int | None = None,
                          eta: float | None = None, step_noise: torch.Tensor | None = None,
                          return_chain: bool = False):
        """DDIM chain from ``noise`` = x_T (B, Ta, Da) to normalised actions (B, Ta, Da).

        ``step_noise`` (B, K, Ta, Da): the per-step Gaussian draws when ``eta > 0`` (drawn here if None).
        ``return_chain``: also return the list of the K+1 states ``[x_T, ..., x_0]``.
        """
        k = self.config.num_inference_steps if k is None else k
        eta = self.config.eta if eta is None else eta
        ts = self.schedule.ddim_timesteps(k)
        x = noise
        chain = [x]
        r = self.schedule.num_steps // k
        for i, t in enumerate(ts):
            mean, sigma = self.schedule.ddim_step(x, self.denoise(x, t, cond), t, t - r, eta)
            if sigma > 0:
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
