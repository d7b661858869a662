"""numpy frames -> sensor_msgs (Image, CameraInfo, PointCloud2), built by hand (no cv_bridge).

No rclpy: only message classes, so that the conversions are unit-testable on their own.
"""

from __future__ import annotations

import array

from builtin_interfaces.msg import Time
import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from .realsense_source import Intrinsics

ENCODINGS = {(np.dtype(np.uint8), 3): 'rgb8', (np.dtype(np.uint16), 1): '16UC1',
             (np.dtype(np.uint8), 1): 'mono8'}


def image_msg(image: np.ndarray, frame_id: str, stamp: Time) -> Image:
    """(H, W, 3) uint8 -> rgb8, (H, W) uint16 -> 16UC1 (little-endian, like the camera)."""
    channels = 1 if image.ndim == 2 else image.shape[2]
    encoding = ENCODINGS.get((image.dtype, channels))
    if encoding is None:
        raise ValueError(f'no image encoding for {image.dtype} x {channels} channels')
    image = np.ascontiguousarray(image)
    msg = Image()
    msg.header.frame_id = frame_id
    msg.header.stamp = stamp
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(image.strides[0])
    msg.data = _bytes(image)
    return msg


def camera_info_msg(intr: Intrinsics, frame_id: str, stamp: Time) -> CameraInfo:
    """CameraInfo as realsense-ros fills it: K, P = [K | 0], R = I, distortion D."""
    msg = CameraInfo()
    msg.header.frame_id = frame_id
    msg.header.stamp = stamp
    msg.width, msg.height = intr.width, intr.height
    msg.distortion_model = intr.ros_distortion_model
    msg.d = [float(c) for c in intr.coeffs]
    msg.k = [float(v) for v in intr.k]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [intr.fx, 0.0, intr.cx, 0.0, 0.0, intr.fy, intr.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def _bytes(values: np.ndarray) -> array.array:
    """array('B') is what the uint8[] field stores: assigned as is, no per-byte check."""
    out = array.array('B')
    out.frombytes(values.tobytes())
    return out


XYZ_FIELDS = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, n in enumerate('xyz')]


def pointcloud_msg(points: np.ndarray, frame_id: str, stamp: Time) -> PointCloud2:
    """(N, 3) float32 metres -> unorganised PointCloud2 with x, y, z float32 fields."""
    points = np.ascontiguousarray(points, dtype=np.float32).reshape(-1, 3)
    msg = PointCloud2()
    msg.header.frame_id = frame_id
    msg.header.stamp = stamp
    msg.height, msg.width = 1, int(points.shape[0])
    msg.fields = XYZ_FIELDS
    msg.is_bigendian = False
    msg.point_step = 12
    msg.row_step = 12 * msg.width
    msg.is_dense = True  # invalid (zero-depth) points were dropped
    msg.data = _bytes(points)
    return msg


def image_to_array(msg: Image) -> np.ndarray:
    """The inverse of ``image_msg`` for rgb8 / 16UC1 / mono8 (for tests and consumers)."""
    dtype, channels = {'rgb8': (np.uint8, 3), '16UC1': (np.uint16, 1),
                       'mono8': (np.uint8, 1)}[msg.encoding]
    flat = np.frombuffer(bytes(msg.data), dtype=dtype)
    rows = flat.reshape(msg.height, msg.step // np.dtype(dtype).itemsize)
    out = rows[:, :msg.width * channels]
    return out.reshape(msg.height, msg.width, channels) if channels > 1 else out


def pointcloud_to_array(msg: PointCloud2) -> np.ndarray:
    """(N, 3) float32 from an x y z float32 PointCloud2 with point_step 12."""
    return np.frombuffer(bytes(msg.data), dtype=np.float32).reshape(-1, 3)
