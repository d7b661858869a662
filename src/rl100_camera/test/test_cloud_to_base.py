"""Camera cloud -> /rl100/points in the base frame: the transform and the node over DDS."""

import time

import numpy as np
import pytest
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rl100_camera.base_cloud import BaseCloud, BaseCloudConfig
from rl100_camera.cloud_to_base_node import CloudToBaseNode
from rl100_camera.messages import pointcloud_msg, pointcloud_to_array
from rl100_ros import qos, topics
from sensor_msgs.msg import PointCloud2

# a camera 1 m above the base origin looking straight down: optical z = -base z, x = base x,
# optical y = -base y (a rotation of pi about x)
DOWN = (0.5, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0)


def test_transform_into_the_base_frame_and_box():
    config = BaseCloudConfig(camera_pose=DOWN, box_lo=(-1, -1, -0.05), box_hi=(2, 1, 1))
    cloud = BaseCloud(config)
    pts = np.array([[0.1, 0.2, 0.9],  # 0.9 m below the camera: 10 cm above the base plane
                    [0.0, 0.0, 1.2],  # below the box floor
                    [np.nan, 0, 1]], np.float32)
    out = cloud(pts)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, -0.2, 0.1]], atol=1e-6)


def test_a_uniform_subset_when_the_cloud_is_large():
    config = BaseCloudConfig(camera_pose=DOWN, max_points=100, seed=1)
    pts = np.column_stack([np.random.default_rng(0).uniform(-0.3, 0.3, (5000, 2)),
                           np.full(5000, 0.9)]).astype(np.float32)
    out = BaseCloud(config)(pts)
    assert out.shape == (100, 3) and len(np.unique(out, axis=0)) == 100  # no repeats
    assert BaseCloud(config)(pts[:50]).shape == (50, 3)  # fewer than the limit: all
    with pytest.raises(ValueError, match='max_points'):
        BaseCloudConfig(camera_pose=DOWN, max_points=-1)


def test_matches_a_float64_reference_on_a_full_frame():
    """The float32 column-wise path keeps exactly the points a plain float64 one keeps."""
    from rl100.geometry import pose7_to_matrix

    pose = (0.45, -0.05, 0.95, 0.97, 0.05, -0.03, 0.2)
    pose = (*pose[:3], *(np.asarray(pose[3:]) / np.linalg.norm(pose[3:])))
    rng = np.random.default_rng(3)
    pts = rng.uniform([-0.6, -0.5, 0.2], [0.6, 0.5, 1.6], (307200, 3)).astype(np.float32)
    pts[::101] = np.nan
    pts[7] = [np.inf, 0.0, 1.0]
    box = {'box_lo': (0.1, -0.4, 0.0), 'box_hi': (0.9, 0.4, 0.5)}
    out = BaseCloud(BaseCloudConfig(camera_pose=pose, **box))(pts)
    m = pose7_to_matrix(pose)
    ref = pts[np.all(np.isfinite(pts), axis=1)].astype(np.float64) @ m[:3, :3].T + m[:3, 3]
    ref = ref[np.all((ref >= box['box_lo']) & (ref <= box['box_hi']), axis=1)]
    assert len(out) > 10000 and np.all(np.isfinite(out))
    # points within float32 rounding of a box face may fall either way
    assert abs(len(out) - len(ref)) <= 3
    n = min(len(out), len(ref))
    np.testing.assert_allclose(out[:n], ref[:n], atol=2e-6)


@pytest.mark.parametrize('pose, message', [
    ((float('nan'),) * 7, 'hand-eye calibration'),
    ((0, 0, 0, 0, 0, 0, 0.5), 'unit norm'),
    ((0, 0, 0, 1), 'hand-eye calibration'),
])
def test_calibration_is_checked(pose, message):
    with pytest.raises(ValueError, match=message):
        BaseCloudConfig(camera_pose=pose)
    with pytest.raises(ValueError, match='box_lo'):
        BaseCloudConfig(camera_pose=DOWN, box_lo=(0, 0, 1), box_hi=(1, 1, 0))


def test_node_publishes_base_frame_points_and_drops_bad_clouds():
    rclpy.init()
    try:
        node = CloudToBaseNode(parameter_overrides=[
            Parameter('camera_pose', value=list(map(float, DOWN))),
            Parameter('camera_frame', value='cam_optical')])
        peer = Node('camera_peer')
        got = []
        peer.create_subscription(PointCloud2, topics.POINTS, got.append, qos.SENSOR)
        pub = peer.create_publisher(PointCloud2, '/camera/camera/depth/color/points', qos.SENSOR)
        executor = rclpy.executors.SingleThreadedExecutor()
        executor.add_node(node)
        executor.add_node(peer)
        stamp = peer.get_clock().now().to_msg()
        good = pointcloud_msg(np.array([[0.1, 0.2, 0.9]], np.float32), 'cam_optical', stamp)
        wrong_frame = pointcloud_msg(np.zeros((3, 3), np.float32), 'somewhere_else', stamp)
        broken = pointcloud_msg(np.zeros((3, 3), np.float32), 'cam_optical', stamp)
        broken.fields = broken.fields[:2]  # no z
        deadline = time.monotonic() + 20
        while pub.get_subscription_count() < 1 and time.monotonic() < deadline:  # discovery
            executor.spin_once(timeout_sec=0.05)
        pub.publish(wrong_frame)  # the bad ones first ...
        pub.publish(broken)
        while node._dropped < 2 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        while not got and time.monotonic() < deadline:  # ... the node keeps going
            pub.publish(good)
            executor.spin_once(timeout_sec=0.05)
        assert got, ('no /rl100/points', node._received, node._dropped, node._last_error)
        out = got[0]
        assert out.header.frame_id == 'fr3_link0' and out.header.stamp == stamp
        np.testing.assert_allclose(pointcloud_to_array(out), [[0.6, -0.2, 0.1]], atol=1e-6)
        assert node._dropped == 2 and "no field(s) ['z']" in node._last_error
        executor.shutdown()
        node.destroy_node()
        peer.destroy_node()
    finally:
        rclpy.try_shutdown()


def test_node_without_calibration_names_it():
    rclpy.init()
    try:
        with pytest.raises(ValueError, match='camera_pose must be the hand-eye calibration'):
            CloudToBaseNode()
    finally:
        rclpy.try_shutdown()


def test_camera_pose_set_at_run_time_is_checked_then_used():
    rclpy.init()
    try:
        node = CloudToBaseNode(parameter_overrides=[Parameter('camera_pose', value=list(DOWN))])
        try:
            before = node._transform
            moved = [0.5, 0.0, 1.1, 1.0, 0.0, 0.0, 0.0]  # the camera 10 cm higher
            assert node.set_parameters([Parameter('camera_pose', value=moved)])[0].successful
            out = node._transform(np.array([[0.1, 0.2, 0.9]], np.float32))
            np.testing.assert_allclose(out, [[0.6, -0.2, 0.2]], atol=1e-6)
            bad = node.set_parameters([Parameter('camera_pose', value=[0.0] * 7)])[0]
            assert not bad.successful and 'unit norm' in bad.reason
            assert node._transform is not before and node._config.camera_pose == tuple(moved)
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown()
