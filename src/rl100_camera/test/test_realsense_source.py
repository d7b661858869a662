"""A synthetic recording read back through the real pipeline: pixels, align, intrinsics, cloud."""

import numpy as np
import pytest
from rl100_camera.realsense_source import (
    crop_points,
    depth_to_mm,
    RealSenseSource,
    SourceConfig,
    SourceError,
)
from rl100_camera.recording import color_pattern, flat_depth, SyntheticSpec, write_recording

SPEC = SyntheticSpec()


@pytest.fixture(scope='module')
def recording(tmp_path_factory):
    return write_recording(str(tmp_path_factory.mktemp('rec') / 'synthetic.db3'), SPEC)


def read_all(path, **kwargs):
    config = SourceConfig(SPEC.width, SPEC.height, SPEC.fps, recording_file=path,
                          real_time=False, **kwargs)
    frames = []
    with RealSenseSource(config) as source:
        while not source.finished:
            frame = source.read(timeout=0.5)
            if frame is not None:
                frames.append(frame)
        return source, frames


@pytest.fixture(scope='module')
def replay(recording):
    return read_all(recording, pointcloud=True)


def test_pixels_come_back_exactly_and_depth_is_aligned_pixel_for_pixel(replay):
    _, frames = replay
    # the syncer may hold back the first frame until it has a pair, and the recorder stamps
    # frames with the wall clock, so a loaded machine can merge or drop a few: what arrives
    # must be exact, most of it must arrive
    assert len(frames) >= SPEC.frames // 2
    numbers = [f.frame_number for f in frames]
    assert numbers == sorted(set(numbers))
    for f in frames:
        assert f.color.shape == (SPEC.height, SPEC.width, 3) and f.color.dtype == np.uint8
        assert f.depth.shape == (SPEC.height, SPEC.width) and f.depth.dtype == np.uint16
        np.testing.assert_array_equal(f.color, color_pattern(SPEC, f.frame_number))
        np.testing.assert_array_equal(f.depth, flat_depth(SPEC, f.frame_number))
        assert f.timestamp_ms == pytest.approx(1000.0 * f.frame_number / SPEC.fps, abs=1e-3)
        assert f.timestamp_domain == 'hardware_clock'


def test_intrinsics_and_depth_scale_are_those_recorded(replay):
    source, frames = replay
    assert source.intrinsics == SPEC.intrinsics
    assert frames[0].intrinsics.k == [64.0, 0.0, 32.0, 0.0, 64.0, 24.0, 0.0, 0.0, 1.0]
    assert source.intrinsics.ros_distortion_model == 'plumb_bob'
    assert source.depth_scale == pytest.approx(0.001, rel=1e-6)
    assert source.device_label == "recording 'synthetic.db3'"


def test_point_cloud_is_the_deprojected_flat_wall(replay):
    _, frames = replay
    i = SPEC.intrinsics
    for f in frames:
        z = flat_depth(SPEC, f.frame_number)[0, 0] * f.depth_scale
        assert f.points.shape == (SPEC.width * SPEC.height, 3)
        assert f.points.dtype == np.float32
        np.testing.assert_allclose(f.points[:, 2], z, rtol=1e-6)
        v, u = np.mgrid[0:SPEC.height, 0:SPEC.width]
        np.testing.assert_allclose(f.points[:, 0], ((u - i.cx) / i.fx * z).ravel(), atol=1e-6)
        np.testing.assert_allclose(f.points[:, 1], ((v - i.cy) / i.fy * z).ravel(), atol=1e-6)


def test_point_cloud_is_decimated_and_cropped(recording):
    _, frames = read_all(recording, pointcloud=True, pointcloud_decimation=4,
                         min_depth=0.4, max_depth=1.2)
    for f in frames:
        z = float(flat_depth(SPEC, f.frame_number)[0, 0]) * 0.001
        expected = (SPEC.width // 4) * (SPEC.height // 4) if 0.4 <= z <= 1.2 else 0
        assert f.points.shape == (expected, 3)


def test_crop_points_drops_zero_depth():
    grid = np.zeros((2, 2, 3), np.float32)
    grid[0, 0] = (0.1, 0.2, 0.5)
    np.testing.assert_array_equal(crop_points(grid, 1, 0.0, np.inf), grid[:1, :1].reshape(1, 3))


def test_depth_to_mm():
    d = np.array([[0, 5000, 65535]], np.uint16)
    assert depth_to_mm(d, 0.001) is d
    np.testing.assert_array_equal(depth_to_mm(d, 0.0001), [[0, 500, 6554]])  # D405 units


def test_missing_recording(tmp_path):
    with pytest.raises(SourceError, match='recording file not found: .*nope.db3'):
        RealSenseSource(SourceConfig(recording_file=str(tmp_path / 'nope.db3'))).start()


def test_corrupt_recording(tmp_path):
    bad = tmp_path / 'bad.db3'
    bad.write_bytes(b'not a rosbag' * 100)
    with pytest.raises(SourceError, match="cannot read recording .*bad.db3' \\(corrupt"):
        RealSenseSource(SourceConfig(recording_file=str(bad))).start()


def test_unsupported_profile_names_what_is_supported(recording):
    config = SourceConfig(640, 480, 30, recording_file=recording)
    with pytest.raises(SourceError, match='does not support .* 640x480@30; supported: '
                                          'color rgb8 64x48@30; depth z16 64x48@30'):
        RealSenseSource(config).start()


def test_no_device():
    # this machine has no camera connected
    with pytest.raises(SourceError, match=r'^no RealSense device found; connected: \[\]$'):
        RealSenseSource(SourceConfig(serial_no='123')).start()
