"""Building blocks of the fast export graph (:mod:`rl100.export.fast_graph`) that trace to chosen ONNX ops.

Each is exact in float32 arithmetic up to summation order (what the export parity tests bound):

* :func:`mish` -> ``Exp``, ``Add``, ``Log``, ``Tanh``, ``Mul`` (vectorised kernels) instead of ``Softplus`` (a
  scalar kernel in ONNX Runtime, 10x slower than the five together) + ``Tanh`` + ``Mul``;
* :func:`group_layer_norm` -> one ``LayerNormalization`` node that normalises each group and applies the
  per-channel affine: on ``(B, G, N)`` (``N`` = channels per group x time) the scale and bias have shape
  ``(G, N)`` (NumPy-broadcast over the batch, as the ONNX function definition of LayerNormalization allows),
  replacing ``InstanceNormalization`` + ``Mul`` + ``Add``;
* :class:`MatMulConv1d` -> a ``Conv1d`` / ``ConvTranspose1d`` on a fixed, short sequence as MatMuls: the
  zero-padded taps (im2col; for the transposed conv, its scatter) come from one MatMul with a constant 0/1
  matrix, the kernel is one MatMul on the time-major ``(B, T, Cin * k)`` columns whose weight is the
  right-hand operand (ONNX Runtime prepacks it). ONNX Runtime's ``Conv`` runs the weight as the left operand
  against a ``T``-wide panel, which wastes most of each SIMD tile when ``T`` is 4 or 8, and its
  ``ConvTranspose`` adds a col2im pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _GroupLayerNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor,  # noqa: ARG004
                eps: float) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], eps=eps) * scale + bias

    @staticmethod
    def symbolic(g, x, scale, bias, eps):
        return g.op("LayerNormalization", x, scale, bias, axis_i=2, epsilon_f=eps)


def mish(x: torch.Tensor) -> torch.Tensor:
    """``x * tanh(log(exp(x) + 1))``: Mish from ONNX Runtime's vectorised Exp, Log and Tanh kernels.

    ONNX Runtime (1.32) has no Mish kernel (the op is expanded to Softplus, Tanh, Mul) and its Softplus is
    scalar: ~17 us per 1024 floats here, against ~1.5 us for each of the five ops below. Large ``x``: exp
    overflows to inf, log(inf) = inf, tanh(inf) = 1, so the result is ``x`` (no NaN); very negative ``x``
    gives 0 instead of a value below 1e-6 in magnitude.
    """
    return x * torch.tanh(torch.log(torch.exp(x) + 1.0))


def group_layer_norm(x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """``x`` (B, G, N) normalised over N per (batch, group), then ``* scale + bias`` ((G, N) each) -> (B, G, N)."""
    return _GroupLayerNorm.apply(x, scale, bias, eps)


class GroupNormAffine(nn.Module):
    """``nn.GroupNorm`` on (B, C, T) for a known ``T``, as one LayerNormalization on (B, G, C/G * T).

    The per-channel weight and bias are repeated over time: ``scale[g, j * T + t] = weight[g * C/G + j]``.
    ``forward`` returns (B, G, C/G * T) (reshape to (B, C, T) after any element-wise op).
    """

    def __init__(self, gn: nn.GroupNorm, length: int) -> None:
        super().__init__()
        g, c = gn.num_groups, gn.num_channels
        self.groups, self.channels, self.eps, self.length = g, c, gn.eps, length
        n = (c // g) * length
        self.register_buffer("scale", gn.weight.detach().reshape(g, c // g, 1).expand(g, c // g, length)
                             .reshape(g, n).clone())
        self.register_buffer("bias", gn.bias.detach().reshape(g, c // g, 1).expand(g, c // g, length)
                             .reshape(g, n).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = (self.channels // self.groups) * self.length
        return group_layer_norm(x.reshape(-1, self.groups, n), self.scale, self.bias, self.eps)


def gather_matrix(conv: nn.Conv1d | nn.ConvTranspose1d, length: int) -> torch.Tensor:
    """(T_in, k T_out) 0/1 matrix ``M`` with ``(x @ M)[..., i * T_out + t]`` = the input step that kernel tap ``i``
    of output step ``t`` reads (0 where it falls in the zero padding or, transposed, nowhere).

    ``Conv1d``: tap ``i`` of output ``t`` reads ``s t + i - p``; ``ConvTranspose1d``: input ``u`` reaches output
    ``t = s u + i - p`` through tap ``i`` (stride ``s``, padding ``p``, kernel ``k``).
    """
    (k,), (s,), (p,) = conv.kernel_size, conv.stride, conv.padding
    transposed = isinstance(conv, nn.ConvTranspose1d)
    out = (length - 1) * s - 2 * p + k if transposed else (length + 2 * p - k) // s + 1
    m = torch.zeros(length, k * out)
    for i in range(k):
        for t in range(out):
            if transposed:
                u, r = divmod(t + p - i, s)
                ok = r == 0 and 0 <= u < length
            else:
                u = s * t + i - p
                ok = 0 <= u < length
            if ok:
                m[u, i * out + t] = 1.0
    return m


class MatMulConv1d(nn.Module):
    """``Conv1d`` / ``ConvTranspose1d`` (any stride and zero padding; no groups, dilation or output padding) on
    (B, Cin, T) -> (B, Cout, T_out) for a known ``T``, as MatMuls.

    (B, Cin, T) @ M (T, k T_out) (:func:`gather_matrix`) -> (B, Cin, k T_out) -> reshape (B, Cin k, T_out)
    -> transpose (B, T_out, Cin k) -> @ W (Cin k, Cout) + b -> (B, T_out, Cout) -> transpose (B, Cout, T_out),
    ``W[c k + i, o]`` = the weight from input channel ``c`` to output ``o`` at tap ``i``. A 1x1 stride-1
    convolution skips the gather.
    """

    def __init__(self, conv: nn.Conv1d | nn.ConvTranspose1d, length: int) -> None:
        super().__init__()
        transposed = isinstance(conv, nn.ConvTranspose1d)
        if (conv.dilation != (1,) or conv.groups != 1 or conv.padding_mode != "zeros"
                or (transposed and conv.output_padding != (0,))):
            raise ValueError(f"MatMulConv1d needs no groups, dilation or output padding, zero padding: {conv}")
        w = conv.weight.detach()  # Conv1d (Cout, Cin, k); ConvTranspose1d (Cin, Cout, k)
        w = w.permute(0, 2, 1) if transposed else w.permute(1, 2, 0)  # (Cin, k, Cout)
        cin, k, cout = w.shape
        gather = gather_matrix(conv, length)
        self.cin, self.k, self.out_len = cin, k, gather.shape[1] // k
        self.identity = bool(k == 1 and gather.shape[0] == gather.shape[1] and torch.equal(gather, torch.eye(length)))
        self.register_buffer("gather", gather)
        self.register_buffer("weight", w.reshape(cin * k, cout).contiguous())
        bias = conv.bias if conv.bias is not None else torch.zeros(cout)
        self.register_buffer("bias", bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.identity:
            cols = x.transpose(1, 2)  # (B, T, Cin)
        else:
            cols = (x @ self.gather).reshape(-1, self.cin * self.k, self.out_len).transpose(1, 2)  # (B, T_out, Cin k)
        return (cols @ self.weight + self.bias).transpose(1, 2)  # (B, Cout, T_out)
