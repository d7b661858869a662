"""``rl100 export``: a policy checkpoint (``policy.json`` + ``.safetensors``) -> ``<out>.onnx`` + ``<out>.card.json``.

A consistency student exports as ``cm`` (one step); a diffusion policy as ``ddim`` (K unrolled steps).
"""

from __future__ import annotations

import argparse
import json
import sys

from rl100.policy.checkpoint import load_policy, read_policy_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="policy checkpoint (policy.json from train-il / distill)")
    parser.add_argument("--out", required=True, help="output .onnx path (the card goes beside it)")
    parser.add_argument("--control-rate", type=float, default=10.0, help="control rate in Hz written to the card")
    parser.add_argument("--ddim-steps", type=int, help="DDIM steps K for a diffusion policy (default: its config)")
    parser.add_argument("--eta", type=float, help="DDIM eta for a diffusion policy (default: its config)")
    parser.add_argument("--step-noise", action=argparse.BooleanOptionalAction, default=None,
                        help="a diffusion policy's sampler adds noise at each step when eta > 0 (the graph then "
                             "takes a step_noise input); --no-step-noise: each step's mean (default: its config)")
    parser.add_argument("--training-command", help="recipe to record in the card (default: from the checkpoint)")
    parser.add_argument("--crop-lo", help="x,y,z: point-cloud crop box low corner, m, base frame "
                        "(default: the training dataset's meta points_lo)")
    parser.add_argument("--crop-hi", help="x,y,z: point-cloud crop box high corner (default: dataset meta points_hi)")
    parser.add_argument("--sampler", choices=("random", "fps"),
                        help="point-cloud downsampler (default: dataset meta points_sampler)")


def _xyz(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise SystemExit(f"a crop corner must look like x,y,z, got {text!r}")
    return values


def points_preprocessing(args: argparse.Namespace, meta: dict) -> dict | None:
    """Crop box + sampler for the card's points inputs: the command line over the training dataset's meta.

    The dataset is the one recorded in the checkpoint's meta (``dataset``, written by train-il / distill);
    its meta has ``points_lo``, ``points_hi``, ``points_sampler`` when ``rl100 collect`` wrote it.
    """
    from rl100.pointcloud import check_preprocessing
    from rl100.pointcloud import points_preprocessing as from_meta

    found: dict = {}
    dataset = meta.get("dataset")
    if dataset:
        try:
            from rl100.data.files import read_dataset_header

            found = from_meta(read_dataset_header(dataset)["meta"]) or {}
        except (OSError, ValueError) as exc:
            print(f"export: cannot read the point-cloud preprocessing of dataset {dataset}: {exc}", file=sys.stderr)
    if args.crop_lo:
        found["crop_lo"] = _xyz(args.crop_lo)
    if args.crop_hi:
        found["crop_hi"] = _xyz(args.crop_hi)
    if args.sampler:
        found["sampler"] = args.sampler
    if not found:
        return None
    try:
        return check_preprocessing(found)
    except ValueError as exc:
        raise SystemExit(f"export: {exc} (give --crop-lo, --crop-hi and --sampler)") from None


def run(args: argparse.Namespace) -> int:
    from rl100.export.onnx_export import export_onnx

    policy = load_policy(args.checkpoint)
    meta = read_policy_json(args.checkpoint).get("meta", {})
    if policy.kind == "diffusion":
        if args.ddim_steps is not None:
            policy.config.num_inference_steps = args.ddim_steps
        if args.eta is not None:
            policy.config.eta = args.eta
        if args.step_noise is not None:
            policy.config.step_noise = args.step_noise
        policy.config.__post_init__()  # validate the edited values
    elif args.ddim_steps is not None or args.eta is not None or args.step_noise is not None:
        raise SystemExit("--ddim-steps / --eta / --step-noise apply to diffusion policies only")
    command = args.training_command or meta.get("command", "")
    has_points = any(o.kind == "points" for o in policy.config.obs)
    preprocessing = points_preprocessing(args, meta) if has_points else None
    if has_points and preprocessing is None:
        print("export: warning: no point-cloud crop box / sampler known (dataset meta or --crop-lo/--crop-hi/"
              "--sampler); the ROS policy node will refuse this model", file=sys.stderr)
    card = export_onnx(policy, args.out, control_rate_hz=args.control_rate, training_command=command,
                       extra={"source_checkpoint": str(args.checkpoint)}, points_preprocessing=preprocessing)
    print(json.dumps({k: card[k] for k in ("kind", "onnx_file", "sha256", "n_obs", "horizon", "n_action_steps",
                                           "num_inference_steps")}, indent=2))
    return 0
