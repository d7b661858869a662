"""Latency of the control path: observation message -> command leaving the safety node.

    python -m rl100_bringup.bench_latency [--rate 100] [--seconds 20] [--model policy.onnx]
                                          [--temporal-ensemble] [--hops-only]

Starts the policy node (``trigger:=observation``) and the safety node (``tick_on_chunk``) as
separate processes through ``up``, plays the robot from this process (joint_states + pose at
``--rate`` Hz, stamped with the wall clock), and for every ActionChunk (stamped with the
observation it was computed from) takes the next target pose of the safety node: *leaving* is
that target's stamp (the safety node stamps it with its clock as it publishes) minus the
observation's stamp — the issue's measure; *arriving* is when it reaches this process (one more
DDS hop). Without ``--model`` a small (~3.5M) one-step policy with random weights is exported
first: latency does not depend on the weights. The policy node runs its default chunked
execution (one model call per ``n_action_steps`` ticks, the queue in between);
``--temporal-ensemble`` makes it call the model at every tick. ``--hops-only`` measures the floor
instead: this process and an echo process (two rclpy nodes, the same QoS) ping-pong a pose, so
two DDS hops through Python executors with no work in between. ``--cloud-rate 30
--cloud-points 307200`` adds camera traffic while it runs: a separate process publishes an
x y z PointCloud2 of that many points on ``/rl100/points`` (the policy node's cloud input; a
full 640 x 480 RealSense cloud is 307,200 points, 3.7 MB) at that rate. Prints p50 / p99 and
the rate.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

from geometry_msgs.msg import PoseStamped
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.task import Future
from rl100_msgs.msg import ActionChunk
from rl100_ros import qos, topics
from rl100_ros.conversions import seconds
from rl100_ros.node_main import run_node
from sensor_msgs.msg import JointState, PointCloud2
import yaml

JOINTS = [f'fr3_joint{i}' for i in range(1, 8)] + ['fr3_finger_joint1', 'fr3_finger_joint2']


def export_random_cm(path: str) -> None:
    """A random-weight small consistency policy on the 15-d robot state (~3.5M params)."""
    from rl100.export.onnx_export import export_onnx
    from rl100.keys import OBS_STATE
    from rl100.policy.config import ObsSpec, PolicyConfig
    from rl100.policy.consistency import ConsistencyPolicy
    import torch

    torch.manual_seed(0)
    config = PolicyConfig(obs=[ObsSpec(OBS_STATE, (15,))], action_dim=7, n_obs=2, horizon=16,
                          n_action_steps=8, down_dims=(64, 128, 256))
    export_onnx(ConsistencyPolicy(config), path, control_rate_hz=100.0)


def write_graph(workdir: str, model: str, rate: float, temporal_ensemble: bool = False) -> str:
    params = os.path.join(workdir, 'bench.yaml')
    with open(params, 'w', encoding='utf-8') as f:
        yaml.safe_dump({}, f)
    graph = {
        'params_file': 'bench.yaml',
        'nodes': [
            {'name': 'policy_node', 'package': 'rl100_policy_node', 'executable': 'policy_node',
             'parameters': {'model_path': model, 'control_rate': rate, 'trigger': 'observation',
                            'max_observation_age': 0.05,
                            'temporal_ensemble': temporal_ensemble}},
            {'name': 'safety_node', 'package': 'rl100_safety', 'executable': 'safety_node',
             'parameters': {'control_rate': rate, 'teleop_device': 'none',
                            'tick_on_chunk': True}},
        ]}
    path = os.path.join(workdir, 'bench.graph.yaml')
    with open(path, 'w', encoding='utf-8') as f:
        yaml.safe_dump(graph, f)
    return path


class Robot(Node):
    """Publishes the robot state at a fixed rate and timestamps what comes back."""

    def __init__(self, rate: float):
        super().__init__('bench_robot')
        self.pose_pub = self.create_publisher(PoseStamped, topics.CURRENT_POSE, qos.SENSOR)
        self.joint_pub = self.create_publisher(JointState, topics.JOINT_STATES, qos.SENSOR)
        self.pending = []  # observation stamps (s) of chunks waiting for their command
        self.latencies, self.leaving, self.chunks = [], [], 0
        self.create_subscription(ActionChunk, topics.ACTION_CHUNK, self._on_chunk, qos.RELIABLE)
        self.create_subscription(PoseStamped, topics.TARGET_POSE, self._on_target, qos.RELIABLE)
        self.create_timer(1.0 / rate, self._publish)

    def _publish(self):
        stamp = self.get_clock().now().to_msg()
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, 'fr3_link0'
        pose.pose.position.x, pose.pose.position.z, pose.pose.orientation.x = 0.5, 0.3, 1.0
        self.pose_pub.publish(pose)
        joints = JointState(name=JOINTS, position=[0.0] * 7 + [0.02, 0.02])
        joints.header.stamp = stamp
        self.joint_pub.publish(joints)

    def _on_chunk(self, msg):
        self.chunks += 1
        self.pending.append(seconds(msg.header.stamp))

    def _on_target(self, msg):
        now = self.get_clock().now().nanoseconds * 1e-9
        sent = seconds(msg.header.stamp)
        for stamp in self.pending:
            self.latencies.append(now - stamp)
            self.leaving.append(sent - stamp)
        self.pending.clear()

    def reset(self):
        self.pending.clear()
        self.latencies.clear()
        self.leaving.clear()
        self.chunks = 0


class Echo(Node):
    """``--hops-only``: sends every pose straight back (the policy and safety nodes' QoS)."""

    def __init__(self):
        super().__init__('bench_echo')
        pub = self.create_publisher(PoseStamped, topics.TARGET_POSE, qos.RELIABLE)
        self.create_subscription(PoseStamped, topics.CURRENT_POSE, pub.publish, qos.SENSOR)


class Pinger(Node):
    """``--hops-only``: publishes a wall-stamped pose at ``rate`` Hz, times each echo."""

    def __init__(self, rate: float):
        super().__init__('bench_pinger')
        self.pub = self.create_publisher(PoseStamped, topics.CURRENT_POSE, qos.SENSOR)
        self.create_subscription(PoseStamped, topics.TARGET_POSE, self._on_echo, qos.RELIABLE)
        self.create_timer(1.0 / rate, self._publish)
        self.latencies, self.chunks = [], 0

    def _publish(self):
        pose = PoseStamped()
        pose.header.stamp = self.get_clock().now().to_msg()
        self.pub.publish(pose)
        self.chunks += 1

    def _on_echo(self, msg):
        self.latencies.append(self.get_clock().now().nanoseconds * 1e-9
                              - seconds(msg.header.stamp))

    def reset(self):
        self.latencies.clear()
        self.chunks = 0


class CloudPublisher(Node):
    """``--cloud-rate``: an x y z float32 cloud of ``points`` points at ``rate`` Hz."""

    def __init__(self, rate: float, points: int):
        super().__init__('bench_cloud')
        from rl100_camera.messages import pointcloud_msg

        rng = np.random.default_rng(0)
        cloud = rng.uniform([0.2, -0.4, 0.0], [0.8, 0.4, 0.4], (points, 3)).astype(np.float32)
        self.msg = pointcloud_msg(cloud, 'fr3_link0', self.get_clock().now().to_msg())
        self.pub = self.create_publisher(PointCloud2, topics.POINTS, qos.SENSOR)
        self.create_timer(1.0 / rate, self._publish)

    def _publish(self):
        self.msg.header.stamp = self.get_clock().now().to_msg()
        self.pub.publish(self.msg)


def _spin_for(executor, seconds: float) -> float:
    start = time.monotonic()
    executor.spin_until_future_complete(Future(), timeout_sec=seconds)
    return time.monotonic() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rate', type=float, default=100.0, help='state and control rate, Hz')
    parser.add_argument('--seconds', type=float, default=20.0, help='measured duration')
    parser.add_argument('--model', default='', help='ONNX policy (default: random small CM)')
    parser.add_argument('--temporal-ensemble', action='store_true',
                        help='the policy node calls the model at every tick (not once a chunk)')
    parser.add_argument('--hops-only', action='store_true',
                        help='the floor: ping-pong with an echo process, no policy or safety')
    parser.add_argument('--cloud-rate', type=float, default=0.0,
                        help='Hz of point clouds published on /rl100/points meanwhile (0: none)')
    parser.add_argument('--cloud-points', type=int, default=307200, help='points per cloud')
    parser.add_argument('--echo', action='store_true', help=argparse.SUPPRESS)  # helper processes
    parser.add_argument('--clouds', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.echo:
        return run_node(Echo)
    if args.clouds:
        return run_node(lambda: CloudPublisher(args.cloud_rate, args.cloud_points))
    from rl100_bringup.graph import dds_environment

    os.environ.update(dds_environment())  # the graph's DDS profile, for this process too
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    clouds = None
    if args.cloud_rate > 0:
        clouds = subprocess.Popen([sys.executable, '-m', 'rl100_bringup.bench_latency', '--clouds',
                                   '--cloud-rate', str(args.cloud_rate),
                                   '--cloud-points', str(args.cloud_points)], env=env)
    if args.hops_only:
        other = subprocess.Popen([sys.executable, '-m', 'rl100_bringup.bench_latency', '--echo'],
                                 env=env)
    else:
        workdir = tempfile.mkdtemp(prefix='rl100_bench_')
        model = args.model or os.path.join(workdir, 'cm.onnx')
        if not args.model:
            export_random_cm(model)
        graph = write_graph(workdir, model, args.rate, args.temporal_ensemble)
        other = subprocess.Popen([sys.executable, '-m', 'rl100_bringup.up', graph], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in other.stdout:
            if "graph 'bench' up" in line or '[up] error' in line:
                break
    rclpy.init()
    node = Pinger(args.rate) if args.hops_only else Robot(args.rate)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        _spin_for(executor, 3.0)  # discovery, warm-up
        node.reset()
        elapsed = _spin_for(executor, args.seconds)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        for proc in (other, clouds):
            if proc is not None:
                proc.send_signal(signal.SIGINT)
                proc.communicate(timeout=30)
    lat = np.asarray(node.latencies) * 1e3
    if lat.size == 0:
        print('no commands measured: did the graph come up?', file=sys.stderr)
        return 1
    if args.hops_only:
        print(f'| rate | pings/s | echoes | round trip p50 ms | p99 ms | max ms |\n'
              f'|---:|---:|---:|---:|---:|---:|\n'
              f'| {args.rate:.0f} Hz | {node.chunks / elapsed:.1f} | {lat.size} | '
              f'{np.percentile(lat, 50):.2f} | {np.percentile(lat, 99):.2f} | {lat.max():.2f} |')
        return 0
    leave = np.asarray(node.leaving) * 1e3
    mode = 'every tick' if args.temporal_ensemble else 'once a chunk'
    if args.cloud_rate > 0:
        mode += f', clouds {args.cloud_points} pts at {args.cloud_rate:g} Hz'
    print(f'| rate asked | model called | chunks/s | commands | leaving p50 ms | leaving p99 ms '
          f'| arriving p50 ms | arriving p99 ms | arriving max ms |\n'
          f'|---:|---|---:|---:|---:|---:|---:|---:|---:|\n'
          f'| {args.rate:.0f} Hz | {mode} | {node.chunks / elapsed:.1f} | {lat.size} | '
          f'{np.percentile(leave, 50):.2f} | {np.percentile(leave, 99):.2f} | '
          f'{np.percentile(lat, 50):.2f} | {np.percentile(lat, 99):.2f} | {lat.max():.2f} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
