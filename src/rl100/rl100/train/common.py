"""Pieces shared by the training loops: device choice, deterministic batches, and the one optimisation loop.

:func:`optimizer_step` is the single gradient step (zero_grad, backward, grad-norm clip, step, LR schedule,
EMA); :func:`train_steps` is the loop around it used by ``train-il``, ``distill`` and the RL trainers
(logging with SPS every ``log_every`` steps, exact-resume checkpoints every ``ckpt_every`` steps).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from rl100.data import Dataset, SequenceSampler
from rl100.data.sampler import EPISODE_INDEX, STEP_INDEX
from rl100.keys import ACTION, FLAG_INTERVENTION, FLAGS
from rl100.policy.config import PolicyConfig
from rl100.policy.ema import EMA
from rl100.train.distributed import DistContext, mean_over_ranks
from rl100.train.logger import MetricLogger


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class BatchSource:
    """Training windows of ``config``'s shape over ``dataset``; ``batch(step)`` is a pure function of (seed, step).

    Indices are drawn with replacement from ``np.random.default_rng([seed, step])``: resuming at step ``s``
    sees exactly the batches an uninterrupted run would. The windows are gathered in one vectorised
    :meth:`SequenceSampler.batch` call (identical to stacking ``sampler[i]``).
    Returns ``{obs key: (B, To, ...), action: (B, Ta, Da)}``.

    ``intervention_share`` > 0: that fraction of every batch (rounded) is drawn from the windows whose current
    step carries ``FLAG_INTERVENTION``, the rest from the other windows, rows shuffled; when either group is empty
    the batch is uniform (``self.flagged`` tells which). 0 keeps the uniform draw bit for bit.

    Data-parallel (``world_size > 1``): ``batch_size`` is per rank; rank ``r`` gets rows ``r*B .. (r+1)*B - 1``
    of the ``world_size * B`` indices a single process with that batch size would draw.
    """

    def __init__(self, dataset: Dataset, config: PolicyConfig, batch_size: int, seed: int,
                 device: torch.device | str = "cpu", rank: int = 0, world_size: int = 1,
                 intervention_share: float = 0.0) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.sampler = SequenceSampler(dataset, keys=config.obs_keys, n_obs=config.n_obs, horizon=config.horizon)
        if len(self.sampler) == 0:
            raise ValueError(f"{dataset.root}: no training windows (episodes shorter than the horizon?)")
        self.batch_size = batch_size
        self.seed = seed
        self.device = torch.device(device)
        self.keys = [*config.obs_keys, ACTION]
        self.rank, self.world_size = rank, world_size
        self.intervention_share = float(intervention_share)
        self.flagged: np.ndarray | None = None  # (W_i,) intervention windows, set when both groups are non-empty
        self._others: np.ndarray | None = None  # (W - W_i,)
        if self.intervention_share > 0:
            t = config.n_obs - 1
            current = self.sampler.batch(np.arange(len(self.sampler)), keys=[FLAGS])[FLAGS][:, t]  # (W,)
            mask = (current & FLAG_INTERVENTION) != 0
            if 0 < mask.sum() < len(mask):
                self.flagged, self._others = np.flatnonzero(mask), np.flatnonzero(~mask)

    def __len__(self) -> int:
        return len(self.sampler)

    def indices(self, step: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, step])
        n = self.batch_size * self.world_size
        if self.flagged is not None and self._others is not None:
            k = int(round(self.intervention_share * n))
            drawn = rng.permutation(np.concatenate([self.flagged[rng.integers(0, len(self.flagged), k)],
                                                    self._others[rng.integers(0, len(self._others), n - k)]]))
        else:
            drawn = rng.integers(0, len(self.sampler), n)
        if self.world_size == 1:
            return drawn
        return drawn[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        arrays = self.sampler.batch(self.indices(step), keys=[*self.keys, EPISODE_INDEX, STEP_INDEX])
        out = {k: torch.as_tensor(arrays[k]).to(self.device) for k in self.keys}
        out[EPISODE_INDEX] = torch.as_tensor(arrays[EPISODE_INDEX])
        out[STEP_INDEX] = torch.as_tensor(arrays[STEP_INDEX])
        return out


def optimizer_step(loss: torch.Tensor, params: Iterable[nn.Parameter], optimizer: torch.optim.Optimizer,
                   grad_clip: float = 0.0, scheduler=None, ema: EMA | None = None,
                   model: nn.Module | None = None) -> float:
    """One gradient step on ``loss``; returns the pre-clip global grad norm. ``grad_clip <= 0``: no clipping.

    ``ema`` (with ``model``, the module it averages) is updated after the step; ``scheduler`` is stepped.
    """
    params = list(params)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip > 0 else 1e12)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    if ema is not None:
        if model is None:
            raise ValueError("optimizer_step: an EMA update needs the model it averages")
        ema.update(model)
    return float(grad_norm)


def train_steps(model: nn.Module, loss_fn: Callable[[int], tuple[torch.Tensor, dict[str, float]]], *,
                optimizer: torch.optim.Optimizer, scheduler, ema: EMA | None, logger: MetricLogger,
                start: int, end: int, total: int, grad_clip: float, log_every: int, ckpt_every: int,
                save_state: Callable[[int], object] | None = None, progress: bool = True,
                desc: str = "train", dist_ctx: DistContext | None = None) -> int:
    """Run steps ``start .. end - 1`` of a ``total``-step run; returns the number of completed steps (``end``).

    ``loss_fn(step) -> (loss, logs)``: the scalar loss of that step and extra scalars to log. Logged every
    ``log_every`` steps and at ``total``: ``losses/train``, the extra logs, ``charts/lr``, ``charts/grad_norm``,
    ``charts/SPS``. ``save_state(step)`` runs every ``ckpt_every`` steps and at ``end``.

    ``dist_ctx`` (data-parallel runs, :mod:`rl100.train.distributed`): the loss and extra logs are averaged over
    ranks before logging and only rank 0 shows progress; ``logger`` and ``save_state`` of the other ranks should
    write nothing (:class:`~rl100.train.logger.NullLogger`).
    """
    if dist_ctx is not None and not dist_ctx.is_main:
        progress = False
    bar = tqdm(total=total, initial=start, disable=not progress, desc=desc, dynamic_ncols=True)
    t_last, s_last = time.perf_counter(), start
    step = start
    while step < end:
        loss, logs = loss_fn(step)
        grad_norm = optimizer_step(loss, model.parameters(), optimizer, grad_clip, scheduler, ema, model)
        step += 1
        bar.update(1)
        if step % log_every == 0 or step == total:
            now = time.perf_counter()
            sps = (step - s_last) / max(now - t_last, 1e-9)
            t_last, s_last = now, step
            values = {"losses/train": loss.item(), **logs}
            if dist_ctx is not None:
                values = mean_over_ranks(dist_ctx, values)
            logger.log(step, {**values, "charts/lr": scheduler.get_last_lr()[0], "charts/grad_norm": grad_norm,
                              "charts/SPS": sps})
            bar.set_postfix(loss=f"{values['losses/train']:.4f}")
        if save_state is not None and (step % ckpt_every == 0 or step == end):
            save_state(step)
    bar.close()
    return step
