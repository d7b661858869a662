"""PolicyRuntime: the one object that runs an exported policy, in ``rl100 eval`` and in the ROS policy node.

It loads ``<model>.onnx`` + ``<model>.card.json`` (refusing a card whose sha256 or inputs/outputs do not
match the graph), opens an ONNX Runtime session (CUDA when available, else CPU), keeps the observation
history (``n_obs`` steps; at an episode start the first observation is repeated), and schedules action chunks
with a receding horizon: predict ``(Ta, Da)``, execute ``n_action_steps`` of it starting at ``action_start =
n_obs - 1``, then replan. With ``temporal_ensemble`` it replans every step and averages, for the current
step, all still-valid predictions with weights ``exp(-k * i)`` (``i = 0`` the oldest, as in ACT).
No torch, no rclpy: numpy + onnxruntime only (and the ``onnx`` package where an ONNX Runtime older than
1.24 needs the graph rewritten at load time, :mod:`rl100.export.portable`).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rl100.export.card import (
    NOISE_INPUT,
    STEP_NOISE_INPUT,
    CardError,
    card_path,
    check_graph_io,
    io_spec,
    read_card,
)
from rl100.export.portable import needs_portable_graph, portable_bytes

_ORT_DTYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(double)": "float64",
               "tensor(int64)": "int64", "tensor(float16)": "float16"}


def session_options(intra_op_threads: int = 0, allow_spinning: bool = False) -> Any:
    """ONNX Runtime options for a batch-1 policy graph (also used by ``rl100 bench-policy``).

    Full graph optimisation, sequential execution, one inter-op thread. ``allow_spinning=False``: idle intra-op
    threads block instead of busy-waiting; a policy graph is a chain of small kernels, and on a machine whose
    cores are shared (the robot PC runs the controller, cameras, ROS) spinning workers steal the cores the
    calling thread needs: measured ~2x worse p50 latency with 2 spinning threads on a loaded 2-core host.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = int(intra_op_threads)
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return opts


def latency_stats(latencies_ms) -> dict[str, float]:
    """Latencies (ms) -> count, mean, p50, p95, max."""
    lat = np.asarray(latencies_ms, dtype=np.float64)
    if lat.size == 0:
        return {"count": 0}
    return {"count": int(lat.size), "mean_ms": float(lat.mean()), "p50_ms": float(np.percentile(lat, 50)),
            "p95_ms": float(np.percentile(lat, 95)), "max_ms": float(lat.max())}


