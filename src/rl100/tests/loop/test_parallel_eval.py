"""Evaluation over worker processes gives the same per-episode results as in one process.

The environment's reward here is the sum of the executed action (a wrapper), so returns depend on
the sampler noise: equal returns mean equal noise per episode, whatever the number of workers.
"""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np
import pytest

from rl100.train.evaluate import evaluate_parallel, run_episode


class ActionSumReward(gym.Wrapper):
    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        return obs, float(np.sum(action)), terminated, truncated, info


def make_env(max_steps: int):
    from rl100 import sim

    return ActionSumReward(sim.make_env("juicing-place", obs=("state",), max_steps=max_steps))


@pytest.fixture(scope="module")
def cm_onnx(init_policy, tmp_path_factory):
    from rl100.export.onnx_export import export_onnx
    from rl100.policy.checkpoint import load_policy

    path = tmp_path_factory.mktemp("par") / "cm.onnx"
    export_onnx(load_policy(init_policy[1]), path, training_command="test")
    return path


def test_workers_do_not_change_results(cm_onnx, h):
    from rl100.runtime import PolicyRuntime

    make_runtime = functools.partial(PolicyRuntime, cm_onnx, seed=5, intra_op_threads=1)
    make = functools.partial(make_env, h.MAX_STEPS)
    one = evaluate_parallel(make_runtime, make, 4, seed=100, workers=1, failure_modes=True)
    two = evaluate_parallel(make_runtime, make, 4, seed=100, workers=2, failure_modes=True)
    assert one["lengths"] == two["lengths"] == [h.MAX_STEPS] * 4
    assert one["episode_outcomes"] == two["episode_outcomes"] and len(two["episode_outcomes"]) == 4
    assert one["outcomes"] == two["outcomes"] and sum(two["outcomes"]["modes"].values()) == 4
    assert one["mean_return"] == pytest.approx(two["mean_return"], abs=1e-5)
    assert two["latency"]["count"] == one["latency"]["count"] > 0
    # and the noise really differs between episodes (the check above is not vacuous)
    runtime, env = make_runtime(), make()
    r100, r101, again = (run_episode(runtime, env, s)[1] for s in (100, 101, 100))
    env.close()
    assert abs(r100 - r101) > 1e-4 and again == pytest.approx(r100, abs=1e-6)


def test_bad_worker_count_is_refused(cm_onnx):
    with pytest.raises(ValueError, match="workers must be >= 1"):
        evaluate_parallel(lambda: None, lambda: None, 2, seed=0, workers=0)


def test_parallel_collection_merges_shards_in_seed_order(cm_onnx, demos, h, tmp_path):
    from rl100.data import Dataset
    from rl100.loop.collectors import SEED, SimCollector, record_specs
    from rl100.loop.operator import OperatorConfig

    ds = Dataset(demos)
    collector = SimCollector("juicing-place", record_specs(ds), meta=ds.meta,
                             task_options={"max_steps": h.MAX_STEPS}, operator=OperatorConfig(stall_steps=4),
                             fsync=False, workers=2)
    root = collector.collect(cm_onnx, tmp_path, 3, seed=100)
    out = Dataset(root)
    assert [out.episode_info(i).meta[SEED] for i in range(len(out))] == [100, 101, 102]
    assert out.num_steps == 3 * h.MAX_STEPS and not (tmp_path / "shards").exists()
    assert set(out.specs) == set(ds.specs)


def test_temporal_ensemble_replans_every_step(cm_onnx, demos, h):
    from rl100.data import Dataset
    from rl100.loop.collectors import SimCollector, record_specs

    ds = Dataset(demos)
    kw = {"meta": ds.meta, "task_options": {"max_steps": h.MAX_STEPS}, "fsync": False}
    te = SimCollector("juicing-place", record_specs(ds), temporal_ensemble=True, **kw).evaluate(cm_onnx, 2, seed=7)
    chunked = SimCollector("juicing-place", record_specs(ds), **kw).evaluate(cm_onnx, 2, seed=7)
    assert te["latency"]["count"] == te["env_steps"] == 2 * h.MAX_STEPS  # one prediction per step
    assert chunked["latency"]["count"] < chunked["env_steps"]  # one per executed chunk


def test_collection_under_disturbances_cycles_them_by_seed(cm_onnx, demos, h, tmp_path):
    """Episode seeded s runs under entry s mod n, recorded in its meta with what the family did; the collector's
    evaluation stays nominal, and a spec that is no family is refused by the loop's config."""
    from rl100.data import Dataset
    from rl100.loop.collectors import DISTURBANCE, SEED, SimCollector, collection_metrics, record_specs
    from rl100.loop.config import LoopConfig

    ds = Dataset(demos)
    collector = SimCollector("juicing-place", record_specs(ds), meta=ds.meta, task_options={"max_steps": 8},
                             fsync=False, disturbances=["none", "table_height:severe"])
    out = Dataset(collector.collect(cm_onnx, tmp_path, 3, seed=100))
    metas = [out.episode_info(i).meta for i in range(len(out))]
    assert [(m[SEED], m[DISTURBANCE]) for m in metas] == [(100, "none"), (101, "table_height:severe"),
                                                            (102, "none")]
    assert "disturbance_events" not in metas[0] and metas[1]["disturbance_events"]  # the table moved in 101 only
    assert set(collection_metrics(out)["disturbance_success"]) == {"none", "table_height:severe"}
    with pytest.raises(ValueError, match="shove"):
        LoopConfig(policy="p", task="t", disturbances=["move_object", "shove"])


def test_eval_command_names_failure_modes(cm_onnx, tmp_path, capsys):
    import json

    from rl100.cli import main

    out = tmp_path / "eval.json"
    argv = ["eval", str(cm_onnx), "--task", "juicing-place", "--episodes", "2", "--max-steps", "6", "--threads", "1",
            "--json", str(out)]
    assert main([*argv, "--failure-modes"]) == 0
    result = json.loads(out.read_text())
    assert sum(result["outcomes"]["modes"].values()) == 2 and len(result["episode_outcomes"]) == 2
    assert main(argv) == 0 and "outcomes" not in json.loads(out.read_text())  # only when asked
