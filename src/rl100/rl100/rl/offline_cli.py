"""``rl100 offline-round``: one offline RL improvement round (critics -> PPO -> OPE gate) on a dataset.

Example::

    rl100 offline-round --policy runs/il/policy.json --dataset data/merged --out runs/offline1 \\
        --set ppo.lr=3e-6 --set critic.expectile=0.7 --set amq_horizon=5

Prints the gate decision; ``<out>/policy.json`` is the policy to use next (the new one if accepted).
"""

from __future__ import annotations

import argparse
from typing import Any

from rl100.rl.offline import OfflineConfig, offline_round
from rl100.train.config import parse_value, set_dotted


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, help="diffusion policy JSON (train-il or a previous round)")
    parser.add_argument("--dataset", required=True, help="dataset root (demonstrations + rollouts, with rewards)")
    parser.add_argument("--out", default="runs/offline", help="run directory")
    parser.add_argument("--critic-steps", type=int)
    parser.add_argument("--ppo-iters", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--amq-horizon", type=int, help="AM-Q rollout chunks (1: E_s Q(s, pi(s)), no model)")
    parser.add_argument("--lambda-cd", type=float, help="consistency-distillation weight (0: no student)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field, e.g. ppo.clip=0.25, critic.gamma=0.99, denoising.sigma_max=0.1")


def build_config(args: argparse.Namespace) -> OfflineConfig:
    raw: dict[str, Any] = {"dataset": args.dataset, "policy": args.policy, "out": args.out}
    for name in ("critic_steps", "ppo_iters", "batch_size", "amq_horizon", "seed", "device"):
        if getattr(args, name) is not None:
            raw[name] = getattr(args, name)
    if args.lambda_cd is not None:
        raw.setdefault("ppo", {})["lambda_cd"] = args.lambda_cd
    for item in args.overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        set_dotted(raw, key, parse_value(value))
    return OfflineConfig(**raw)


def run(args: argparse.Namespace) -> int:
    result = offline_round(build_config(args))
    print(f"{result.reason} (J_old={result.j_old:.4g}, J_new={result.j_new:.4g}); policy: {result.policy_path}")
    return 0
