"""The resumable round orchestrator of RL-100's iterative offline RL: :class:`Loop` / :func:`run_loop`.

Round 0 distils, exports and evaluates the initial (imitation) policy. Round ``r >= 1``:

1. ``collect``  -- ``Collector.collect`` with the policy carried from round ``r - 1`` (its CM or DDIM export);
2. ``merge``    -- previous data + the new episodes (:func:`rl100.data.merge`, hard links);
3. ``offline``  -- :func:`rl100.rl.offline.offline_round` (critics -> PPO -> OPE gate) from the carried policy;
4. ``reil``     -- (``reil``) re-imitation from the offline round's policy on demos + successful rollouts +
   intervention segments;
5. ``distill``  -- the one-step consistency student of the round's policy;
6. ``export``   -- ``cm.onnx`` and ``ddim.onnx`` with their cards;
7. ``evaluate`` -- ``Evaluator.evaluate`` of the exports on fixed seeds; with ``eval_gate`` a round whose success
   is more than ``eval_gate_margin`` below the best adopted round's is not adopted (the next round starts from the
   last adopted policy).

With ``online_iterations`` one more round follows (``rounds + 1``, the online phase): ``online`` (on-policy PPO + GAE
in simulation from the last adopted policy, V warm-started from the latest offline round's critics) -> ``distill``
-> ``export`` -> ``evaluate``, on the last round's merged data.

Each step writes only into ``round_<r>/<step>/`` and is recorded in the ledger (:mod:`rl100.loop.ledger`): a
completed step is never rerun; an interrupted one (``started`` in the ledger) has its directory deleted and runs
again. Every step seeds itself from the config and the round, so a resumed run equals an uninterrupted one.
After every round (and on leaving) ``summary.md`` and ``success.png`` are rewritten from the ledger.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rl100.data import Dataset
from rl100.loop import steps as st
from rl100.loop.collectors import SUCCESS_RATE, Collector, Evaluator, SimCollector, collection_metrics, record_specs
from rl100.loop.config import LoopConfig, effective_config
from rl100.loop.ledger import Ledger, LedgerError
from rl100.loop.steps import ADOPTED, COLLECT, DISTILL, EVAL_GATE, EVALUATE, EXPORT, MERGE, OFFLINE, ONLINE, REIL
from rl100.loop.summary import round_rows, write_summary


def round_dir_name(rnd: int) -> str:
    return f"round_{rnd:03d}"


def round_steps(cfg: LoopConfig, rnd: int) -> list[str]:
    if rnd == 0:
        return [DISTILL, EXPORT, EVALUATE]
    if cfg.online_round(rnd):
        return [ONLINE, DISTILL, EXPORT, EVALUATE]
    return [COLLECT, MERGE, *([OFFLINE] if cfg.offline_rl else []), *([REIL] if cfg.reil else []), DISTILL, EXPORT,
            EVALUATE]


def initial_dataset(cfg: LoopConfig) -> Path:
    """``cfg.dataset``, or the dataset the initial policy was trained on (its checkpoint meta)."""
    from rl100.policy.checkpoint import read_policy_json

    path = cfg.dataset or read_policy_json(cfg.policy).get("meta", {}).get("dataset", "")
    if not path:
        raise ValueError(f"{cfg.policy} records no training dataset: give the initial data (--dataset)")
    if not Path(path).exists():
        raise FileNotFoundError(f"initial dataset {path} not found (--dataset)")
    return Path(path)


def task_control_rate(cfg: LoopConfig) -> float:
    if cfg.control_rate > 0:
        return cfg.control_rate
    from rl100 import sim

    try:
        return float(sim.make_config(cfg.task, **cfg.task_options).control_hz)
    except ValueError:  # not a Panda task (Meta-World): its own rate is not a config field
        return 10.0


def points_preprocessing(cfg: LoopConfig, data: Path) -> dict[str, Any] | None:
    """Point-cloud crop box + sampler for the cards: the data's meta (``rl100 collect`` records it), else the
    simulated task's config (what the simulation collector's clouds were made with), else None."""
    from rl100 import sim
    from rl100.pointcloud import points_preprocessing as from_meta

    pre = from_meta(Dataset(data).meta)
    if pre is not None:
        return pre
    try:
        c = sim.make_config(cfg.task, **cfg.task_options)
    except ValueError:  # Meta-World: no point-cloud config fields
        return None
    return from_meta({"points_lo": list(c.points_lo), "points_hi": list(c.points_hi),
                      "points_sampler": c.points_sampler, "points_depth_filter": c.points_depth_filter})


class Loop:
    """One run directory. ``collector`` / ``evaluator``: default :class:`SimCollector` on ``cfg.task``."""

    def __init__(self, cfg: LoopConfig, collector: Collector | None = None, evaluator: Evaluator | None = None,
                 ) -> None:
        if not cfg.policy:
            raise ValueError("no initial policy given (--policy)")
        self.cfg = cfg
        self.run_dir = Path(cfg.out)
        self.data0 = initial_dataset(cfg)
        self.ledger = Ledger(self.run_dir, cfg.to_dict(), fsync=cfg.fsync, comparable=effective_config)
        self._check_extension()
        if collector is None or evaluator is None:
            ds = Dataset(self.data0)
            sim = SimCollector(cfg.task, record_specs(ds), meta=ds.meta, task_options=cfg.task_options,
                               operator=cfg.operator_config(), expert_skill=cfg.expert_skill, fsync=cfg.fsync,
                               threads=cfg.threads, workers=cfg.workers,
                               temporal_ensemble=cfg.temporal_ensemble, disturbances=cfg.disturbances)
            collector, evaluator = collector or sim, evaluator or sim
        self.collector, self.evaluator = collector, evaluator
        self.steps: dict[str, Callable[[int, Path], st.StepResult]] = {
            COLLECT: self._collect, MERGE: self._merge, OFFLINE: self._offline, REIL: self._reil, ONLINE: self._online,
            DISTILL: self._distill, EXPORT: self._export, EVALUATE: self._evaluate}

    def _check_extension(self) -> None:
        """A rerun with other rounds / online settings (the ledger allows it) must fit what the run already did:
        every recorded round's steps are this configuration's steps of that round, and an online phase that has
        started keeps its settings."""
        for rnd, entry in enumerate(self.ledger.rounds[: self.cfg.last_round + 1]):
            extra = sorted(set(entry["steps"]) - set(round_steps(self.cfg, rnd)))
            if extra:
                raise LedgerError(f"{self.ledger.path}: round {rnd} ran {sorted(entry['steps'])}, which does not fit "
                                  f"rounds={self.cfg.rounds}, online_iterations={self.cfg.online_iterations} "
                                  "(use a new --out, or the run's settings)")
        online = self.cfg.rounds + 1
        started = online < len(self.ledger.rounds) and ONLINE in self.ledger.rounds[online]["steps"]
        changed = sorted({"online", "online_iterations"} & set(self.ledger.changed))
        if started and changed:
            raise LedgerError(f"{self.ledger.path}: the online phase (round {online}) has started; {changed} can no "
                              "longer change (use a new --out)")

    # ------------------------------------------------------------------------------------------ running
    def run(self, stop_after: int | None = None) -> list[dict[str, Any]] | None:
        """Run (or continue) every round; returns the summary rows, or None when ``stop_after`` steps were run
        in this call before the end (a resume point: rerun to continue)."""
        ran = 0
        try:
            for rnd in range(self.cfg.last_round + 1):
                for step in round_steps(self.cfg, rnd):
                    if self.ledger.done(rnd, step):
                        continue
                    if stop_after is not None and ran >= stop_after:
                        return None
                    self.run_step(rnd, step)
                    ran += 1
                self.summarise()
        finally:
            self.summarise()
        return round_rows(self.ledger, self.cfg.last_round)

    def run_step(self, rnd: int, step: str) -> None:
        out_dir = self.run_dir / round_dir_name(rnd) / step
        self.ledger.start(rnd, step)
        if out_dir.exists():  # left by an interrupted attempt: never trusted
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        t0 = time.perf_counter()
        outputs, metrics = self.steps[step](rnd, out_dir)
        self.ledger.finish(rnd, step, outputs, metrics, time.perf_counter() - t0)

    def summarise(self) -> None:
        write_summary(self.run_dir, round_rows(self.ledger, self.cfg.last_round), self.cfg)

    # ------------------------------------------------------------------------------------------ state
    def data(self, rnd: int) -> Path:
        """The data round ``rnd`` learns from (the online phase: the last offline round's)."""
        if self.cfg.online_round(rnd):
            rnd -= 1
        return self.data0 if rnd == 0 else self.ledger.outputs(rnd, MERGE)[st.DATA]

    def round_policy(self, rnd: int) -> Path:
        """The diffusion policy round ``rnd`` produced (round 0: the initial policy)."""
        if rnd == 0:
            return Path(self.cfg.policy)
        if self.cfg.online_round(rnd):
            return self.ledger.outputs(rnd, ONLINE)[st.POLICY]
        return self.ledger.outputs(rnd, REIL if self.cfg.reil else OFFLINE)[st.POLICY]

    def carried(self, rnd: int) -> int:
        """The round whose policy the rounds after ``rnd`` start from (``rnd``, unless the eval gate refused it)."""
        while rnd > 0 and not self.ledger.metrics(rnd, EVALUATE).get(ADOPTED, False):
            rnd -= 1
        return rnd

    def best_adopted(self, rnd: int, key: str) -> tuple[float, int]:
        """(highest ``key`` among the adopted rounds 0..rnd, that round). The eval gate measures a round against it,
        not against the previous round, so that drops each within the margin cannot add up to a larger one."""
        best = (float("-inf"), 0)
        for r in range(rnd + 1):
            m = self.ledger.metrics(r, EVALUATE)
            if m.get(ADOPTED, False) and m.get(key, 0.0) > best[0]:
                best = (m.get(key, 0.0), r)
        return best

    def seed(self, rnd: int) -> int:
        return self.cfg.seed + rnd

    # ------------------------------------------------------------------------------------------ steps
    def _collect(self, rnd: int, out_dir: Path) -> st.StepResult:
        onnx = self.ledger.outputs(self.carried(rnd - 1), EXPORT)[f"{self.cfg.collect_with}_onnx"]
        path = Path(self.collector.collect(onnx, out_dir, self.cfg.episodes, self.cfg.collect_seed(rnd)))
        if out_dir.resolve() != path.resolve() and out_dir.resolve() not in path.resolve().parents:
            raise LedgerError(f"the collector wrote its dataset to {path}, outside its directory {out_dir}")
        return {st.DATA: path}, collection_metrics(Dataset(path)) | {"policy": self.ledger.relative(onnx)}

    def _merge(self, rnd: int, out_dir: Path) -> st.StepResult:
        return st.merge_step(self.data(rnd - 1), self.ledger.outputs(rnd, COLLECT)[st.DATA], out_dir, self.cfg.fsync)

    def _offline(self, rnd: int, out_dir: Path) -> st.StepResult:
        start = self.round_policy(self.carried(rnd - 1))
        return st.offline_step(self.cfg, start, self.data(rnd), out_dir, self.seed(rnd))

    def _reil(self, rnd: int, out_dir: Path) -> st.StepResult:
        policy = (self.ledger.outputs(rnd, OFFLINE)[st.POLICY] if self.cfg.offline_rl  # ablation: re-IL only
                  else self.round_policy(self.carried(rnd - 1)))
        return st.reil_step(self.cfg, policy, self.data(rnd), out_dir, self.seed(rnd))

    def _online(self, rnd: int, out_dir: Path) -> st.StepResult:
        start = self.round_policy(self.carried(rnd - 1))
        critics = None  # the last offline round's IQL critics (offline_round writes them beside its policy)
        if self.cfg.offline_rl:
            critics = self.ledger.outputs(rnd - 1, OFFLINE)[st.POLICY].parent / "critics.safetensors"
        outputs, metrics = st.online_step(self.cfg, start, critics, out_dir, self.seed(rnd))
        return outputs, metrics | {"policy": self.ledger.relative(start),
                                   "critics": self.ledger.relative(critics) if critics else ""}

    def _distill(self, rnd: int, out_dir: Path) -> st.StepResult:
        if rnd == 0 and self.cfg.student:
            return {st.POLICY: Path(self.cfg.student)}, {"given": True}
        init, note = None, {}
        if rnd > 0 and self.cfg.distill_warm_start:  # the student of the policy this round started from
            init = self.ledger.outputs(self.carried(rnd - 1), DISTILL)[st.POLICY]
            if not st.same_normalizer(init, self.round_policy(rnd)):  # re-imitation refitted it (il.refit_normalizer)
                init, note = None, {"warm_start": "skipped: the teacher's normaliser differs from the student's"}
        outputs, metrics = st.distill_step(self.cfg, self.round_policy(rnd), self.data(rnd), out_dir, self.seed(rnd),
                                           init)
        return outputs, metrics | note | {"init": self.ledger.relative(init) if init else ""}

    def _export(self, rnd: int, out_dir: Path) -> st.StepResult:
        cm = self.ledger.outputs(rnd, DISTILL)[st.POLICY]
        pre = points_preprocessing(self.cfg, self.data(rnd))
        return st.export_step(cm, self.round_policy(rnd), out_dir, task_control_rate(self.cfg), pre)

    def _evaluate(self, rnd: int, out_dir: Path) -> st.StepResult:
        outputs, metrics = st.evaluate_step(self.evaluator, self.cfg, self.ledger.outputs(rnd, EXPORT), out_dir)
        key = f"{self.cfg.collect_with}_{SUCCESS_RATE}"
        if rnd == 0:
            adopted, reason = True, "initial policy"
        else:
            best, best_rnd = self.best_adopted(rnd - 1, key)
            now = metrics.get(key, 0.0)
            fell = now < best - self.cfg.eval_gate_margin
            adopted = not (self.cfg.eval_gate and fell)
            verdict = "kept the previous policy" if not adopted else ("adopted despite the drop" if fell else
                                                                       "adopted")
            gate = f"margin {self.cfg.eval_gate_margin}, gate {'on' if self.cfg.eval_gate else 'off'}"
            reason = f"{verdict}: {key} {now:.3f} vs best adopted {best:.3f} (round {best_rnd}; {gate})"
        return outputs, metrics | {ADOPTED: adopted, EVAL_GATE: reason}


def run_loop(cfg: LoopConfig, collector: Collector | None = None, evaluator: Evaluator | None = None,
             stop_after: int | None = None) -> list[dict[str, Any]] | None:
    """Run or resume the loop in ``cfg.out`` (see the module docstring); returns the per-round summary rows."""
    return Loop(cfg, collector, evaluator).run(stop_after)
