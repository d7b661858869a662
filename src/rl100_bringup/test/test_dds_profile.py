"""The graph's DDS profile (config/fastdds.xml): full camera clouds cross processes."""

import os
import subprocess
import sys

from rl100_bringup.graph import dds_environment, DDS_PROFILES_ENV

SUBSCRIBER = """
import time, rclpy
from rclpy.node import Node
from rl100_ros import qos, topics
from sensor_msgs.msg import PointCloud2
rclpy.init()
node = Node('dds_profile_probe')
sizes = []
node.create_subscription(PointCloud2, topics.POINTS, lambda m: sizes.append(len(m.data)),
                         qos.SENSOR)
end = time.monotonic() + 2.0  # discovery
while time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.05)
sizes.clear()
end = time.monotonic() + 4.0
while time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.05)
print(len(sizes), max(sizes, default=0))
"""


def _clean_env():
    env = {k: v for k, v in os.environ.items()
           if k not in (DDS_PROFILES_ENV, 'FASTDDS_DEFAULT_PROFILES_FILE')}
    return dict(env, **dds_environment(env))


def test_a_user_profile_is_kept():
    assert dds_environment({DDS_PROFILES_ENV: '/etc/my.xml'}) == {}
    assert dds_environment({'FASTDDS_DEFAULT_PROFILES_FILE': '/etc/my.xml'}) == {}
    path = dds_environment({})[DDS_PROFILES_ENV]
    assert os.path.isfile(path) and path.endswith('fastdds.xml')


def test_full_realsense_clouds_arrive_at_30_hz():
    """640 x 480 points (3.7 MB) at 30 Hz, sensor QoS: without the profile 0-45 % arrive here."""
    env = _clean_env()
    publisher = subprocess.Popen(
        [sys.executable, '-m', 'rl100_bringup.bench_latency', '--clouds', '--cloud-rate', '30',
         '--cloud-points', '307200'], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        out = subprocess.run([sys.executable, '-c', SUBSCRIBER], env=env, capture_output=True,
                             text=True, timeout=60, check=True).stdout.split()
    finally:
        publisher.terminate()
        publisher.wait(timeout=30)
    received, size = int(out[0]), int(out[1])
    assert size == 307200 * 12
    assert received >= 100, f'{received} of ~120 clouds arrived in 4 s'


def test_bench_rematch_udp_profile_drops_only_the_shared_memory_transport(tmp_path):
    from xml.etree import ElementTree

    from rl100_bringup.bench_rematch import udp_profile
    from rl100_bringup.graph import config_dir, DDS_PROFILES_FILE

    path = udp_profile(os.path.join(config_dir(), DDS_PROFILES_FILE), str(tmp_path))
    ns = {'p': 'http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles'}
    root = ElementTree.parse(path).getroot()
    used = [e.text for e in root.findall('.//p:participant/p:rtps/p:userTransports/'
                                         'p:transport_id', ns)]
    assert used == ['rl100_udp']
    assert root.find('.//p:participant/p:rtps/p:useBuiltinTransports', ns).text == 'false'
