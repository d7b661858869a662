"""The table frame: run a policy on a table that stands higher or lower than the one it learned on.

A policy trained on absolute end-effector targets in the robot base frame has the table height
baked in: put the robot on another stand and every target is off by the difference, and with a
point-cloud input the table top itself rises through the crop box's floor and floods the cloud
(the ``table_height`` robustness family: 0.45 success at +-2.5 cm for the shipped policy). The
fix a robot integrator makes is a task frame: measure the table top once (calibration), and let
the policy see the world shifted so that its table is where it was in training.

``dz`` = table top height now - table top height in the training data (m, base frame z; the
simulated tasks' table top is z = 0). :class:`TableFrame` moves observations into the training
frame (TCP z - dz, cloud z - dz, the cloud's crop box + dz in the base frame) and actions back
out (target z + dz); with ``env_state_z`` (the simulated tasks' ``env_state_z``: which entries of
``observation.env_state`` are heights) a privileged-state policy's object poses move with them. The
joint angles cannot be shifted and stay as measured: the shipped policy tolerates that (BENCHMARKS
"table frame"). :func:`estimate_table_z` measures the table top from
an uncropped cloud, for a calibration step or a per-episode estimate in simulation.

Layouts (``rl100.keys``): ``observation.state`` (15,) with the TCP position first
(:mod:`rl100.robot_state`); actions (7,) or (H, 7) absolute targets pos(3), rotvec(3), gripper(1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rl100.keys import OBS_ENV_STATE, OBS_POINTS, OBS_STATE
from rl100.robot_state import STATE_DIM

Z = 2  # index of z in a TCP position, an action and a point


@dataclass(frozen=True)
class TableFrame:
    """``dz`` m: how much higher the table top is now than in the training data; ``env_state_z``: indices of
    ``observation.env_state`` that are base-frame heights (shifted like the TCP)."""

    dz: float = 0.0
    env_state_z: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not math.isfinite(self.dz) or abs(self.dz) > 0.5:
            raise ValueError(f"table frame dz must be finite and within +-0.5 m, got {self.dz}")
        if any(int(i) != i or i < 0 for i in self.env_state_z):
            raise ValueError(f"env_state_z must be indices >= 0, got {self.env_state_z}")

    def state(self, state: np.ndarray) -> np.ndarray:
        """(15,) or (T, 15) robot state -> the same with the TCP z in the training frame."""
        s = np.array(state, dtype=np.float32, copy=True)
        if s.shape[-1] != STATE_DIM:
            raise ValueError(f"{OBS_STATE} must end in {STATE_DIM} values, got shape {s.shape}")
        s[..., Z] -= self.dz
        return s

    def points(self, points: np.ndarray) -> np.ndarray:
        """(..., N, 3 or 6) cloud in the base frame -> the training frame (xyz[rgb], float32)."""
        p = np.array(points, dtype=np.float32, copy=True)
        p[..., Z] -= self.dz
        return p

    def crop_box(self, lo, hi) -> tuple[np.ndarray, np.ndarray]:
        """The training crop box ``[lo, hi]`` (3,) as it lies in the base frame now."""
        shift = np.array([0.0, 0.0, self.dz])
        return np.asarray(lo, dtype=np.float64) + shift, np.asarray(hi, dtype=np.float64) + shift

    def observation(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        """An observation dict with its state and cloud (if present) in the training frame."""
        out = dict(obs)
        if OBS_STATE in out:
            out[OBS_STATE] = self.state(out[OBS_STATE])
        if OBS_POINTS in out:
            out[OBS_POINTS] = self.points(out[OBS_POINTS])
        if OBS_ENV_STATE in out and self.env_state_z:
            e = np.array(out[OBS_ENV_STATE], dtype=np.float32, copy=True)
            if e.shape[-1] <= max(self.env_state_z):
                raise ValueError(f"{OBS_ENV_STATE} has {e.shape[-1]} values, its heights are at {self.env_state_z}")
            e[..., list(self.env_state_z)] -= self.dz
            out[OBS_ENV_STATE] = e
        return out

    def action(self, action: np.ndarray) -> np.ndarray:
        """(7,) or (H, 7) absolute targets in the training frame -> the base frame now (to the robot)."""
        return self._shift_action(action, self.dz)

    def action_in(self, action: np.ndarray) -> np.ndarray:
        """(7,) or (H, 7) recorded base-frame targets -> the training frame (a dataset from this stand)."""
        return self._shift_action(action, -self.dz)

    @staticmethod
    def _shift_action(action: np.ndarray, dz: float) -> np.ndarray:
        a = np.array(action, dtype=np.float64, copy=True)
        if a.shape[-1] != 7:
            raise ValueError(f"the table frame shifts absolute pose actions (..., 7), got shape {a.shape}")
        a[..., Z] += dz
        return a


def _footprint(points: np.ndarray, xy_lo, xy_hi, z_range, min_points: int) -> np.ndarray:
    """(K, 3) float64: the points over the (x, y) footprint with z in ``z_range``; ValueError when < min_points."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 3:
        raise ValueError(f"points must be (M, 3+), got shape {p.shape}")
    p = p[:, :3]
    lo, hi = np.asarray(xy_lo, dtype=np.float64)[:2], np.asarray(xy_hi, dtype=np.float64)[:2]
    p = p[np.all((p[:, :2] >= lo) & (p[:, :2] <= hi), axis=1) & (p[:, 2] >= z_range[0]) & (p[:, 2] <= z_range[1])]
    if len(p) < min_points:
        raise ValueError(f"no table: {len(p)} points in the footprint between z = {z_range[0]} and {z_range[1]} m "
                         f"(need {min_points})")
    return p


