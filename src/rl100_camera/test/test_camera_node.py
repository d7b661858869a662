"""Camera node over DDS, replaying a synthetic recording; and its one-line error without one."""

import subprocess
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rl100_camera.camera_node import CameraNode
from rl100_camera.messages import image_to_array, pointcloud_to_array
from rl100_camera.recording import color_pattern, flat_depth, SyntheticSpec, write_recording
from rl100_ros import qos
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

SPEC = SyntheticSpec()
NS = '/camera/camera'
FRAME = 'camera_color_optical_frame'


@pytest.fixture
def graph(tmp_path):
    path = write_recording(str(tmp_path / 'synthetic.db3'), SPEC)
    rclpy.init()
    params = {'recording_file': path, 'width': SPEC.width, 'height': SPEC.height,
              'fps': SPEC.fps, 'playback_repeat': True, 'enable_pointcloud': True,
              'pointcloud_decimation': 2}
    node = CameraNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    peer = Node('peer')
    got = {}

    def keep(name):
        return lambda msg: got.setdefault(name, []).append(msg)

    for name, kind in (('color/image_raw', Image), ('color/camera_info', CameraInfo),
                       ('aligned_depth_to_color/image_raw', Image),
                       ('aligned_depth_to_color/camera_info', CameraInfo),
                       ('depth/color/points', PointCloud2)):
        peer.create_subscription(kind, f'{NS}/{name}', keep(name), qos.SENSOR)
    peer.create_subscription(DiagnosticArray, '/diagnostics', keep('diagnostics'), 10)
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    executor.add_node(peer)
    yield executor, got
    node.destroy_node()
    peer.destroy_node()
    rclpy.try_shutdown()


def spin_until(executor, predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        executor.spin_once(timeout_sec=0.05)
    return predicate()


def test_publishes_realsense_ros_topics(graph):
    executor, got = graph
    names = ('color/image_raw', 'color/camera_info', 'aligned_depth_to_color/image_raw',
             'aligned_depth_to_color/camera_info', 'depth/color/points', 'diagnostics')
    assert spin_until(executor, lambda: all(len(got.get(n, [])) >= 2 for n in names)), \
        {n: len(got.get(n, [])) for n in names}

    color = got['color/image_raw'][-1]
    assert (color.encoding, color.width, color.height, color.step) == ('rgb8', 64, 48, 192)
    rgb = image_to_array(color)
    n = int(rgb[0, 0, 2])  # the frame number is painted into the blue channel
    np.testing.assert_array_equal(rgb, color_pattern(SPEC, n))

    depth = got['aligned_depth_to_color/image_raw'][-1]
    assert (depth.encoding, depth.width, depth.height, depth.step) == ('16UC1', 64, 48, 128)
    d = image_to_array(depth)
    assert d[0, 0] in [flat_depth(SPEC, k)[0, 0] for k in range(SPEC.frames)]
    assert len(np.unique(d)) == 1  # a flat wall, aligned pixel for pixel

    for name in ('color/camera_info', 'aligned_depth_to_color/camera_info'):
        info = got[name][-1]
        assert (info.width, info.height, info.distortion_model) == (64, 48, 'plumb_bob')
        assert list(info.k) == [64.0, 0.0, 32.0, 0.0, 64.0, 24.0, 0.0, 0.0, 1.0]
        assert info.p[2] == 32.0 and info.p[6] == 24.0

    cloud = got['depth/color/points'][-1]
    assert [(f.name, f.datatype, f.offset) for f in cloud.fields] == [
        ('x', 7, 0), ('y', 7, 4), ('z', 7, 8)]
    pts = pointcloud_to_array(cloud)
    assert pts.shape == (32 * 24, 3)  # decimation 2
    np.testing.assert_allclose(pts[:, 2], pts[0, 2])

    for msg in (color, depth, info, cloud):
        assert msg.header.frame_id == FRAME
    def stamps(name):
        return {(m.header.stamp.sec, m.header.stamp.nanosec) for m in got[name]}
    # every message of a frame carries the same arrival stamp
    assert stamps('color/image_raw') & stamps('color/camera_info') & stamps('depth/color/points')
    status = got['diagnostics'][-1].status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert status.name == 'camera: camera'
    assert float(values['fps']) > 0 and 'dropped_frames' in values and 'latency_ms_mean' in values


def test_without_a_camera_the_node_exits_with_one_line(ros_env):
    result = subprocess.run([sys.executable, '-m', 'rl100_camera.camera_node'], env=ros_env,
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        '[ERROR] CameraNode failed to start: SourceError: no RealSense device found; '
        'connected: []')
