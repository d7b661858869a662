"""``rl100 bench-experts``: scripted-expert success rate and episode length against the skill knob.

Prints a Markdown table (one row per task and skill) over ``--episodes`` seeded episodes each;
episode ``i`` uses env seed ``seed + i`` and expert seed ``seed + i``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rl100.sim import make_env, make_expert

DEFAULT_TASKS = ("juicing-place", "bowling", "pouring")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="comma-separated task names")
    parser.add_argument("--skills", default="1.0,0.5,0.3", help="comma-separated skill values in [0, 1]")
    parser.add_argument("--episodes", type=int, default=100, help="episodes per task and skill")
    parser.add_argument("--seed", type=int, default=0)


def evaluate(task: str, skill: float, episodes: int, seed: int) -> dict:
    """Success rate, mean length of successful episodes, and wall time for one task and skill."""
    env = make_env(task, seed=seed)
    successes, lengths = 0, []
    t0 = time.perf_counter()
    for i in range(episodes):
        expert = make_expert(task, env, skill=skill, seed=seed + i)
        obs, info = env.reset(seed=seed + i)
        expert.reset()
        steps, done = 0, False
        while not done:
            obs, _reward, terminated, truncated, info = env.step(expert.act(obs))
            steps += 1
            done = terminated or truncated
        if info.get("success"):
            successes += 1
            lengths.append(steps)
    env.close()
    return {"task": task, "skill": skill, "episodes": episodes, "success_rate": successes / episodes,
            "mean_length": float(np.mean(lengths)) if lengths else float("nan"),
            "seconds": time.perf_counter() - t0}


def run(args: argparse.Namespace) -> int:
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    skills = [float(s) for s in args.skills.split(",")]
    if args.episodes < 1 or any(not 0.0 <= s <= 1.0 for s in skills):
        raise SystemExit("--episodes must be >= 1 and every skill in [0, 1]")
    print(f"{args.episodes} episodes per row, seeds {args.seed}..{args.seed + args.episodes - 1}\n")
    print("| task | skill | success | mean length (successes) | wall s |")
    print("|---|---:|---:|---:|---:|")
    for task in tasks:
        for skill in skills:
            r = evaluate(task, skill, args.episodes, args.seed)
            print(f"| {task} | {skill:.2f} | {r['success_rate']:.2f} | {r['mean_length']:.1f} | {r['seconds']:.1f} |",
                  flush=True)
    return 0
