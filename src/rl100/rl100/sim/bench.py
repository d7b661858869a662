"""``rl100 bench-sim``: simulation throughput per task and observation modality, as a Markdown table.

Each row steps the task's scripted expert (skill 1, so contacts and grasps are exercised) and
times ``env.step`` only (resets excluded). A Panda control step at 10 Hz is 50 physics steps of
2 ms, so both rates are reported: control steps/s (what a policy sees) and physics steps/s.
Meta-World steps are 5 physics steps of 2.5 ms (80 Hz control).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

DEFAULT_TASKS = ("juicing-place", "bowling", "metaworld/reach-v3")
DEFAULT_MODALITIES = ("state", "rgb", "depth", "rgb,depth", "points", "wrist_rgb")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="comma-separated task names")
    parser.add_argument(
        "--modalities",
        default=";".join(DEFAULT_MODALITIES),
        help="';'-separated observation sets (each comma-separated)",
    )
    parser.add_argument("--steps", type=int, default=300, help="timed control steps per row")
    parser.add_argument("--camera-size", default="96x96", help="HxW of camera images")
    parser.add_argument("--n-points", type=int, default=512, help="points per cloud")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="time each row this many times and report the fastest (steadier on a shared, loaded machine)",
    )


def gl_description() -> str:
    """``MUJOCO_GL`` backend and the OpenGL renderer string (e.g. llvmpipe), if a context can be made."""
    backend = os.environ.get("MUJOCO_GL", "default")
    try:
        from OpenGL import GL

        from rl100.sim.camera import make_gl_context

        ctx = make_gl_context(16, 16)
        ctx.make_current()
        renderer = GL.glGetString(GL.GL_RENDERER).decode()
        ctx.free()
    except Exception as exc:  # noqa: BLE001 - report, don't fail the benchmark
        renderer = f"unavailable ({exc.__class__.__name__})"
    return f"MUJOCO_GL={backend}, GL_RENDERER={renderer}"


def bench_row(task: str, obs: str, steps: int, camera_size: tuple[int, int], n_points: int, seed: int) -> dict:
    from rl100.sim import make_env, make_expert

    env = make_env(task, seed=seed, obs=tuple(obs.split(",")), camera_size=camera_size, n_points=n_points)
    expert = make_expert(task, env, skill=1.0, seed=seed)
    u = env.unwrapped
    substeps = u.config.substeps if hasattr(u.config, "substeps") else u.mw.frame_skip
    obs_dict, _ = env.reset(seed=seed)
    expert.reset()
    timed = 0.0
    episode = 0
    for _ in range(steps):
        action = expert.act(obs_dict)
        t0 = time.perf_counter()
        obs_dict, _, terminated, truncated, _ = env.step(action)
        timed += time.perf_counter() - t0
        if terminated or truncated:
            episode += 1
            obs_dict, _ = env.reset(seed=seed + episode)
            expert.reset()
    env.close()
    rate = steps / timed
    return {"task": task, "obs": obs, "ctrl": rate, "physics": rate * substeps, "ms": 1e3 / rate, "substeps": substeps}


def run(args: argparse.Namespace) -> int:
    from rl100.sim.collect import parse_size

    size = parse_size(args.camera_size)
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be >= 1, got {args.repeats}")
    rows = []
    for task in args.tasks.split(","):
        for obs in args.modalities.split(";"):
            runs = [bench_row(task, obs, args.steps, size, args.n_points, args.seed) for _ in range(args.repeats)]
            rows.append(max(runs, key=lambda r: r["ctrl"]))
    print(f"rl100 bench-sim: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {gl_description()}")
    best = f", fastest of {args.repeats} runs" if args.repeats > 1 else ""
    print(f"camera {size[0]}x{size[1]}, {args.n_points} points, {args.steps} expert steps per row{best}\n")
    print("| task | obs | control steps/s | physics steps/s | ms / control step |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['task']} | {r['obs']} | {r['ctrl']:.0f} | {r['physics']:.0f} | {r['ms']:.2f} |")
    return 0
