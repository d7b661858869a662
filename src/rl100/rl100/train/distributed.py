"""Data-parallel training over several processes (torchrun + DistributedDataParallel) for ``train-il`` / ``distill``.

Off unless torchrun started the process with ``WORLD_SIZE > 1`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); a
plain process gets :data:`SINGLE` and every helper here is a no-op or a plain call. Under torchrun:

- :func:`setup` initialises the process group (nccl on CUDA, gloo on CPU; ``train.backend`` overrides) and picks
  ``cuda:<LOCAL_RANK>`` as the device;
- ``train.batch_size`` is per rank: the global batch is ``batch_size * world_size``.
  :class:`~rl100.train.common.BatchSource` gives rank ``r`` rows ``r*B .. (r+1)*B - 1`` of the global batch
  that a single process would draw for that step, and :class:`ShardedDraws` does the same for the loss's random
  draws (diffusion noise, timesteps): every rank draws the global batch's values from the same RNG stream and
  keeps its rows. With DDP averaging the gradients, an ``N``-rank run with per-rank batch ``B`` therefore
  follows the single-process run with batch ``N * B`` up to floating-point reduction order;
- :func:`data_parallel` wraps the model in DDP around the loss, so parameters (and the EMA, updated from them
  on every rank) stay identical on all ranks;
- only rank 0 (:attr:`DistContext.is_main`) writes logs, checkpoints, policy files and plots; the others use a
  :class:`~rl100.train.logger.NullLogger`. Exact-resume state is saved by rank 0 and loaded by every rank, so
  the run directory, the dataset and the teacher must be visible to every rank at the same path (a shared
  filesystem on several nodes); :func:`agree` makes ranks that disagree (step, dataset size) fail loudly.

Collectives time out after ``RL100_DIST_TIMEOUT_S`` seconds (default 1800); torchrun stops the other ranks when
one fails.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.overrides import TorchFunctionMode

BACKENDS = ("auto", "nccl", "gloo")
TIMEOUT_ENV = "RL100_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the run: ``rank`` of ``world_size`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistContext()


def env_context(environ: Mapping[str, str] | None = None) -> DistContext:
    """The context torchrun's environment describes; :data:`SINGLE` without it (or with ``WORLD_SIZE=1``)."""
    env = os.environ if environ is None else environ
    world = int(env.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    if "RANK" not in env:
        raise RuntimeError(f"WORLD_SIZE={world} but no RANK in the environment (start the job with torchrun)")
    rank, local = int(env["RANK"]), int(env.get("LOCAL_RANK", env["RANK"]))
    if not 0 <= rank < world or local < 0:
        raise RuntimeError(f"bad torchrun environment: RANK={rank} LOCAL_RANK={local} WORLD_SIZE={world}")
    return DistContext(rank, world, local)


def setup(device: torch.device, backend: str = "auto") -> tuple[DistContext, torch.device]:
    """Join torchrun's process group (once per process) and return ``(context, this rank's device)``.

    ``device``: the run's resolved device; a CUDA device becomes ``cuda:<LOCAL_RANK>``. In a single process
    nothing happens and ``device`` is returned unchanged.
    """
    ctx = env_context()
    if not ctx.enabled:
        return ctx, device
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if device.type == "cuda":
        if ctx.local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {ctx.local_rank} but only {torch.cuda.device_count()} CUDA devices")
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if dist.is_initialized():
        if (dist.get_rank(), dist.get_world_size()) != (ctx.rank, ctx.world_size):
            raise RuntimeError(f"process group is rank {dist.get_rank()} of {dist.get_world_size()}, "
                               f"torchrun's environment says {ctx.rank} of {ctx.world_size}")
        return ctx, device
    timeout = timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))
    kwargs: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend, timeout=timeout, **kwargs)
    atexit.register(_destroy)
    return ctx, device


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (e.g. until rank 0 has written a file the others read next); no-op in one process."""
    if ctx.enabled:
        dist.barrier()


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def mean_over_ranks(ctx: DistContext, values: Mapping[str, float]) -> dict[str, float]:
    """Average scalars over ranks (per-rank means of equal-sized shards -> the global-batch mean)."""
    if not ctx.enabled:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return {k: float(v) / ctx.world_size for k, v in zip(keys, t.tolist(), strict=True)}


def agree(ctx: DistContext, **values: Any) -> None:
    """Raise on every rank if the ranks hold different ``values`` (e.g. the resume step, the dataset size)."""
    if not ctx.enabled:
        return
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, values)
    if any(g != gathered[0] for g in gathered):
        raise RuntimeError("ranks disagree (run directory / dataset not the same on every rank?): "
                           + "; ".join(f"rank {r}: {g}" for r, g in enumerate(gathered)))


class ShardedDraws(TorchFunctionMode):
    """Inside it, ``torch.randn`` / ``rand`` / ``randint`` of leading size ``local_batch`` draw the global batch.

    The draw is made for ``world_size * local_batch`` rows (same generator, device and dtype, so the RNG stream
    is consumed exactly as one process drawing for the whole batch) and this rank's rows are returned. Other
    calls pass through untouched. Every rank must have the same RNG state (same seed, same draws).
    """

    _DRAWS = (torch.randn, torch.rand, torch.randint)

    def __init__(self, rank: int, world_size: int, local_batch: int) -> None:
        super().__init__()
        self.local_batch = local_batch
        self.global_batch = local_batch * world_size
        self.rows = slice(rank * local_batch, (rank + 1) * local_batch)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in self._DRAWS and "out" not in kwargs:
            grown = self._grow(func, list(args), kwargs)
            if grown is not None:
                return func(*grown[0], **grown[1])[self.rows]
        return func(*args, **kwargs)

    def _global_size(self, size: Any) -> tuple[int, ...] | None:
        if isinstance(size, (tuple, list, torch.Size)) and len(size) >= 1 and int(size[0]) == self.local_batch:
            return (self.global_batch, *size[1:])
        return None

    def _grow(self, func, args: list, kwargs: dict) -> tuple[list, dict] | None:
        if "size" in kwargs:
            size = self._global_size(kwargs["size"])
            return None if size is None else (args, kwargs | {"size": size})
        if func is torch.randint:  # randint(high, size) / randint(low, high, size)
            size = self._global_size(args[-1]) if args else None
            return None if size is None else ([*args[:-1], size], kwargs)
        if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size)):  # randn((B, ...))
            size = self._global_size(args[0])
        else:  # randn(B, ...)
            size = self._global_size(tuple(args)) if args and all(isinstance(a, int) for a in args) else None
        return None if size is None else ([size], kwargs)


class _LossModule(nn.Module):
    """``forward(*args) = fn(model, *args)``: puts the loss inside DDP's forward so its gradient hooks run."""

    def __init__(self, model: nn.Module, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.model = model
        self.fn = fn

    def forward(self, *args: Any) -> Any:
        return self.fn(self.model, *args)


class _DataParallelLoss:
    def __init__(self, model: nn.Module, fn: Callable[..., Any], ctx: DistContext, device: torch.device,
                 local_batch: int) -> None:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        # buffers (normaliser statistics) are synced from rank 0 at construction and never change in forward:
        # no per-step buffer broadcast (the option was renamed in torch 2.13)
        params = inspect.signature(DistributedDataParallel.__init__).parameters
        no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}
        self.ddp = DistributedDataParallel(_LossModule(model, fn), device_ids=ids, **no_sync)
        self.ctx = ctx
        self.local_batch = local_batch

    def __call__(self, *args: Any) -> Any:
        with ShardedDraws(self.ctx.rank, self.ctx.world_size, self.local_batch):
            return self.ddp(*args)


def data_parallel(model: nn.Module, fn: Callable[..., Any], ctx: DistContext, device: torch.device,
                  local_batch: int) -> Callable[..., Any]:
    """``loss(*args) = fn(model, *args)`` -- through DDP (gradients averaged over ranks, random draws sharded by
    :class:`ShardedDraws`) when ``ctx`` is distributed, a plain call otherwise.

    Step the optimiser on ``model``'s own parameters (DDP shares them). ``local_batch``: this rank's batch size.
    """
    if not ctx.enabled:
        return functools.partial(fn, model)
    return _DataParallelLoss(model, fn, ctx, device, local_batch)
