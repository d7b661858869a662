"""Conditional 1-D temporal U-Net with FiLM conditioning (the diffusion-policy denoiser), written for rl100.

``forward(x, t, cond)``: ``x`` (B, Ta, Da) noisy action chunk, ``t`` (B,) or () diffusion timestep,
``cond`` (B, C) global condition (observation features) -> (B, Ta, Da) (epsilon, or the consistency
model's raw output). Each residual block applies FiLM: ``h * scale(c) + bias(c)`` with ``c`` the
concatenation of the timestep embedding and ``cond``. Time axis is downsampled ``len(down_dims) - 1`` times.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalEmbedding(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        half = dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / max(half - 1, 1))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        arg = t.to(torch.float32).reshape(-1, 1) * self.freqs  # (B, dim/2)
        return torch.cat([arg.sin(), arg.cos()], dim=-1)


class ConvBlock(nn.Module):
    """Conv1d -> GroupNorm -> Mish on (B, C, Ta)."""

    def __init__(self, cin: int, cout: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv1d(cin, cout, kernel, padding=kernel // 2), nn.GroupNorm(groups, cout),
                                   nn.Mish())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class FiLMResBlock(nn.Module):
    """Two conv blocks; the condition scales and shifts the first one's output per channel."""

    def __init__(self, cin: int, cout: int, cond_dim: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.conv1 = ConvBlock(cin, cout, kernel, groups)
        self.conv2 = ConvBlock(cout, cout, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * cout))
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()
        self.cout = cout

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x)  # (B, cout, T)
        scale, bias = self.film(cond).unsqueeze(-1).chunk(2, dim=1)  # (B, cout, 1) each
        h = self.conv2(h * scale + bias)
        return h + self.skip(x)


class ConditionalUnet1D(nn.Module):
    def __init__(self, action_dim: int, cond_dim: int, down_dims: tuple[int, ...], kernel_size: int = 5,
                 n_groups: int = 8, step_embed_dim: int = 128) -> None:
        super().__init__()
        e = step_embed_dim
        self.step_embed = nn.Sequential(SinusoidalEmbedding(e), nn.Linear(e, 4 * e), nn.Mish(), nn.Linear(4 * e, e))
        c = step_embed_dim + cond_dim
        dims = [action_dim, *down_dims]
        k, g = kernel_size, n_groups
        self.down = nn.ModuleList()
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            last = i == len(down_dims) - 1
            self.down.append(nn.ModuleList([FiLMResBlock(cin, cout, c, k, g), FiLMResBlock(cout, cout, c, k, g),
                                            nn.Conv1d(cout, cout, 3, 2, 1) if not last else nn.Identity()]))
        mid = down_dims[-1]
        self.mid = nn.ModuleList([FiLMResBlock(mid, mid, c, k, g), FiLMResBlock(mid, mid, c, k, g)])
        self.up = nn.ModuleList()
        rev = list(reversed(down_dims))
        for cin, cout in zip(rev[:-1], rev[1:], strict=True):
            self.up.append(nn.ModuleList([FiLMResBlock(2 * cin, cout, c, k, g), FiLMResBlock(cout, cout, c, k, g),
                                          nn.ConvTranspose1d(cout, cout, 4, 2, 1)]))
        self.final = nn.Sequential(ConvBlock(down_dims[0], down_dims[0], k, g), nn.Conv1d(down_dims[0], action_dim, 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        temb = self.step_embed(t).expand(b, -1)  # (B, E)
        c = torch.cat([temb, cond], dim=-1)  # (B, E + C)
        h = x.transpose(1, 2)  # (B, Da, Ta)
        skips = []
        for res1, res2, down in self.down:
            h = res2(res1(h, c), c)
            skips.append(h)
            h = down(h)
        for res in self.mid:
            h = res(h, c)
        for res1, res2, up in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            h = up(res2(res1(h, c), c))
        return self.final(h).transpose(1, 2)  # (B, Ta, Da)
