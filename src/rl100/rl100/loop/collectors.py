"""Where the loop's episodes come from: the :class:`Collector` / :class:`Evaluator` interfaces and the in-process
simulation implementation :class:`SimCollector` (with the optional scripted operator).

A collector runs ``n_episodes`` with an exported policy (``.onnx`` + card) and writes them as an
:mod:`rl100.data` dataset under ``out_dir`` (a fresh, empty directory the loop gives it for this collection):
policy steps flagged ``FLAG_ROLLOUT``, operator steps ``FLAG_INTERVENTION``, the sparse task reward, success and
termination per episode. The dataset's observation keys and action must match the loop's data (the
demonstrations) so they can be merged. A collector on the robot stack would run the episodes through the ROS
graph and ingest the recorder's bags (``rl100 ingest``) into ``out_dir``.

An evaluator scores an exported policy over ``n_episodes`` (seeds ``seed + j``) and returns at least
:data:`SUCCESS_RATE`, :data:`EPISODES` and :data:`ENV_STEPS`.
"""

from __future__ import annotations

import functools
import multiprocessing
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rl100.data import Dataset, DatasetWriter, KeySpec
from rl100.data.format import STEP_KEYS
from rl100.keys import ACTION, FLAG_INTERVENTION, FLAG_ROLLOUT
from rl100.loop.operator import OperatorConfig, ScriptedOperator, view_for
from rl100.sim.obs import OBS_NAMES

SUCCESS_RATE, EPISODES, ENV_STEPS = "success_rate", "episodes", "env_steps"
ROLLOUTS_DIR = "rollouts"
# per-episode meta written by SimCollector
SEED, SOURCE, POLICY, TAKEOVER_STEP, TAKEOVER_REASON = "seed", "source", "policy", "takeover_step", "takeover_reason"
DISTURBANCE = "disturbance"
SOURCE_ROLLOUT = "policy_rollout"

_NAME_OF_KEY = {key: name for name, key in OBS_NAMES.items()}


class Collector(Protocol):
    def collect(self, policy_onnx: Path, out_dir: Path, n_episodes: int, seed: int) -> Path:
        """Run ``n_episodes`` (episode ``k`` seeded ``seed + k``) with the policy; returns the dataset path."""
        ...


class Evaluator(Protocol):
    def evaluate(self, policy_onnx: Path, n_episodes: int, seed: int) -> dict[str, Any]:
        """Score the policy over ``n_episodes`` (episode ``j`` seeded ``seed + j``)."""
        ...


class PolicyLike(Protocol):
    """What drives a rollout: :class:`rl100.runtime.PolicyRuntime`'s ``reset`` / ``act``."""

    def reset(self) -> None: ...

    def act(self, obs: Mapping[str, Any]) -> np.ndarray: ...


def record_specs(dataset: Dataset) -> dict[str, KeySpec]:
    """Observation keys + action of ``dataset`` (what a collection must record to be mergeable with it)."""
    return {k: v for k, v in dataset.specs.items() if k not in STEP_KEYS or k == ACTION}