def estimate_table_z(points: np.ndarray, xy_lo, xy_hi, z_range=(-0.15, 0.15), bin_m: float = 0.002,
                     min_points: int = 200) -> float:
    """Height of the table top: the densest horizontal layer of a cloud over the table's footprint.

    Args:
        points: (M, 3+) base-frame cloud that includes the table (not cropped above it).
        xy_lo, xy_hi: (2,) the footprint to look in (m; e.g. the task's crop box).
        z_range: (2,) m, heights the table top can have.
        bin_m: m, histogram bin; the densest bin is refined to the median of the points within
            1.5 bins of it, re-centred three times (so depth noise averages out).
        min_points: fewer points in the densest layer than this is no table: ValueError.

    Returns:
        the table top's z, m.
    """
    z = _footprint(points, xy_lo, xy_hi, z_range, min_points)[:, 2]
    edges = np.arange(z_range[0], z_range[1] + bin_m, bin_m)
    counts, edges = np.histogram(z, edges)
    k = int(np.argmax(counts))
    centre = 0.5 * (edges[k] + edges[k + 1])
    for _ in range(3):  # re-centre the window on its median: the bin grid biases the first one
        layer = z[np.abs(z - centre) <= 1.5 * bin_m]
        if len(layer) < min_points:
            raise ValueError(f"no table: the densest layer (z = {centre:.3f} m) has {len(layer)} points "
                             f"(need {min_points})")
        centre = float(np.median(layer))
    return centre


def table_tilt_deg(points: np.ndarray, xy_lo, xy_hi, z_range=(-0.15, 0.15), tol: float = 0.004,
                   iters: int = 300, seed: int = 0) -> float:
    """Angle (deg) between the table plane in a base-frame cloud and the base's horizontal.

    A table seen tilted means the hand-eye calibration is off (a knocked camera): the cloud is
    rotated against the robot. RANSAC over the footprint's points in ``z_range`` (planes within
    25 deg of horizontal, inliers within ``tol`` m), refined by least squares on the inliers.
    Raises ValueError when fewer than 200 points support a plane.
    """
    p = _footprint(points, xy_lo, xy_hi, z_range, 200)
    rng = np.random.default_rng(seed)
    best = np.zeros(len(p), dtype=bool)
    for _ in range(iters):
        a, b, c = p[rng.choice(len(p), 3, replace=False)]
        n = np.cross(b - a, c - a)
        norm = np.linalg.norm(n)
        if norm < 1e-12 or abs(n[2]) / norm < math.cos(math.radians(25)):
            continue
        inliers = np.abs((p - a) @ (n / norm)) < tol
        if inliers.sum() > best.sum():
            best = inliers
    if best.sum() < 200:
        raise ValueError(f"no table: the best plane has {int(best.sum())} supporting points (need 200)")
    q = p[best]
    normal = np.linalg.svd(q - q.mean(axis=0))[2][2]
    return float(np.degrees(np.arccos(min(1.0, abs(normal[2])))))


