"""``rl100 eval``: run an exported policy through :class:`rl100.runtime.PolicyRuntime` in an ``rl100.sim`` task.

The runtime is the one the ROS policy node uses, so the success rate measured here is a measurement of the
deployed model. Needs the simulator extras; without them the command explains what is missing.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from rl100.runtime import PolicyRuntime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="exported .onnx policy (its .card.json beside it)")
    parser.add_argument("--task", required=True, help="rl100.sim task name")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="first environment seed (episode i uses seed + i)")
    parser.add_argument("--max-steps", type=int, default=0, help="step limit per episode (0: the env's own)")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: default)")
    parser.add_argument("--temporal-ensemble", action="store_true", help="replan every step and average chunks")
    parser.add_argument("--json", help="write the results here as JSON")


def evaluate(runtime: PolicyRuntime, env, episodes: int, seed: int, max_steps: int = 0) -> dict[str, object]:
    """Gymnasium-style ``env`` (dict observations, ``info['success']`` or a SUCCESS-like flag)."""
    successes, returns, lengths = [], [], []
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        runtime.reset()
        total, success, t = 0.0, False, 0
        while True:
            obs, reward, terminated, truncated, info = env.step(runtime.act(obs))
            total += float(reward)
            t += 1
            success = success or bool(info.get("success", False))
            if terminated or truncated or (max_steps and t >= max_steps):
                break
        successes.append(success)
        returns.append(total)
        lengths.append(t)
    return {"episodes": episodes, "success_rate": float(np.mean(successes)), "mean_return": float(np.mean(returns)),
            "mean_length": float(np.mean(lengths)), "latency": runtime.latency_stats()}


def run(args: argparse.Namespace) -> int:
    try:
        from rl100 import sim
    except ImportError as exc:  # the simulator extras are optional
        print(f"rl100 eval needs the simulator (pip install 'rl100[sim]'): {exc}")
        return 2
    runtime = PolicyRuntime(args.model, seed=args.seed, intra_op_threads=args.threads,
                            temporal_ensemble=args.temporal_ensemble)
    spec = runtime.card["observation_spec"]
    obs_kinds = tuple(sorted({o["kind"] if o["kind"] != "lowdim" else "state" for o in spec}))
    kw = {}
    for o in runtime.card["observation_spec"]:
        if o["kind"] == "rgb":
            kw["camera_size"] = tuple(o["shape"][1:3])
        if o["kind"] == "points":
            kw["n_points"] = int(o["shape"][1])
    env = sim.make_env(args.task, seed=args.seed, obs=obs_kinds, **kw)
    try:
        result = evaluate(runtime, env, args.episodes, args.seed, args.max_steps)
    finally:
        env.close()
    result |= {"task": args.task, "model": str(args.model), "kind": runtime.card["kind"]}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0
