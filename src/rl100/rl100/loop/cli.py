"""``rl100 loop-sim``: RL-100's iterative offline RL in simulation, resumable (rerun the same command to continue).

Example::

    rl100 loop-sim --policy runs/il/policy.json --student runs/cm/policy.json --task juicing-place \\
        --rounds 3 --episodes 20 --eval-episodes 20 --out runs/loop \\
        --set offline.critic_steps=1000 --set offline.ppo_iters=50 --set il.steps=500 --set distill.steps=2000

Per round: collect with the current policy (a scripted operator takes over near failure; its steps are flagged
interventions) -> merge -> offline round (critics -> PPO -> OPE gate) -> re-imitation -> distil -> export (CM,
DDIM) -> evaluate. Writes ``<out>/ledger.json``, ``round_<r>/``, ``summary.md`` and ``success.png``.
"""

from __future__ import annotations

import argparse

from rl100.loop.config import load_loop_config
from rl100.loop.run import run_loop


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, help="initial diffusion policy JSON (train-il)")
    parser.add_argument("--task", required=True, help="rl100.sim task name")
    parser.add_argument("--rounds", type=int, help="offline RL rounds after round 0 (default 3)")
    parser.add_argument("--episodes", type=int, help="episodes collected per round (default 20)")
    parser.add_argument("--eval-episodes", type=int, help="evaluation episodes per round (default 20)")
    parser.add_argument("--out", help="run directory (default runs/loop)")
    parser.add_argument("--dataset", help="initial data (default: the policy's training dataset)")
    parser.add_argument("--student", help="consistency student of the initial policy (round 0 skips distillation)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--no-operator", action="store_true", help="collect without the scripted operator")
    parser.add_argument("--no-reil", action="store_true", help="skip re-imitation after the offline round")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field, e.g. offline.ppo_iters=20, offline.bc_weight=0.1, il.steps=500, "
                             "distill.steps=2000, operator.stall_steps=30, task_options.max_steps=150, eval_gate=true")
    parser.add_argument("--stop-after", type=int, help="leave after running this many steps (rerun to continue)")


def config_from_args(args: argparse.Namespace):
    """The LoopConfig these command-line arguments ask for (preset, --set overrides, flags)."""
    cfg = load_loop_config(args.overrides, policy=args.policy, task=args.task, rounds=args.rounds,
                           episodes=args.episodes, eval_episodes=args.eval_episodes, out=args.out,
                           dataset=args.dataset, student=args.student, seed=args.seed, device=args.device,
                           reil=False if args.no_reil else None)
    if args.no_operator:
        cfg.operator = None
    return cfg


def run(args: argparse.Namespace, collector=None, evaluator=None) -> int:
    """``collector`` / ``evaluator``: where episodes run (default: this process's simulation)."""
    cfg = config_from_args(args)
    rows = run_loop(cfg, collector, evaluator, stop_after=args.stop_after)
    if rows is None:
        print(f"stopped after {args.stop_after} steps; rerun the same command to continue ({cfg.out}/ledger.json)")
        return 0
    for r in rows:
        print(f"round {r['round']}: CM success {r['cm_success']}, DDIM success {r['ddim_success']}, "
              f"gate {r['gate_accepted']}, collected success {r['rollout_success']}, env steps {r['env_steps_total']}")
    print(f"summary: {cfg.out}/summary.md")
    return 0
