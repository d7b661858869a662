"""Inference-only graph of an exported policy: the same function as :class:`rl100.export.onnx_export._GraphPolicy`,
rewritten for ONNX Runtime's per-call time at batch 1: constants folded, and for the heavy parts (convolutions
on 4-16 step sequences, Mish, GroupNorm) the kernels that run fastest there, even at more nodes. Shares the
policy's modules and weights (nothing is renamed or retrained); the differences are float32 rounding only
(well under 1e-4).

What is folded or fused at export time, and why it is exact:

* the diffusion timestep is a constant of the graph (CM: ``t_start``; DDIM: the K chain timesteps), so the
  sinusoidal embedding and its MLP become constants;
* every FiLM layer is ``Linear(Mish(cat(temb, cond)))``; Mish is element-wise, so the layer splits into
  ``W_e Mish(temb) + b`` (a constant per timestep) plus ``W_c Mish(cond)``. The latter depends only on the
  observation: all FiLM layers' ``W_c`` are stacked into one matrix, evaluated once per call (once for all K
  DDIM steps), and one Split hands each block its scale and bias;
* GroupNorm reshapes use constant target shapes (``-1`` for the batch) instead of Shape/Gather/Concat chains;
  with ``FastGraphOptions.fused_norm`` (default) GroupNorm + its affine is one LayerNormalization node on
  (B, G, C/G * T) and Mish avoids ONNX Runtime's scalar Softplus kernel (:mod:`rl100.export.graph_ops`);
* with ``FastGraphOptions.matmul_conv_max_len`` (default 16) every convolution on a sequence that short runs
  as MatMuls with a prepacked weight (:class:`rl100.export.graph_ops.MatMulConv1d`);
* the action chunk stays in the U-Net's (B, Da, Ta) layout across the DDIM chain (the step is element-wise),
  so it is transposed once in and once out rather than twice per step;
* the consistency parametrisation's ``c_skip`` / ``c_out`` are constants;
* the history slice ``obs[:, -n_obs:]`` is dropped: the graph's inputs already have exactly ``n_obs`` steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rl100.export.graph_ops import GroupNormAffine, MatMulConv1d, mish
from rl100.policy.consistency import SIGMA_DATA, TIME_SCALE
from rl100.policy.encoders import LowDimEncoder
from rl100.policy.normalizer import module_name
from rl100.policy.unet import ConditionalUnet1D, ConvBlock, FiLMResBlock


@dataclass(frozen=True)
class FastGraphOptions:
    """Which rewrites :class:`FastGraphPolicy` applies (all exact up to float32 summation order).

    ``fused_norm``: GroupNorm + affine as one LayerNormalization node, Mish from Exp/Log/Tanh instead of
    ONNX Runtime's scalar Softplus kernel (:mod:`rl100.export.graph_ops`); ``matmul_conv_max_len``: every
    convolution (k-tap, 1x1 residual, stride-2 down, transposed up) whose input is at most this long runs as
    MatMuls with a prepacked weight (:class:`rl100.export.graph_ops.MatMulConv1d`); 0 keeps every ``Conv``.
    """

    fused_norm: bool = True
    matmul_conv_max_len: int = 16


LEGACY = FastGraphOptions(fused_norm=False, matmul_conv_max_len=0)  # the first fast graph (for benchmarks)


def _conv(conv: nn.Module, length: int, opts: FastGraphOptions) -> nn.Module:
    """``conv`` on inputs of length ``length``, as :class:`MatMulConv1d` where ``opts`` ask for it."""
    if not isinstance(conv, (nn.Conv1d, nn.ConvTranspose1d)) or length > opts.matmul_conv_max_len:
        return conv
    return MatMulConv1d(conv, length)


def _film_blocks(unet: ConditionalUnet1D) -> list[FiLMResBlock]:
    blocks = [b for res1, res2, _ in unet.down for b in (res1, res2)]
    blocks += list(unet.mid)
    blocks += [b for res1, res2, _ in unet.up for b in (res1, res2)]
    return blocks


class _FastConvBlock(nn.Module):
    """Conv1d -> GroupNorm (constant reshapes) -> Mish on (B, Cin, T) -> (B, Cout, T) for a known T."""

    def __init__(self, block: ConvBlock, length: int, opts: FastGraphOptions) -> None:
        super().__init__()
        conv, gn, _ = block.block
        self.conv = _conv(conv, length, opts)
        self.fused = opts.fused_norm
        self.groups, self.channels, self.eps, self.length = gn.num_groups, gn.num_channels, gn.eps, length
        if self.fused:
            self.norm = GroupNormAffine(gn, length)
        else:
            self.register_buffer("gamma", gn.weight.detach().reshape(-1, 1).clone())
            self.register_buffer("beta", gn.bias.detach().reshape(-1, 1).clone())
            self.register_buffer("ones", torch.ones(gn.num_groups))  # InstanceNormalization's identity affine
            self.register_buffer("zeros", torch.zeros(gn.num_groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        c, g, t = self.channels, self.groups, self.length
        if self.fused:
            return mish(self.norm(h)).reshape(-1, c, t)  # norm: (B, G, C/G * T)
        h = F.instance_norm(h.reshape(-1, g, (c // g) * t), weight=self.ones, bias=self.zeros, eps=self.eps)
        h = h.reshape(-1, c, t)
        return F.mish(h * self.gamma + self.beta)


class _FastFiLMBlock(nn.Module):
    def __init__(self, block: FiLMResBlock, length: int, opts: FastGraphOptions) -> None:
        super().__init__()
        self.conv1 = _FastConvBlock(block.conv1, length, opts)
        self.conv2 = _FastConvBlock(block.conv2, length, opts)
        self.skip = _conv(block.skip, length, opts)

    def forward(self, x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x) * scale + bias) + self.skip(x)


class FastUnet(nn.Module):
    """``ConditionalUnet1D`` at fixed timesteps ``timesteps``, on (B, Da, Ta) inputs.

    ``film(cond)`` -> the observation-dependent FiLM part (B, sum 2 C_j), computed once per call;
    ``forward(x, film, i)`` evaluates the U-Net at ``timesteps[i]`` (``x``: (B, Da, Ta) -> (B, Da, Ta)).
    """

    def __init__(self, unet: ConditionalUnet1D, timesteps: list[float], horizon: int,
                 opts: FastGraphOptions = FastGraphOptions()) -> None:
        super().__init__()
        blocks = _film_blocks(unet)
        self.splits = [s for b in blocks for s in (b.cout, b.cout)]
        e = unet.step_embed[1].in_features
        with torch.no_grad():
            temb = unet.step_embed(torch.tensor(timesteps, dtype=torch.float32))  # (K, E)
            w = torch.cat([b.film[1].weight for b in blocks], dim=0)  # (sum 2 C_j, E + C)
            bias = torch.cat([b.film[1].bias for b in blocks], dim=0)
            # constant part per timestep (float64 accumulate, then float32), (K, sum 2 C_j)
            const = (F.mish(temb).double() @ w[:, :e].double().T + bias.double()).float()
        self.register_buffer("w_cond", w[:, e:].detach().clone())
        self.register_buffer("film_const", const)
        self.total = int(w.shape[0])
        self.fast_mish = opts.fused_norm
        lengths = [horizon // 2**i for i in range(len(unet.down))]
        self.down = nn.ModuleList()
        for i, (res1, res2, down) in enumerate(unet.down):
            n = lengths[i]
            self.down.append(nn.ModuleList([_FastFiLMBlock(res1, n, opts), _FastFiLMBlock(res2, n, opts),
                                            _conv(down, n, opts)]))
        self.mid = nn.ModuleList([_FastFiLMBlock(b, lengths[-1], opts) for b in unet.mid])
        self.up = nn.ModuleList()
        for j, (res1, res2, up) in enumerate(unet.up):
            n = lengths[-1 - j]
            self.up.append(nn.ModuleList([_FastFiLMBlock(res1, n, opts), _FastFiLMBlock(res2, n, opts),
                                          _conv(up, n, opts)]))
        self.final_block = _FastConvBlock(unet.final[0], horizon, opts)
        self.final_conv = _conv(unet.final[1], horizon, opts)

    def film(self, cond: torch.Tensor) -> torch.Tensor:
        return F.linear(mish(cond) if self.fast_mish else F.mish(cond), self.w_cond)  # (B, sum 2 C_j)

    def forward(self, x: torch.Tensor, film: torch.Tensor, i: int) -> torch.Tensor:
        f = (film + self.film_const[i]).reshape(-1, self.total, 1)
        parts = iter(torch.split(f, self.splits, dim=1))
        h = x
        skips = []
        for res1, res2, down in self.down:
            h = res1(h, next(parts), next(parts))
            h = res2(h, next(parts), next(parts))
            skips.append(h)
            h = down(h)
        for res in self.mid:
            h = res(h, next(parts), next(parts))
        for res1, res2, up in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            h = res1(h, next(parts), next(parts))
            h = up(res2(h, next(parts), next(parts)))
        return self.final_conv(self.final_block(h))


class FastGraphPolicy(nn.Module):
    """Drop-in for ``_GraphPolicy`` at export: (obs_1, ..., obs_n, noise[, step_noise]) -> action."""

    def __init__(self, policy: nn.Module, kind: str, opts: FastGraphOptions = FastGraphOptions()) -> None:
        super().__init__()
        cfg = policy.config
        self.policy = policy
        self.kind = kind
        self.opts = opts
        self.specs = list(cfg.obs)
        self.n_obs = cfg.n_obs
        self.stochastic = kind == "ddim" and cfg.stochastic
        self.clip = cfg.clip_sample
        sched = policy.schedule
        if kind == "cm":
            self.timesteps = [float(policy.t_start)]
            t = torch.tensor([float(policy.t_start)], dtype=torch.float32)
            s = t * TIME_SCALE  # as ConsistencyPolicy.consistency computes it, in float32
            self.c_skip = float((SIGMA_DATA**2 / (s**2 + SIGMA_DATA**2))[0])
            self.c_out = float((s / (s**2 + SIGMA_DATA**2).sqrt())[0])
        else:
            self.k = cfg.num_inference_steps
            self.eta = cfg.eta
            self.timesteps = [float(t) for t in sched.ddim_timesteps(self.k)]
        self.unet = FastUnet(policy.unet, self.timesteps, cfg.horizon, opts)

    def _encoder(self, enc: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``enc(x)``; the low-dim MLP's Mish without the slow Softplus kernel when ``fused_norm``."""
        if not (self.opts.fused_norm and isinstance(enc, LowDimEncoder)):
            return enc(x)
        for layer in enc.net:
            x = mish(x) if isinstance(layer, nn.Mish) else layer(x)
        return x

    def encode(self, obs: list[torch.Tensor]) -> torch.Tensor:
        p = self.policy
        feats = []
        for s, x in zip(self.specs, obs, strict=True):
            name = module_name(s.key)
            x = p.normalizer.obs[name](x)  # (B, To, *shape)
            enc = p.obs_encoder.encoders[name]
            feats.append(self._encoder(enc, x.reshape(-1, *s.shape)).reshape(-1, self.n_obs, enc.out_dim))  # (B, To, F)
        return torch.cat(feats, dim=-1).reshape(-1, p.obs_encoder.out_dim)  # (B, To * F_total)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        n = len(self.specs)
        cond = self.encode(list(args[:n]))
        film = self.unet.film(cond)
        x = args[n].transpose(1, 2)  # (B, Da, Ta)
        if self.kind == "cm":
            x = self.c_skip * x + self.c_out * self.unet(x, film, 0)
            if self.clip:
                x = x.clamp(-1.0, 1.0)
        else:
            sched = self.policy.schedule
            step_noise = args[n + 1].transpose(2, 3) if self.stochastic else None  # (B, K, Da, Ta)
            ratio = sched.num_steps // self.k
            for i, t in enumerate(self.timesteps):
                t = int(t)
                mean, sigma = sched.ddim_step(x, self.unet(x, film, i), t, t - ratio, self.eta)
                x = mean + sigma * step_noise[:, i] if self.stochastic and sigma > 0 else mean
        return self.policy.normalizer.action.inverse(x.transpose(1, 2))
