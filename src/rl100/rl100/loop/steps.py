"""The stages of one loop round, each a function of its inputs writing into its own (fresh) directory.

Every function returns ``(outputs, metrics)``: ``outputs`` name -> path of what later stages read (recorded in
the ledger), ``metrics`` a JSON-safe summary for the ledger and ``summary.md``. They call the project's public
entry points: :func:`rl100.data.merge`, :func:`rl100.rl.offline.offline_round`, :func:`rl100.train.il.train_il`
(``init``: fine-tune keeping the normaliser), :func:`rl100.train.distill.distill`,
:func:`rl100.export.onnx_export.export_onnx`.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np

from rl100.data import Dataset, DatasetWriter, copy_episode, merge
from rl100.data.files import write_json_atomic
from rl100.data.format import STEP_KEYS
from rl100.keys import ACTION, FLAG_DEMO, FLAG_INTERVENTION, FLAG_ROLLOUT, FLAGS, REWARD
from rl100.loop.collectors import ENV_STEPS, EPISODES, SUCCESS_RATE, Evaluator, record_specs
from rl100.loop.config import LoopConfig

Outputs = dict[str, Path]
StepResult = tuple[Outputs, dict[str, Any]]

# step names (round_<r>/<step>/ directories, ledger keys) and output names
COLLECT, MERGE, OFFLINE, REIL, ONLINE, DISTILL, EXPORT, EVALUATE = (
    "collect", "merge", "offline", "reil", "online", "distill", "export", "evaluate")
ADOPTED, EVAL_GATE = "adopted", "eval_gate"
DATA, POLICY, CM_ONNX, DDIM_ONNX, EVAL_JSON = "data", "policy", "cm_onnx", "ddim_onnx", "eval_json"


def data_metrics(ds: Dataset) -> dict[str, Any]:
    infos = ds.infos
    return {EPISODES: len(infos), "steps": int(ds.num_steps),
            "demo_episodes": sum(1 for i in infos if i.flags_all & FLAG_DEMO),
            "rollout_episodes": sum(1 for i in infos if i.flags_any & FLAG_ROLLOUT),
            "intervention_steps": int(sum(i.flag_counts.get("intervention", 0) for i in infos))}


def merge_step(prev: Path, rollouts: Path, out_dir: Path, fsync: bool) -> StepResult:
    """Previous data + this round's rollouts -> ``out_dir/data`` (hard links; the previous data's meta is kept)."""
    prev_ds = Dataset(prev)
    dest = out_dir / "data"
    merged = merge([prev_ds, Dataset(rollouts)], dest, meta=prev_ds.meta, hardlink=True, fsync=fsync)
    return {DATA: dest}, data_metrics(merged)


def offline_step(cfg: LoopConfig, policy: Path, data: Path, out_dir: Path, seed: int) -> StepResult:
    from rl100.rl.offline import offline_round

    res = offline_round(cfg.offline_config(dataset=str(data), policy=str(policy), out=str(out_dir), seed=seed))
    return {POLICY: Path(res.policy_path)}, {k: v for k, v in dataclasses.asdict(res).items() if k != "policy_path"}


def _write_segment(writer: DatasetWriter, ds: Dataset, pos: int, start: int) -> None:
    """Episode ``pos`` of ``ds`` from step ``start`` on, as a new episode of ``writer`` (same flags, outcome)."""
    ep, info = ds.episode(pos), ds.episode_info(pos)
    keys = [k for k in writer.specs if k not in STEP_KEYS]
    out = writer.begin_episode(meta=info.meta | {"segment_of": {"dataset": str(ds.root), "episode": info.index,
                                                                "start": start}})
    for t in range(start, info.length):
        out.add_step({k: ep[k][t] for k in keys}, ep[ACTION][t], float(ep[REWARD][t]), int(ep[FLAGS][t]))
    out.end(success=info.success, terminal=info.terminal)


def reil_dataset(data: Path, dest: Path, failed_interventions: bool, fsync: bool, interventions: bool = True
                 ) -> dict[str, Any]:
    """What re-imitation learns from: demonstrations, successful policy-only rollouts, and (``interventions``) the
    intervention segments (from the operator's takeover to the end) of rollouts -- of the saved ones only unless
    ``failed_interventions``."""
    ds = Dataset(data)
    counts = {"demo_episodes": 0, "rollout_episodes": 0, "intervention_segments": 0, "intervention_steps": 0}
    with DatasetWriter(dest, meta=ds.meta, specs=record_specs(ds), fsync=fsync,
                       note={"mode": "loop_reil", "source": str(Path(data).resolve())}) as writer:
        for pos, info in enumerate(ds.infos):
            if info.flags_all & FLAG_DEMO:
                copy_episode(writer, ds.episode(pos), hardlink=True, origin={"dataset": str(ds.root)})
                counts["demo_episodes"] += 1
            elif info.flags_any & FLAG_INTERVENTION:
                if interventions and (info.success or failed_interventions):
                    flags = np.asarray(ds.episode(pos)[FLAGS])
                    start = int(np.flatnonzero(flags & FLAG_INTERVENTION)[0])
                    _write_segment(writer, ds, pos, start)
                    counts["intervention_segments"] += 1
                    counts["intervention_steps"] += info.length - start
            elif info.success:
                copy_episode(writer, ds.episode(pos), hardlink=True, origin={"dataset": str(ds.root)})
                counts["rollout_episodes"] += 1
    return counts


def reil_step(cfg: LoopConfig, policy: Path, data: Path, out_dir: Path, seed: int) -> StepResult:
    """Re-imitation: ``train-il --init policy`` on :func:`reil_dataset` of the merged data."""
    from rl100.policy.checkpoint import read_policy_json
    from rl100.train.il import train_il

    counts = reil_dataset(data, out_dir / "data", cfg.reil_failed_interventions, cfg.fsync, cfg.reil_interventions)
    pcfg = read_policy_json(policy)["config"]
    train = cfg.il_config(dataset=str(out_dir / "data"), out=str(out_dir / "il"), init=str(policy), seed=seed,
                          obs_keys=[o["key"] for o in pcfg["obs"]],
                          policy={k: v for k, v in pcfg.items() if k not in ("obs", "action_dim")})
    path = train_il(train, progress=False, command=f"rl100 loop-sim (re-imitation, init {policy})")
    return {POLICY: Path(path), DATA: out_dir / "data"}, counts | {"steps": train.steps}


def online_step(cfg: LoopConfig, policy: Path, critics: Path | None, out_dir: Path, seed: int) -> StepResult:
    """Online RL from ``policy`` in simulation, V warm-started from the offline ``critics`` (None: a fresh V)."""
    from rl100.rl.online import online

    ocfg = cfg.online_config(policy=str(policy), critics=str(critics or ""), out=str(out_dir), seed=seed)
    res = online(ocfg, command=f"rl100 loop-sim (online phase, from {policy})")
    return {POLICY: Path(res.policy_path)}, {"iterations": res.iterations, ENV_STEPS: res.env_steps,
                                             "rollout_success": res.rollout_success, "eval_success": res.success}


def same_normalizer(a: Path, b: Path) -> bool:
    """Whether the policy checkpoints ``a`` and ``b`` carry the same normaliser (a student warm-started from ``a``
    then sees inputs scaled as it learnt them)."""
    from rl100.policy.checkpoint import read_policy_json

    return read_policy_json(a).get("normalizer") == read_policy_json(b).get("normalizer")


def distill_step(cfg: LoopConfig, teacher: Path, data: Path, out_dir: Path, seed: int, init: Path | None = None
                 ) -> StepResult:
    """Distil ``teacher`` into a one-step student, starting from the student ``init`` (warm start) if given."""
    from rl100.train.distill import distill

    train = cfg.distill_config(dataset=str(data), out=str(out_dir), seed=seed, init=str(init or ""))
    path = distill(train, teacher, progress=False, command=f"rl100 loop-sim (distill {teacher})")
    return {POLICY: Path(path)}, {"steps": train.steps, "init": str(init or "")}


def export_step(cm_policy: Path, ddim_policy: Path, out_dir: Path, control_rate: float,
                points_pre: dict[str, Any] | None) -> StepResult:
    """``cm.onnx`` (the one-step student: deployed, collects) and ``ddim.onnx`` (the RL-trained diffusion policy).

    ``points_pre``: the point-cloud crop box + sampler written into the cards' points inputs (None: left out, and
    the ROS policy node will refuse the model)."""
    from rl100.export.onnx_export import export_onnx
    from rl100.policy.checkpoint import load_policy

    out: Outputs = {}
    for name, src, kind in ((CM_ONNX, cm_policy, "consistency"), (DDIM_ONNX, ddim_policy, "diffusion")):
        policy = load_policy(src)
        if policy.kind != kind:
            raise ValueError(f"{src}: expected a {kind} policy for {name}, got {policy.kind}")
        has_points = any(o.kind == "points" for o in policy.config.obs)
        if has_points and points_pre is None and name == CM_ONNX:
            print("loop export: no point-cloud crop box / sampler known: the cards leave them out and the ROS policy "
                  "node will refuse them", file=sys.stderr)
        path = out_dir / f"{name.split('_')[0]}.onnx"
        export_onnx(policy, path, control_rate_hz=control_rate, training_command=f"rl100 loop-sim ({src})",
                    extra={"source_checkpoint": str(src)}, points_preprocessing=points_pre if has_points else None)
        out[name] = path
    return out, {"points_preprocessing": points_pre}


def evaluate_step(evaluator: Evaluator, cfg: LoopConfig, onnx: Outputs, out_dir: Path) -> StepResult:
    """Score the CM (and, with ``eval_ddim``, the DDIM) export on the fixed evaluation seeds -> ``eval.json``."""
    results = {"cm": evaluator.evaluate(onnx[CM_ONNX], cfg.eval_episodes, cfg.eval_seed)}
    if cfg.eval_ddim:
        results["ddim"] = evaluator.evaluate(onnx[DDIM_ONNX], cfg.eval_episodes, cfg.eval_seed)
    path = out_dir / "eval.json"
    write_json_atomic(path, results, fsync=cfg.fsync)
    metrics = {f"{k}_{SUCCESS_RATE}": float(r[SUCCESS_RATE]) for k, r in results.items()}
    for k, r in results.items():
        if "outcomes" in r:  # a simulated task that names its failure modes (rl100.sim.outcomes)
            from rl100.sim.outcomes import mode_text

            metrics[f"{k}_failures"] = mode_text(r["outcomes"])
    metrics[ENV_STEPS] = int(sum(int(r.get(ENV_STEPS, 0)) for r in results.values()))
    return {EVAL_JSON: path}, metrics
