"""How long a node killed with SIGKILL and started again waits for its first message.

    python -m rl100_bringup.bench_rematch [--cycles 20] [--transport shm|udp|both]

This process publishes a small message at 20 Hz; a subscriber process is started, the time to
its first message is taken, and it is killed with SIGKILL (as ``up``'s fault tests and a crashing
node do) and started again, ``--cycles`` times. The first start is a fresh match; every later one
reuses the dead process's DDS participant id, and over Fast DDS's shared-memory transport its
port of the dead process. ``shm``: the graph's own profile (``config/fastdds.xml``: shared memory,
then UDP); ``udp``: the same profile with UDP only. Why it matters: a respawned recorder that
subscribed is not yet receiving, so the episode runner's StartEpisode names the topics the
episode must have and the recorder refuses until a message came on each
(``run_episodes.RosStack.start_episode``).
Prints the first start and the restarts' median / max per transport.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import String

from .graph import config_dir, DDS_PROFILES_ENV, DDS_PROFILES_FILE

TOPIC = '/rl100/bench_rematch'
CHILD = f"""
import time, rclpy
from std_msgs.msg import String
rclpy.init()
node = rclpy.create_node('bench_rematch_child')
t0, seen = time.monotonic(), []
def first(msg):
    if not seen:
        seen.append(1)
        print(f'first {{time.monotonic() - t0:.4f}}', flush=True)
node.create_subscription(String, '{TOPIC}', first, 10)
rclpy.spin(node)
"""


def udp_profile(shm_profile: str, out_dir: str) -> str:
    """The graph's profile with the shared-memory transport left out of the participant's list."""
    with open(shm_profile, encoding='utf-8') as f:
        text = f.read()
    text, n = re.subn(r'\s*<transport_id>rl100_shm</transport_id>(?=\s*<transport_id>rl100_udp)',
                      '', text, count=1)
    if n != 1:
        raise RuntimeError(f'{shm_profile}: no shared-memory transport before the UDP one')
    path = os.path.join(out_dir, 'fastdds_udp.xml')
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return path


def first_message_s(env: dict, timeout: float) -> tuple[float | None, subprocess.Popen]:
    """Start a subscriber child; seconds to its first message (None: none within ``timeout``)."""
    child = subprocess.Popen([sys.executable, '-c', CHILD], env=env, stdout=subprocess.PIPE,
                             text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([child.stdout], [], [], 0.2)
        if ready:
            line = child.stdout.readline()
            if line.startswith('first '):
                return float(line.split()[1]), child
            if not line:  # the child died
                break
    return None, child


def run(profile: str, cycles: int, timeout: float, domain: int) -> list:
    # this process's publisher and the children's subscribers read the same profile
    os.environ[DDS_PROFILES_ENV], os.environ['ROS_DOMAIN_ID'] = profile, str(domain)
    env = dict(os.environ)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = Node('bench_rematch', context=context)
    pub = node.create_publisher(String, TOPIC, 10)
    node.create_timer(0.05, lambda: pub.publish(String(data='x')))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    times = []
    try:
        for _ in range(cycles):
            t, child = first_message_s(env, timeout)
            times.append(t)
            time.sleep(0.3)  # it runs a moment, as a node does
            child.send_signal(signal.SIGKILL)
            child.wait()
            time.sleep(0.5)  # up's respawn delay
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    return times


def _line(name: str, times: list, timeout: float) -> str:
    restarts = [t for t in times[1:] if t is not None]
    lost = sum(t is None for t in times[1:])
    first = 'none' if times[0] is None else f'{times[0]:.2f} s'
    text = f'{name:4s} first start {first}; restarts ({len(times) - 1}): '
    if restarts:
        text += (f'median {np.median(restarts):.2f} s, max {max(restarts):.2f} s')
    return text + (f', {lost} with no message in {timeout:g} s' if lost else '')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--cycles', type=int, default=20, help='subscriber starts per transport')
    parser.add_argument('--transport', choices=('shm', 'udp', 'both'), default='both')
    parser.add_argument('--timeout', type=float, default=15.0,
                        help='s a start may wait for its first message')
    parser.add_argument('--domain', type=int, default=int(os.environ.get('ROS_DOMAIN_ID', 0)),
                        help='ROS domain id (default: ROS_DOMAIN_ID)')
    args = parser.parse_args(argv)
    if args.cycles < 2:
        parser.error('--cycles must be >= 2 (a first start and a restart)')
    if args.transport == 'both':  # one process per transport: Fast DDS reads the profile once
        for name in ('shm', 'udp'):
            subprocess.run([sys.executable, '-m', 'rl100_bringup.bench_rematch', '--cycles',
                            str(args.cycles), '--transport', name, '--timeout', str(args.timeout),
                            '--domain', str(args.domain)], check=True)
        return 0
    shm = os.path.join(config_dir(), DDS_PROFILES_FILE)
    with tempfile.TemporaryDirectory(prefix='rl100_rematch_') as tmp:
        profile = shm if args.transport == 'shm' else udp_profile(shm, tmp)
        times = run(profile, args.cycles, args.timeout, args.domain)
    print(_line(args.transport, times, args.timeout), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
