"""Data-parallel train-il / distill under torchrun (gloo, 2 CPU processes) against one process with the same global
batch: same weights, EMA and AdamW moments up to float reduction order; only rank 0 writes; exact resume under DDP;
a failing rank ends the job instead of hanging it. Plus the sharding helpers in-process.

This file is also the torchrun worker: ``python -m torch.distributed.run ... test_distributed.py <mode> <root>``.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rl100.data import Dataset, DatasetWriter
from rl100.keys import FLAG_DEMO, OBS_STATE
from rl100.policy.ema import EMA
from rl100.train import distributed
from rl100.train.common import BatchSource
from rl100.train.config import load_config, policy_config_for
from rl100.train.distill import distill
from rl100.train.distributed import SINGLE, DistContext, ShardedDraws, env_context
from rl100.train.il import train_il

WORLD = 2
BATCH = 8  # global batch: one process with BATCH == WORLD processes with BATCH // WORLD each
STEPS = 4
POLICY = {"horizon": 8, "n_obs": 2, "n_action_steps": 4, "down_dims": [16, 32], "n_groups": 8,
          "step_embed_dim": 16, "num_inference_steps": 4, "encoder": {"lowdim_hidden": 32, "lowdim_out": 16}}
RUN_FILES = ["config.yaml", "learning_curve.png", "metrics.csv", "policy.json", "policy.safetensors", "state.json",
             "state.safetensors", "tb"]
LAUNCH_TIMEOUT_S = 300


def _cfg(data: Path, out: Path, batch_size: int, **train):
    train = {"batch_size": batch_size, "warmup_steps": 1, "lr": 3e-3, "log_every": 2, "ema_decay": 0.9,
             "ckpt_every": 100, "device": "cpu"} | train
    overrides = [f"policy.{k}={v}" for k, v in POLICY.items()] + [f"train.{k}={v}" for k, v in train.items()]
    return load_config("il_state_small", overrides, dataset=str(data), out=str(out), steps=STEPS)


def _write_dataset(root: Path, episodes: int = 6, length: int = 12) -> Path:
    rng = np.random.default_rng(0)
    w_true = np.array([[0.8, -0.5, 0.3], [-0.2, 0.6, 0.9]], dtype=np.float32)
    with DatasetWriter(root, meta={"task": "synthetic-linear"}) as w:
        for _ in range(episodes):
            s0 = rng.uniform(-1, 1, 3).astype(np.float32)
            ep = w.begin_episode(meta={"source": "synthetic"})
            for _t in range(length):
                ep.add_step({OBS_STATE: (s0 + rng.normal(0, 0.01, 3)).astype(np.float32)}, w_true @ s0, 0.0, FLAG_DEMO)
            ep.end(success=True)
    return root


# ------------------------------------------------------------------------------------------------ torchrun worker
def _record_writes(root: Path) -> tuple[list[str], list[bool]]:
    """Audit hook noting every file written, replaced, created or removed under ``root`` (until ``active[0]``
    is set False). Catches Python-level writes, and safetensors' native writes through their ``os.replace``."""
    prefix, seen, active = os.fsdecode(root), [], [True]
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND

    def hook(event: str, args: tuple) -> None:
        if not active[0]:
            return
        if event == "open":
            path, mode, flags = args
            if not ((isinstance(mode, str) and any(c in mode for c in "wax+"))
                    or (mode is None and isinstance(flags, int) and flags & write_flags)):
                return
            paths = [path]
        elif event in ("os.rename", "os.mkdir", "os.remove", "os.rmdir", "os.truncate"):
            paths = list(args[:2]) if event == "os.rename" else [args[0]]
        else:
            return
        for p in paths:
            if isinstance(p, (str, bytes, os.PathLike)) and os.fsdecode(p).startswith(prefix):
                seen.append(f"{event} {os.fsdecode(p)}")

    sys.addaudithook(hook)
    return seen, active


