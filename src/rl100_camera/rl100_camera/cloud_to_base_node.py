"""Cloud-to-base node: the real camera's point cloud on ``/rl100/points``, in the robot base frame.

On the robot the policy node's point-cloud input comes from here (in simulation the sim robot
publishes ``/rl100/points`` itself). It subscribes to the camera's cloud (realsense-ros'
``/camera/camera/depth/color/points``, optical frame), moves it into the base frame with the hand-
eye calibration (``camera_pose``: x y z qx qy qz qw, e.g. from an eye-to-hand calibration; publish
the same numbers as a static TF for RViz), keeps the points inside a loose workspace box and
publishes them, stamped as the camera stamped them, so the policy node's age and skew checks see
the camera's timing. ``camera_pose`` may be set while the node runs (``python -m
rl100_bringup.check_camera --apply /cloud_to_base``); a bad one is refused. A cloud it cannot read
is counted, logged and dropped; it never stops the node. Start-up without a calibration fails
naming the parameter.
"""

from __future__ import annotations

from dataclasses import replace

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rl100.ingest_points import cloud_xyz
from rl100_ros import diagnostics, qos, topics
from rl100_ros.node_main import run_node
from sensor_msgs.msg import PointCloud2

from .base_cloud import BaseCloud, BaseCloudConfig
from .messages import pointcloud_msg


class CloudToBaseNode(Node):

    def __init__(self, **node_kwargs):
        super().__init__('cloud_to_base', **node_kwargs)
        p = self._declare
        config = BaseCloudConfig(
            camera_pose=tuple(p('camera_pose', [float('nan')] * 7,
                                'hand-eye calibration: x y z (m) qx qy qz qw of the cloud frame '
                                '(camera optical frame) in the base frame')),
            box_lo=tuple(p('box_lo', [-0.2, -1.0, -0.1], 'base-frame box the published points '
                           'stay in, lower corner (m); loose: each model crops its own')),
            box_hi=tuple(p('box_hi', [1.3, 1.0, 1.0], 'upper corner of that box (m)')),
            max_points=p('max_points', 0, 'publish a uniform random subset of at most this many '
                         'points (0: all); the recorder writes every cloud'),
            seed=p('seed', 0, 'seed of that subset'))
        self._config = config
        self._transform = BaseCloud(config)  # raises on a missing or bad calibration
        self._base_frame = p('base_frame', 'fr3_link0', 'robot base frame (frame_id published)')
        self._camera_frame = p('camera_frame', '', 'frame_id the calibration is for; a cloud in '
                               'another frame is dropped (empty: accept any)')
        source = p('input_topic', '/camera/camera/depth/color/points', 'the camera cloud')
        self._pub = self.create_publisher(PointCloud2, topics.POINTS, qos.SENSOR)
        self.create_subscription(PointCloud2, source, self._on_cloud, qos.SENSOR)
        self._received = self._published = self._dropped = 0
        self._last_error = ''
        self._diagnostics = diagnostics.Diagnostics(self, 'cloud to base', self._status)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        """A new ``camera_pose`` at run time (check_camera --apply): checked, then swapped in."""
        for param in parameters:
            if param.name != 'camera_pose':
                continue
            try:
                config = replace(self._config, camera_pose=tuple(param.value))
                transform = BaseCloud(config)
            except (TypeError, ValueError) as exc:
                return SetParametersResult(successful=False, reason=str(exc))
            self._config, self._transform = config, transform
            self.get_logger().info(f'camera_pose set: {list(param.value)}')
        return SetParametersResult(successful=True)

    def _declare(self, name, default, description):
        self.declare_parameter(name, default, ParameterDescriptor(description=description))
        return self.get_parameter(name).value

    def _on_cloud(self, msg: PointCloud2) -> None:
        self._received += 1
        try:
            if self._camera_frame and msg.header.frame_id != self._camera_frame:
                raise ValueError(f'cloud in frame {msg.header.frame_id!r}, the calibration is for '
                                 f'{self._camera_frame!r}')
            points = cloud_xyz(msg)
        except ValueError as exc:
            self._dropped += 1
            self._last_error = str(exc)
            self.get_logger().warn(f'dropped a cloud: {exc}', throttle_duration_sec=5.0)
            return
        self._pub.publish(pointcloud_msg(self._transform(points), self._base_frame,
                                         msg.header.stamp))
        self._published += 1

    def _status(self):
        values = {'received': self._received, 'published': self._published,
                  'dropped': self._dropped, 'last_error': self._last_error}
        if self._received == 0:
            return diagnostics.WARN, 'no cloud received yet', values
        if self._dropped:
            return diagnostics.WARN, f'{self._dropped} cloud(s) dropped', values
        return diagnostics.OK, 'ok', values


def main(args=None) -> int:
    return run_node(CloudToBaseNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
