"""Policy checkpoints without pickle: ``<name>.safetensors`` (tensors) + ``<name>.json`` (config, stats, metadata).

Loading is strict: a missing or unexpected tensor, or a shape / dtype mismatch, raises
:class:`CheckpointError` naming the keys. ``load_state_strict`` is shared with the trainer's resume files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from rl100.policy.config import PolicyConfig
from rl100.policy.consistency import ConsistencyPolicy
from rl100.policy.diffusion import DiffusionPolicy

FORMAT = "rl100.policy"
VERSION = 1
KINDS: dict[str, type[nn.Module]] = {DiffusionPolicy.kind: DiffusionPolicy, ConsistencyPolicy.kind: ConsistencyPolicy}


class CheckpointError(ValueError):
    """A checkpoint does not match the model it is loaded into; the message names the keys."""


def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".json", ".safetensors"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def load_state_strict(module: nn.Module, tensors: dict[str, torch.Tensor], what: str = "model") -> None:
    """``module.load_state_dict(tensors)`` that names every missing / unexpected / mis-shaped key."""
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    bad = [f"{k}: checkpoint {tuple(tensors[k].shape)} {tensors[k].dtype} vs model {tuple(own[k].shape)} {own[k].dtype}"
           for k in sorted(set(own) & set(tensors))
           if tensors[k].shape != own[k].shape or tensors[k].dtype != own[k].dtype]
    if missing or unexpected or bad:
        parts = [f"missing keys {missing}" if missing else "", f"unexpected keys {unexpected}" if unexpected else "",
                 f"mismatched {bad}" if bad else ""]
        raise CheckpointError(f"{what}: checkpoint does not match: " + "; ".join(p for p in parts if p))
    module.load_state_dict(tensors, strict=True)


def save_policy(path: str | os.PathLike, model: nn.Module, meta: dict[str, Any] | None = None) -> Path:
    """Write ``path.safetensors`` + ``path.json``; returns the JSON path."""
    st, js = _paths(path)
    st.parent.mkdir(parents=True, exist_ok=True)
    save_tensors(st, model.state_dict(), {"format": FORMAT, "kind": model.kind})
    write_json(js, {"format": FORMAT, "version": VERSION, "kind": model.kind, "weights": st.name,
                    "config": model.config.to_dict(), "normalizer": model.normalizer.to_json(), "meta": meta or {}})
    return js


def read_policy_json(path: str | os.PathLike) -> dict[str, Any]:
    _, js = _paths(path)
    data = json.loads(js.read_text())
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise CheckpointError(f"{js}: not an {FORMAT} v{VERSION} file (format={data.get('format')!r}, "
                              f"version={data.get('version')!r})")
    if data.get("kind") not in KINDS:
        raise CheckpointError(f"{js}: unknown policy kind {data.get('kind')!r} (known: {sorted(KINDS)})")
    return data


def load_policy(path: str | os.PathLike, map_location: str = "cpu") -> nn.Module:
    """Rebuild the policy from the JSON config and load the weights strictly. Returns it in eval mode."""
    st, js = _paths(path)
    data = read_policy_json(js)
    model = KINDS[data["kind"]](PolicyConfig.from_dict(data["config"]))
    load_state_strict(model, load_file(str(st), device=map_location), what=str(st))
    return model.eval()
