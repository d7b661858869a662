"""PolicyRuntime: card checks, observation validation, history padding, chunk scheduling, temporal ensembling."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from rl100.export.card import CardError, card_path, make_card, write_card
from rl100.keys import OBS_STATE
from rl100.runtime import PolicyRuntime

TA = 4  # horizon of the hand-made graph; n_obs = 2, Da = 1, n_action_steps = 2


def _hand_graph(tmp_path, **card_overrides):
    """action[b, j, 0] = 100 * first_obs + 10 * last_obs + j (+ 0 * noise): easy to compute by hand."""
    ones = helper.make_tensor("w", TensorProto.FLOAT, [1, 2, 1], [100.0, 10.0])
    ramp = helper.make_tensor("ramp", TensorProto.FLOAT, [1, TA, 1], [float(j) for j in range(TA)])
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    nodes = [
        helper.make_node("Mul", [OBS_STATE, "w"], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "axes"], ["base"], keepdims=1),  # (B, 1, 1)
        helper.make_node("Add", ["base", "ramp"], ["chunk"]),  # (B, TA, 1)
        helper.make_node("Mul", ["noise", "zero"], ["nz"]),
        helper.make_node("Add", ["chunk", "nz"], ["action"]),
    ]
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    graph = helper.make_graph(
        nodes, "hand",
        [helper.make_tensor_value_info(OBS_STATE, TensorProto.FLOAT, ["batch", 2, 1]),
         helper.make_tensor_value_info("noise", TensorProto.FLOAT, ["batch", TA, 1])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["batch", TA, 1])],
        initializer=[ones, ramp, zero, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    path = tmp_path / "hand.onnx"
    onnx.save(model, str(path))
    config = {"obs": [{"key": OBS_STATE, "shape": [1], "dtype": "float32", "kind": "lowdim"}], "n_obs": 2,
              "horizon": TA, "action_dim": 1, "n_action_steps": 2, "num_inference_steps": 1, "eta": 0.0}
    card = make_card(kind="cm", onnx_file=path, config=config, control_rate_hz=10, training_command="hand",
                     normalizer={}) | card_overrides
    write_card(card, path)
    return path


def _obs(v):
    return {OBS_STATE: np.array([v], dtype=np.float32)}


def test_receding_horizon_schedule_by_hand(tmp_path):
    rt = PolicyRuntime(_hand_graph(tmp_path))
    got = [float(rt.act(_obs(v))[0]) for v in (1, 2, 3, 4, 5)]
    # step 0: history [1, 1] (padded) -> chunk 110 + j, execute j = 1, 2 -> 111, 112
    # step 2: history [2, 3] -> 230 + j -> 231, 232;  step 4: history [4, 5] -> 451
    assert got == [111, 112, 231, 232, 451]
    assert rt.latency_stats()["count"] == 3
    rt.reset()
    assert float(rt.act(_obs(7))[0]) == 771  # padding by repetition again after reset
    rt2 = PolicyRuntime(_hand_graph(tmp_path), n_action_steps=1)
    assert [float(rt2.act(_obs(v))[0]) for v in (1, 2, 3)] == [111, 121, 231]


def test_latencies_are_kept_over_a_bounded_window(tmp_path):
    """A node running all day keeps the last ``latency_window`` latencies, and counts them all."""
    rt = PolicyRuntime(_hand_graph(tmp_path), n_action_steps=1, latency_window=3)
    for v in range(5):
        rt.act(_obs(v))
    assert rt.predictions == 5 and len(rt.latencies_ms) == 3
    assert rt.latency_stats()["count"] == 3
    with pytest.raises(ValueError, match="latency_window must be >= 1"):
        PolicyRuntime(_hand_graph(tmp_path), latency_window=0)


def test_temporal_ensemble_by_hand(tmp_path):
    rt = PolicyRuntime(_hand_graph(tmp_path), temporal_ensemble=True, ensemble_k=0.0)
    got = [float(rt.act(_obs(v))[0]) for v in (1, 2, 3, 4)]
    # chunks from action_start: s=0 base 110 -> [111,112,113]; s=1 base 120; s=2 base 230; s=3 base 340
    expected = [111, (112 + 121) / 2, (113 + 122 + 231) / 3, (123 + 232 + 341) / 3]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_observation_validation(tmp_path):
    rt = PolicyRuntime(_hand_graph(tmp_path))
    with pytest.raises(ValueError, match="observation.state"):
        rt.act(_obs(np.nan))
    with pytest.raises(KeyError, match="observation.state"):
        rt.act({})
    with pytest.raises(ValueError, match="shape"):
        rt.act({OBS_STATE: np.zeros(2, np.float32)})
    assert float(rt.act(_obs(1))[0]) == 111  # nothing was pushed by the failed calls


def test_card_mismatches_refused(tmp_path):
    path = _hand_graph(tmp_path)
    card = json.loads(card_path(path).read_text())
    write_card(card | {"sha256": "0" * 64}, path)
    with pytest.raises(CardError, match="sha256"):
        PolicyRuntime(path)
    bad = dict(card)
    bad["observation_spec"] = [{"key": OBS_STATE, "shape": [3, 1], "dtype": "float32", "kind": "lowdim"}]
    write_card(bad, path)
    with pytest.raises(CardError, match=r"input 'observation.state': card says \['batch', 3, 1\]"):
        PolicyRuntime(path)
    bad = dict(card)
    bad["observation_spec"] = [{"key": "observation.points", "shape": [2, 1], "dtype": "float32", "kind": "lowdim"}]
    write_card(bad, path)
    with pytest.raises(CardError, match="'observation.points' in the card but not in the graph"):
        PolicyRuntime(path)
    card_path(path).unlink()
    with pytest.raises(CardError, match="no model card"):
        PolicyRuntime(path)