def _worker(mode: str, root: Path) -> None:
    rank = int(os.environ["RANK"])
    data = root / "data"
    local = BATCH // WORLD
    if mode == "fail":
        if rank == 1:
            batch = BatchSource.batch

            def failing(self, step):
                if step == 2:
                    raise RuntimeError("rank 1 fails on purpose")
                return batch(self, step)

            BatchSource.batch = failing
        train_il(_cfg(data, root / "fail", local), progress=False)
        return

    seen, active = _record_writes(root) if rank != 0 else ([], [True])
    ema_digests: list[str] = []
    update = EMA.update

    def recorded_update(self, model):
        update(self, model)
        ema_digests.append(hashlib.sha256(b"".join(p.detach().numpy().tobytes()
                                                   for p in self.model.parameters())).hexdigest())

    EMA.update = recorded_update
    a = train_il(_cfg(data, root / "a", local), progress=False)
    stopped = train_il(_cfg(data, root / "b", local), progress=False, stop_after=2)
    b = train_il(_cfg(data, root / "b", local), progress=False, resume=True)
    c = distill(_cfg(data, root / "c", local, traj_weight=0.5), root / "ref_a" / "policy.json", progress=False)
    active[0] = False
    report = {"paths": [str(a), str(stopped), str(b), str(c)], "ema": ema_digests, "writes": seen,
              "initialized": torch.distributed.is_initialized()}
    (root / f"report_{rank}.json").write_text(json.dumps(report))


# ------------------------------------------------------------------------------------------------------- tests
def _torchrun(mode: str, root: Path) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={WORLD}",
           __file__, mode, str(root)]
    env = os.environ | {"OMP_NUM_THREADS": "1", distributed.TIMEOUT_ENV: "60"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=LAUNCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"torchrun {mode} did not finish in {LAUNCH_TIMEOUT_S} s:\n{out[-4000:]}")
    return proc.returncode, out


def _assert_close(a: Path, b: Path, atol: float, rtol: float) -> None:
    ta, tb = load_file(str(a)), load_file(str(b))
    assert ta.keys() == tb.keys()
    for k in ta:
        torch.testing.assert_close(ta[k], tb[k], atol=atol, rtol=rtol, msg=f"{a} vs {b}: {k}")


def _losses(run: Path) -> list[float]:
    return [float(r["losses/train"]) for r in csv.DictReader(open(run / "metrics.csv"))]


def test_two_ranks_match_one_process(tmp_path):
    data = _write_dataset(tmp_path / "data")
    ref_a = train_il(_cfg(data, tmp_path / "ref_a", BATCH), progress=False)
    ref_c = distill(_cfg(data, tmp_path / "ref_c", BATCH, traj_weight=0.5), ref_a, progress=False)
    assert not torch.distributed.is_initialized()  # one process: no process group

    code, out = _torchrun("train", tmp_path)
    assert code == 0, out[-4000:]
    r0, r1 = (json.loads((tmp_path / f"report_{r}.json").read_text()) for r in range(WORLD))
    want = [str(tmp_path / "a" / "policy.json"), "None", str(tmp_path / "b" / "policy.json"),
            str(tmp_path / "c" / "policy.json")]
    assert r0["paths"] == r1["paths"] == want and r0["initialized"]
    assert r1["writes"] == [], r1["writes"]  # rank 1 wrote nothing: no logs, checkpoints, policies, plots
    assert len(r0["ema"]) == 3 * STEPS and r0["ema"] == r1["ema"]  # a, b (2 + 2), c: EMA identical on both ranks
    for run in "abc":
        assert sorted(p.name for p in (tmp_path / run).iterdir()) == RUN_FILES

    # 2 ranks x batch 4 == 1 process x batch 8, up to gradient-averaging order (Adam amplifies tiny differences)
    for run, ref in (("a", "ref_a"), ("c", "ref_c")):
        _assert_close(tmp_path / run / "state.safetensors", tmp_path / ref / "state.safetensors", 1e-5, 1e-4)
        _assert_close(tmp_path / run / "policy.safetensors", tmp_path / ref / "policy.safetensors", 1e-5, 1e-4)
        np.testing.assert_allclose(_losses(tmp_path / run), _losses(tmp_path / ref), rtol=1e-5)
    assert ref_c == tmp_path / "ref_c" / "policy.json" and "world_size" not in json.loads(ref_c.read_text())["meta"]
    assert json.loads((tmp_path / "c" / "policy.json").read_text())["meta"]["world_size"] == WORLD
    # stop at 2 + resume to 4 under DDP == 4 uninterrupted steps under DDP, bit for bit
    _assert_close(tmp_path / "a" / "state.safetensors", tmp_path / "b" / "state.safetensors", 0, 0)
    _assert_close(tmp_path / "a" / "policy.safetensors", tmp_path / "b" / "policy.safetensors", 0, 0)
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")


