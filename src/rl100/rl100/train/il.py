"""``rl100 train-il``: imitation learning of a diffusion policy (epsilon prediction) on a dataset.

Reads top to bottom: config -> dataset + normaliser stats -> model, EMA, AdamW, cosine-warmup LR -> loop
(loss, clip, step, EMA, log) with exact-resume checkpoints (``state.*``) -> final ``policy.*`` (EMA weights).
Run directory: ``policy.{safetensors,json}``, ``state.{safetensors,json}``, ``metrics.csv``, ``tb/``,
``learning_curve.png``, ``config.yaml``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch
import yaml

from rl100.data import Dataset, compute_stats
from rl100.keys import ACTION
from rl100.policy.checkpoint import CheckpointError, load_policy, read_policy_json, save_policy
from rl100.policy.diffusion import DiffusionPolicy
from rl100.policy.ema import EMA
from rl100.train import distributed
from rl100.train.augment import AugmentConfig, Augmenter, widen_normalizer
from rl100.train.common import BatchSource, resolve_device, train_steps
from rl100.train.config import TrainConfig, load_config, policy_config_for, reduce_axes_for
from rl100.train.logger import MetricLogger, NullLogger
from rl100.train.lr import CosineWarmup
from rl100.train.state import load_train_state, save_train_state

STATE = "state"
POLICY = "policy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="il_state_small", help="preset name in rl100/configs or a YAML path")
    parser.add_argument("--dataset", help="dataset root (overrides train.dataset)")
    parser.add_argument("--out", help="run directory (overrides train.out)")
    parser.add_argument("--steps", type=int, help="optimiser steps (overrides train.steps)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field, e.g. train.batch_size=64 or policy.down_dims=[64,128,256]")
    parser.add_argument("--init", help="start from this policy checkpoint (overrides train.init)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/state.* if it exists")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    parser.add_argument("--stop-after", type=int, help="leave after this many steps (resume later with --resume)")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides, dataset=args.dataset, out=args.out, steps=args.steps)
    if args.init:
        cfg.init = args.init
    command = shlex.join(["rl100", "train-il", *sys.argv[2:]]) if len(sys.argv) > 1 else ""
    train_il(cfg, resume=args.resume, progress=not args.no_progress, command=command, stop_after=args.stop_after)
    return 0


def train_il(cfg: TrainConfig, resume: bool = False, progress: bool = True, command: str = "",
             stop_after: int | None = None) -> Path | None:
    """Train; returns the path of the saved policy JSON (EMA weights when EMA is on).

    ``stop_after``: leave after that many completed steps (a resume point is saved; returns None) -- for
    preemptible jobs, and to test that a resumed run equals an uninterrupted one.

    Under torchrun (several processes) every rank calls this and trains its shard of each batch
    (:mod:`rl100.train.distributed`); only rank 0 writes files, and every rank returns the same path once they exist.
    """
    if not cfg.dataset:
        raise ValueError("no dataset given (train.dataset / --dataset)")
    ctx, device = distributed.setup(resolve_device(cfg.device), cfg.backend)
    out = Path(cfg.out)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    torch.manual_seed(cfg.seed)

    dataset = Dataset(cfg.dataset)
    pcfg = policy_config_for(cfg, dataset.specs)
    model = DiffusionPolicy(pcfg)
    if cfg.init:
        init_from(model, cfg.init)
    if not cfg.init or cfg.refit_normalizer:
        stats = compute_stats(dataset, [*pcfg.obs_keys, ACTION], reduce_axes=reduce_axes_for(pcfg))
        model.normalizer.set_stats(stats)
    augment = Augmenter(AugmentConfig(**cfg.augment), cfg.seed)
    # the normaliser is widened once per augmentation: not again when the init policy already was (re-imitation)
    kept = cfg.init and not cfg.refit_normalizer
    if not (kept and read_policy_json(cfg.init).get("meta", {}).get("augment") == cfg.augment):
        widen_normalizer(model.normalizer, augment.config)
    model.to(device).train()
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    scheduler = CosineWarmup(optimizer, cfg.steps, cfg.warmup_steps, cfg.min_lr_ratio)
    source = BatchSource(dataset, pcfg, cfg.batch_size, cfg.seed, device, ctx.rank, ctx.world_size,
                         intervention_share=cfg.intervention_share)
    if cfg.intervention_share and source.flagged is None and ctx.is_main:
        print(f"train-il: intervention_share {cfg.intervention_share} ignored: {cfg.dataset} has no intervention "
              "windows (or only those); batches are uniform", file=sys.stderr)
    logger = MetricLogger(out) if ctx.is_main else NullLogger()

    step = 0
    if resume and (out / f"{STATE}.json").exists():
        meta = load_train_state(out / STATE, model=model, ema=ema, optimizer=optimizer, scheduler=scheduler)
        step = int(meta["step"])
    distributed.agree(ctx, step=step, windows=len(source))
    n_params = sum(p.numel() for p in model.parameters())
    meta = {"command": command, "dataset": str(cfg.dataset), "n_params": n_params, "windows": len(source),
            "augment": cfg.augment}
    if ctx.enabled:
        meta["world_size"] = ctx.world_size  # global batch = world_size * batch_size

    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)

    def save_state(at: int) -> None:
        if ctx.is_main:
            save_train_state(out / STATE, step=at, model=model, ema=ema, optimizer=optimizer, scheduler=scheduler,
                             config=cfg.to_dict(), extra=meta)

    loss = distributed.data_parallel(model, _loss, ctx, device, cfg.batch_size)
    step = train_steps(model, lambda s: (loss(augment(source.batch(s), s)), {}), optimizer=optimizer,
                       scheduler=scheduler, ema=ema, logger=logger, start=step, end=end, total=cfg.steps,
                       grad_clip=cfg.grad_clip, log_every=cfg.log_every, ckpt_every=cfg.ckpt_every,
                       save_state=save_state, progress=progress, desc="train-il", dist_ctx=ctx)
    path = None
    if step >= cfg.steps:
        path = out / f"{POLICY}.json"
        if ctx.is_main:
            final = ema.model if ema is not None else model
            path = save_policy(out / POLICY, final.cpu().eval(), meta | {"step": step, "ema": ema is not None})
            logger.plot(["losses/train"])
    logger.close()
    distributed.barrier(ctx)  # the state / policy files exist for every rank once it returns
    return path


def _loss(model: DiffusionPolicy, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model.compute_loss(batch)


def init_from(model: DiffusionPolicy, path: str) -> None:
    """Copy the weights and normaliser of the diffusion-policy checkpoint ``path`` into ``model`` (same config)."""
    init = load_policy(path)
    if not isinstance(init, DiffusionPolicy):
        raise CheckpointError(f"{path}: --init needs a diffusion policy (train-il output), got kind {init.kind!r}")
    want, got = model.config.to_dict(), init.config.to_dict()
    diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    if diff:
        raise CheckpointError(f"{path}: --init checkpoint config differs from this run's in {diff}: "
                              + "; ".join(f"{k}: run {want.get(k)!r} vs checkpoint {got.get(k)!r}" for k in diff))
    model.load_state_dict(init.state_dict(), strict=True)
