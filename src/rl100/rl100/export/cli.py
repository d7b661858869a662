"""``rl100 export``: a policy checkpoint (``policy.json`` + ``.safetensors``) -> ``<out>.onnx`` + ``<out>.card.json``.

A consistency student exports as ``cm`` (one step); a diffusion policy as ``ddim`` (K unrolled steps).
"""

from __future__ import annotations

import argparse
import json

from rl100.policy.checkpoint import load_policy, read_policy_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="policy checkpoint (policy.json from train-il / distill)")
    parser.add_argument("--out", required=True, help="output .onnx path (the card goes beside it)")
    parser.add_argument("--control-rate", type=float, default=10.0, help="control rate in Hz written to the card")
    parser.add_argument("--ddim-steps", type=int, help="DDIM steps K for a diffusion policy (default: its config)")
    parser.add_argument("--eta", type=float, help="DDIM eta for a diffusion policy (default: its config)")
    parser.add_argument("--training-command", help="recipe to record in the card (default: from the checkpoint)")


def run(args: argparse.Namespace) -> int:
    from rl100.export.onnx_export import export_onnx

    policy = load_policy(args.checkpoint)
    meta = read_policy_json(args.checkpoint).get("meta", {})
    if policy.kind == "diffusion":
        if args.ddim_steps is not None:
            policy.config.num_inference_steps = args.ddim_steps
        if args.eta is not None:
            policy.config.eta = args.eta
        policy.config.__post_init__()  # validate the edited values
    elif args.ddim_steps is not None or args.eta is not None:
        raise SystemExit("--ddim-steps / --eta apply to diffusion policies only")
    command = args.training_command or meta.get("command", "")
    card = export_onnx(policy, args.out, control_rate_hz=args.control_rate, training_command=command,
                       extra={"source_checkpoint": str(args.checkpoint)})
    print(json.dumps({k: card[k] for k in ("kind", "onnx_file", "sha256", "n_obs", "horizon", "n_action_steps",
                                           "num_inference_steps")}, indent=2))
    return 0
