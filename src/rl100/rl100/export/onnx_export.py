"""Export a diffusion policy (K-step DDIM) or its consistency student (one step) to ONNX, with a model card.

The graph holds the normaliser and the observation encoders: inputs are raw observations
``<key>`` (B, To, *shape) and the initial noise ``noise`` (B, Ta, Da) (plus ``step_noise`` (B, K, Ta, Da) for
DDIM with eta > 0), so outputs are reproducible; output ``action`` (B, Ta, Da) is unnormalised.
The DDIM loop is unrolled (K U-Net evaluations sharing one set of weights).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rl100.export.card import ACTION_OUTPUT, NOISE_INPUT, STEP_NOISE_INPUT, io_spec, make_card, write_card
from rl100.export.fast_graph import FastGraphOptions, FastGraphPolicy
from rl100.policy.consistency import ConsistencyPolicy
from rl100.policy.diffusion import DiffusionPolicy

OPSET = 18


class _GraphPolicy(nn.Module):
    """Positional-argument wrapper: (obs_1, ..., obs_n, noise[, step_noise]) -> action."""

    def __init__(self, policy: nn.Module, kind: str) -> None:
        super().__init__()
        self.policy = policy
        self.kind = kind
        self.keys = policy.config.obs_keys
        self.stochastic = kind == "ddim" and policy.config.stochastic

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        obs = dict(zip(self.keys, args[: len(self.keys)], strict=True))
        noise = args[len(self.keys)]
        p = self.policy
        cond = p.encode(obs)
        if self.kind == "cm":
            x = p.sample_normalized(cond, noise)
        else:
            step_noise = args[len(self.keys) + 1] if self.stochastic else None
            x = p.sample_normalized(cond, noise, step_noise=step_noise)
        return p.normalizer.action.inverse(x)


def kind_of(policy: nn.Module) -> str:
    if isinstance(policy, ConsistencyPolicy):
        return "cm"
    if isinstance(policy, DiffusionPolicy):
        return "ddim"
    raise TypeError(f"cannot export {type(policy).__name__}")


def example_inputs(card_like: dict[str, Any], batch: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random inputs matching :func:`rl100.export.card.io_spec` (uint8 for images)."""
    g = torch.Generator().manual_seed(seed)
    inputs, _ = io_spec(card_like)
    out = {}
    for name, (shape, dtype) in inputs.items():
        shape = [batch, *shape[1:]]
        if dtype == "uint8":
            out[name] = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
        else:
            out[name] = torch.randn(shape, generator=g)
    return out


def export_onnx(policy: nn.Module, onnx_path: str | os.PathLike, *, control_rate_hz: float = 10.0,
                training_command: str | None = None, extra: dict[str, Any] | None = None,
                points_preprocessing: dict[str, Any] | None = None,
                fast: bool | FastGraphOptions = True) -> dict[str, Any]:
    """Write ``onnx_path`` and its card (``<stem>.card.json``); returns the card.

    ``fast``: trace :class:`rl100.export.fast_graph.FastGraphPolicy` (constant timestep embedding, fused FiLM,
    static reshapes, one-node GroupNorm and Mish, short convolutions as prepacked MatMuls; same outputs up to
    float32 rounding) instead of the reference wrapper ``_GraphPolicy``; a
    :class:`rl100.export.fast_graph.FastGraphOptions` picks the rewrites (default: all).

    ``points_preprocessing``: crop box + sampler of the point-cloud inputs, written into their card entries
    (see :func:`rl100.export.card.obs_entry`).
    """
    kind = kind_of(policy)
    policy = policy.eval().cpu()
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    config = policy.config.to_dict()
    pre_card = {"kind": kind, "observation_spec": [{"key": o["key"], "shape": [config["n_obs"], *o["shape"]],
                                                   "dtype": o["dtype"]} for o in config["obs"]],
                "action_spec": {"shape": [config["horizon"], config["action_dim"]]},
                "eta": config["eta"], "step_noise": config["step_noise"],
                "num_inference_steps": config["num_inference_steps"]}
    inputs = example_inputs(pre_card, batch=1)
    names = list(inputs)
    # FastGraphPolicy: the same function as _GraphPolicy (the parity reference) with far fewer ONNX nodes
    if fast:
        opts = fast if isinstance(fast, FastGraphOptions) else FastGraphOptions()
        wrapper = FastGraphPolicy(policy, kind, opts).eval()
    else:
        wrapper = _GraphPolicy(policy, kind).eval()
    tmp = onnx_path.with_name(onnx_path.name + ".tmp")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, tuple(inputs.values()), str(tmp), input_names=names, output_names=[ACTION_OUTPUT],
                          dynamic_axes={n: {0: "batch"} for n in [*names, ACTION_OUTPUT]}, opset_version=OPSET,
                          dynamo=False, external_data=False)
    os.replace(tmp, onnx_path)
    command = training_command if training_command is not None else " ".join(["rl100", *sys.argv[1:]])
    card = make_card(kind=kind, onnx_file=onnx_path, config=config, control_rate_hz=control_rate_hz,
                     training_command=command, normalizer=policy.normalizer.to_json(),
                     extra={"inputs": names, "torch_version": torch.__version__, **(extra or {})},
                     points_preprocessing=points_preprocessing)
    write_card(card, onnx_path)
    return card


__all__ = ["NOISE_INPUT", "STEP_NOISE_INPUT", "example_inputs", "export_onnx", "kind_of"]
