"""Latency benchmark: per-action-chunk inference at batch 1, DDIM-K vs one-step CM, torch eager vs ONNX Runtime.

Random weights (latency does not depend on training), low-dim state observations; prints a Markdown table.
The ONNX rows time :meth:`rl100.runtime.PolicyRuntime.predict` on the exported graph (session options of
:func:`rl100.runtime.policy_runtime.session_options`); ``--legacy-graph`` adds the first fast export
(:data:`rl100.export.fast_graph.LEGACY`: Conv, InstanceNormalization, Softplus) and ``--reference-graph`` the
unfused one. Several ONNX graphs of one model are timed interleaved (one untimed and one timed call each per
round), so that a shared machine's load changes hit them alike.
Example: ``python -m rl100.policy.bench --sizes small paper --repeats 20``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rl100.keys import OBS_STATE
from rl100.policy.config import ObsSpec, PolicyConfig
from rl100.policy.consistency import ConsistencyPolicy
from rl100.policy.diffusion import DiffusionPolicy

SIZES = {"small": (64, 128, 256), "paper": (256, 512, 1024)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--ddim-steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per cell (after 3 warm-up calls)")
    parser.add_argument("--threads", type=int, default=0, help="torch / ORT intra-op threads (0: default)")
    parser.add_argument("--state-dim", type=int, default=15)
    parser.add_argument("--action-dim", type=int, default=7)
    parser.add_argument("--no-onnx", action="store_true", help="torch eager only")
    parser.add_argument("--reference-graph", action="store_true",
                        help="also time the unfused reference export (export_onnx(fast=False)) for comparison")
    parser.add_argument("--legacy-graph", action="store_true",
                        help="also time the first fast export (Conv / InstanceNormalization / Softplus nodes)")
    parser.add_argument("--spin", action="store_true", help="let idle ORT intra-op threads busy-wait")


def _time(fn, repeats: int) -> tuple[float, float]:
    for _ in range(3):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(ts)), float(np.percentile(ts, 95))


def bench(sizes: list[str], ddim_steps: int = 10, repeats: int = 20, threads: int = 0, state_dim: int = 15,
          action_dim: int = 7, onnx: bool = True, reference_graph: bool = False,
          spin: bool = False, legacy_graph: bool = False) -> list[dict[str, object]]:
    if threads > 0:
        torch.set_num_threads(threads)
    rows = []
    for size in sizes:
        cfg = PolicyConfig(obs=[ObsSpec(OBS_STATE, (state_dim,))], action_dim=action_dim, down_dims=SIZES[size],
                           num_inference_steps=ddim_steps)
        teacher = DiffusionPolicy(cfg).eval()
        student = ConsistencyPolicy.from_teacher(teacher).eval()
        n_params = sum(p.numel() for p in teacher.parameters())
        obs = {OBS_STATE: torch.randn(1, cfg.n_obs, state_dim)}
        noise = torch.randn(1, cfg.horizon, action_dim)
        for name, model in ((f"DDIM-{ddim_steps}", teacher), ("CM-1", student)):
            with torch.inference_mode():
                med, p95 = _time(lambda m=model, o=obs, n=noise: m.predict_action(o, n), repeats)
            rows.append({"model": size, "params_M": n_params / 1e6, "sampler": name, "backend": "torch eager",
                         "p50_ms": med, "p95_ms": p95})
            if onnx:
                from rl100.export.fast_graph import LEGACY

                graphs = {"ONNX Runtime CPU": True}
                if legacy_graph:
                    graphs["ONNX Runtime CPU (first fast graph)"] = LEGACY
                if reference_graph:
                    graphs["ONNX Runtime CPU (reference graph)"] = False
                for backend, (med, p95) in _bench_onnx(model, obs, graphs, repeats, threads, spin).items():
                    rows.append({"model": size, "params_M": n_params / 1e6, "sampler": name, "backend": backend,
                                 "p50_ms": med, "p95_ms": p95})
    return rows


def _time_interleaved(fns: dict[str, object], repeats: int) -> dict[str, tuple[float, float]]:
    """``name -> fn``: 3 warm-up calls each, then ``repeats`` rounds of (untimed call, timed call) per fn."""
    for fn in fns.values():
        for _ in range(3):
            fn()
    ts: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            fn()  # back in cache after the other graphs' calls
            t0 = time.perf_counter()
            fn()
            ts[name].append((time.perf_counter() - t0) * 1e3)
    return {name: (float(np.median(t)), float(np.percentile(t, 95))) for name, t in ts.items()}


def _bench_onnx(model, obs, graphs: dict[str, object], repeats: int, threads: int,
                spin: bool = False) -> dict[str, tuple[float, float]]:
    """Times :meth:`PolicyRuntime.predict` (what ``rl100 eval`` and the robot's policy node call per chunk) on
    each export ``graphs`` (backend name -> ``export_onnx(fast=...)``) -> backend name -> (p50, p95) ms."""
    from rl100.export.onnx_export import export_onnx
    from rl100.runtime.policy_runtime import PolicyRuntime

    with tempfile.TemporaryDirectory() as tmp:
        fns = {}
        for i, (backend, fast) in enumerate(graphs.items()):
            path = Path(tmp) / f"policy{i}.onnx"
            export_onnx(model, path, training_command="bench", fast=fast)
            rt = PolicyRuntime(path, intra_op_threads=threads, providers=["CPUExecutionProvider"],
                               allow_spinning=spin)
            rt.act({OBS_STATE: obs[OBS_STATE][0, -1].numpy()})  # fills the observation history
            fns[backend] = rt.predict
        return _time_interleaved(fns, repeats)


def markdown(rows: list[dict[str, object]]) -> str:
    lines = ["| model | params (M) | sampler | backend | p50 ms | p95 ms | Hz (p50) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['params_M']:.1f} | {r['sampler']} | {r['backend']} | {r['p50_ms']:.2f} "
                     f"| {r['p95_ms']:.2f} | {1e3 / r['p50_ms']:.0f} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    rows = bench(args.sizes, args.ddim_steps, args.repeats, args.threads, args.state_dim, args.action_dim,
                 onnx=not args.no_onnx, reference_graph=args.reference_graph, spin=args.spin,
                 legacy_graph=args.legacy_graph)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"batch 1, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
          f"ORT intra-op threads {args.threads or 'default'}{' (spinning)' if args.spin else ''}, load average {load}")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    raise SystemExit(run(p.parse_args()))
