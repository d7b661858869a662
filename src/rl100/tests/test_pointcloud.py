"""rl100.pointcloud: depth filtering, back-projection, crop, random / farthest-point sampling, preprocessing."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from rl100.pointcloud import (
    check_preprocessing,
    crop,
    crop_and_sample,
    depth_to_points,
    farthest_point_indices,
    filter_depth,
    points_preprocessing,
)

LO, HI = np.zeros(3), np.ones(3)


def _cloud(m=200, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 1.5, (m, 3))


def test_crop_mask_is_the_box():
    pts = np.array([[0.5, 0.5, 0.5], [1.5, 0.5, 0.5], [0.0, 1.0, 0.0], [0.5, -0.1, 0.5],
                    [np.nan, 0.5, 0.5], [0.5, np.inf, 0.5], [0.5, 0.5, -np.inf]])
    assert crop(pts, LO, HI).tolist() == [True, False, True, False, False, False, False]
    cloud = _cloud(5000, seed=2)
    cloud[::7, 1] = np.nan
    naive = np.all((cloud >= LO) & (cloud <= HI), axis=1)
    np.testing.assert_array_equal(crop(cloud, LO, HI), naive)


@pytest.mark.parametrize("method", ["random", "fps"])
def test_sample_is_inside_shaped_and_seeded(method):
    pts = _cloud()
    a = crop_and_sample(pts, None, LO, HI, 16, np.random.default_rng(7), method)
    b = crop_and_sample(pts, None, LO, HI, 16, np.random.default_rng(7), method)
    assert a.shape == (16, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)  # same seed, same points
    assert np.all((a >= 0) & (a <= 1))
    inside = pts[crop(pts, LO, HI)].astype(np.float32)
    assert all(any(np.array_equal(p, q) for q in inside) for p in a)  # picked from the cropped cloud


def test_fps_spreads_and_small_or_empty_clouds():
    idx = farthest_point_indices(np.array([[0, 0, 0], [0.1, 0, 0], [1, 0, 0], [0.5, 0, 0]], float), 3)
    assert idx.tolist() == [0, 2, 3]
    rng = np.random.default_rng(0)
    few = crop_and_sample(np.full((2, 3), 0.5), None, LO, HI, 5, rng, "fps")  # fewer than n: with replacement
    assert few.shape == (5, 3) and np.allclose(few, 0.5)
    empty = crop_and_sample(np.zeros((0, 3)), None, LO, HI, 4, rng)
    assert empty.shape == (4, 3) and not empty.any()
    coloured = crop_and_sample(_cloud(), np.ones((200, 3)), LO, HI, 8, rng)
    assert coloured.shape == (8, 6) and np.all(coloured[:, 3:] == 1)


def test_bad_sampler_and_n():
    with pytest.raises(ValueError, match="sampler"):
        crop_and_sample(_cloud(), None, LO, HI, 4, np.random.default_rng(0), "grid")
    with pytest.raises(ValueError, match="n must be"):
        crop_and_sample(_cloud(), None, LO, HI, 0, np.random.default_rng(0))


def test_depth_to_points_centre_pixel():
    depth = np.zeros((3, 5), np.float32)
    depth[1, 2] = 2.0
    pose = np.eye(4)
    pose[:3, 3] = [1.0, 0.0, 0.5]
    info = SimpleNamespace(fx=10.0, fy=10.0, cx=2.0, cy=1.0, base_T_cam=pose)
    pts, idx = depth_to_points(depth, info)
    assert idx.tolist() == [7]
    np.testing.assert_allclose(pts, [[1.0, 0.0, 2.5]])


def test_preprocessing_from_meta_and_checks():
    meta = {"points_lo": (0, -1, 0), "points_hi": [1, 1, 1], "points_sampler": "fps"}
    assert points_preprocessing(meta) == {"crop_lo": [0.0, -1.0, 0.0], "crop_hi": [1.0, 1.0, 1.0], "sampler": "fps",
                                          "depth_filter": "none"}  # a meta from before the filter existed
    assert points_preprocessing(meta | {"points_depth_filter": "median3"})["depth_filter"] == "median3"
    with pytest.raises(ValueError, match="depth_filter"):
        points_preprocessing(meta | {"points_depth_filter": "blur"})
    assert points_preprocessing({"n_points": 512}) is None
    with pytest.raises(ValueError, match="lo < hi"):
        check_preprocessing({"crop_lo": [1, 0, 0], "crop_hi": [0, 1, 1], "sampler": "random"})
    with pytest.raises(ValueError, match="needs crop_lo"):
        check_preprocessing({"crop_lo": [0, 0, 0]})


def test_depth_filter_denoises_keeps_edges_and_fills_holes():
    rng = np.random.default_rng(0)
    depth = np.full((40, 40), 1.0, np.float32)
    depth[:, 20:] = 0.6  # a step edge: an object in front of the table
    noisy = depth + rng.normal(0.0, 0.005, depth.shape).astype(np.float32)
    holes = rng.random(depth.shape) < 0.05
    noisy[holes] = 0.0
    assert filter_depth(noisy, "none") is noisy
    for kind, most in (("median3", 0.6), ("median5", 0.4)):
        out = filter_depth(noisy, kind)
        assert out.shape == depth.shape and out.dtype == np.float32
        assert np.all(out > 0)  # every hole had valid neighbours
        err = (out - depth)[:, 3:-3]
        assert np.std(err) < most * 0.005  # well below the raw noise
        assert np.all(np.abs(err) < 0.05)  # the step stays a step: no pixel takes the mean of both sides
    lone = np.zeros((9, 9), np.float32)
    lone[4, 4] = 1.0
    out = filter_depth(lone, "median5")
    assert out[4, 4] == 1.0 and out[0, 0] == 0.0  # a window with no return stays a hole


def test_depth_filter_rejects_bad_input():
    with pytest.raises(ValueError, match="depth filter must be one of"):
        filter_depth(np.ones((4, 4)), "gauss")
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        filter_depth(np.ones((4, 4, 1)), "median3")
