"""``rl100 distill``: distil a trained diffusion policy (K-step DDIM teacher) into a one-step consistency policy.

Same loop as :mod:`rl100.train.il` (:func:`rl100.train.common.train_steps`); the loss is
:func:`rl100.policy.consistency.distillation_loss` on dataset observations (same initial noise for teacher and
student). Writes ``<out>/policy.*`` (student, EMA weights when EMA is on), ``state.*``, ``metrics.csv``, ``tb/``,
``learning_curve.png``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch
import yaml

from rl100.data import Dataset
from rl100.policy.checkpoint import CheckpointError, load_policy, save_policy
from rl100.policy.consistency import ConsistencyPolicy, distillation_loss, teacher_chain_eta
from rl100.policy.diffusion import DiffusionPolicy
from rl100.policy.ema import EMA
from rl100.train import distributed
from rl100.train.augment import AugmentConfig, Augmenter
from rl100.train.common import BatchSource, resolve_device, train_steps
from rl100.train.config import TrainConfig, load_config
from rl100.train.logger import MetricLogger, NullLogger
from rl100.train.lr import CosineWarmup
from rl100.train.state import load_train_state, save_train_state


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", required=True, help="teacher policy (<run>/policy.json from train-il)")
    parser.add_argument("--config", default="distill_small", help="preset name in rl100/configs or a YAML path")
    parser.add_argument("--dataset", help="dataset root (observations to distil on)")
    parser.add_argument("--out", help="run directory")
    parser.add_argument("--steps", type=int, help="optimiser steps")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a train field, e.g. train.traj_weight=0.5")
    parser.add_argument("--init", help="start the student from this consistency checkpoint (same config as the "
                        "teacher; default: the teacher's weights)")
    parser.add_argument("--teacher-eta", type=float, help="distil the teacher's sampler at this DDIM eta, each step "
                        "its mean (default: the teacher's own deterministic sampler)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/state.* if it exists")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides, dataset=args.dataset, out=args.out, steps=args.steps)
    if args.init:
        cfg.init = args.init
    command = shlex.join(["rl100", "distill", *sys.argv[2:]]) if len(sys.argv) > 1 else ""
    distill(cfg, args.teacher, resume=args.resume, progress=not args.no_progress, command=command,
            teacher_eta=args.teacher_eta)
    return 0


def distill(cfg: TrainConfig, teacher_path: str | Path, resume: bool = False, progress: bool = True,
            command: str = "", teacher_eta: float | None = None) -> Path:
    """Train the student; returns the saved student policy JSON path. ``cfg.policy`` is ignored (teacher's).

    ``teacher_eta``: the student learns the teacher's chain at this eta without step noise (None: the teacher's
    own deterministic sampler, :func:`rl100.policy.consistency.teacher_chain_eta`).

    Under torchrun (several processes) every rank calls this with the same arguments and trains its shard of
    each batch (:mod:`rl100.train.distributed`); only rank 0 writes files.
    """
    if not cfg.dataset:
        raise ValueError("no dataset given (train.dataset / --dataset)")
    if teacher_eta is not None and teacher_eta < 0:
        raise ValueError(f"teacher_eta must be >= 0, got {teacher_eta}")
    ctx, device = distributed.setup(resolve_device(cfg.device), cfg.backend)
    out = Path(cfg.out)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict() | {"teacher": str(teacher_path)},
                                                        sort_keys=False))
    torch.manual_seed(cfg.seed)
    teacher = load_policy(teacher_path).to(device).eval().requires_grad_(False)
    if not isinstance(teacher, DiffusionPolicy):
        raise ValueError(f"{teacher_path}: the teacher must be a diffusion policy, got {teacher.kind}")
    if teacher_eta is not None:
        teacher.config.eta, teacher.config.step_noise = float(teacher_eta), False
    student = ConsistencyPolicy.from_teacher(teacher)
    if cfg.init:  # warm start (the RL loop: last round's student distils this round's teacher)
        warm_start(student, cfg.init)
    student = student.to(device).train()
    ema = EMA(student, cfg.ema_decay) if cfg.ema_decay > 0 else None
    optimizer = torch.optim.AdamW(student.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    scheduler = CosineWarmup(optimizer, cfg.steps, cfg.warmup_steps, cfg.min_lr_ratio)
    source = BatchSource(Dataset(cfg.dataset), teacher.config, cfg.batch_size, cfg.seed, device, ctx.rank,
                         ctx.world_size, intervention_share=cfg.intervention_share)
    logger = MetricLogger(out) if ctx.is_main else NullLogger()
    step = 0
    if resume and (out / "state.json").exists():
        step = int(load_train_state(out / "state", model=student, ema=ema, optimizer=optimizer,
                                    scheduler=scheduler)["step"])
    distributed.agree(ctx, step=step, windows=len(source))
    meta = {"command": command, "teacher": str(teacher_path), "dataset": str(cfg.dataset), "init": cfg.init,
            "augment": cfg.augment,
            "teacher_steps": teacher.config.num_inference_steps, "teacher_eta": teacher_chain_eta(teacher.config),
            "traj_weight": cfg.traj_weight}
    if ctx.enabled:
        meta["world_size"] = ctx.world_size  # global batch = world_size * batch_size

    def save_state(at: int) -> None:
        if ctx.is_main:
            save_train_state(out / "state", step=at, model=student, ema=ema, optimizer=optimizer,
                             scheduler=scheduler, config=cfg.to_dict(), extra=meta)

    def student_loss(model: ConsistencyPolicy, batch: dict[str, torch.Tensor]):
        return distillation_loss(model, teacher, batch, traj_weight=cfg.traj_weight)

    loss = distributed.data_parallel(student, student_loss, ctx, device, cfg.batch_size)
    augment = Augmenter(AugmentConfig(**cfg.augment), cfg.seed)  # the student meets the teacher's inputs
    step = train_steps(student, lambda at: loss(augment(source.batch(at), at)), optimizer=optimizer,
                       scheduler=scheduler, ema=ema,
                       logger=logger, start=step, end=cfg.steps, total=cfg.steps, grad_clip=cfg.grad_clip,
                       log_every=cfg.log_every, ckpt_every=cfg.ckpt_every, save_state=save_state, progress=progress,
                       desc="distill", dist_ctx=ctx)
    path = out / "policy.json"
    if ctx.is_main:
        final = ema.model if ema is not None else student
        path = save_policy(out / "policy", final.cpu().eval(), meta | {"step": step, "ema": ema is not None})
        logger.plot(["losses/train", "distill/loss_cd"])
    logger.close()
    distributed.barrier(ctx)  # the policy file exists for every rank once it returns
    return path


def warm_start(student: ConsistencyPolicy, path: str) -> None:
    """Copy the network weights of the consistency checkpoint ``path`` into ``student`` (built from its teacher:
    same config); the normaliser stays the teacher's."""
    init = load_policy(path)
    if not isinstance(init, ConsistencyPolicy):
        raise CheckpointError(f"{path}: a distillation init must be a consistency policy (distill output), "
                              f"got kind {init.kind!r}")
    want, got = student.config.to_dict(), init.config.to_dict()
    diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    if diff:
        raise CheckpointError(f"{path}: init config differs from the teacher's in {diff}")
    weights = {k: v for k, v in init.state_dict().items() if not k.startswith("normalizer.")}
    own = student.normalizer.state_dict()
    student.load_state_dict(weights | {f"normalizer.{k}": v for k, v in own.items()}, strict=True)
