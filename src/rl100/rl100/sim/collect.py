"""``rl100 collect``: roll out a scripted expert and record the episodes into an rl100 dataset.

Example::

    rl100 collect --task juicing-place --episodes 50 --out data/juicing --skill 0.4 --obs state,points

Each step records the observation the expert acted on, its action, the sparse reward and
``FLAG_DEMO``; an episode ends on success (``terminal``) or at the time limit (truncated). Episode
``k`` is reset with seed ``--seed + k``, so a collection is reproducible.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

from rl100.keys import FLAG_DEMO
from rl100.sim.obs import OBS_NAMES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="juicing-place", help="task name, or metaworld/<task>-v3")
    parser.add_argument("--episodes", type=int, default=10, help="episodes to record")
    parser.add_argument("--out", required=True, help="dataset directory (created, or appended to)")
    parser.add_argument("--skill", type=float, default=1.0, help="expert skill in [0, 1] (1 = clean demos)")
    parser.add_argument("--obs", default="state", help=f"comma-separated observations to store: {sorted(OBS_NAMES)}")
    parser.add_argument("--seed", type=int, default=0, help="episode k uses env seed SEED + k")
    parser.add_argument("--camera-size", default="96x96", help="HxW of camera images")
    parser.add_argument("--n-points", type=int, default=512, help="points per cloud")
    parser.add_argument("--only-success", action="store_true", help="discard failed episodes (until N successes)")
    parser.add_argument("--max-attempts", type=int, default=0, help="with --only-success: attempts limit (0 = 3N)")
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="task config field (JSON value), repeatable"
    )
    parser.add_argument(
        "--disturbance", default="", metavar="SPEC",
        help="record under robustness families (rl100.sim.disturbances spec, e.g. 'sensor_noise' or "
        "'push_object:mild,sensor_noise'): demos with noisy sensors or recoveries from pushes",
    )
    parser.add_argument("--no-fsync", action="store_true", help="skip fsync (scratch data)")


def parse_options(items: list[str]) -> dict:
    """``["max_steps=150", "juicer_xy=[0.5, 0.2]"]`` -> ``{"max_steps": 150, "juicer_xy": [0.5, 0.2]}``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value  # a bare string
        if isinstance(out[key], list):
            out[key] = tuple(out[key])
    return out


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"camera size must look like 96x96 (HxW), got {text!r}") from None
    return h, w


def _writer_class():
    try:
        from rl100.data import DatasetWriter
    except ImportError as exc:  # the dataset package is developed separately
        raise ImportError(
            "rl100 collect needs the dataset API `from rl100.data import DatasetWriter`, which is not "
            f"importable here ({exc}); install/update rl100 with its data package"
        ) from exc
    return DatasetWriter


def run(args: argparse.Namespace) -> int:
    from rl100.sim import make_env, make_expert
    from rl100.sim.obs import parse_obs

    if args.episodes < 1:
        raise SystemExit("--episodes must be >= 1")
    names = parse_obs(args.obs)
    wanted = [n for n in names if n in args.obs.split(",") or n == "state"]  # env_state only if asked for
    keys = [OBS_NAMES[n] for n in wanted]
    size = parse_size(args.camera_size)
    env_kwargs = dict(obs=names, camera_size=size, n_points=args.n_points, **parse_options(args.option))
    if args.disturbance:
        from rl100.sim import disturbances

        try:
            env = disturbances.make_env(args.task, args.disturbance, **env_kwargs)
        except ValueError as exc:  # an unknown family / severity, or one that does not apply
            print(f"rl100 collect: --disturbance: {exc}")
            return 2
    else:
        env = make_env(args.task, **env_kwargs)
    expert = make_expert(args.task, env, skill=args.skill, seed=args.seed)
    writer_cls = _writer_class()
    metaworld = args.task.startswith("metaworld/")
    meta = {
        "task": args.task,
        "source": "scripted_expert",
        "action": "metaworld_delta_xyz_gripper(4)" if metaworld else "ee_pose_abs_base(pos3,rotvec3,gripper1)",
        "control_hz": 80.0 if metaworld else float(env.unwrapped.config.control_hz),
        "obs": wanted,
        "camera_size": list(env.unwrapped.camera_size),
        "n_points": int(args.n_points),
        # the point-cloud preprocessing; ``rl100 export`` copies it into the model card (rl100.pointcloud)
        "points_lo": [float(v) for v in env.unwrapped.config.points_lo],
        "points_hi": [float(v) for v in env.unwrapped.config.points_hi],
        "points_sampler": str(env.unwrapped.config.points_sampler),
        "points_depth_filter": str(getattr(env.unwrapped.config, "points_depth_filter", "none")),
        "python": platform.python_version(),
    }
    dset = getattr(env.unwrapped, "disturbances", None)  # recorded per episode: a dataset may mix runs
    max_attempts = args.max_attempts or 3 * args.episodes
    kept = attempts = successes = steps = 0
    t0 = time.perf_counter()
    with writer_cls(args.out, meta=meta, cast=True, fsync=not args.no_fsync) as writer:
        while kept < args.episodes and (attempts < max_attempts or not args.only_success):
            seed = args.seed + attempts
            attempts += 1
            obs, _ = env.reset(seed=seed)
            expert.reset()
            episode = writer.begin_episode(meta={"seed": seed, "skill": args.skill, "expert": type(expert).__name__})
            while True:
                action = expert.act(obs)
                next_obs, reward, terminated, truncated, info = env.step(action)
                episode.add_step({k: obs[k] for k in keys}, action, reward, FLAG_DEMO)  # (o_t, a_t, r_t)
                obs = next_obs
                steps += 1
                if terminated or truncated:
                    break
            success = bool(info["success"])
            successes += success
            if args.only_success and not success:
                episode.abort("expert failed")
                continue
            if dset is not None:  # what the families did in this episode (pushes, jumps...)
                episode.meta["disturbances"] = dset.configs()
                episode.meta["disturbance_events"] = disturbances.events_meta(dset)
            episode.end(success=success, terminal=terminated)
            kept += 1
            outcome = "success" if success else "failure"
            print(f"episode {kept}/{args.episodes} seed {seed}: {outcome}, {info['steps']} steps")
    dt = time.perf_counter() - t0
    env.close()
    print(
        f"recorded {kept} episodes ({successes}/{attempts} successful attempts) with {steps} steps "
        f"in {dt:.1f} s ({steps / max(dt, 1e-9):.0f} steps/s) into {args.out}"
    )
    return 0 if kept == args.episodes else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="rl100 collect")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
