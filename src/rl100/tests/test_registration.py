"""rl100.registration: trimmed point-to-plane ICP of an observed cloud onto the expected scene."""

from __future__ import annotations

import numpy as np
import pytest

from rl100.geometry import rotvec_to_mat
from rl100.pointcloud import depth_to_points
from rl100.registration import (
    Registration,
    RegistrationConfig,
    corrected_extrinsic,
    organized_normals,
    register_to_expected,
)

CAMERA = np.array([1.4, 0.0, 0.85])


def _scene(rng, n=6000):
    """(K, 3) points and normals of a table top, a floor and two upright boxes (robot-like blocks)."""
    parts = []
    top = np.c_[rng.uniform(0.0, 1.0, n), rng.uniform(-0.6, 0.6, n), np.zeros(n)]
    parts.append((top, np.tile([0.0, 0.0, 1.0], (n, 1))))
    floor = np.c_[rng.uniform(-1.0, 1.5, n), rng.uniform(-1.5, 1.5, n), np.full(n, -0.75)]
    parts.append((floor[(np.abs(floor[:, 1]) > 0.6) | (floor[:, 0] < 0.0)], None))
    for cx, cy, half in ((0.1, 0.0, (0.06, 0.06, 0.4)), (0.45, 0.25, (0.05, 0.1, 0.08))):
        for axis in range(3):
            for sign in (-1.0, 1.0):
                p = rng.uniform(-1, 1, (n // 6, 3)) * half
                p[:, axis] = sign * half[axis]
                p += [cx, cy, half[2]]
                nrm = np.zeros((len(p), 3))
                nrm[:, axis] = sign
                parts.append((p, nrm))
    pts = np.concatenate([p for p, _ in parts])
    nrm = np.concatenate([np.tile([0.0, 0.0, 1.0], (len(p), 1)) if nn is None else nn for p, nn in parts])
    return pts, nrm


def _moved(points, rotvec, shift):
    """Apply the rigid motion 'camera knocked': what the believed extrinsic makes of the true points."""
    R = rotvec_to_mat(np.asarray(rotvec, dtype=np.float64))
    return (points - CAMERA) @ R.T + CAMERA + shift


def test_recovers_a_knocked_camera_and_leaves_unexplained_points_out():
    rng = np.random.default_rng(0)
    expected, normals = _scene(rng)
    truth = expected[rng.choice(len(expected), 4000, replace=False)]
    clutter = np.c_[rng.uniform(0.3, 0.6, 300), rng.uniform(-0.3, 0.3, 300), rng.uniform(0.0, 0.1, 300)]
    observed = _moved(np.concatenate([truth, clutter]), [0.01, -0.03, 0.02], [0.012, -0.008, 0.015])
    reg = register_to_expected(observed, expected, normals, CAMERA, RegistrationConfig(max_points=4300))
    fixed = observed[:4000] @ reg.correction[:3, :3].T + reg.correction[:3, 3]
    assert np.abs(fixed - truth).max() < 2e-3  # every scene point back within 2 mm
    assert 0.85 < reg.paired < 0.99  # the clutter is not paired
    assert reg.rms_m < 1e-3 and reg.conditioning > 0.002
    assert reg.rotation_deg == pytest.approx(np.degrees(np.linalg.norm([0.01, -0.03, 0.02])), abs=0.1)
    assert reg.translation_m == pytest.approx(np.linalg.norm([0.012, -0.008, 0.015]), abs=2e-3)
    assert "camera moved" in reg.summary()
    pose = np.eye(4)
    pose[:3, 3] = CAMERA
    np.testing.assert_allclose(corrected_extrinsic(pose, reg), reg.correction @ pose)


def test_a_scene_that_matches_gives_the_identity():
    rng = np.random.default_rng(1)
    expected, normals = _scene(rng)
    reg = register_to_expected(expected[::3], expected, normals, CAMERA)
    assert reg.translation_m < 1e-6 and reg.rotation_deg < 1e-4


def test_refuses_what_is_not_a_knocked_camera():
    rng = np.random.default_rng(2)
    expected, normals = _scene(rng)
    plane = expected[:, 2] == 0.0  # the table top alone: x, y and yaw are free
    with pytest.raises(ValueError, match="conditioning"):
        register_to_expected(expected[plane][::2], expected[plane], normals[plane], CAMERA)
    far = _moved(expected[::3], [0.0, 0.0, 0.0], [0.0, 0.0, 0.04])
    with pytest.raises(ValueError, match="recalibrate"):
        register_to_expected(far, expected, normals, CAMERA, RegistrationConfig(max_translation=0.02))
    other = rng.uniform(-1, 1, (3000, 3)) + [5.0, 0, 0]  # nothing near the expected scene
    with pytest.raises(ValueError, match="right camera"):
        register_to_expected(other, expected, normals, other.mean(axis=0))
    with pytest.raises(ValueError, match="at least 100"):
        register_to_expected(expected[:50], expected, normals, CAMERA)
    with pytest.raises(ValueError, match=r"\(K, 3\)"):
        register_to_expected(expected, expected, normals[:10], CAMERA)
    with pytest.raises(ValueError, match="radius"):
        RegistrationConfig(radius=(0.01, 0.05))
    with pytest.raises(ValueError, match=r"\(K,\) mask"):
        register_to_expected(expected, expected, normals, CAMERA, table=np.zeros(3, dtype=bool))


def test_a_table_of_unknown_height_is_estimated_with_the_camera():
    rng = np.random.default_rng(3)
    expected, normals = _scene(rng)
    table = expected[:, 2] == 0.0  # the table top (the floor and the blocks stay)
    truth = expected[rng.choice(len(expected), 4000, replace=False)]
    truth_on_stand = truth + np.outer(truth[:, 2] == 0.0, [0.0, 0.0, 0.02])  # a stand 2 cm higher
    observed = _moved(truth_on_stand, [0.0, 0.02, -0.01], [0.01, 0.0, 0.01])
    reg = register_to_expected(observed, expected, normals, CAMERA, RegistrationConfig(max_points=4000),
                               table=table)
    assert reg.table_dz == pytest.approx(0.02, abs=1e-3)
    fixed = observed @ reg.correction[:3, :3].T + reg.correction[:3, 3]
    assert np.abs(fixed - truth_on_stand).max() < 2e-3
    plain = register_to_expected(observed, expected, normals, CAMERA, RegistrationConfig(max_points=4000),
                                 table=np.zeros(len(expected), dtype=bool))  # no table points: as None
    assert plain.table_dz == 0.0


def test_organized_normals_of_a_tilted_plane_and_no_normal_across_an_edge():
    class View:
        fx = fy = 50.0
        cx = cy = 15.5
        base_T_cam = np.eye(4)

    v, u = np.mgrid[0:32, 0:32]
    depth = (1.0 + 0.01 * u).astype(np.float32)  # z grows to the right: a plane tilted about y
    depth[:, 20:] += 0.5  # a step: a second plane behind
    pts, nrm, idx = organized_normals(depth, View())
    assert len(pts) == len(nrm) == len(idx) and len(pts) < 30 * 30  # border and step pixels have no normal
    plane = pts[:, 2] < 1.19
    expect = np.array([-0.5, 0.0, 1.0]) / np.linalg.norm([-0.5, 0.0, 1.0])  # from dz/dx = 0.01 * fx / z
    assert np.all(np.abs(np.abs(nrm[plane] @ expect) - 1.0) < 0.02)
    all_pts, _ = depth_to_points(depth, View())
    assert len(all_pts) == 32 * 32


def test_registration_is_a_plain_value():
    reg = Registration(np.eye(4), 1.0, 0.0, 0.5, 1, CAMERA)
    assert reg.translation_m == 0.0 and reg.rotation_deg == 0.0
