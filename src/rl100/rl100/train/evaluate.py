"""``rl100 eval``: run an exported policy through :class:`rl100.runtime.PolicyRuntime` in an ``rl100.sim`` task.

The runtime is the one the ROS policy node uses, so the success rate measured here is a measurement of the
deployed model. Needs the simulator extras; without them the command explains what is missing.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from rl100.runtime import PolicyRuntime
from rl100.runtime.policy_runtime import latency_stats


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="exported .onnx policy (its .card.json beside it)")
    parser.add_argument("--task", required=True, help="rl100.sim task name")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="first environment seed (episode i uses seed + i)")
    parser.add_argument("--max-steps", type=int, default=0, help="step limit per episode (0: the env's own)")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: default)")
    parser.add_argument("--temporal-ensemble", action="store_true", help="replan every step and average chunks")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes, each with its own runtime and environment (results do not depend on it)")
    parser.add_argument("--json", help="write the results here as JSON")
    parser.add_argument("--failure-modes", action="store_true",
                        help="name how each episode ended (tasks with a place target: rl100.sim.outcomes)")


def run_episode(agent, env, seed: int, max_steps: int = 0, tracker=None) -> tuple[bool, float, int]:
    """One episode seeded ``seed``: (success, return, length). An agent with ``reseed`` (PolicyRuntime) draws
    its sampler noise from ``seed`` too, so an episode's outcome does not depend on the episodes before it.
    ``tracker``: an :class:`rl100.sim.outcomes.OutcomeTracker` of ``env``, reset and stepped with it."""
    obs, info = env.reset(seed=seed)
    if hasattr(agent, "reseed"):
        agent.reseed(seed)
    agent.reset()
    if tracker is not None:
        tracker.reset()
    total, success, t = 0.0, False, 0
    while True:
        obs, reward, terminated, truncated, info = env.step(agent.act(obs))
        if tracker is not None:
            tracker.step()
        total += float(reward)
        t += 1
        success = success or bool(info.get("success", False))
        if terminated or truncated or (max_steps and t >= max_steps):
            return success, total, t


def summarise(outcomes: list[tuple[bool, float, int]], latency: dict[str, object]) -> dict[str, object]:
    """Per-episode (success, return, length) -> the evaluation result."""
    if not outcomes:
        raise ValueError("no episodes to summarise")
    successes, returns, lengths = (np.array(x) for x in zip(*outcomes, strict=True))
    return {"episodes": len(outcomes), "success_rate": float(np.mean(successes)),
            "mean_return": float(np.mean(returns)), "mean_length": float(np.mean(lengths)), "latency": latency,
            "successes": [bool(x) for x in successes], "lengths": [int(x) for x in lengths]}


def evaluate(runtime: PolicyRuntime, env, episodes: int, seed: int, max_steps: int = 0,
             failure_modes: bool = False) -> dict[str, object]:
    """Gymnasium-style ``env`` (dict observations, ``info['success']`` or a SUCCESS-like flag); episode ``j`` is
    seeded ``seed + j``. ``failure_modes``: where the task supports it (:mod:`rl100.sim.outcomes`), also name
    each episode's outcome (``outcomes``: counts per mode; ``episode_outcomes``: one record per episode)."""
    tracker = _tracker(env) if failure_modes else None
    results, records = [], []
    for ep in range(episodes):
        results.append(run_episode(runtime, env, seed + ep, max_steps, tracker))
        if tracker is not None:
            records.append(tracker.record(results[-1][0]))
    return _with_outcomes(summarise(results, runtime.latency_stats()), records)


def _tracker(env):
    """An :class:`rl100.sim.outcomes.OutcomeTracker` of ``env``, or None where its task names no failure modes."""
    from rl100.sim import outcomes as oc

    return oc.OutcomeTracker(env) if oc.supported(env) else None


def _with_outcomes(result: dict[str, object], records: list[dict]) -> dict[str, object]:
    if not records:
        return result
    from rl100.sim import outcomes as oc

    return result | {"outcomes": oc.summarise(records), "episode_outcomes": records}


# ------------------------------------------------------------------------------------------ parallel evaluation
_WORKER: dict[str, object] = {}


def _worker_init(make_runtime: Callable[[], PolicyRuntime], make_env: Callable[[], object],
                 failure_modes: bool = False) -> None:
    _WORKER["runtime"], _WORKER["env"] = make_runtime(), make_env()
    _WORKER["tracker"] = _tracker(_WORKER["env"]) if failure_modes else None


def _worker_episode(seed: int, max_steps: int) -> tuple[tuple[bool, float, int], list[float], dict | None]:
    runtime, tracker = _WORKER["runtime"], _WORKER["tracker"]
    runtime.latencies_ms.clear()
    outcome = run_episode(runtime, _WORKER["env"], seed, max_steps, tracker)
    return outcome, list(runtime.latencies_ms), None if tracker is None else tracker.record(outcome[0])


def evaluate_parallel(make_runtime: Callable[[], PolicyRuntime], make_env: Callable[[], object], episodes: int,
                      seed: int, workers: int = 1, max_steps: int = 0, failure_modes: bool = False
                      ) -> dict[str, object]:
    """:func:`evaluate` over ``workers`` processes, each with its own runtime and environment (picklable
    factories, e.g. ``functools.partial``). Episodes are seeded as in :func:`evaluate` and the runtime is reseeded
    per episode, so the result is the same for any number of workers; latency statistics cover all workers."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    workers = min(workers, episodes)
    if workers == 1:
        runtime, env = make_runtime(), make_env()
        try:
            return evaluate(runtime, env, episodes, seed, max_steps, failure_modes)
        finally:
            env.close()
    ctx = multiprocessing.get_context("spawn")  # MuJoCo / ONNX Runtime state is not fork-safe
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                             initargs=(make_runtime, make_env, failure_modes)) as pool:
        results = list(pool.map(_worker_episode, [seed + ep for ep in range(episodes)], [max_steps] * episodes))
    latency = latency_stats([x for _, ms, _ in results for x in ms])
    return _with_outcomes(summarise([o for o, _, _ in results], latency), [r for _, _, r in results if r is not None])


def run(args: argparse.Namespace) -> int:
    try:
        from rl100 import sim
        from rl100.robustness import env_kwargs_from_card
    except ImportError as exc:  # the simulator extras are optional
        print(f"rl100 eval needs the simulator (pip install 'rl100[sim]'): {exc}")
        return 2
    if args.workers < 1:
        raise SystemExit(f"--workers must be >= 1, got {args.workers}")
    make_runtime = functools.partial(PolicyRuntime, args.model, seed=args.seed, intra_op_threads=args.threads,
                                     temporal_ensemble=args.temporal_ensemble)
    card = make_runtime().card  # fails here, naming the problem, on a bad model or card
    make_env = functools.partial(sim.make_env, args.task, seed=args.seed, **env_kwargs_from_card(card))
    result = evaluate_parallel(make_runtime, make_env, args.episodes, args.seed, args.workers, args.max_steps,
                               args.failure_modes)
    result |= {"task": args.task, "model": str(args.model), "kind": card["kind"]}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0
