"""Tiny end-to-end: train-il -> distill -> export (CM) -> PolicyRuntime.act, plus exact resume of training."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rl100.keys import OBS_STATE
from rl100.policy.checkpoint import load_policy
from rl100.policy.diffusion import DiffusionPolicy
from rl100.runtime import PolicyRuntime
from rl100.train.config import load_config
from rl100.train.distill import distill
from rl100.train.il import train_il

POLICY = {"horizon": 8, "n_obs": 2, "n_action_steps": 4, "down_dims": [32, 64], "step_embed_dim": 32,
          "num_inference_steps": 4, "encoder": {"lowdim_hidden": 64, "lowdim_out": 32}}


def _cfg(dataset, out, steps, **train):
    train = {"batch_size": 32, "warmup_steps": 10, "lr": 3e-3, "log_every": 10, "ema_decay": 0.95} | train
    overrides = [f"policy.{k}={v}" for k, v in POLICY.items()] + [f"train.{k}={v}" for k, v in train.items()]
    return load_config("il_state_small", overrides, dataset=str(dataset), out=str(out), steps=steps)


def _errors(act, states, w):
    return float(np.mean([np.abs(act(s) - w @ s).mean() for s in states]))


def test_train_distill_export_runtime(h, tmp_path):
    data = h.write_linear_dataset(tmp_path / "data")
    teacher_json = train_il(_cfg(data, tmp_path / "il", 150), progress=False, command="rl100 train-il (test)")
    assert (tmp_path / "il" / "learning_curve.png").exists()
    rows = list(csv.DictReader(open(tmp_path / "il" / "metrics.csv")))
    assert len(rows) == 15 and float(rows[-1]["losses/train"]) < float(rows[0]["losses/train"])
    assert (tmp_path / "il" / "tb").is_dir()

    student_json = distill(_cfg(data, tmp_path / "cd", 60, lr=1e-3, traj_weight=0.5), teacher_json, progress=False)
    student = load_policy(student_json)

    from rl100.export.onnx_export import export_onnx

    export_onnx(student, tmp_path / "cm.onnx", training_command="test")
    runtime = PolicyRuntime(tmp_path / "cm.onnx", seed=0)

    states = np.random.default_rng(123).uniform(-0.9, 0.9, (12, h.STATE_DIM)).astype(np.float32)

    def runtime_act(s):
        runtime.reset()
        return runtime.act({OBS_STATE: s})

    untrained = DiffusionPolicy(load_policy(teacher_json).config)
    untrained.normalizer.load_state_dict(student.normalizer.state_dict())  # same data statistics, random weights

    def untrained_act(s):
        obs = {OBS_STATE: torch.as_tensor(s).expand(1, 2, -1)}
        return untrained.predict_action(obs, generator=torch.Generator().manual_seed(0))[0, 1].numpy()

    err_trained, err_untrained = _errors(runtime_act, states, h.W_TRUE), _errors(untrained_act, states, h.W_TRUE)
    assert err_trained < 0.5 * err_untrained, (err_trained, err_untrained)
    assert runtime.card["kind"] == "cm"


def test_exact_resume(h, tmp_path):
    """3 steps, stop, resume for 3 more == 6 uninterrupted steps: model, EMA, AdamW moments, RNG bit for bit."""
    data = h.write_linear_dataset(tmp_path / "data", episodes=4)
    train_il(_cfg(data, tmp_path / "a", 6, batch_size=8, ckpt_every=100, warmup_steps=2), progress=False)
    cfg_b = _cfg(data, tmp_path / "b", 6, batch_size=8, ckpt_every=100, warmup_steps=2)
    assert train_il(cfg_b, progress=False, stop_after=3) is None
    assert not (tmp_path / "b" / "policy.json").exists()
    train_il(_cfg(data, tmp_path / "b", 6, batch_size=8, ckpt_every=100, warmup_steps=2), progress=False, resume=True)
    a = load_file(str(tmp_path / "a" / "state.safetensors"))
    b = load_file(str(tmp_path / "b" / "state.safetensors"))
    assert a.keys() == b.keys() and any(k.startswith("optim.") for k in a) and any(k.startswith("ema.") for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0, msg=k)
    pa = load_file(str(tmp_path / "a" / "policy.safetensors"))
    pb = load_file(str(tmp_path / "b" / "policy.safetensors"))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_distill_warm_start_checks_and_copies(h, tmp_path):
    """``distill --init``: the student starts from a consistency checkpoint of the same config; a diffusion policy
    or another architecture is refused by name."""
    import torch

    from rl100.policy.checkpoint import CheckpointError, save_policy
    from rl100.policy.consistency import ConsistencyPolicy
    from rl100.policy.diffusion import DiffusionPolicy
    from rl100.train.distill import warm_start

    teacher = DiffusionPolicy(h.tiny_config())
    torch.manual_seed(1)
    other = ConsistencyPolicy.from_teacher(DiffusionPolicy(h.tiny_config()))  # same config, other weights
    path = save_policy(tmp_path / "student", other)
    student = ConsistencyPolicy.from_teacher(teacher)
    warm_start(student, str(path))
    for name, value in student.state_dict().items():
        want = (teacher if name.startswith("normalizer.") else other).state_dict()[name]
        assert torch.equal(value, want), name
    with pytest.raises(CheckpointError, match="must be a consistency policy"):
        warm_start(student, str(save_policy(tmp_path / "teacher", teacher)))
    bigger = ConsistencyPolicy.from_teacher(DiffusionPolicy(h.tiny_config(down_dims=(32, 64))))
    with pytest.raises(CheckpointError, match="differs from the teacher's in .*down_dims"):
        warm_start(student, str(save_policy(tmp_path / "bigger", bigger)))


def test_distill_at_a_chosen_teacher_eta(h, tmp_path):
    """--teacher-eta: the student learns the teacher's step-mean chain at that eta (recorded in its meta); the
    teacher's own checkpoint is not changed, and a negative eta is refused by name."""
    import json

    data = h.write_linear_dataset(tmp_path / "data", episodes=4)
    cfg = _cfg(data, tmp_path / "il", 4, batch_size=8, warmup_steps=1)
    cfg.policy["eta"] = 0.0
    teacher_json = train_il(cfg, progress=False)
    before = teacher_json.read_text()
    for eta in (None, 1.0):
        out = tmp_path / f"cd_{eta}"
        student_json = distill(_cfg(data, out, 2, batch_size=8, warmup_steps=1), teacher_json, progress=False,
                               teacher_eta=eta)
        assert json.loads(student_json.read_text())["meta"]["teacher_eta"] == (eta or 0.0)
    assert teacher_json.read_text() == before
    with pytest.raises(ValueError, match="teacher_eta"):
        distill(_cfg(data, tmp_path / "bad", 2, batch_size=8, warmup_steps=1), teacher_json, progress=False,
                teacher_eta=-1.0)
    assert not (tmp_path / "bad").exists()