class PolicyRuntime:
    """``reset()`` at each episode start, then ``act(obs) -> (Da,)`` once per control step.

    ``obs``: ``{key: per-step array}`` for every key of the card's observation spec (extra keys are ignored).
    ``seed`` fixes the sampler noise; ``providers`` overrides the ONNX Runtime provider choice;
    ``intra_op_threads`` / ``allow_spinning``: see :func:`session_options`. ``latencies_ms`` keeps the
    last ``latency_window`` inference latencies (a node running all day must not grow, nor take longer to
    summarise them every second); ``predictions`` counts all of them.
    """

    def __init__(self, onnx_path: str | os.PathLike, *, card: str | os.PathLike | None = None, seed: int = 0,
                 intra_op_threads: int = 0, providers: Sequence[str] | None = None,
                 n_action_steps: int | None = None, temporal_ensemble: bool = False, ensemble_k: float = 0.01,
                 allow_spinning: bool = False, latency_window: int = 100_000) -> None:
        import onnxruntime as ort

        if latency_window < 1:
            raise ValueError(f"latency_window must be >= 1, got {latency_window}")

        self.onnx_path = Path(onnx_path)
        self.card_path = Path(card) if card is not None else card_path(self.onnx_path)
        if not self.card_path.exists():
            raise CardError(f"no model card at {self.card_path} for {self.onnx_path}")
        self.card = read_card(self.card_path)
        model_bytes = self.onnx_path.read_bytes()  # hashed and loaded: the same bytes
        digest = hashlib.sha256(model_bytes).hexdigest()
        if digest != self.card["sha256"]:
            raise CardError(f"{self.onnx_path}: sha256 {digest} does not match the card's {self.card['sha256']} "
                            f"({self.card_path}): the model file and its card are from different exports")
        opts = session_options(intra_op_threads, allow_spinning)
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        if needs_portable_graph(ort.__version__):  # e.g. the Humble images' Python 3.10 wheels
            model_bytes = portable_bytes(model_bytes, str(self.onnx_path))
        self.session = ort.InferenceSession(model_bytes, sess_options=opts, providers=list(providers))

        def io(nodes: Any) -> dict[str, tuple[list[Any], str]]:
            return {n.name: (list(n.shape), _ORT_DTYPES.get(n.type, n.type)) for n in nodes}

        check_graph_io(self.card, io(self.session.get_inputs()), io(self.session.get_outputs()), str(self.onnx_path))
        self.inputs, _ = io_spec(self.card)
        self.obs_spec = {o["key"]: (tuple(o["shape"][1:]), np.dtype(o["dtype"])) for o in self.card["observation_spec"]}
        self.n_obs = int(self.card["n_obs"])
        self.horizon, self.action_dim = (int(v) for v in self.card["action_spec"]["shape"])
        self.action_start = int(self.card["action_spec"]["action_start"])
        self.n_action_steps = int(n_action_steps or self.card["n_action_steps"])
        if not 1 <= self.n_action_steps <= self.horizon - self.action_start:
            raise ValueError(f"n_action_steps must be in [1, {self.horizon - self.action_start}], "
                             f"got {self.n_action_steps}")
        self.temporal_ensemble = temporal_ensemble
        self.ensemble_k = float(ensemble_k)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.latencies_ms: deque[float] = deque(maxlen=latency_window)
        self.predictions = 0  # predict() calls since construction (warm-up excluded)
        self.reset()

    # ---------------------------------------------------------------------------------------------- API
    @property
    def control_rate_hz(self) -> float:
        return float(self.card["control_rate_hz"])

    def reset(self) -> None:
        """Start a new episode: empty history, no queued actions (the noise RNG continues)."""
        self.history: dict[str, deque[np.ndarray]] = {k: deque(maxlen=self.n_obs) for k in self.obs_spec}
        self.queue: deque[np.ndarray] = deque()
        self.chunks: deque[tuple[int, np.ndarray]] = deque()  # temporal ensembling: (step of chunk[0], chunk)
        self.step = 0

    def act(self, obs: Mapping[str, Any]) -> np.ndarray:
        """Add one observation to the history and return the action (Da,) float32 to execute now."""
        self._push(obs)
        if self.temporal_ensemble:
            action = self._act_ensemble()
        else:
            if not self.queue:
                chunk = self.predict()[0]  # (Ta, Da)
                self.queue.extend(chunk[self.action_start : self.action_start + self.n_action_steps])
            action = self.queue.popleft()
        self.step += 1
        return np.array(action, dtype=np.float32)

    def predict(self, noise: np.ndarray | None = None) -> np.ndarray:
        """Run the graph on the current history: (1, Ta, Da) unnormalised actions."""
        feeds = {k: np.stack(list(h))[None] for k, h in self.history.items()}  # (1, To, *shape)
        ta, da = self.horizon, self.action_dim
        feeds[NOISE_INPUT] = (self.rng.standard_normal((1, ta, da), dtype=np.float32) if noise is None
                              else np.asarray(noise, np.float32))
        if STEP_NOISE_INPUT in self.inputs:
            k = int(self.card["num_inference_steps"])
            feeds[STEP_NOISE_INPUT] = self.rng.standard_normal((1, k, ta, da), dtype=np.float32)
        t0 = time.perf_counter()
        (out,) = self.session.run(None, feeds)
        self.latencies_ms.append((time.perf_counter() - t0) * 1e3)
        self.predictions += 1
        if not np.all(np.isfinite(out)):
            raise ValueError(f"{self.onnx_path}: non-finite values in output 'action' at step {self.step}")
        return out

    def warmup(self, calls: int = 2) -> None:
        """Run the graph on zero observations so the first real call is not the slow one.

        ONNX Runtime plans memory and initialises kernels on its first runs; doing that before a
        model is swapped into a running control loop keeps the loop from missing a tick.
        """
        for _ in range(calls):
            for key, (shape, dtype) in self.obs_spec.items():
                self.history[key].clear()
                self.history[key].extend([np.zeros(shape, dtype)] * self.n_obs)
            self.predict()
        self.latencies_ms.clear()
        self.predictions = 0
        self.reset()

    def latency_stats(self) -> dict[str, float]:
        """Inference latency over the last ``latency_window`` ``predict`` calls (ms): count, mean, p50, p95, max."""
        return latency_stats(self.latencies_ms)

    def reseed(self, seed: int) -> None:
        """Restart the sampler noise from ``seed`` (evaluation: an episode's noise depends only on its seed)."""
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    # ---------------------------------------------------------------------------------------------- internals
    def _push(self, obs: Mapping[str, Any]) -> None:
        checked = {}
        for key, (shape, dtype) in self.obs_spec.items():
            if key not in obs:
                raise KeyError(f"observation {key!r} missing (the model needs {sorted(self.obs_spec)})")
            x = np.asarray(obs[key])
            if x.shape != shape:
                raise ValueError(f"observation {key!r}: shape {x.shape}, the model needs {shape}")
            if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
                raise ValueError(f"observation {key!r}: contains NaN or inf at step {self.step}")
            checked[key] = x.astype(dtype, copy=True)
        for key, x in checked.items():
            h = self.history[key]
            if not h:  # episode start: pad the history by repetition
                h.extend([x] * (self.n_obs - 1))
            h.append(x)

    def _act_ensemble(self) -> np.ndarray:
        chunk = self.predict()[0][self.action_start :]  # (Ta - action_start, Da): chunk[0] is for this step
        self.chunks.append((self.step, chunk))
        while self.chunks and self.step - self.chunks[0][0] >= len(self.chunks[0][1]):
            self.chunks.popleft()
        preds = np.stack([c[self.step - s] for s, c in self.chunks])  # (M, Da), oldest first
        w = np.exp(-self.ensemble_k * np.arange(len(preds)))
        return (w[:, None] * preds).sum(0) / w.sum()
