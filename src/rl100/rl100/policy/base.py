"""Shared body of the diffusion policy and its consistency student: normaliser, obs encoder, U-Net, schedule.

Both policies map raw observations ``{key: (B, To, *shape)}`` to a condition ``(B, C)`` the same way and
use the same U-Net and DDPM schedule; only how the U-Net is read out differs (DDIM chain vs one step).
The attribute names (``normalizer``, ``obs_encoder``, ``unet``) are the checkpoint's key prefixes.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from rl100.policy.config import PolicyConfig
from rl100.policy.encoders import ObsEncoder
from rl100.policy.normalizer import Normalizer
from rl100.policy.schedule import NoiseSchedule
from rl100.policy.unet import ConditionalUnet1D


class PolicyBase(nn.Module):
    kind = "base"

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.config = config
        self.normalizer = Normalizer(config)
        self.obs_encoder = ObsEncoder(config)
        self.unet = ConditionalUnet1D(config.action_dim, self.obs_encoder.out_dim, config.down_dims,
                                      config.kernel_size, config.n_groups, config.step_embed_dim)
        self.schedule = NoiseSchedule(config.num_train_timesteps, config.beta_schedule, config.clip_sample)

    def encode(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Raw ``{key: (B, To, *shape)}`` (only the last ``n_obs`` steps are used) -> condition (B, C)."""
        to = self.config.n_obs
        obs = {k: obs[k][:, -to:] for k in self.config.obs_keys}
        return self.obs_encoder(self.normalizer.normalize_obs(obs))
