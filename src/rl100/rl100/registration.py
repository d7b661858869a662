"""Camera extrinsic check: register what the camera sees against what it should see.

A point-cloud policy trusts the hand-eye calibration (``base_T_cam``) completely. A camera knocked
by a centimetre or two after calibration moves and tilts the whole cloud against the robot (the
``camera_pose`` robustness family: 0.05-0.15 success for the shipped policy at +-1.5 cm / 3 deg).
The robot itself and the fixed world around it (table, floor) are a calibration target that is
always in view: given the measured joint angles, the expected depth image from the *believed*
camera pose can be rendered from the robot and world model (:mod:`rl100.sim.expected_scene`).
Registering the observed cloud to the expected one gives the rigid correction ``T`` that, applied
after the believed extrinsic, puts the points where they are: ``base_T_cam_true = T @ base_T_cam``.
The table's height may be unknown too (the robot on another stand): it is then a seventh unknown,
told apart from a camera moved up or down by the robot's own points.

Pure numpy + scipy (no MuJoCo, no ROS). Shapes: clouds (M, 3) float64 in the robot base frame,
normals (M, 3) unit, transforms (4, 4).

The registration is trimmed point-to-plane ICP from the observed cloud (source) to the expected
one (target): each observed point is paired with its nearest expected point when both the distance
to it (less the spacing of the expected samples there: far away, at a grazing angle, neighbouring
pixels are centimetres apart) and the distance to its plane are within a radius that shrinks from
``radius[0]`` to ``radius[1]`` over the iterations, so things the model does not hold (the objects
of the task, an operator's hand) drop out as unpaired points. Expected
points may cover more than the camera sees (back faces, occluded parts): the pairing runs from the
observation to the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rl100.geometry import mat_to_rotvec, rotvec_to_mat
from rl100.pointcloud import PinholeView, depth_to_points


@dataclass(frozen=True)
class Registration:
    """The result of :func:`register_to_expected`.

    Attributes:
        correction: (4, 4) rigid transform, base frame -> base frame: a point computed with the
            believed extrinsic, mapped by it, lands where the observed surface really is.
        paired: fraction of the observed points paired with an expected point in the last iteration.
        rms_m: m, root mean square point-to-plane distance of the pairs in the last iteration.
        conditioning: smallest / largest singular value of the last linear system (near 0: some
            motion is not constrained by what is in view, e.g. only a plane is seen).
        iterations: iterations run.
        camera_origin: (3,) the believed camera position, base frame.
        table_dz: m, how much higher the table stands than in the expected scene (0 when its
            height was not estimated).
    """

    correction: np.ndarray
    paired: float
    rms_m: float
    conditioning: float
    iterations: int
    camera_origin: np.ndarray
    table_dz: float = 0.0

    @property
    def translation_m(self) -> float:
        """How far the correction moves the camera, m (the correction's own translation is about the base origin)."""
        c = self.camera_origin
        return float(np.linalg.norm(self.correction[:3, :3] @ c + self.correction[:3, 3] - c))

    @property
    def rotation_deg(self) -> float:
        """Angle of the correction's rotation, deg."""
        return float(np.degrees(np.linalg.norm(mat_to_rotvec(self.correction[:3, :3]))))

    def summary(self) -> str:
        return (f"camera moved {self.translation_m * 1000:.1f} mm, turned {self.rotation_deg:.2f} deg, "
                f"table {self.table_dz * 1000:+.1f} mm "
                f"({self.paired:.0%} of the points paired, rms {self.rms_m * 1000:.1f} mm, "
                f"conditioning {self.conditioning:.3f})")


@dataclass(frozen=True)
class RegistrationConfig:
    """Limits of :func:`register_to_expected`; a result outside them is refused (ValueError).

    Attributes:
        iterations: ICP iterations.
        radius: (start, end) m, pairing radius (on top of the expected samples' spacing), shrunk
            geometrically over the iterations.
        max_points: observed points used (a seeded uniform subset; registration time grows with it).
        max_range: m, observed points farther than this from the camera are left out (far walls,
            the floor at the edge of the view: little to gain, most of the depth noise).
        min_paired: fewer paired observed points than this fraction: the scene is not the expected one.
        max_rms: m, a larger point-to-plane rms after the last iteration: no consistent fit.
        min_conditioning: a smaller singular value ratio: the view does not constrain all 6 DoF.
        max_translation, max_rotation_deg: m, deg; a camera moved or turned more than this was not
            knocked, it was moved: recalibrate.
        max_table_dz: m, a larger table height change is refused (not this cell's table).
    """

    iterations: int = 30
    radius: tuple[float, float] = (0.05, 0.01)
    max_points: int = 3000
    max_range: float = 3.0
    min_paired: float = 0.3
    max_rms: float = 0.005
    min_conditioning: float = 0.002
    max_translation: float = 0.10
    max_rotation_deg: float = 10.0
    max_table_dz: float = 0.2

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.max_points < 10:
            raise ValueError(f"registration needs iterations >= 1 and max_points >= 10, got {self}")
        if not 0 < self.radius[1] <= self.radius[0]:
            raise ValueError(f"radius must be (start, end) with 0 < end <= start, got {self.radius}")
        for name in ("max_range", "max_rms", "max_translation", "max_rotation_deg", "max_table_dz"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.min_paired <= 1 or not 0 <= self.min_conditioning < 1:
            raise ValueError(f"min_paired must be in [0, 1] and min_conditioning in [0, 1), got {self}")


def organized_normals(depth: np.ndarray, view: PinholeView,
                      max_jump: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Back-project a depth image and estimate a surface normal per pixel from its image neighbours.

    Args:
        depth: (H, W) m, 0 = no return.
        view: intrinsics and ``base_T_cam`` of the image.
        max_jump: a neighbour farther than this fraction of the pixel's depth is across a depth
            edge: no normal there (relative, since a surface seen at a grazing angle far away
            spreads its pixels far apart).

    Returns:
        points (K, 3) and unit normals (K, 3), base frame, for the pixels with a return whose four
        neighbours have one too and lie on the same surface, and their flat pixel indices (K,).
    """
    h, w = depth.shape
    pts, idx = depth_to_points(depth, view)
    grid = np.full((h * w, 3), np.nan)
    grid[idx] = pts
    grid = grid.reshape(h, w, 3)
    dx = grid[1:-1, 2:] - grid[1:-1, :-2]  # (H-2, W-2, 3)
    dy = grid[2:, 1:-1] - grid[:-2, 1:-1]
    n = np.cross(dx, dy)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        n = n / np.maximum(norm, 1e-12)
        limit = max_jump * depth[1:-1, 1:-1]
        edge = (np.linalg.norm(dx, axis=-1) > limit) | (np.linalg.norm(dy, axis=-1) > limit)
    n[edge] = np.nan
    normals = np.full((h, w, 3), np.nan)
    normals[1:-1, 1:-1] = n
    normals = normals.reshape(-1, 3)[idx]
    ok = np.all(np.isfinite(normals), axis=1)
    return pts[ok], normals[ok], idx[ok]


def register_to_expected(observed: np.ndarray, expected: np.ndarray, expected_normals: np.ndarray,
                         camera_origin: np.ndarray, config: RegistrationConfig | None = None,
                         seed: int = 0, table: np.ndarray | None = None) -> Registration:
    """Rigid correction that moves an observed cloud onto the expected scene (trimmed point-to-plane ICP).

    Args:
        observed: (M, 3) the cloud as the believed extrinsic makes it (base frame).
        expected: (K, 3) points of the robot and fixed world where they should be (base frame).
        expected_normals: (K, 3) their unit normals.
        camera_origin: (3,) the believed camera position (for ``max_range``).
        config: limits; defaults to :class:`RegistrationConfig`.
        seed: picks the observed subset.
        table: (K,) bool, the expected points of a table whose height is not known (another
            stand): they may move as one along z, and that shift is estimated with the camera
            correction (``Registration.table_dz``; the robot's own points tell the two apart).
            None: every expected point is where it is.

    Returns:
        the :class:`Registration`.

    Raises:
        ValueError: too few points, or a result outside the config's limits (the message names it).
    """
    from scipy.spatial import cKDTree

    cfg = config or RegistrationConfig()
    src = np.asarray(observed, dtype=np.float64)[:, :3]
    tgt = np.asarray(expected, dtype=np.float64)
    tn = np.asarray(expected_normals, dtype=np.float64)
    if tgt.shape != tn.shape or tgt.ndim != 2 or tgt.shape[1] != 3:
        raise ValueError(f"expected points and normals must both be (K, 3), got {tgt.shape} and {tn.shape}")
    src = src[np.all(np.isfinite(src), axis=1)]
    src = src[np.linalg.norm(src - np.asarray(camera_origin, dtype=np.float64), axis=1) < cfg.max_range]
    if len(src) < 100 or len(tgt) < 100:
        raise ValueError(f"camera check: {len(src)} observed points within {cfg.max_range} m and {len(tgt)} "
                         "expected points: need at least 100 of each")
    if len(src) > cfg.max_points:
        src = src[np.random.default_rng(seed).choice(len(src), cfg.max_points, replace=False)]
    # a stereo camera's depth noise grows with the square of the range: weight each pair by 1 / sigma
    inv_sigma = 1.0 / np.maximum(np.linalg.norm(src - np.asarray(camera_origin, dtype=np.float64), axis=1), 0.1) ** 2
    movable = np.zeros(len(tgt), dtype=bool) if table is None else np.asarray(table, dtype=bool)
    if movable.shape != (len(tgt),):
        raise ValueError(f"table must be a (K,) mask of the expected points, got shape {movable.shape}")
    if not movable.any():
        table = None  # no table in view: nothing to tell its height by
    spacing = cKDTree(tgt).query(tgt, k=2)[0][:, 1]  # (K,) m: how far apart the expected samples lie there
    # one tree for the fixed points, one for the table: the table moved up by dz is queried as
    # the observed points moved down by dz (no tree rebuilt per iteration)
    parts = [(np.flatnonzero(~movable), 0.0), (np.flatnonzero(movable), 1.0)]
    trees = [(cKDTree(tgt[ix]), ix, sign) for ix, sign in parts if len(ix)]
    max_spacing = float(spacing.max())
    T, dz = np.eye(4), 0.0
    r0, r1 = cfg.radius
    paired = rms = cond = 0.0
    for it in range(cfg.iterations):
        radius = r0 * (r1 / r0) ** (it / max(cfg.iterations - 1, 1))
        moved = tgt + np.outer(movable, [0.0, 0.0, dz])  # the table at its current height estimate
        p = src @ T[:3, :3].T + T[:3, 3]
        dist, j = np.full(len(p), np.inf), np.zeros(len(p), dtype=np.int64)
        for tree, ix, sign in trees:  # a bounded search: points with nothing near stay unpaired, fast
            d_part, j_part = tree.query(p - [0.0, 0.0, sign * dz], distance_upper_bound=radius + max_spacing)
            closer = d_part < dist
            dist[closer], j[closer] = d_part[closer], ix[j_part[closer]]
        near = dist < radius + spacing[j]
        r_all = np.sum((p - moved[j]) * tn[j], axis=1)  # (M,) signed point-to-plane distances
        ok = near & (np.abs(r_all) < radius)
        paired = float(ok.mean())
        if ok.sum() < 7:
            raise ValueError(f"camera check: only {int(ok.sum())} observed points lie within {radius * 1000:.0f} mm "
                             "of the expected scene: is this the right camera, robot and extrinsic?")
        p, n, w, r, jt = p[ok], tn[j[ok]], inv_sigma[ok], r_all[ok], movable[j[ok]]
        # (P, 6 or 7): d r / d (omega, t[, table dz]), small-angle
        A = np.concatenate([np.cross(p, n), n] + ([-(n[:, 2] * jt)[:, None]] if table is not None else []), axis=1)
        ev = np.linalg.eigvalsh(A.T @ A)  # squared singular values of A, ascending
        cond = float(np.sqrt(max(ev[0], 0.0) / max(ev[-1], 1e-24)))
        scale = max(1.4826 * float(np.median(np.abs(r))), 1e-4)  # robust sigma of the residuals (MAD)
        w = w / np.sqrt(1.0 + (r / (2.385 * scale)) ** 2)  # Cauchy: a flat object near a plane counts little
        aw = A * w[:, None]  # rows weighted by 1 / sigma; normal equations (6 or 7 unknowns)
        x = np.linalg.lstsq(aw.T @ aw, aw.T @ (-r * w), rcond=None)[0]
        step = np.eye(4)
        step[:3, :3] = rotvec_to_mat(x[:3])
        step[:3, 3] = x[3:6]
        T = step @ T
        dz += float(x[6]) if table is not None else 0.0
        rms = float(np.sqrt(np.mean((r + A @ x) ** 2)))
    result = Registration(T, paired, rms, cond, cfg.iterations, np.asarray(camera_origin, dtype=np.float64).copy(),
                          dz)
    problems = []
    if paired < cfg.min_paired:
        problems.append(f"{paired:.0%} of the observed points paired (need {cfg.min_paired:.0%})")
    if rms > cfg.max_rms:
        problems.append(f"rms {rms * 1000:.1f} mm (limit {cfg.max_rms * 1000:.1f} mm)")
    if cond < cfg.min_conditioning:
        problems.append(f"conditioning {cond:.4f} (limit {cfg.min_conditioning}): what is in view does not fix "
                        "the camera's 6 DoF (and the table's height)")
    if result.translation_m > cfg.max_translation or result.rotation_deg > cfg.max_rotation_deg:
        problems.append(f"the camera moved {result.translation_m * 1000:.0f} mm / turned {result.rotation_deg:.1f} deg "
                        f"(limits {cfg.max_translation * 1000:.0f} mm / {cfg.max_rotation_deg:g} deg): recalibrate")
    if abs(dz) > cfg.max_table_dz:
        problems.append(f"the table moved {dz * 1000:+.0f} mm (limit {cfg.max_table_dz * 1000:.0f} mm)")
    if problems:
        raise ValueError("camera check refused: " + "; ".join(problems))
    return result


def corrected_extrinsic(base_T_cam: np.ndarray, registration: Registration) -> np.ndarray:
    """(4, 4) the camera pose after the check: ``correction @ base_T_cam``."""
    out = registration.correction @ np.asarray(base_T_cam, dtype=np.float64)
    if not math.isclose(float(np.linalg.det(out[:3, :3])), 1.0, abs_tol=1e-6):
        raise ValueError("corrected extrinsic is not a rotation (det != 1)")
    return out