class TableFrameAgent:
    """A policy runtime run in the table frame inside a simulated task (``rl100 robustness --table-frame``).

    ``dz``: a fixed shift (a calibrated stand), or None to measure the table top at each episode's
    first observation (:func:`estimate_table_z` on the scene camera's uncropped cloud) and use
    its height minus ``table_z_train``. ``scene`` (an :class:`rl100.sim.expected_scene.ExpectedScene`,
    ``rl100 robustness --camera-check auto``): at each episode's first observation the camera's
    extrinsic is checked against the robot and the fixed world and corrected before anything else
    (a refused check keeps the believed extrinsic; ``camera_checks`` records every outcome). The
    env must give ``observation.depth``: the cloud is made here, cropped with the task's box moved
    into the base frame, then shifted, so the policy sees the crop it was trained with
    (``n_points`` 0: a policy without a cloud input, e.g. on privileged state; the depth image only
    measures the table, and the task's ``env_state_z`` heights are shifted). Same interface as the
    runtime (``reseed``, ``reset``, ``act``, ``latency_stats``); ``dz`` holds the episode's shift.
    """

    def __init__(self, runtime: Any, env: Any, dz: float | None = None, table_z_train: float = 0.0,
                 n_points: int = 512, scene: Any = None) -> None:
        self.runtime, self.env, self.scene = runtime, env, scene
        self.fixed, self.table_z_train, self.n_points = dz, float(table_z_train), int(n_points)
        self.env_state_z = tuple(getattr(env.unwrapped, "env_state_z", ()))
        cfg = env.unwrapped.config
        if self.n_points and getattr(cfg, "points_color", False):
            raise ValueError("the table frame makes xyz clouds; this task is configured for xyz + rgb")
        self.rng = np.random.default_rng(0)
        self.frame: TableFrame | None = None
        self.dz: float | None = None
        self.view: Any = None
        self.camera_checks: list[str] = []

    def reseed(self, seed: int) -> None:
        if hasattr(self.runtime, "reseed"):
            self.runtime.reseed(seed)
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        self.runtime.reset()
        self.frame = None if self.fixed is None else TableFrame(self.fixed, self.env_state_z)
        self.dz = None if self.frame is None else self.frame.dz
        self.view = None

    def _episode_view(self, obs: Mapping[str, Any]) -> Any:
        """The scene camera's view for this episode: as reported, or corrected by the camera check."""
        import dataclasses

        from rl100.keys import OBS_DEPTH
        from rl100.registration import corrected_extrinsic

        view = self.env.unwrapped.camera_info()
        if self.scene is None:
            return view
        try:
            reg = self.scene.check(obs[OBS_DEPTH], obs[OBS_STATE], view)
        except ValueError as exc:
            self.camera_checks.append(f"refused: {exc}")
            return view
        self.camera_checks.append(reg.summary())
        return dataclasses.replace(view, base_T_cam=corrected_extrinsic(view.base_T_cam, reg))

    def act(self, obs: Mapping[str, Any]) -> np.ndarray:
        from rl100.keys import OBS_DEPTH
        from rl100.pointcloud import camera_points, depth_to_points

        if OBS_DEPTH not in obs:
            raise ValueError(f"the table frame makes the cloud from {OBS_DEPTH}; make the env with depth")
        cfg, depth = self.env.unwrapped.config, obs[OBS_DEPTH]
        if self.view is None:
            self.view = self._episode_view(obs)
        if self.frame is None:
            full, _ = depth_to_points(depth, self.view)
            self.frame = TableFrame(estimate_table_z(full, cfg.points_lo, cfg.points_hi) - self.table_z_train,
                                    self.env_state_z)
            self.dz = self.frame.dz
        policy_obs = {k: v for k, v in obs.items() if k != OBS_DEPTH}
        if self.n_points:
            lo, hi = self.frame.crop_box(cfg.points_lo, cfg.points_hi)
            policy_obs[OBS_POINTS] = camera_points(None, depth, self.view, lo, hi, self.n_points, self.rng,
                                                   cfg.points_sampler, depth_filter=cfg.points_depth_filter)
        return self.frame.action(self.runtime.act(self.frame.observation(policy_obs)))

    def latency_stats(self) -> dict[str, Any]:
        return self.runtime.latency_stats()

    def close(self) -> None:
        if self.scene is not None:
            self.scene.close()
