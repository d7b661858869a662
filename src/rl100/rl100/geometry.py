"""Rotation helpers shared by the simulator, the safety filter and the policies (numpy only).

Conventions (the ones the rest of rl100 uses):
- quaternions are **xyzw** (scalar last) at the API boundary, like ``OBS_STATE`` and ROS;
  MuJoCo's own arrays are wxyz, and the helpers that talk to MuJoCo say so in their names;
- a rotation vector is ``angle * unit_axis`` (rad); any length is accepted as input, and
  :func:`rotvec_near` picks, among the equivalent vectors ``(angle + 2 pi k) * axis``, the one
  closest to a reference, so that a recorded action stream has no +-pi jumps;
- matrices are (3, 3) and map body-frame vectors to the base frame.
"""

from __future__ import annotations

import math

import numpy as np

_EPS = 1e-12


def quat_wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    """(..., 4) wxyz -> (..., 4) xyzw."""
    return np.concatenate([q[..., 1:], q[..., :1]], axis=-1)


def quat_xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    """(..., 4) xyzw -> (..., 4) wxyz."""
    return np.concatenate([q[..., 3:], q[..., :3]], axis=-1)


def mat_to_quat_wxyz(mat: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix -> (4,) unit quaternion wxyz with w >= 0 (Shepperd's method)."""
    m = np.asarray(mat, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0.0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = np.array([0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s])
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = np.array([(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s])
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = np.array([(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s])
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = np.array([(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s])
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


def quat_wxyz_to_mat(q: np.ndarray) -> np.ndarray:
    """(4,) quaternion wxyz (any norm > 0) -> (3, 3) rotation matrix."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotvec_to_mat(rv: np.ndarray) -> np.ndarray:
    """(3,) rotation vector (rad) -> (3, 3) matrix (Rodrigues)."""
    rv = np.asarray(rv, dtype=np.float64)
    angle = float(np.linalg.norm(rv))
    if angle < 1e-9:
        k = np.array([[0.0, -rv[2], rv[1]], [rv[2], 0.0, -rv[0]], [-rv[1], rv[0], 0.0]])
        return np.eye(3) + k
    axis = rv / angle
    k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def rotvec_to_quat_wxyz(rv: np.ndarray) -> np.ndarray:
    """(3,) rotation vector (rad) -> (4,) unit quaternion wxyz."""
    x, y, z = float(rv[0]), float(rv[1]), float(rv[2])
    angle = math.sqrt(x * x + y * y + z * z)
    if angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    s = math.sin(0.5 * angle) / angle
    return np.array([math.cos(0.5 * angle), x * s, y * s, z * s])


def mat_to_rotvec(mat: np.ndarray) -> np.ndarray:
    """(3, 3) matrix -> (3,) rotation vector with angle in [0, pi]."""
    q = mat_to_quat_wxyz(mat)  # w >= 0 -> angle in [0, pi]
    s = float(np.linalg.norm(q[1:]))
    if s < _EPS:
        return np.zeros(3)
    angle = 2.0 * np.arctan2(s, q[0])
    return q[1:] / s * angle


def rotvec_near(rv: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Among the rotation vectors equivalent to ``rv``, the one closest to ``ref``.

    ``rv`` and ``(|rv| - 2 pi) * rv/|rv|`` (and further 2 pi multiples) are the same rotation;
    top-down grasps sit at angle ~pi, where the canonical vector flips sign under tiny tilts.
    Shapes: (3,), (3,) -> (3,).
    """
    rv = np.asarray(rv, dtype=np.float64)
    angle = float(np.linalg.norm(rv))
    if angle < 1e-9:
        return rv.copy()
    axis = rv / angle
    candidates = [(angle + 2.0 * np.pi * k) * axis for k in (-2, -1, 0, 1)]
    return min(candidates, key=lambda c: float(np.linalg.norm(c - ref)))


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """(3,) base-frame rotation vector taking ``current`` to ``target`` (both (3, 3))."""
    return mat_to_rotvec(target @ current.T)


def canonical_quat_xyzw(q_xyzw: np.ndarray, ref_xyzw: np.ndarray) -> np.ndarray:
    """Flip the sign of ``q`` so that ``dot(q, ref) >= 0`` (q and -q are the same rotation)."""
    return -q_xyzw if float(np.dot(q_xyzw, ref_xyzw)) < 0.0 else q_xyzw


def yaw_down_mat(yaw: float) -> np.ndarray:
    """(3, 3) orientation of a gripper pointing straight down (z = -z_base) turned by ``yaw`` (rad).

    ``yaw = 0`` is the Franka ready pose: x along +x_base, y along -y_base, z along -z_base.
    """
    c, s = np.cos(yaw), np.sin(yaw)
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return rz @ np.diag([1.0, -1.0, -1.0])


def pose7_to_matrix(pose) -> np.ndarray:
    """(7,) x y z qx qy qz qw (a ROS pose / static transform's numbers) -> (4, 4) homogeneous transform.

    ValueError when the values are not 7 finite numbers with a unit quaternion (within 1e-3).
    """
    p = np.asarray(pose, dtype=np.float64).reshape(-1)
    if p.shape != (7,) or not np.all(np.isfinite(p)):
        raise ValueError(f"a pose is 7 finite numbers x y z qx qy qz qw, got {list(np.asarray(pose).reshape(-1))}")
    norm = float(np.linalg.norm(p[3:]))
    if abs(norm - 1.0) > 1e-3:
        raise ValueError(f"the pose's quaternion must have unit norm, got norm {norm:.6f}")
    out = np.eye(4)
    out[:3, :3] = quat_wxyz_to_mat(quat_xyzw_to_wxyz(p[3:] / norm))
    out[:3, 3] = p[:3]
    return out


def matrix_to_pose7(mat: np.ndarray) -> np.ndarray:
    """(4, 4) homogeneous transform -> (7,) x y z qx qy qz qw (quaternion with w >= 0)."""
    m = np.asarray(mat, dtype=np.float64)
    return np.concatenate([m[:3, 3], quat_wxyz_to_xyzw(mat_to_quat_wxyz(m[:3, :3]))])
