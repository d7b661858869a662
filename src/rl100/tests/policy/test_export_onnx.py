"""ONNX export: torch vs onnxruntime parity (CM, DDIM deterministic and stochastic, each fast-graph rewrite set)
and the model card."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rl100.export.card import card_path, sha256_file
from rl100.export.fast_graph import LEGACY, FastGraphOptions, FastGraphPolicy
from rl100.export.graph_ops import MatMulConv1d
from rl100.export.graph_ops import mish as graph_mish
from rl100.export.onnx_export import _GraphPolicy, example_inputs, export_onnx
from rl100.export.portable import portable_bytes
from rl100.policy.consistency import ConsistencyPolicy
from rl100.policy.diffusion import DiffusionPolicy


def _parity(policy, path, batch=2):
    card = export_onnx(policy, path, control_rate_hz=15.0, training_command="rl100 train-il --test")
    inputs = example_inputs(card, batch=batch, seed=3)
    with torch.no_grad():
        ref = _GraphPolicy(policy, card["kind"])(*inputs.values()).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {k: v.numpy() for k, v in inputs.items()})
    assert out.shape == (batch, policy.config.horizon, policy.config.action_dim)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)
    return card, sess, inputs


def test_cm_parity_and_card(h, tmp_path):
    cfg = h.tiny_config("all")
    policy = ConsistencyPolicy(cfg).eval()
    card, sess, _ = _parity(policy, tmp_path / "cm.onnx")
    assert [i.name for i in sess.get_inputs()] == [*cfg.obs_keys, "noise"]
    saved = json.loads(card_path(tmp_path / "cm.onnx").read_text())
    assert saved == card
    assert card["kind"] == "cm" and card["num_inference_steps"] == 1
    assert card["sha256"] == sha256_file(tmp_path / "cm.onnx")
    assert card["observation_spec"][2] == {"key": "observation.rgb", "shape": [2, 16, 16, 3], "dtype": "uint8",
                                           "kind": "rgb"}
    assert card["action_spec"]["shape"] == [8, 2] and card["action_spec"]["action_start"] == 1
    assert (card["n_obs"], card["horizon"], card["n_action_steps"], card["control_rate_hz"]) == (2, 8, 4, 15.0)
    assert card["training_command"] == "rl100 train-il --test"


@pytest.mark.parametrize("eta,step_noise", [(0.0, False), (1.0, True), (1.0, False)])
def test_ddim_parity(h, tmp_path, eta, step_noise):
    cfg = h.tiny_config(num_inference_steps=3, eta=eta, step_noise=step_noise)
    policy = DiffusionPolicy(cfg).eval()
    with torch.no_grad():  # non-trivial normaliser in the graph
        policy.normalizer.action.scale.fill_(0.5)
        policy.normalizer.action.offset.fill_(0.1)
    card, sess, inputs = _parity(policy, tmp_path / "ddim.onnx")
    names = [i.name for i in sess.get_inputs()]
    assert card["kind"] == "ddim" and card["num_inference_steps"] == 3
    assert ("step_noise" in names) == (eta > 0 and step_noise) == cfg.stochastic
    assert card["eta"] == eta and card["step_noise"] == step_noise
    # same noise -> same actions as the torch policy's own sampler (deterministic cases)
    if not cfg.stochastic:
        obs = {k: v for k, v in inputs.items() if k.startswith("observation.")}
        ref = policy.predict_action(obs, inputs["noise"]).numpy()
        (out,) = sess.run(None, {k: v.numpy() for k, v in inputs.items()})
        np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)


def test_card_carries_points_preprocessing(h, tmp_path):
    """The crop box / sampler of the training dataset's meta land in the card's points entry (CLI overrides win)."""
    import argparse

    from rl100.data import DatasetWriter
    from rl100.export.cli import points_preprocessing

    with DatasetWriter(tmp_path / "ds", meta={"points_lo": [0.1, -0.5, 0.0], "points_hi": [0.9, 0.5, 0.6],
                                              "points_sampler": "random"}):
        pass
    args = argparse.Namespace(crop_lo=None, crop_hi="1,0.5,0.7", sampler="fps")
    pre = points_preprocessing(args, {"dataset": str(tmp_path / "ds")})
    assert pre == {"crop_lo": [0.1, -0.5, 0.0], "crop_hi": [1.0, 0.5, 0.7], "sampler": "fps", "depth_filter": "none"}
    none = argparse.Namespace(crop_lo=None, crop_hi=None, sampler=None)
    assert points_preprocessing(none, {}) is None
    card = export_onnx(ConsistencyPolicy(h.tiny_config("all")).eval(), tmp_path / "p.onnx", points_preprocessing=pre)
    points = card["observation_spec"][1]
    assert points == {"key": "observation.points", "shape": [2, 32, 3], "dtype": "float32", "kind": "points", **pre}
    assert "crop_lo" not in card["observation_spec"][0]


@pytest.mark.parametrize("opts", [FastGraphOptions(), FastGraphOptions(matmul_conv_max_len=4), LEGACY,
                                  FastGraphOptions(fused_norm=False)], ids=["default", "mixed", "legacy", "conv-mm"])
def test_fast_graph_options_parity(h, tmp_path, opts):
    """Each rewrite set of the fast graph matches the reference wrapper (ONNX Runtime, batch 2, CM)."""
    policy = ConsistencyPolicy(h.tiny_config(clip_sample=False)).eval()  # no clamp: the raw U-Net output is compared
    card = export_onnx(policy, tmp_path / "cm.onnx", fast=opts)
    inputs = example_inputs(card, batch=2, seed=5)
    with torch.no_grad():
        ref = _GraphPolicy(policy, "cm")(*inputs.values()).numpy()
        eager = FastGraphPolicy(policy, "cm", opts)(*inputs.values()).numpy()
    sess = ort.InferenceSession(str(tmp_path / "cm.onnx"), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {k: v.numpy() for k, v in inputs.items()})
    np.testing.assert_allclose(eager, ref, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)
    ops = {n.op_type for n in onnx.load(str(tmp_path / "cm.onnx")).graph.node}
    slow = {"Conv", "ConvTranspose", "Softplus", "InstanceNormalization"}
    if opts == FastGraphOptions():  # horizon 8: every convolution is a MatMul
        assert not ops & slow and "LayerNormalization" in ops
    elif opts == LEGACY:
        assert slow <= ops
    # what an ONNX Runtime < 1.24 (the robots' Python 3.10) runs: the same function, 1-D norm scales
    portable = onnx.load_from_string(portable_bytes((tmp_path / "cm.onnx").read_bytes()))
    shapes = {t.name: list(t.dims) for t in portable.graph.initializer}
    for node in portable.graph.node:  # weights torch deduplicated are Identity outputs
        if node.op_type == "Identity" and node.input[0] in shapes:
            shapes[node.output[0]] = shapes[node.input[0]]
    for node in portable.graph.node:
        if node.op_type == "LayerNormalization":
            assert len(shapes[node.input[1]]) == 1, node.name
    sess = ort.InferenceSession(portable.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {k: v.numpy() for k, v in inputs.items()})[0], out, atol=1e-5)


@pytest.mark.parametrize("conv, length", [(nn.Conv1d(6, 5, 3, padding=1), 8), (nn.Conv1d(6, 5, 3, 2, 1), 8),
                                          (nn.ConvTranspose1d(6, 5, 4, 2, 1), 4), (nn.Conv1d(6, 5, 1), 4),
                                          (nn.Conv1d(6, 5, 5, padding=2), 16), (nn.ConvTranspose1d(6, 5, 3, 2, 1), 5)])
def test_matmul_conv1d_matches_torch(conv, length):
    torch.manual_seed(0)
    x = torch.randn(3, 6, length)
    with torch.no_grad():
        np.testing.assert_allclose(MatMulConv1d(conv, length)(x).numpy(), conv(x).numpy(), atol=1e-5, rtol=1e-5)


def test_mish_graph_extremes(tmp_path):
    """The Exp/Log/Tanh Mish in ONNX Runtime: no NaN where exp overflows, Mish's value elsewhere."""

    class M(nn.Module):
        def forward(self, x):
            return graph_mish(x)

    x = torch.cat([torch.linspace(-200, 200, 801), torch.tensor([-1e30, 1e30, 0.0])]).reshape(1, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(M(), (x,), str(tmp_path / "m.onnx"), input_names=["x"], opset_version=18, dynamo=False)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"x": x.numpy()})
    ref = F.mish(x.double()).numpy()
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(graph_mish(x).numpy(), ref, atol=1e-5, rtol=1e-5)


