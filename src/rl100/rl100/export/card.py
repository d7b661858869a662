"""Model card: the JSON written beside an exported ``.onnx`` policy, and its checks (no torch, no onnx import).

The card states the graph's contract so a runtime can refuse a model it would misuse:
inputs ``<obs key>`` (B, To, *shape), ``noise`` (B, Ta, Da) [, ``step_noise`` (B, K, Ta, Da) for DDIM with
eta > 0], output ``action`` (B, Ta, Da) unnormalised; ``action_start = n_obs - 1`` is the chunk index of the
current step. ``sha256`` is the hash of the ``.onnx`` file's bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

CARD_FORMAT = "rl100.model_card"
CARD_VERSION = 1
CARD_KINDS = ("cm", "ddim")
NOISE_INPUT = "noise"
STEP_NOISE_INPUT = "step_noise"
ACTION_OUTPUT = "action"
BATCH_DIM = "batch"


class CardError(ValueError):
    """A model card is malformed or does not describe the ONNX file beside it."""


def card_path(onnx_path: str | os.PathLike) -> Path:
    """``policy.onnx`` -> ``policy.card.json``."""
    p = Path(onnx_path)
    return p.with_name(p.stem + ".card.json")


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_id(onnx_path: str | os.PathLike, sha256: str) -> str:
    """How a running model is named in messages and logs: ``<file name>:<sha256[:12]>``."""
    return f"{Path(onnx_path).name}:{sha256[:12]}"


def io_spec(card: dict[str, Any]) -> tuple[dict[str, tuple[list[Any], str]], dict[str, tuple[list[Any], str]]]:
    """Expected graph ``inputs`` and ``outputs``: name -> (shape with ``"batch"`` as dim 0, dtype)."""
    ta, da = card["action_spec"]["shape"]
    inputs = {o["key"]: ([BATCH_DIM, *o["shape"]], o["dtype"]) for o in card["observation_spec"]}
    inputs[NOISE_INPUT] = ([BATCH_DIM, ta, da], "float32")
    if card["kind"] == "ddim" and card.get("eta", 0.0) > 0 and card.get("step_noise", True):
        inputs[STEP_NOISE_INPUT] = ([BATCH_DIM, card["num_inference_steps"], ta, da], "float32")
    return inputs, {ACTION_OUTPUT: ([BATCH_DIM, ta, da], "float32")}


def obs_entry(obs: dict[str, Any], n_obs: int, points_preprocessing: dict[str, Any] | None) -> dict[str, Any]:
    """One ``observation_spec`` entry; a ``points`` input also carries its preprocessing when known.

    The preprocessing (``crop_lo``, ``crop_hi`` (3,) m in the robot base frame, ``sampler`` "random" | "fps";
    N is ``shape[1]``) is what a runtime fed raw clouds (the ROS policy node) must apply, with
    :func:`rl100.pointcloud.crop_and_sample`, to reproduce the training inputs.
    """
    entry = {"key": obs["key"], "shape": [n_obs, *obs["shape"]], "dtype": obs["dtype"], "kind": obs["kind"]}
    if obs["kind"] == "points" and points_preprocessing is not None:
        from rl100.pointcloud import check_preprocessing

        entry.update(check_preprocessing(points_preprocessing))
    return entry


def make_card(*, kind: str, onnx_file: str | os.PathLike, config: dict[str, Any], control_rate_hz: float,
              training_command: str, normalizer: dict[str, Any], extra: dict[str, Any] | None = None,
              points_preprocessing: dict[str, Any] | None = None) -> dict[str, Any]:
    """Card for ``onnx_file`` (already written) from a :class:`PolicyConfig` dict.

    ``points_preprocessing``: ``{"crop_lo", "crop_hi", "sampler"}`` the point-cloud inputs were made with
    (see :func:`obs_entry`); None leaves them out (a runtime that crops live clouds will refuse the model).
    """
    if kind not in CARD_KINDS:
        raise CardError(f"kind must be one of {CARD_KINDS}, got {kind!r}")
    to, ta, da = config["n_obs"], config["horizon"], config["action_dim"]
    return {
        "format": CARD_FORMAT,
        "version": CARD_VERSION,
        "kind": kind,
        "onnx_file": Path(onnx_file).name,
        "sha256": sha256_file(onnx_file),
        "observation_spec": [obs_entry(o, to, points_preprocessing) for o in config["obs"]],
        "action_spec": {"key": ACTION_OUTPUT, "shape": [ta, da], "dtype": "float32", "action_start": to - 1,
                        "units": "absolute end-effector target (see rl100.keys.ACTION)"},
        "n_obs": to,
        "horizon": ta,
        "n_action_steps": config["n_action_steps"],
        "num_inference_steps": 1 if kind == "cm" else config["num_inference_steps"],
        "eta": 0.0 if kind == "cm" else float(config["eta"]),
        "step_noise": kind == "ddim" and bool(config["step_noise"]),
        "control_rate_hz": float(control_rate_hz),
        "training_command": training_command,
        "normalizer": normalizer,
        "policy_config": config,
        **(extra or {}),
    }


def write_card(card: dict[str, Any], onnx_path: str | os.PathLike) -> Path:
    path = card_path(onnx_path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    card = json.loads(Path(path).read_text())
    if card.get("format") != CARD_FORMAT or card.get("version") != CARD_VERSION:
        raise CardError(f"{path}: not a {CARD_FORMAT} v{CARD_VERSION} card "
                        f"(format={card.get('format')!r}, version={card.get('version')!r})")
    required = ["kind", "sha256", "observation_spec", "action_spec", "n_obs", "horizon", "n_action_steps",
                "num_inference_steps", "control_rate_hz"]
    missing = [k for k in required if k not in card]
    if missing:
        raise CardError(f"{path}: card lacks fields {missing}")
    if card["kind"] not in CARD_KINDS:
        raise CardError(f"{path}: kind must be one of {CARD_KINDS}, got {card['kind']!r}")
    ta, da = card["action_spec"]["shape"]
    if not 1 <= card["n_action_steps"] <= ta - card["action_spec"]["action_start"]:
        raise CardError(f"{path}: n_action_steps {card['n_action_steps']} does not fit the horizon {ta}")
    return card


def check_graph_io(card: dict[str, Any], inputs: dict[str, tuple[list[Any], str]],
                   outputs: dict[str, tuple[list[Any], str]], where: str = "model") -> None:
    """Compare the card with the graph's actual ``name -> (shape, dtype)``; symbolic dims (str/None) match the batch.

    Raises :class:`CardError` listing every difference.
    """
    want_in, want_out = io_spec(card)
    problems = []
    for side, want, have in (("input", want_in, inputs), ("output", want_out, outputs)):
        for name in sorted(set(want) - set(have)):
            problems.append(f"{side} {name!r} in the card but not in the graph")
        for name in sorted(set(have) - set(want)):
            problems.append(f"{side} {name!r} in the graph but not in the card")
        for name in sorted(set(want) & set(have)):
            (ws, wd), (hs, hd) = want[name], have[name]
            dims_ok = len(ws) == len(hs) and all(
                (w == BATCH_DIM and not isinstance(h, int)) or w == h for w, h in zip(ws, hs, strict=True))
            if not dims_ok or wd != hd:
                problems.append(f"{side} {name!r}: card says {ws} {wd}, graph has {hs} {hd}")
    if problems:
        raise CardError(f"{where}: the model card does not match the ONNX graph: " + "; ".join(problems))
