"""``rl100 robustness``: success per robustness family against nominal, in simulation.

::

    rl100 robustness runs/juicing/policy.onnx --task juicing-place --families all --episodes 20 --out runs/robust
    rl100 robustness expert --task juicing-place --families all --severity mild --episodes 10 --out runs/robust-expert

``MODEL`` is an exported ``.onnx`` policy (run through :class:`rl100.runtime.PolicyRuntime`, exactly as
``rl100 eval`` and the ROS policy node run it) or ``expert`` / ``expert:SKILL`` for the task's scripted
expert (a sanity check that the families are physically sensible). Each family
(:mod:`rl100.sim.disturbances`) runs on the same environment seeds as nominal (``--seed``, ``--seed`` + 1,
...), so the comparison is paired. Writes ``results.json`` (each family's data-only config included:
what the ROS sim robot's ``disturbance`` parameter takes), ``robustness.md`` (a Markdown table) and
``robustness.png`` (a bar plot with 95 % Wilson intervals) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from rl100.pointcloud import DEPTH_FILTERS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="exported .onnx policy (its .card.json beside it), or expert[:SKILL]")
    parser.add_argument("--task", required=True, help="rl100.sim Panda task name")
    parser.add_argument("--families", default="all",
                        help="comma-separated family names, or 'all' (those that apply); a name may carry "
                        "parameter overrides for an ablation, e.g. 'sensor_noise(pos_std=0;rot_std=0)'")
    parser.add_argument("--severity", default="moderate", help="comma-separated: mild, moderate, severe")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per family (and for nominal)")
    parser.add_argument("--seed", type=int, default=0, help="first environment seed (episode i uses seed + i)")
    parser.add_argument("--family-seed", type=int, default=0, help="the families' own seed")
    parser.add_argument("--max-steps", type=int, default=0, help="step limit per episode (0: the env's own)")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: default)")
    parser.add_argument("--temporal-ensemble", action="store_true", help="replan every step and average chunks")
    parser.add_argument("--points-lo", default="", metavar="X,Y,Z",
                        help="lower corner of the point-cloud crop box (m, base frame) instead of the task's")
    parser.add_argument("--depth-filter", default="", choices=("", *DEPTH_FILTERS),
                        help="camera-side depth filter before the cloud is made (default: the task's, none)")
    parser.add_argument("--table-frame", default="off", metavar="off|auto|DZ",
                        help="run the policy in the table frame (rl100.taskframe): 'auto' measures the table top "
                        "at each episode's start, a number is a calibrated shift in m; 'off' = the base frame")
    parser.add_argument("--camera-check", default="off", choices=("off", "auto"),
                        help="'auto': at each episode's start, check the scene camera's extrinsic against the robot "
                        "and the fixed world (rl100.registration) and correct it; implies the table frame "
                        "(shift 0 unless --table-frame says otherwise)")
    parser.add_argument("--out", required=True, help="output directory (results.json, robustness.md, .png)")


class ExpertAgent:
    """The scripted expert behind the interface ``evaluate`` uses (``reset``, ``act``, ``latency_stats``)."""

    def __init__(self, task: str, env, skill: float, seed: int) -> None:
        from rl100.sim import make_expert

        self.expert = make_expert(task, env, skill=skill, seed=seed)

    def reset(self) -> None:
        self.expert.reset()

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self.expert.act(obs)

    def latency_stats(self) -> dict[str, float]:
        return {}


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at 0 or n successes one bound is exactly 0 or 1 (the formula lands a rounding error inside)
    return (0.0 if successes == 0 else max(0.0, centre - half)), (1.0 if successes == n else min(1.0, centre + half))


def env_kwargs_from_card(card: dict[str, Any]) -> dict[str, Any]:
    """``make_env`` keywords (observations, camera size, points) a model card asks for (as ``rl100 eval``)."""
    spec = card["observation_spec"]
    kw: dict[str, Any] = {"obs": tuple(sorted({o["kind"] if o["kind"] != "lowdim" else "state" for o in spec}))}
    for o in spec:
        if o["kind"] == "rgb":
            kw["camera_size"] = tuple(o["shape"][1:3])
        if o["kind"] == "points":
            kw["n_points"] = int(o["shape"][1])
            if o.get("depth_filter", "none") != "none":  # the camera filter the model was trained behind
                kw["points_depth_filter"] = o["depth_filter"]
    return kw


def family_args(text: str) -> list[tuple[str, dict[str, Any]]]:
    """``"a,b(k=v;k2=v2)"`` -> ``[("a", {}), ("b", {"k": v, "k2": v2})]`` (values as JSON, else strings)."""
    items, depth, cur = [], 0, ""
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0 or depth > 1:
            raise ValueError(f"unbalanced parentheses in families {text!r}")
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    if depth:
        raise ValueError(f"unbalanced parentheses in families {text!r}")
    out = []
    for item in (i.strip() for i in items + [cur]):
        if not item:
            continue
        name, _, rest = item.partition("(")
        params: dict[str, Any] = {}
        for pair in filter(None, (p.strip() for p in rest.rstrip(")").split(";"))):
            key, eq, value = pair.partition("=")
            if not eq or not key.strip():
                raise ValueError(f"family override {pair!r} in {item!r} is not KEY=VALUE")
            try:
                params[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                params[key.strip()] = value.strip()
        out.append((name.strip(), params))
    return out


CAMERA_OBS = ("rgb", "depth", "points", "wrist_rgb", "wrist_depth")
"""observation names (``rl100.sim.obs``) rendered by a camera"""
CAMERA_FAMILIES = ("appearance", "camera_pose", "frame_drop")
"""families that change only camera images (frame_drop holds the robot state only with ``state=true``, not in
its presets)"""


def run_robustness(task: str, make_agent, env_kwargs: dict[str, Any], families: list[str], severities: list[str],
                   episodes: int, seed: int = 0, family_seed: int = 0, max_steps: int = 0,
                   log=print) -> dict[str, Any]:
    """Nominal, then every (family, severity); ``make_agent(env)`` returns the agent for that environment.

    ``families``: names, or ``["all"]`` for every family that applies to ``task`` and can change what the policy
    observes (a state-only policy skips the camera families, logged with the reason); an entry may be a
    ``(name, overrides)`` pair (:func:`family_args`): the overrides replace the severity preset's values.
    """
    from rl100.sim import disturbances
    from rl100.train.evaluate import evaluate

    def one(spec) -> dict[str, Any]:
        env = disturbances.make_env(task, spec, seed=seed, **env_kwargs)
        agent = None
        try:
            t0 = time.perf_counter()
            agent = make_agent(env)
            res = evaluate(agent, env, episodes, seed, max_steps, failure_modes=True)
            res["wall_s"] = round(time.perf_counter() - t0, 2)
            if getattr(agent, "camera_checks", None):  # one line per episode (TableFrameAgent with a scene)
                res["camera_checks"] = list(agent.camera_checks)
        finally:
            if hasattr(agent, "close"):
                agent.close()
            env.close()
        k = round(res["success_rate"] * episodes)
        res["successes"], res["ci95"] = k, list(wilson(k, episodes))
        return res

    if families == ["all"]:
        probe = disturbances.make_env(task, None, **env_kwargs)
        try:
            why_not = disturbances.applicability(probe)
            blind = not set(getattr(probe.unwrapped, "obs_names", ())) & set(CAMERA_OBS)
        finally:
            probe.close()
        if blind:  # the families that only change what a camera sees would be nominal again, row for row
            why_not |= dict.fromkeys(CAMERA_FAMILIES, "the policy observes no camera")
        skipped = {name: why for name, why in why_not.items() if why is not None}
        if skipped:
            log("not run: " + "; ".join(f"{name} ({why})" for name, why in sorted(skipped.items())))
        families = [name for name, why in why_not.items() if why is None]
    items = [f if isinstance(f, tuple) else (f, {}) for f in families]
    configs = [(disturbances.make_family(name, sev, family_seed, **over), over)
               for name, over in items for sev in severities]
    nominal = one(None)
    log(f"nominal: success {nominal['success_rate']:.2f}")
    rows = []
    for fam, over in configs:
        res = one(fam)
        name = fam.name + ("(" + ";".join(f"{k}={v}" for k, v in over.items()) + ")" if over else "")
        res |= {"family": name, "severity": fam.severity, "config": fam.to_dict(), "overrides": over,
                "delta": res["success_rate"] - nominal["success_rate"]}
        rows.append(res)
        log(f"{name}:{fam.severity}: success {res['success_rate']:.2f} ({res['delta']:+.2f})")
    return {"task": task, "episodes": episodes, "seed": seed, "family_seed": family_seed, "nominal": nominal,
            "families": rows}


def markdown_table(result: dict[str, Any], title: str) -> str:
    nominal = result["nominal"]

    modes = "outcomes" in nominal
    if modes:
        from rl100.sim.outcomes import mode_text

    def row(name: str, sev: str, r: dict[str, Any], delta: str) -> str:
        lo, hi = r["ci95"]
        cells = (f"| {name} | {sev} | {r['success_rate']:.2f} ({r['successes']}/{r['episodes']}) | "
                 f"[{lo:.2f}, {hi:.2f}] | {delta} | {r['mean_length']:.1f} |")
        return cells + (f" {mode_text(r['outcomes'])} |" if modes else "")

    lines = [f"### {title}", "", f"task `{result['task']}`, {result['episodes']} episodes per row, env seeds "
             f"{result['seed']}..{result['seed'] + result['episodes'] - 1} (the same for every row), family seed "
             f"{result['family_seed']}", "",
             "| family | severity | success | 95 % CI | vs nominal | mean steps |" + (" failures |" if modes else ""),
             "|---|---|---|---|---|---|" + ("---|" if modes else ""),
             row("nominal", "-", nominal, "-")]
    lines += [row(r["family"], r["severity"], r, f"{r['delta']:+.2f}") for r in result["families"]]
    if modes:
        lines += ["", "failures: episodes per failure mode (rl100.sim.outcomes): never_lifted, dropped (let go away "
                  "from the target), missed_target (let go at the target, no success), holding (still held at the end)"]
    return "\n".join(lines) + "\n"


def bar_plot(result: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["families"]
    names = list(dict.fromkeys(r["family"] for r in rows))
    sevs = list(dict.fromkeys(r["severity"] for r in rows))
    width = 0.8 / max(len(sevs), 1)
    fig, ax = plt.subplots(figsize=(min(14.0, max(6.0, 0.35 * len(names) * len(sevs) + 2.0)), 4.5))
    colours = {"mild": "#8fc27a", "moderate": "#e0a03a", "severe": "#c8473d"}
    for j, sev in enumerate(sevs):
        xs, ys, err = [], [], [[], []]
        for i, name in enumerate(names):
            for r in rows:
                if r["family"] == name and r["severity"] == sev:
                    xs.append(i + (j - (len(sevs) - 1) / 2) * width)
                    ys.append(r["success_rate"])
                    # Wilson's bound can round to a hair inside the rate at 0 or 1: never a negative bar
                    err[0].append(max(r["success_rate"] - r["ci95"][0], 0.0))
                    err[1].append(max(r["ci95"][1] - r["success_rate"], 0.0))
        ax.bar(xs, ys, width, yerr=err, capsize=2, label=sev, color=colours.get(sev))
    nominal = result["nominal"]
    ax.axhline(nominal["success_rate"], color="k", linestyle="--", linewidth=1,
               label=f"nominal {nominal['success_rate']:.2f}")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylim(0, 1.2)
    ax.set_ylabel("success rate")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper center", ncol=len(sevs) + 1, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    try:
        from rl100 import sim  # noqa: F401 - the simulator extras are optional
    except ImportError as exc:
        print(f"rl100 robustness needs the simulator (pip install 'rl100[sim]'): {exc}")
        return 2
    if args.episodes < 1:
        raise SystemExit("--episodes must be >= 1")
    try:
        families = family_args(args.families)
    except ValueError as exc:
        print(f"rl100 robustness: {exc}")
        return 2
    if [name for name, _ in families] == ["all"]:
        families = ["all"]
    severities = [s.strip() for s in args.severity.split(",") if s.strip()]
    if args.model == "expert" or args.model.startswith("expert:"):
        if args.table_frame != "off" or args.camera_check != "off":
            print("rl100 robustness: --table-frame / --camera-check are for a learned policy, "
                  "not the scripted expert")
            return 2
        skill = float(args.model.partition(":")[2] or 1.0)
        env_kwargs: dict[str, Any] = {"obs": ("state",)}
        model_desc = f"scripted expert, skill {skill:g}"

        def make_agent(env):
            return ExpertAgent(args.task, env, skill, args.seed)
    else:
        from rl100.runtime import PolicyRuntime

        runtime = PolicyRuntime(args.model, seed=args.seed, intra_op_threads=args.threads,
                                 temporal_ensemble=args.temporal_ensemble)
        env_kwargs = env_kwargs_from_card(runtime.card)
        model_desc = f"{Path(args.model).name} ({runtime.card['kind']})"

        def make_agent(env):
            return runtime

        if args.table_frame != "off" or args.camera_check != "off":
            try:
                frame = args.table_frame  # off here: only --camera-check asked for the agent
                dz = None if frame == "auto" else 0.0 if frame == "off" else float(frame)
            except ValueError:
                print(f"rl100 robustness: --table-frame wants off, auto or a shift in m, got {args.table_frame!r}")
                return 2
            n_points = next((int(o["shape"][1]) for o in runtime.card["observation_spec"] if o["kind"] == "points"), 0)
            # depth measures the table top (seen through the checked camera); a policy without a cloud input has its
            # object heights moved with it (the task's env_state_z)
            env_kwargs["obs"] = tuple(sorted({"depth", *env_kwargs["obs"]} - {"points"}))
            model_desc += f", table frame {args.table_frame}"
            model_desc += ", camera check" if args.camera_check == "auto" else ""

            def make_agent(env):
                from rl100.taskframe import TableFrameAgent

                scene = None
                if args.camera_check == "auto":
                    from rl100.sim.expected_scene import ExpectedScene

                    scene = ExpectedScene(env)
                return TableFrameAgent(runtime, env, dz, n_points=n_points, scene=scene)

    if args.points_lo:
        try:
            lo = [float(v) for v in args.points_lo.split(",")]
        except ValueError:
            lo = []
        if len(lo) != 3:
            print(f"rl100 robustness: --points-lo wants X,Y,Z in metres, got {args.points_lo!r}")
            return 2
        env_kwargs["points_lo"] = tuple(lo)
    if args.depth_filter:
        env_kwargs["points_depth_filter"] = args.depth_filter
    try:
        result = run_robustness(args.task, make_agent, env_kwargs, families, severities, args.episodes, args.seed,
                                args.family_seed, args.max_steps)
    except ValueError as exc:  # an unknown family / severity / task: the message lists the valid ones
        print(f"rl100 robustness: {exc}")
        return 2
    result["model"] = str(args.model)
    result["env_kwargs"] = {k: list(v) if isinstance(v, tuple) else v for k, v in env_kwargs.items()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    title = f"{args.task}: {model_desc}"
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "robustness.md").write_text(markdown_table(result, title))
    bar_plot(result, out / "robustness.png", title)
    print(markdown_table(result, title))
    print(f"wrote {out / 'results.json'}, {out / 'robustness.md'}, {out / 'robustness.png'}")
    return 0