def _group_norm_model(path, with_bias=True):
    """One LayerNormalization on (B, 2, 3) with a (2, 3) scale [and bias]: NumPy-broadcast affine."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(2, 3)).astype(np.float32), "scale")]
    names = ["x", "scale"]
    if with_bias:
        inits.append(numpy_helper.from_array(rng.normal(size=(2, 3)).astype(np.float32), "bias"))
        names.append("bias")
    node = helper.make_node("LayerNormalization", names, ["y"], name="ln", axis=2, epsilon=1e-5)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 2, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


@pytest.mark.parametrize("with_bias", [True, False])
def test_portable_rewrite_keeps_the_function(tmp_path, with_bias):
    from rl100.export.portable import make_portable

    path = tmp_path / "ln.onnx"
    _group_norm_model(path, with_bias)
    x = np.random.default_rng(1).normal(size=(4, 2, 3)).astype(np.float32)
    before = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert make_portable(path) == 1
    graph = onnx.load(str(path)).graph
    assert [n.op_type for n in graph.node] == ["LayerNormalization", "Mul"] + (["Add"] if with_bias else [])
    after = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert make_portable(path) == 0  # nothing left to rewrite


def test_runtime_rewrites_the_graph_for_an_older_onnx_runtime(h, tmp_path, monkeypatch):
    from rl100.export.portable import needs_portable_graph
    from rl100.runtime import PolicyRuntime

    assert needs_portable_graph("1.20.1") and needs_portable_graph("1.23.2") and needs_portable_graph("dev")
    assert not needs_portable_graph("1.24.1") and not needs_portable_graph("1.32.0")
    policy = ConsistencyPolicy(h.tiny_config()).eval()
    export_onnx(policy, tmp_path / "cm.onnx")
    obs = {o["key"]: np.full(o["shape"][1:], 0.3, np.float32)
           for o in PolicyRuntime(tmp_path / "cm.onnx").card["observation_spec"]}
    native = PolicyRuntime(tmp_path / "cm.onnx", seed=3).act(obs)
    rewritten = []
    import rl100.runtime.policy_runtime as rt

    original = rt.portable_bytes
    monkeypatch.setattr(ort, "__version__", "1.20.1")
    monkeypatch.setattr(rt, "portable_bytes", lambda b, name: rewritten.append(name) or original(b, name))
    old = PolicyRuntime(tmp_path / "cm.onnx", seed=3)
    assert rewritten == [str(tmp_path / "cm.onnx")]
    np.testing.assert_allclose(old.act(obs), native, atol=1e-5)


def test_portable_cli_updates_the_card_and_refuses_a_mismatch(h, tmp_path, capsys):
    from rl100.export.card import read_card, sha256_file
    from rl100.export.portable import main

    policy = ConsistencyPolicy(h.tiny_config()).eval()
    export_onnx(policy, tmp_path / "cm.onnx", fast=FastGraphOptions())
    assert main([str(tmp_path / "cm.onnx")]) == 0
    assert "LayerNormalization node(s) rewritten" in capsys.readouterr().out
    assert main([str(tmp_path / "cm.onnx")]) == 0  # already portable: nothing more to do
    assert "0 LayerNormalization" in capsys.readouterr().out
    assert read_card(tmp_path / "cm.card.json")["sha256"] == sha256_file(tmp_path / "cm.onnx")
    (tmp_path / "cm.onnx").write_bytes((tmp_path / "cm.onnx").read_bytes() + b"x")
    assert main([str(tmp_path / "cm.onnx")]) == 2
    assert "does not match its card's sha256" in capsys.readouterr().err