class SimCollector:
    """Collects and evaluates in an ``rl100.sim`` task, in this process, through :class:`PolicyRuntime`.

    ``specs``: keys to record, ``KeySpec`` or ``(dtype, shape)`` (:func:`record_specs` of the loop's data);
    ``meta``: dataset meta of the loop's data (camera size / points per cloud for keys the policy does not read;
    copied into the rollouts' meta);
    ``operator``: the scripted operator's thresholds (None: no operator); ``expert_skill``: the skill of the expert
    the operator drives; ``threads``: ONNX Runtime intra-op threads; ``workers``: processes for collection and
    evaluation (each its own simulator and runtime); ``temporal_ensemble``: the runtime replans every step and
    averages overlapping chunks (the deployed mode of the shipped model); ``disturbances``: robustness family specs
    (:mod:`rl100.sim.disturbances`) that collected episodes run under, the episode seeded s under entry s mod their
    number (``none``: nominal), recorded in its meta (``disturbance``); evaluation is always nominal.
    """

    def __init__(self, task: str, specs: Mapping[str, Any], *, meta: Mapping[str, Any] | None = None,
                 task_options: Mapping[str, Any] | None = None, operator: OperatorConfig | None = None,
                 expert_skill: float = 1.0, fsync: bool = True, threads: int = 1, workers: int = 1,
                 temporal_ensemble: bool = False, disturbances: Sequence[str] = ()) -> None:
        if ACTION not in specs:
            raise ValueError(f"specs must include {ACTION!r}")
        self.task = task
        self.specs = {k: KeySpec.coerce(v) for k, v in specs.items()}
        self.keys = [k for k in self.specs if k != ACTION]
        unknown = [k for k in self.keys if k not in _NAME_OF_KEY]
        if unknown:
            raise ValueError(f"the simulator has no observation keys {unknown} (it has {sorted(_NAME_OF_KEY)})")
        self.meta = dict(meta or {})
        self.task_options = dict(task_options or {})
        self.operator_config = operator
        self.view = view_for(task) if operator is not None else None
        self.expert_skill = float(expert_skill)
        self.fsync = fsync
        self.threads = int(threads)
        self.workers = int(workers)
        self.temporal_ensemble = bool(temporal_ensemble)
        self.disturbances = [str(d) for d in disturbances]
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._kwargs = {"task": task, "specs": self.specs, "meta": self.meta, "task_options": self.task_options,
                        "operator": operator, "expert_skill": expert_skill, "fsync": fsync, "threads": threads,
                        "temporal_ensemble": temporal_ensemble, "disturbances": self.disturbances}

    # ------------------------------------------------------------------------------------------ interfaces
    def collect(self, policy_onnx: Path, out_dir: Path, n_episodes: int, seed: int) -> Path:
        """With ``workers`` > 1 the episodes are split into contiguous seed ranges, each recorded by its own
        process into ``out_dir/shards/NN``, then merged in seed order into ``out_dir/rollouts`` (hard links)."""
        root = Path(out_dir) / ROLLOUTS_DIR
        workers = min(self.workers, n_episodes)
        if workers <= 1:
            return self._collect_range(policy_onnx, root, n_episodes, seed)
        from rl100.data import merge

        bounds = np.linspace(0, n_episodes, workers + 1).round().astype(int)
        shards = [Path(out_dir) / "shards" / f"{i:02d}" for i in range(workers)]
        ctx = multiprocessing.get_context("spawn")  # MuJoCo / ONNX Runtime state is not fork-safe
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            jobs = [pool.submit(_collect_shard, self._kwargs, policy_onnx, shard, int(b - a), seed + int(a))
                    for shard, a, b in zip(shards, bounds[:-1], bounds[1:], strict=True)]
            for job in jobs:
                job.result()  # a worker's error is raised here, naming its shard
        merge(shards, root, meta=Dataset(shards[0]).meta, hardlink=True, fsync=self.fsync)
        shutil.rmtree(Path(out_dir) / "shards")
        return root

    def _collect_range(self, policy_onnx: Path, root: Path, n_episodes: int, seed: int) -> Path:
        from rl100.runtime import PolicyRuntime

        runtime = PolicyRuntime(policy_onnx, seed=seed, intra_op_threads=self.threads,
                                temporal_ensemble=self.temporal_ensemble)
        env = self.make_env(runtime.card, seed)
        try:
            return self.record(runtime, env, root, n_episodes, seed, str(policy_onnx))
        finally:
            env.close()

    def evaluate(self, policy_onnx: Path, n_episodes: int, seed: int) -> dict[str, Any]:
        from rl100 import sim
        from rl100.export.card import card_path, read_card
        from rl100.runtime import PolicyRuntime
        from rl100.train.evaluate import evaluate_parallel

        make_runtime = functools.partial(PolicyRuntime, policy_onnx, seed=seed, intra_op_threads=self.threads,
                                         temporal_ensemble=self.temporal_ensemble)
        names, kw = self.env_kwargs(read_card(card_path(policy_onnx)))  # the runtimes check it against the graph
        make_env = functools.partial(sim.make_env, self.task, seed=seed, obs=names, **kw)
        res = evaluate_parallel(make_runtime, make_env, n_episodes, seed, self.workers, failure_modes=True)
        res[ENV_STEPS] = int(sum(res["lengths"]))
        return res

    # ------------------------------------------------------------------------------------------ pieces
    def make_env(self, card: Mapping[str, Any], seed: int):
        """The task with the observations of the card's inputs and of the recorded keys."""
        from rl100 import sim
        from rl100.sim.disturbances import cycle

        names, kw = self.env_kwargs(card)
        return cycle(sim.make_env(self.task, seed=seed, obs=names, **kw), self.disturbances)

    def env_kwargs(self, card: Mapping[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
        """(observation names, other ``sim.make_env`` keywords) for the card's inputs and the recorded keys."""
        kw: dict[str, Any] = {"camera_size": tuple(self.meta.get("camera_size", (96, 96))),
                              "n_points": int(self.meta.get("n_points", 512))}
        if self.meta.get("points_depth_filter", "none") != "none":  # the demos' camera filter
            kw["points_depth_filter"] = self.meta["points_depth_filter"]
        keys = set(self.keys)
        for o in card["observation_spec"]:
            keys.add(o["key"])
            if o["kind"] == "rgb":
                kw["camera_size"] = tuple(o["shape"][1:3])
            elif o["kind"] == "points":
                kw["n_points"] = int(o["shape"][1])
        missing = sorted(k for k in keys if k not in _NAME_OF_KEY)
        if missing:
            raise ValueError(f"the simulator has no observation keys {missing}")
        names = tuple(_NAME_OF_KEY[k] for k in sorted(keys))
        return names, kw | self.task_options

    def record(self, policy: PolicyLike, env: Any, root: Path, n_episodes: int, seed: int, policy_name: str = ""
               ) -> Path:
        """Run ``n_episodes`` with ``policy`` in ``env`` (operator watching, if configured) into a new dataset."""
        from rl100 import sim

        if n_episodes < 1:
            raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
        operator = ScriptedOperator(self.operator_config) if self.operator_config is not None else None
        expert = sim.make_expert(self.task, env, skill=self.expert_skill, seed=seed) if operator else None
        meta = {k: v for k, v in self.meta.items() if k not in (SOURCE,)} | {"task": self.task,
                                                                               SOURCE: SOURCE_ROLLOUT}
        with DatasetWriter(root, meta=meta, specs=self.specs, cast=True, fsync=self.fsync,
                           note={"mode": "loop_collect", POLICY: policy_name}) as writer:
            for k in range(n_episodes):
                self._episode(policy, env, writer, seed + k, operator, expert, policy_name)
        return root

    def _episode(self, policy: PolicyLike, env: Any, writer: DatasetWriter, seed: int,
                 operator: ScriptedOperator | None, expert: Any, policy_name: str) -> None:
        meta = {SEED: seed, SOURCE: SOURCE_ROLLOUT, POLICY: policy_name}
        obs, _ = env.reset(seed=seed)
        if getattr(env, "current", None) is not None:  # a DisturbanceCycle: this episode's family
            meta[DISTURBANCE] = env.current
        policy.reset()
        if operator is not None:
            operator.reset()
        episode = writer.begin_episode(meta=meta)
        while True:
            in_control = operator is not None and operator.update(self.view(obs))
            if in_control and operator.takeover_step == operator.step - 1:
                expert.reset()  # the operator takes over at this step: the expert plans from here
            action = expert.act(obs) if in_control else policy.act(obs)
            next_obs, reward, terminated, truncated, info = env.step(action)
            flags = FLAG_INTERVENTION if in_control else FLAG_ROLLOUT
            episode.add_step({k: obs[k] for k in self.keys}, action, reward, flags)  # (o_t, a_t, r_t)
            obs = next_obs
            if terminated or truncated:
                break
        if operator is not None and operator.active:
            episode.meta.update({TAKEOVER_STEP: operator.takeover_step, TAKEOVER_REASON: operator.reason})
        dset = getattr(env.unwrapped, "disturbances", None)
        if dset is not None:  # what the families did (as rl100 collect records it)
            from rl100.sim.disturbances import events_meta

            episode.meta["disturbance_events"] = events_meta(dset)
        episode.end(success=bool(info.get("success", False)), terminal=bool(terminated))


def _collect_shard(kwargs: dict[str, Any], policy_onnx: Path, root: Path, n_episodes: int, seed: int) -> Path:
    """Worker process: episodes ``seed .. seed + n_episodes - 1`` into the dataset ``root``."""
    try:
        return SimCollector(**kwargs)._collect_range(policy_onnx, root, n_episodes, seed)
    except Exception as exc:
        raise RuntimeError(f"collection shard {root} (seeds {seed}..{seed + n_episodes - 1}): {exc}") from exc


def collection_metrics(dataset: Dataset) -> dict[str, Any]:
    """Episodes, success, env steps and interventions (episodes, steps, reasons) of a collected dataset."""
    infos = dataset.infos
    reasons: dict[str, int] = {}
    for info in infos:
        reason = info.meta.get(TAKEOVER_REASON)
        if reason:
            reasons[reason] = reasons.get(reason, 0) + 1
    by_disturbance: dict[str, list[bool]] = {}
    for info in infos:
        if DISTURBANCE in info.meta:
            by_disturbance.setdefault(str(info.meta[DISTURBANCE]), []).append(bool(info.success))
    inter = [i for i in infos if i.flags_any & FLAG_INTERVENTION]
    alone = [i for i in infos if not i.flags_any & FLAG_INTERVENTION]
    n = len(infos)
    return {EPISODES: n, SUCCESS_RATE: float(np.mean([i.success for i in infos])) if n else 0.0,
            ENV_STEPS: int(dataset.num_steps), "intervention_episodes": len(inter),
            "intervention_steps": int(sum(i.flag_counts.get("intervention", 0) for i in infos)),
            "intervention_success_rate": float(np.mean([i.success for i in inter])) if inter else None,
            "policy_only_success_rate": float(np.mean([i.success for i in alone])) if alone else None,
            "takeover_reasons": reasons,
            "disturbance_success": {k: float(np.mean(v)) for k, v in sorted(by_disturbance.items())}}