def test_failing_rank_ends_the_job(tmp_path):
    _write_dataset(tmp_path / "data")
    code, out = _torchrun("fail", tmp_path)
    assert code != 0 and "rank 1 fails on purpose" in out, out[-4000:]
    assert not (tmp_path / "fail" / "policy.json").exists()


def test_env_context():
    assert env_context({}) is SINGLE and env_context({"WORLD_SIZE": "1", "RANK": "0"}) is SINGLE
    assert env_context({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == DistContext(3, 4, 1)
    assert SINGLE.is_main and not SINGLE.enabled
    with pytest.raises(RuntimeError, match="RANK"):
        env_context({"WORLD_SIZE": "2"})
    with pytest.raises(RuntimeError, match="bad torchrun"):
        env_context({"WORLD_SIZE": "2", "RANK": "2"})
    with pytest.raises(ValueError, match="backend"):
        load_config("il_state_small", ["train.backend=mpi"])


def test_batch_shards_are_the_single_process_batch(tmp_path):
    data = Dataset(_write_dataset(tmp_path / "data"))
    pcfg = policy_config_for(_cfg(tmp_path / "data", tmp_path / "x", BATCH), data.specs)
    whole = BatchSource(data, pcfg, BATCH, seed=3)
    shards = [BatchSource(data, pcfg, BATCH // WORLD, seed=3, rank=r, world_size=WORLD) for r in range(WORLD)]
    for step in (0, 7):
        np.testing.assert_array_equal(np.concatenate([s.indices(step) for s in shards]), whole.indices(step))
        for key, value in whole.batch(step).items():
            torch.testing.assert_close(torch.cat([s.batch(step)[key] for s in shards]), value, atol=0, rtol=0)
    with pytest.raises(ValueError, match="rank"):
        BatchSource(data, pcfg, 4, seed=0, rank=2, world_size=2)


def _draws(n: int) -> list[torch.Tensor]:
    return [torch.randn((n, 3)), torch.randn(n, 2, 2), torch.randint(0, 100, (n,)), torch.randint(7, size=(n, 2)),
            torch.rand(size=(n,)), torch.randn(5),
            torch.randint(1, 4, (n,), generator=torch.Generator().manual_seed(1))]


def test_sharded_draws_are_the_single_process_draws():
    """Inside ShardedDraws, rank r's draws of leading size B are rows r*B.. of one process's draws of size N*B;
    other draws (size 5 here) are the same on every rank; the RNG stream is consumed as in one process."""
    torch.manual_seed(0)
    whole, after = _draws(BATCH), torch.rand(3)
    local = BATCH // WORLD
    for rank in range(WORLD):
        torch.manual_seed(0)
        with ShardedDraws(rank, WORLD, local):
            mine = _draws(local)
        torch.testing.assert_close(torch.rand(3), after, atol=0, rtol=0)
        for w, m in zip(whole, mine, strict=True):
            expected = w if w.shape[0] == 5 else w[rank * local:(rank + 1) * local]
            torch.testing.assert_close(m, expected, atol=0, rtol=0)


def test_single_process_is_a_plain_call():
    model = torch.nn.Linear(2, 1)
    loss = distributed.data_parallel(model, lambda m, x: m(x).sum(), SINGLE, torch.device("cpu"), 4)
    assert isinstance(loss, functools.partial) and loss.func is not None and loss.args == (model,)
    assert distributed.mean_over_ranks(SINGLE, {"x": 1.5}) == {"x": 1.5}
    distributed.barrier(SINGLE)
    distributed.agree(SINGLE, step=3)


if __name__ == "__main__":
    _worker(sys.argv[1], Path(sys.argv[2]))
