"""The camera's point cloud in the robot base frame, as the policy node takes it.

The policy node reads ``/rl100/points``.

A points policy is trained on clouds in the robot base frame (``rl100.pointcloud``); a RealSense
driver publishes its cloud in the camera's optical frame. ``BaseCloud`` applies the hand-eye
calibration (the optical frame's pose in the base frame, ``x y z qx qy qz qw``), drops non-finite
points and keeps those inside a loose box around the workspace, so ``/rl100/points`` carries what
any model might crop from rather than the whole room. The node reads a PointCloud2 of any layout
(realsense-ros adds rgb and pads points) with ``rl100.ingest_points.cloud_xyz``, the reader
``rl100 ingest`` uses on recorded clouds. No ROS types here.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np
from rl100.geometry import pose7_to_matrix
from rl100.pointcloud import crop


@dataclass(frozen=True)
class BaseCloudConfig:
    """``camera_pose``: (7,) x y z (m) qx qy qz qw of the cloud's frame in the base frame.

    ``box_lo`` / ``box_hi``: (3,) m, base frame; points outside are not published.
    ``max_points``: a 640 x 480 camera gives ~300k points a frame, 3.6 MB at 30 Hz for the recorder
    to write; a uniform random subset keeps what a model that samples uniformly (the ``random``
    sampler) sees, at a fraction of the bytes.
    """

    camera_pose: tuple = (math.nan,) * 7
    box_lo: tuple = (-0.2, -1.0, -0.1)
    box_hi: tuple = (1.3, 1.0, 1.0)
    max_points: int = 0  # > 0: a uniform random subset of at most this many (0: all)
    seed: int = 0  # of that subset's rng

    def __post_init__(self):
        pose = np.asarray(self.camera_pose, dtype=np.float64)
        if pose.shape != (7,) or not np.all(np.isfinite(pose)):
            raise ValueError('camera_pose must be the hand-eye calibration: 7 finite numbers, '
                             'x y z qx qy qz qw of the camera optical frame in the robot base '
                             f'frame; got {list(self.camera_pose)}')
        norm = float(np.linalg.norm(pose[3:]))
        if abs(norm - 1.0) > 1e-3:
            raise ValueError(f'camera_pose quaternion must have unit norm, got norm {norm:.6f}')
        lo = np.asarray(self.box_lo, dtype=np.float64)
        hi = np.asarray(self.box_hi, dtype=np.float64)
        if lo.shape != (3,) or hi.shape != (3,) or not np.all(lo < hi):
            raise ValueError(f'box_lo must be 3 values each below box_hi, got {lo} / {hi}')
        if self.max_points < 0:
            raise ValueError(f'max_points must be >= 0, got {self.max_points}')


class BaseCloud:
    """(M, 3) camera-frame points -> (K, 3) float32 base-frame points inside the box."""

    def __init__(self, config: BaseCloudConfig):
        pose = pose7_to_matrix(config.camera_pose).astype(np.float32)
        self.rotation = pose[:3, :3]  # (3, 3) camera -> base
        self.translation = pose[:3, 3]
        self.box_lo = np.asarray(config.box_lo, dtype=np.float32)
        self.box_hi = np.asarray(config.box_hi, dtype=np.float32)
        self.max_points = int(config.max_points)
        self.rng = np.random.default_rng(config.seed)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """(M, 3) camera-frame points -> (K, 3) float32 base-frame points inside the box.

        In float32 (the output's precision; 0.1 um at 1 m), the box tested per column
        (:func:`rl100.pointcloud.crop`): a full 640 x 480 frame took 36-51 ms in float64 with a
        copy per step, more than a 30 Hz camera's period on a small CPU; 5-9 ms now. Non-finite
        points fail the box test (every comparison with NaN is false).
        """
        pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)
        with np.errstate(invalid='ignore'):  # inf * 0 -> NaN: outside the box, as wanted
            base = pts @ self.rotation.T
        base += self.translation
        inside = np.flatnonzero(crop(base, self.box_lo, self.box_hi))
        if 0 < self.max_points < len(inside):
            inside = inside[np.sort(self.rng.choice(len(inside), self.max_points,
                                                    replace=False))]
        return base[inside]


def bench(points: int = 307200, repeats: int = 30, max_points: int = 16384) -> float:
    """p50 ms of one :class:`BaseCloud` call on a random full frame.

    ``python -m rl100_camera.base_cloud``: a camera 0.8 m above the table looking down, 1/97 of
    the points NaN (no depth), the orange_juicer crop box and subset size.
    """
    import time

    cloud = BaseCloud(BaseCloudConfig(camera_pose=(0.5, 0.0, 0.8, 1.0, 0.0, 0.0, 0.0),
                                      max_points=max_points))
    pts = np.random.default_rng(0).uniform([-0.5, -0.4, 0.3], [0.5, 0.4, 1.5],
                                           (points, 3)).astype(np.float32)
    pts[::97] = np.nan
    times = []
    for i in range(repeats + 3):
        start = time.perf_counter()
        cloud(pts)
        if i >= 3:
            times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


if __name__ == '__main__':
    print(f'BaseCloud, 307200 points -> 16384 in the box: {bench():.1f} ms p50')
