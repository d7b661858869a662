"""The student-to-teacher gap diagnostic: zero only for a student that reproduces its teacher, per-dimension overshoot
beyond the clip range counted, and a policy pair that cannot be teacher and student refused."""

from __future__ import annotations

import json

import pytest
import torch

from rl100.data import Dataset
from rl100.policy.checkpoint import save_policy
from rl100.policy.consistency import ConsistencyPolicy
from rl100.policy.diffusion import DiffusionPolicy
from rl100.train.student_gap import main, student_gap


def test_gap_counts_overshoot_per_dimension(h, tmp_path):
    data = Dataset(h.write_linear_dataset(tmp_path / "d", episodes=6))
    torch.manual_seed(0)
    teacher = DiffusionPolicy(h.tiny_config()).eval()
    student = ConsistencyPolicy.from_teacher(teacher).eval()
    base = student_gap(teacher, student, data, batches=2, batch_size=16)
    assert base["samples"] == 2 * 16 * teacher.config.horizon and len(base["dims"]) == h.ACTION_DIM

    def push_dim1(module, args, out):  # raw output of dimension 1 far above the range (counted where the untrained
        # teacher is not itself at +1)
        out = out.clone()
        out[..., 1] += 50.0
        return out

    student.unet.register_forward_hook(push_dim1)
    gap = student_gap(teacher, student, data, batches=2, batch_size=16)
    assert gap["dims"][1]["beyond_clip"] > 0.5 and gap["dims"][0]["beyond_clip"] == base["dims"][0]["beyond_clip"]
    assert gap["dims"][0]["mse"] == pytest.approx(base["dims"][0]["mse"])
    assert gap["dims"][1]["mse"] > base["dims"][1]["mse"]  # deployed (clamped) at +1, not where the teacher is
    assert gap["dims"][1]["far"] > 0.5 and gap["dims"][0]["far"] == base["dims"][0]["far"]
    assert gap["mse"] == pytest.approx((gap["dims"][0]["mse"] + gap["dims"][1]["mse"]) / 2)


def test_refuses_a_pair_that_is_not_teacher_and_student(h, tmp_path):
    root = h.write_linear_dataset(tmp_path / "d", episodes=4)
    teacher = DiffusionPolicy(h.tiny_config()).eval()
    other = ConsistencyPolicy(h.tiny_config(horizon=16)).eval()
    with pytest.raises(ValueError, match="not a student of it"):
        student_gap(teacher, other, Dataset(root), batches=1, batch_size=4)
    with pytest.raises(ValueError, match="need a diffusion teacher"):
        student_gap(other, other, Dataset(root), batches=1, batch_size=4)
    t = save_policy(tmp_path / "t", teacher)
    s = save_policy(tmp_path / "s", ConsistencyPolicy.from_teacher(teacher))
    out = tmp_path / "g.json"
    assert main([str(t), str(s), str(root), "--batches", "1", "--batch-size", "4", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["samples"] == 4 * teacher.config.horizon
    assert torch.is_grad_enabled()  # the command leaves the process's autograd state alone (tests run after it)
