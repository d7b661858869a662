"""calibrate_table: the table top from clouds on /rl100/points, over real DDS."""

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.node import Node
from rl100_bringup.calibrate_table import table_dz
from rl100_camera.messages import pointcloud_msg
from rl100_ros import qos, topics
from sensor_msgs.msg import PointCloud2


def _cloud(z, seed=0, n=3000):
    rng = np.random.default_rng(seed)
    table = np.column_stack([rng.uniform(0.2, 0.9, n), rng.uniform(-0.5, 0.5, n),
                             z + rng.normal(0.0, 0.002, n)])
    arm = rng.normal([0.5, 0.0, 0.4], 0.05, (500, 3))
    return np.vstack([table, arm]).astype(np.float32)


def _tilted(cloud, deg):
    """The cloud rotated by ``deg`` about the x axis through (0.5, 0, 0): a knocked camera."""
    a = np.radians(deg)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    centre = np.array([0.5, 0.0, 0.0])
    return ((cloud - centre) @ rot.T + centre).astype(np.float32)


def test_table_dz_from_clouds():
    dz, spread, tilt = table_dz([_cloud(0.03, s) for s in range(5)], (0.05, -0.6), (1.0, 0.6))
    assert dz == pytest.approx(0.03, abs=0.001) and 0.0 <= spread < 0.002 and tilt < 0.3
    _, _, tilt = table_dz([_tilted(_cloud(0.03), 2.0)], (0.05, -0.6), (1.0, 0.6))
    assert tilt == pytest.approx(2.0, abs=0.2)
    with pytest.raises(ValueError, match='no table'):
        table_dz([_cloud(0.03)[-500:]], (0.05, -0.6), (1.0, 0.6))  # only the arm


def test_command_measures_the_published_table(ros_env):
    """The command in its own process; a camera stand-in publishes a table 3 cm up."""
    proc = subprocess.Popen([sys.executable, '-m', 'rl100_bringup.calibrate_table', '--clouds',
                             '3', '--timeout', '30'], env=ros_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_env['ROS_DOMAIN_ID']))
    stop = threading.Event()
    try:
        node = Node('camera_standin', context=context)
        pub = node.create_publisher(PointCloud2, topics.POINTS, qos.SENSOR)

        def publish():
            k = 0
            while not stop.is_set():
                pub.publish(pointcloud_msg(_cloud(0.03, k), 'fr3_link0',
                                           node.get_clock().now().to_msg()))
                k += 1
                time.sleep(0.1)

        thread = threading.Thread(target=publish, daemon=True)
        thread.start()
        out, _ = proc.communicate(timeout=60)
        stop.set()
        thread.join(timeout=2.0)
        node.destroy_node()
    finally:
        stop.set()
        rclpy.try_shutdown(context=context)
    assert proc.returncode == 0, out
    result = json.loads(out.splitlines()[0])
    assert result['table_dz'] == pytest.approx(0.03, abs=0.001) and result['clouds'] == 3
    assert f"launch with table_dz:={result['table_dz']:.4f}" in out
