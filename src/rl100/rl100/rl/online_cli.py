"""``rl100 online``: on-policy PPO + GAE over the denoising MDP in an ``rl100.sim`` task (no ROS).

Example::

    rl100 online --policy runs/offline3/policy.json --task juicing-place --critics runs/offline3/critics.safetensors \\
        --out runs/online --config online_small --set ppo.lambda_cd=1.0 --set iterations=100

``<out>/policy.json`` is the fine-tuned policy (``policy_best.json`` the best evaluated one, ``student.json`` the
one-step student when distilling); ``metrics.csv`` / ``tb/`` hold success per iteration. ``--resume`` continues
from ``<out>/state_*``.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from rl100.rl.online import online
from rl100.rl.online_config import load_online_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", help="diffusion policy JSON to fine-tune (train-il or an offline round)")
    parser.add_argument("--task", help="rl100.sim task name (or metaworld/<task>-v3)")
    parser.add_argument("--config", default="online_small", help="preset name in rl100/configs or a YAML path")
    parser.add_argument("--critics", help="offline-round critics.safetensors to warm-start V from (strict)")
    parser.add_argument("--student", help="consistency policy JSON to keep distilling (with ppo.lambda_cd > 0)")
    parser.add_argument("--out", help="run directory")
    parser.add_argument("--iterations", type=int, help="collect -> update iterations")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field, e.g. ppo.lr=3e-6, value.clip=0.2, task_options.max_steps=100")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/state_* if they exist")
    parser.add_argument("--stop-after", type=int, help="leave after this many iterations (resume later)")


def run(args: argparse.Namespace) -> int:
    cfg = load_online_config(args.config, args.overrides, policy=args.policy, task=args.task, critics=args.critics,
                             student=args.student, out=args.out, iterations=args.iterations, seed=args.seed,
                             device=args.device)
    command = shlex.join(["rl100", "online", *sys.argv[2:]]) if len(sys.argv) > 1 else ""
    result = online(cfg, resume=args.resume, command=command, stop_after=args.stop_after)
    if result is None:
        print(f"stopped after {args.stop_after} iterations; continue with --resume")
        return 0
    last = f"{result.success[-1]:.2f}" if result.success else "n/a"
    print(f"{result.iterations} iterations; eval success per iteration {[round(s, 2) for s in result.success]} "
          f"(last {last}); policy: {result.policy_path}")
    return 0
