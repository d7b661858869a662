"""Point-cloud preprocessing shared by the simulator, the trainer's exports and the ROS policy node.

Pure numpy (no MuJoCo, no ROS), so the policy node crops and downsamples a live cloud with the very
code that made the training data. Shapes: clouds are (M, 3) xyz (or (M, 6) xyz + rgb in [0, 1]) in
the robot base frame; outputs are float32.

The preprocessing a policy was trained with travels with the model: :func:`points_preprocessing`
reads it from a dataset's meta (written by ``rl100 collect``) and ``rl100 export`` stores it in
the model card's ``observation_spec`` entry of the points input (``crop_lo``, ``crop_hi``,
``sampler``; ``shape[1]`` is N).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

SAMPLERS = ("random", "fps")
DEPTH_FILTERS = ("none", "median3", "median5")


class PinholeView(Protocol):
    """What :func:`depth_to_points` needs of a camera (e.g. :class:`rl100.sim.camera.CameraInfo`)."""

    fx: float
    fy: float
    cx: float
    cy: float
    base_T_cam: np.ndarray  # (4, 4) optical frame -> robot base frame


def depth_to_points(depth: np.ndarray, info: PinholeView) -> tuple[np.ndarray, np.ndarray]:
    """Back-project a z-depth image into the base frame.

    Args:
        depth: (H, W) float32 metres, 0 = no return.
        info: the image's intrinsics and pose (``fx, fy, cx, cy`` in pixels, ``base_T_cam`` (4, 4)).

    Returns:
        points (M, 3) float64 in the base frame for the M pixels with a return, and their flat
        pixel indices (M,) into the (H, W) image (to pick colours).
    """
    h, w = depth.shape
    idx = np.flatnonzero(depth > 0)
    z = depth.reshape(-1)[idx].astype(np.float64)
    v, u = np.divmod(idx, w)
    cam = np.stack([(u - info.cx) * z / info.fx, (v - info.cy) * z / info.fy, z], axis=1)  # (M, 3) optical frame
    pts = cam @ info.base_T_cam[:3, :3].T + info.base_T_cam[:3, 3]
    return pts, idx


def filter_depth(depth: np.ndarray, kind: str) -> np.ndarray:
    """Denoise a depth image before it is back-projected: a median over the valid pixels of a window.

    A stereo camera's depth noise is per pixel; a flat table seen through it scatters above and
    below its plane, and the points that land over the crop box's floor take the policy's point
    budget. The median of a k x k window (holes, depth 0, left out; a hole with valid neighbours is
    filled by their median) keeps step edges where a mean would blur them, as a RealSense
    spatial + hole-filling filter does on the camera.

    Args:
        depth: (H, W) metres, 0 = no return.
        kind: one of :data:`DEPTH_FILTERS` (``"none"`` returns ``depth`` itself).

    Returns:
        (H, W) float32 metres, 0 where the whole window had no return.
    """
    if kind not in DEPTH_FILTERS:
        raise ValueError(f"depth filter must be one of {DEPTH_FILTERS}, got {kind!r}")
    if kind == "none":
        return depth
    k = int(kind.removeprefix("median"))
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"depth must be an (H, W) image, got shape {d.shape}")
    d = np.where(d > 0, d, np.float32(np.inf))  # holes sort last
    win = np.lib.stride_tricks.sliding_window_view(np.pad(d, k // 2, mode="edge"), (k, k))
    win = np.sort(win.reshape(*d.shape, k * k), axis=-1)  # (H, W, k*k)
    valid = np.sum(np.isfinite(win), axis=-1)  # (H, W)
    mid = np.maximum(valid - 1, 0) // 2  # the lower median of the valid values
    out = np.take_along_axis(win, mid[..., None], axis=-1)[..., 0]
    return np.where(valid > 0, out, np.float32(0.0)).astype(np.float32)


def crop(points: np.ndarray, box_lo: np.ndarray, box_hi: np.ndarray) -> np.ndarray:
    """(M,) bool mask of the points inside the axis-aligned box ``[box_lo, box_hi]`` (xyz columns).

    Non-finite points are outside (every comparison with NaN is false; inf is beyond any finite
    box). Tested column by column: ``np.all(mask, axis=1)`` on an (M, 3) mask costs ~8x more
    (a policy step on a 16k-point cloud, every tick).
    """
    xyz = np.asarray(points)
    lo, hi = np.asarray(box_lo), np.asarray(box_hi)
    inside = np.ones(len(xyz), dtype=bool)
    for axis in range(3):
        column = xyz[:, axis]
        inside &= (column >= lo[axis]) & (column <= hi[axis])
    return inside


def crop_and_sample(
    points: np.ndarray,
    colors: np.ndarray | None,
    box_lo: np.ndarray,
    box_hi: np.ndarray,
    n: int,
    rng: np.random.Generator,
    method: str = "random",
) -> np.ndarray:
    """Keep the points inside an axis-aligned box and return exactly ``n`` of them.

    Args:
        points: (M, 3) base-frame xyz.
        colors: (M, 3) rgb in [0, 1] or None.
        box_lo, box_hi: (3,) corners of the crop box.
        n: number of points returned (sampled with replacement when fewer are inside; zeros if none).
        rng: source of randomness (seeded by the caller, so the output is reproducible).
        method: ``"random"`` (uniform subset) or ``"fps"`` (farthest-point sampling from a random start).

    Returns:
        (n, 3) or (n, 6) float32.
    """
    if method not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {method!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    points = np.asarray(points)
    inside = crop(points, box_lo, box_hi) if len(points) else np.zeros(0, dtype=bool)
    pts = points[inside]
    cols = colors[inside] if colors is not None else None
    dim = 3 if colors is None else 6
    if len(pts) == 0:
        return np.zeros((n, dim), dtype=np.float32)
    if method == "fps" and len(pts) > n:
        sel = farthest_point_indices(pts, n, int(rng.integers(len(pts))))
    else:
        sel = rng.choice(len(pts), size=n, replace=len(pts) < n)
    out = pts[sel] if cols is None else np.concatenate([pts[sel], cols[sel]], axis=1)
    return out.astype(np.float32)


def camera_points(rgb: np.ndarray | None, depth: np.ndarray, view: PinholeView, box_lo, box_hi, n: int,
                  rng: np.random.Generator, sampler: str = "random", color: bool = False,
                  depth_filter: str = "none") -> np.ndarray:
    """One camera image -> the policy's point cloud: filter the depth, deproject, crop to the box, sample ``n``.

    rgb (H, W, 3) uint8 (needed when ``color``), depth (H, W) m -> (n, 3) or (n, 6) float32.
    ``depth_filter``: one of :data:`DEPTH_FILTERS` (:func:`filter_depth`).
    """
    pts, idx = depth_to_points(filter_depth(depth, depth_filter), view)
    colors = rgb.reshape(-1, 3)[idx].astype(np.float64) / 255.0 if color else None
    return crop_and_sample(pts, colors, np.asarray(box_lo), np.asarray(box_hi), n, rng, sampler)


def farthest_point_indices(points: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """Greedy farthest-point sampling: (M, 3) points -> (n,) indices, O(M n)."""
    chosen = np.empty(n, dtype=np.int64)
    chosen[0] = start
    dist = np.sum((points - points[start]) ** 2, axis=1)
    for i in range(1, n):
        chosen[i] = int(np.argmax(dist))
        np.minimum(dist, np.sum((points - points[chosen[i]]) ** 2, axis=1), out=dist)
    return chosen


def points_preprocessing(meta: dict[str, Any]) -> dict[str, Any] | None:
    """``{"crop_lo", "crop_hi", "sampler", "depth_filter"}`` from a dataset meta.

    Reads ``points_lo``, ``points_hi``, ``points_sampler`` and ``points_depth_filter`` (``"none"``
    when the meta predates it). Returns None when the meta does not record the crop box and
    sampler (datasets collected before they were written).
    """
    if not all(k in meta for k in ("points_lo", "points_hi", "points_sampler")):
        return None
    return check_preprocessing({"crop_lo": meta["points_lo"], "crop_hi": meta["points_hi"],
                                "sampler": meta["points_sampler"],
                                "depth_filter": meta.get("points_depth_filter", "none")})


def check_preprocessing(spec: dict[str, Any]) -> dict[str, Any]:
    """Validate ``{"crop_lo": (3,), "crop_hi": (3,), "sampler": str[, "depth_filter": str]}``.

    Returns it with plain lists/floats and ``depth_filter`` (``"none"`` when absent: cards and
    metas written before it existed). The depth filter is the camera side's business (it acts on
    the depth image, before a cloud exists); a runtime fed clouds can only check it was applied.
    """
    try:
        lo = [float(v) for v in spec["crop_lo"]]
        hi = [float(v) for v in spec["crop_hi"]]
        sampler = spec["sampler"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"point-cloud preprocessing needs crop_lo (3,), crop_hi (3,) and sampler, got {spec}") from exc
    if len(lo) != 3 or len(hi) != 3 or not all(a < b for a, b in zip(lo, hi, strict=True)):
        raise ValueError(f"crop box must be two (3,) corners with lo < hi, got {lo}, {hi}")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    depth_filter = spec.get("depth_filter", "none")
    if depth_filter not in DEPTH_FILTERS:
        raise ValueError(f"depth_filter must be one of {DEPTH_FILTERS}, got {depth_filter!r}")
    return {"crop_lo": lo, "crop_hi": hi, "sampler": sampler, "depth_filter": depth_filter}
