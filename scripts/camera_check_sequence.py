"""The camera check over a sequence of knocks, as the graph runs it: one start or two.

Each episode's camera is knocked anew (``camera_pose`` and ``table_height``, moderate) and checked
on its first observation, starting from the previous episode's correction, as the camera_check
node does before every episode. ``one start``: from the previous correction only (from the first
calibration if refused); ``two starts``: also from the first calibration, keeping the fit with the
larger paired fraction (``rl100_camera.camera_check.check_two_starts``, what the node runs).
Error: the largest distance task-area points land from their place through the corrected pose (the
simulator knows the true one). Needs the sourced workspace (rl100_camera). Example::

    python scripts/camera_check_sequence.py --episodes 60 --seed 1

``--memory-every N`` also prints, every N episodes, the process's resident memory and the Python
objects' traced size (tracemalloc), to tell a leak in the check from allocator growth.
"""

from __future__ import annotations

import argparse
import gc
import resource
import tracemalloc

import numpy as np


def memory_line(episodes: int) -> str:
    """Resident memory (from /proc) and the traced Python allocations after a collection."""
    gc.collect()
    with open("/proc/self/statm", encoding="ascii") as f:
        rss = int(f.read().split()[1]) * resource.getpagesize() / 2**20
    traced = tracemalloc.get_traced_memory()[0] / 2**20
    return f"after {episodes} episodes: RSS {rss:.1f} MB, Python objects {traced:.2f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bad-mm", type=float, default=5.0, help="a fit further off than this counts as bad")
    parser.add_argument("--memory-every", type=int, default=0, help="print memory every N episodes (0: never)")
    args = parser.parse_args()
    if args.memory_every:
        tracemalloc.start()

    from rl100_camera.camera_check import CameraCheck, Frame, check_two_starts

    from rl100.geometry import pose7_to_matrix
    from rl100.keys import OBS_DEPTH, OBS_STATE
    from rl100.sim import disturbances
    from rl100.sim.bench_camera_check import knocked_episode, task_area_error

    env = disturbances.make_env("juicing-place", "camera_pose:moderate,table_height:moderate",
                                obs=("state", "depth"))
    check, first, in_use = None, None, {}

    def fit(start, frame):
        check.believed = start
        try:
            return check([frame])
        except ValueError:
            return None

    bad = {"one start": 0, "two starts": 0}
    print("| seed | one start: error mm | two starts: error mm (start kept) |\n|---:|---:|---|")
    try:
        for seed in range(args.seed, args.seed + args.episodes):
            obs, view, true = knocked_episode(env, seed)
            if check is None:
                first = np.array(view.base_T_cam)
                check, in_use = CameraCheck(first), dict.fromkeys(bad, first)
            frame = Frame(obs[OBS_DEPTH], (view.fx, view.fy, view.cx, view.cy), obs[OBS_STATE])
            one = fit(in_use["one start"], frame) or fit(first, frame)
            try:
                two, _ = check_two_starts(check, in_use["two starts"], [frame], first)
            except ValueError:
                two = None
            kept = "none" if two is None else "first" if two.get("retried") else "previous"
            errors = {}
            for name, result in (("one start", one), ("two starts", two)):
                if result is None:
                    errors[name] = float("nan")
                    continue
                pose = pose7_to_matrix(result["camera_pose"])
                errors[name] = float(task_area_error(pose, true).max() * 1000)
                in_use[name] = pose
                bad[name] += errors[name] > args.bad_mm
            print(f"| {seed} | {errors['one start']:.1f} | {errors['two starts']:.1f} ({kept}) |", flush=True)
            done = seed - args.seed + 1
            if args.memory_every and done % args.memory_every == 0:
                print(memory_line(done), flush=True)
    finally:
        env.close()
        if check is not None:
            check.close()
    print(f"\nfits more than {args.bad_mm:g} mm off in {args.episodes} episodes: "
          + ", ".join(f"{k} {v}" for k, v in bad.items()))


if __name__ == "__main__":
    main()
