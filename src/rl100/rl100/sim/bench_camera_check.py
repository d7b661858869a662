"""``rl100 bench-camera-check``: how well the camera check finds a knocked camera and a moved table.

Over ``--episodes`` seeded episodes of a task with the given disturbance (default a moderate
``camera_pose`` knock), runs :meth:`rl100.sim.expected_scene.ExpectedScene.check` on the first
observation and compares with the truth the simulator knows: the error is how far points of the
task area (a 5 x 5 x 3 grid over x 0.3-0.7 m, y +-0.3 m, z 0-0.2 m) land from where they are,
seen through the believed extrinsic (before) and the corrected one (after); and the table height
estimate against a ``table_height`` family's shift. Prints a Markdown table and a summary line.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

_G = np.meshgrid(np.linspace(0.3, 0.7, 5), np.linspace(-0.3, 0.3, 5), [0.0, 0.1, 0.2])
TASK_GRID = np.stack([g.ravel() for g in _G], axis=1)  # (75, 3) m, base frame


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="juicing-place")
    parser.add_argument("--disturbance", default="camera_pose:moderate",
                        help="robustness families acting (rl100 robustness syntax, e.g. "
                        "camera_pose:moderate,table_height:moderate,sensor_noise)")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=20000)
    parser.add_argument("--camera-size", default="96,96", help="H,W of the camera image")


def task_area_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(75,) m: how far task-grid points seen through extrinsic ``a`` land from the same seen through ``b``."""
    m = a @ np.linalg.inv(b)
    return np.linalg.norm(TASK_GRID @ m[:3, :3].T + m[:3, 3] - TASK_GRID, axis=1)


def knocked_episode(env, seed: int):
    """Reset ``env`` (a disturbed task with depth) at ``seed`` -> (obs, camera view as believed, true (4, 4)
    extrinsic the simulator renders with)."""
    obs, _ = env.reset(seed=seed)
    sim = env.unwrapped
    return obs, sim.camera_info(), np.asarray(sim._get_renderer().info(sim.data, sim.scene_camera).base_T_cam)


def run(args: argparse.Namespace) -> int:
    from rl100.keys import OBS_DEPTH, OBS_STATE
    from rl100.registration import corrected_extrinsic
    from rl100.sim import disturbances
    from rl100.sim.expected_scene import ExpectedScene

    size = tuple(int(v) for v in args.camera_size.split(","))
    if args.episodes < 1 or len(size) != 2:
        raise SystemExit("--episodes must be >= 1 and --camera-size H,W")
    env = disturbances.make_env(args.task, args.disturbance, obs=("state", "depth"), camera_size=size)
    scene = ExpectedScene(env)
    rows = []
    print(f"{args.task}, {args.disturbance}, camera {size[0]}x{size[1]}, env seeds "
          f"{args.seed}..{args.seed + args.episodes - 1}\n")
    print("| seed | task-area error before (mean / max mm) | after (mean / max mm) | table true / estimated (mm) "
          "| paired | check ms |")
    print("|---:|---|---|---|---:|---:|")
    try:
        for seed in range(args.seed, args.seed + args.episodes):
            obs, view, true = knocked_episode(env, seed)
            dset = env.unwrapped.disturbances
            table = next((f.value for f in (dset.families if dset else []) if f.name == "table_height"), 0.0)
            t0 = time.perf_counter()
            try:
                reg = scene.check(obs[OBS_DEPTH], obs[OBS_STATE], view)
            except ValueError as exc:
                print(f"| {seed} | refused: {exc} | | | | |")
                rows.append(None)
                continue
            ms = (time.perf_counter() - t0) * 1000
            before = task_area_error(view.base_T_cam, true) * 1000
            after = task_area_error(corrected_extrinsic(view.base_T_cam, reg), true) * 1000
            rows.append((before.mean(), after.mean(), after.max(), abs(reg.table_dz - table) * 1000, ms))
            print(f"| {seed} | {before.mean():.1f} / {before.max():.1f} | {after.mean():.2f} / {after.max():.2f} | "
                  f"{table * 1000:+.1f} / {reg.table_dz * 1000:+.1f} | {reg.paired:.2f} | {ms:.0f} |", flush=True)
    finally:
        scene.close()
        env.close()
    ok = np.array([r for r in rows if r is not None])
    refused = sum(r is None for r in rows)
    if len(ok):
        print(f"\nafter the check: task-area error mean {ok[:, 1].mean():.2f} mm, worst {ok[:, 2].max():.2f} mm "
              f"(before: mean {ok[:, 0].mean():.1f} mm); table height error max {ok[:, 3].max():.1f} mm; "
              f"check p50 {np.median(ok[:, 4]):.0f} ms; refused {refused} of {len(rows)}")
    return 0
