"""One orange_juicer graph kept up while models are hot-swapped into it (the loop's StackSession).

Two different tiny models run two episodes each on the same seeds through one running graph:
the second batch is a LoadPolicy swap, not a restart (same graph process), every episode reports
the model the batch asked for and the seeds the batch asked for, and each has its bag. A model
file the policy node cannot load is refused with its reason while the old model keeps running,
and the collector turns a batch's bags into a dataset. The graph stops cleanly at the end.
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("rclpy")
TIME_LIMIT = 1.5  # s simulated per episode


def test_models_swap_into_one_running_graph(tmp_path, points_model, points_model_b):
    from rl100_bringup.episodes import StackError
    from rl100_bringup.stack_loop import StackCollector
    from rl100_bringup.stack_session import StackSession, model_id

    from rl100.data.reader import Dataset

    session = StackSession(tmp_path / "bags", env=dict(os.environ), time_limit=TIME_LIMIT,
                           ready_timeout=60.0, run_timeout=180.0, log_path=tmp_path / "graph.log")
    with session:
        first = session.run(points_model, tmp_path / "a", 2, seed=500)
        pid = session.proc.pid
        second = session.run(points_model_b, tmp_path / "b", 2, seed=500)
        log = (tmp_path / "graph.log").read_text()
        assert session.proc.pid == pid and session.swaps == 1, log
        for results, model in ((first, points_model), (second, points_model_b)):
            episodes = results["episodes"]
            assert [e["seed"] for e in episodes] == [500, 501], log
            assert all(e["model"] == model_id(model)[0] for e in episodes), episodes
            assert all(not e["error"] and os.path.isfile(os.path.join(e["bag"], "metadata.yaml"))
                       for e in episodes), episodes

        bad = tmp_path / "broken.onnx"
        bad.write_bytes(b"not an onnx graph")
        with pytest.raises(StackError, match="refused"):
            session.swap(bad)
        assert session.running_model == model_id(points_model_b)[0]

        dataset = StackCollector(session).collect(points_model_b, tmp_path / "c", 1, seed=700)
        episodes = list(Dataset(dataset))
        assert len(episodes) == 1 and episodes[0].length > 0
    assert session.proc is None
    assert "policy_node exited" not in (tmp_path / "graph.log").read_text()
