"""How far a one-step consistency student is from its DDIM teacher, per action dimension, on dataset observations.

``python -m rl100.train.student_gap TEACHER STUDENT DATASET [--batches N] [--batch-size B] [--json OUT]``

Both policies sample from the *same* initial noise (what :func:`rl100.policy.consistency.distillation_loss` trains),
on windows drawn as distillation draws them (:class:`rl100.train.common.BatchSource`). Reported in normalised action
space, per action dimension and overall:

- ``mse``: deployed student (clamped when the config clips) against the teacher's deterministic chain;
- ``beyond_clip``: share of raw student outputs with ``|x| > 1`` whose clamped value is more than 0.1 from the
  teacher's: the clamp puts them at the range's end, not where the teacher is (the distillation bug fixed on
  2026-11-29 left such outputs stuck; BENCHMARKS.md calls this share "stuck");
- ``far``: share of deployed outputs more than 0.2 from the teacher's (a tenth of the range: on a gripper command
  the difference between holding and losing an object);
- ``max_abs``: the largest deployed difference.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rl100.data import Dataset
from rl100.policy.checkpoint import load_policy
from rl100.policy.consistency import ConsistencyPolicy, teacher_chain_eta
from rl100.policy.diffusion import DiffusionPolicy
from rl100.train.common import BatchSource

OFF = 0.1
"""a raw output beyond the clip range counts when its clamped value is more than this from the teacher's"""
FAR = 0.2
"""a deployed output counts as far from the teacher's beyond this"""


@torch.no_grad()
def student_gap(teacher: DiffusionPolicy, student: ConsistencyPolicy, dataset: Dataset, batches: int = 8,
                batch_size: int = 256, seed: int = 0, intervention_share: float = 0.0) -> dict[str, Any]:
    """Per-dimension gap over ``batches`` batches; returns ``{"dims": [{dim, mse, beyond_clip, far, max_abs}], "mse",
    "beyond_clip", "far", "max_abs", "samples"}`` (samples: action entries per dimension)."""
    if not isinstance(teacher, DiffusionPolicy) or not isinstance(student, ConsistencyPolicy):
        raise ValueError(f"need a diffusion teacher and a consistency student, got {teacher.kind} and {student.kind}")
    cfg = teacher.config
    if (student.config.horizon, student.config.action_dim, student.config.obs_keys) != (
            cfg.horizon, cfg.action_dim, cfg.obs_keys):
        raise ValueError("student and teacher differ in horizon, action_dim or obs_keys: not a student of it")
    source = BatchSource(dataset, cfg, batch_size, seed, "cpu", intervention_share=intervention_share)
    gen = torch.Generator().manual_seed(seed)
    sq = torch.zeros(cfg.action_dim, dtype=torch.float64)
    beyond = torch.zeros(cfg.action_dim, dtype=torch.float64)
    worst = torch.zeros(cfg.action_dim, dtype=torch.float64)
    far = torch.zeros(cfg.action_dim, dtype=torch.float64)
    n = 0
    for b in range(batches):
        obs = {k: v for k, v in source.batch(b).items() if k in cfg.obs_keys}
        noise = torch.randn((batch_size, cfg.horizon, cfg.action_dim), generator=gen)  # (B, Ta, Da) shared x_T
        target = teacher.sample_normalized(teacher.encode(obs), noise, eta=teacher_chain_eta(cfg),
                                           stochastic=False)  # (B, Ta, Da)
        raw = student.sample_normalized(student.encode(obs), noise, clip=False)  # (B, Ta, Da)
        deployed = raw.clamp(-1.0, 1.0) if student.config.clip_sample else raw
        diff = (deployed - target).double().reshape(-1, cfg.action_dim)  # (B*Ta, Da)
        sq += diff.square().sum(0)
        worst = torch.maximum(worst, diff.abs().amax(0))
        far += (diff.abs() > FAR).double().sum(0)
        out = (raw.abs() > 1.0) & ((raw.clamp(-1.0, 1.0) - target).abs() > OFF)
        beyond += out.double().reshape(-1, cfg.action_dim).sum(0)
        n += diff.shape[0]
    dims = [{"dim": d, "mse": float(sq[d] / n), "beyond_clip": float(beyond[d] / n), "far": float(far[d] / n),
             "max_abs": float(worst[d])} for d in range(cfg.action_dim)]
    total = n * cfg.action_dim
    return {"dims": dims, "mse": float(sq.sum() / total), "beyond_clip": float(beyond.sum() / total),
            "far": float(far.sum() / total), "max_abs": float(worst.max()), "samples": n}


def format_gap(gap: dict[str, Any]) -> str:
    lines = ["dim        mse  beyond_clip     far  max_abs"]
    lines += [f"{d['dim']:>3}  {d['mse']:9.5f}  {d['beyond_clip']:11.4f}  {d['far']:6.4f}  {d['max_abs']:7.3f}"
              for d in gap["dims"]]
    lines.append(f"all  {gap['mse']:9.5f}  {gap['beyond_clip']:11.4f}  {gap['far']:6.4f}  {gap['max_abs']:7.3f}  "
                 f"({gap['samples']} action steps per dimension)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rl100.train.student_gap", description=__doc__.split("\n")[0])
    parser.add_argument("teacher", help="diffusion policy JSON")
    parser.add_argument("student", help="consistency policy JSON distilled from it")
    parser.add_argument("dataset", help="dataset directory (e.g. the one it was distilled on)")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--intervention-share", type=float, default=0.0,
                        help="share of every batch drawn from intervention windows")
    parser.add_argument("--json", default="", help="also write the result here")
    args = parser.parse_args(argv)
    if args.batches < 1 or args.batch_size < 1:
        parser.error("--batches and --batch-size must be >= 1")
    gap = student_gap(load_policy(args.teacher).eval(), load_policy(args.student).eval(), Dataset(args.dataset),
                      batches=args.batches, batch_size=args.batch_size, seed=args.seed,
                      intervention_share=args.intervention_share)
    print(format_gap(gap))
    if args.json:
        Path(args.json).write_text(json.dumps(gap, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
