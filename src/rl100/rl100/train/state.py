"""Exact-resume training state without pickle: ``<name>.safetensors`` + ``<name>.json``.

Tensors: ``model.*``, ``ema.*``, ``optim.<param index>.<name>`` (AdamW moments, step), ``rng.torch`` (and
``rng.cuda``, the current CUDA device's generator, when CUDA is in use: diffusion noise is drawn there).
JSON: step, run config, optimiser param groups, LR-schedule state, EMA counters, extra metadata.
Batch indices are a pure function of (seed, step), so no data-loader state is needed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from rl100.policy.checkpoint import CheckpointError, load_state_strict, save_tensors, write_json
from rl100.policy.ema import EMA
from rl100.train.lr import CosineWarmup

FORMAT = "rl100.train_state"


def save_train_state(path: str | os.PathLike, *, step: int, model: nn.Module, ema: EMA | None,
                     optimizer: torch.optim.Optimizer, scheduler: CosineWarmup, config: dict[str, Any],
                     extra: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if ema is not None:
        tensors |= {f"ema.{k}": v for k, v in ema.model.state_dict().items()}
    opt = optimizer.state_dict()
    for idx, st in opt["state"].items():
        for name, v in st.items():
            if not torch.is_tensor(v):
                raise CheckpointError(f"optimizer state {idx}.{name} is not a tensor: {type(v).__name__}")
            tensors[f"optim.{idx}.{name}"] = v
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    save_tensors(path.with_suffix(".safetensors"), tensors, {"format": FORMAT})
    write_json(path.with_suffix(".json"), {
        "format": FORMAT, "step": step, "config": config, "optimizer_param_groups": opt["param_groups"],
        "scheduler": scheduler.state_dict(), "ema": ema.state() if ema is not None else None,
        "model_config": model.config.to_dict(), "extra": extra or {}})
    return path


def load_train_state(path: str | os.PathLike, *, model: nn.Module, ema: EMA | None,
                     optimizer: torch.optim.Optimizer, scheduler: CosineWarmup) -> dict[str, Any]:
    """Restore everything in place; returns the JSON (``step`` is the number of completed steps)."""
    path = Path(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} file")
    tensors = load_file(str(path.with_suffix(".safetensors")))
    load_state_strict(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, f"{path} model")
    if ema is not None:
        load_state_strict(ema.model, {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}, f"{path} ema")
        ema.load_state(meta["ema"])
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer_param_groups"]})
    scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return meta
