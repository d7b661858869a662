"""One orange_juicer graph kept up while models are hot-swapped into it (the loop's StackSession).

In one running graph (with the sim robot's scripted operator available): a tiny model runs two
episodes; a second model is swapped in with LoadPolicy and collects an episode with the scripted
operator on, which takes over (steps flagged as intervention in the ingested dataset); then the
second model runs the first model's two seeds again with the operator off (no intervention).
Checked: one graph process throughout, every episode ran the model and the seed its batch
asked for and has its bag, the simulation is paused between batches, a file the policy node
cannot load is refused with the reason while the old model keeps running, and the graph stops
cleanly.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")
TIME_LIMIT = 1.5  # s simulated per evaluation episode
COLLECT_LIMIT = 6.0  # s: the operator takes over after 4 s without progress at the latest


def _flags(bags, card_path, out):
    from rl100.data.reader import Dataset
    from rl100.ingest import IngestSpec, ingest
    from rl100.ingest_points import PointsPreprocessing

    card = json.loads(card_path.read_text())
    ingest(bags, out, IngestSpec(points=PointsPreprocessing.from_card(card), points_seed=0))
    return np.concatenate([np.asarray(ep["flags"]) for ep in Dataset(out)])


def test_models_swap_into_one_running_graph(tmp_path, points_model, points_model_b):
    from rl100_bringup.episodes import StackError
    from rl100_bringup.stack_loop import StackCollector
    from rl100_bringup.stack_session import StackSession, call_service, model_id
    from rl100_sim.sim_robot_node import SIM_SUCCESS
    from std_srvs.srv import Trigger

    from rl100.data.reader import Dataset
    from rl100.keys import FLAG_INTERVENTION, FLAG_ROLLOUT

    session = StackSession(tmp_path / "bags", env=dict(os.environ), time_limit=TIME_LIMIT,
                           ready_timeout=60.0, run_timeout=180.0, log_path=tmp_path / "graph.log",
                           operator=True)
    with session:
        first = session.run(points_model, tmp_path / "a", 2, seed=500)
        pid = session.proc.pid

        collector = StackCollector(session, operator=True)
        collector_run = session.run

        def collect_run(*args, **kwargs):  # the collector's batch, with a longer time limit
            return collector_run(*args, **kwargs, time_limit=COLLECT_LIMIT)

        session.run = collect_run
        dataset = collector.collect(points_model_b, tmp_path / "c", 1, seed=700)
        session.run = collector_run
        collected = np.concatenate([np.asarray(ep["flags"]) for ep in Dataset(dataset)])
        assert np.any(collected == FLAG_INTERVENTION), np.unique(collected)

        second = session.run(points_model_b, tmp_path / "b", 2, seed=500)
        log = (tmp_path / "graph.log").read_text()
        assert session.proc.pid == pid and session.swaps == 1, log
        for results, model in ((first, points_model), (second, points_model_b)):
            episodes = results["episodes"]
            assert [e["seed"] for e in episodes] == [500, 501], log
            assert all(e["model"] == model_id(model)[0] for e in episodes), episodes
            assert all(not e["error"] and os.path.isfile(os.path.join(e["bag"], "metadata.yaml"))
                       for e in episodes), episodes
        evaluated = _flags([e["bag"] for e in second["episodes"]],
                           points_model_b.with_suffix(".card.json"), tmp_path / "eval_ds")
        assert set(np.unique(evaluated)) == {FLAG_ROLLOUT}  # the operator was off

        def sim_time():
            return json.loads(call_service(Trigger, SIM_SUCCESS, Trigger.Request(), "sim").message)["time"]

        paused_at = sim_time()  # between batches the sim is paused: the idle graph costs no CPU
        time.sleep(1.0)
        assert sim_time() == paused_at

        bad = tmp_path / "broken.onnx"
        bad.write_bytes(b"not an onnx graph")
        with pytest.raises(StackError, match="refused"):
            session.swap(bad)
        assert session.running_model == model_id(points_model_b)[0]
    assert session.proc is None
    assert "policy_node exited" not in (tmp_path / "graph.log").read_text()
