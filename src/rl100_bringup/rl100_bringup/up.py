"""Start a node graph without ROS 2 launch: one process per node, supervised.

    python -m rl100_bringup.up orange_juicer [NAME:=VALUE ...] [--duration S]
    python -m rl100_bringup.up orange_juicer --episodes 10 [--results-json PATH]

Reads the same graph file as ``launch/<graph>.launch.py``; starts each node's installed
executable (``<prefix>/lib/<package>/<executable>``, what ``ros2 run`` runs) with
``--ros-args --params-file``; prefixes each node's output with its name; forwards SIGINT /
SIGTERM to every node; restarts nodes marked ``respawn``; and exits non-zero, naming the
node, if a node dies or does not join the ROS graph in time. At start and before every respawn
it removes the shared-memory segments dead Fast DDS processes left (:mod:`.shm_clean`).

With ``--episodes N`` (a simulated graph with a policy) it runs N evaluation episodes through
the graph once every node has joined (:mod:`rl100_bringup.run_episodes`), stops the graph and
prints the results table; the exit code is 0 when all N episodes ran.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import yaml

from . import graph as graph_mod
from . import shm_clean

STOP_TIMEOUT_S = 10.0
# a node ended by its own SIGALRM after its cleanup: rclpy's destroy_node hung on the node handle
# (rl100_ros.node_main.DESTROY_HUNG_CODE); the stop asked for, so clean, with a warning
DESTROY_HUNG_CODE = -signal.SIGALRM
# respawn backoff: 0.5 s after the first death, doubling up to 30 s; a node that ran this long
# before dying starts again at the shortest delay (a crash loop slows down, a rare crash does not)
RESPAWN_DELAY_S = (0.5, 30.0)
RESPAWN_STABLE_S = 60.0


class NodeProcess:
    """One node's process, its command line and its output pump."""

    def __init__(self, node: graph_mod.ResolvedNode, workdir: str):
        self.node = node
        self.command = self._command(node, workdir)
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.started_at = 0.0  # time.monotonic() of the last start
        self.respawn_at: float | None = None  # when a dead respawning node starts again
        self.delay = RESPAWN_DELAY_S[0]

    @staticmethod
    def _command(node: graph_mod.ResolvedNode, workdir: str) -> list:
        from ament_index_python.packages import get_package_prefix, PackageNotFoundError
        try:
            prefix = get_package_prefix(node.package)
        except PackageNotFoundError as exc:
            raise graph_mod.GraphError(
                f'node {node.name!r}: package {node.package!r} is not installed '
                '(did colcon build run, and is install/setup.bash sourced?)') from exc
        exe = os.path.join(prefix, 'lib', node.package, node.executable)
        if not os.access(exe, os.X_OK):
            raise graph_mod.GraphError(f'node {node.name!r}: no executable {exe}')
        overrides = os.path.join(workdir, f'{node.name}.params.yaml')
        with open(overrides, 'w', encoding='utf-8') as f:
            # '/**': this file goes to this one process only, whatever the node's namespace
            yaml.safe_dump({'/**': {'ros__parameters': node.parameters}}, f)
        cmd = [exe, '--ros-args', '-r', f'__node:={node.name}',
               '--params-file', node.params_file, '--params-file', overrides]
        for src, dst in node.remappings.items():
            cmd += ['-r', f'{src}:={dst}']
        return cmd

    def start(self) -> None:
        # own session: a terminal Ctrl-C reaches the supervisor only, which stops nodes in order
        self.started_at = time.monotonic()
        from rl100_ros.node_main import SUPERVISOR_PID_ENV

        # the pid: a node outliving this supervisor (SIGKILLed) stops itself (run_node)
        env = dict(os.environ, **{SUPERVISOR_PID_ENV: str(os.getpid())})
        self.proc = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, text=True, bufsize=1, env=env)
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()

    def _pump(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            sys.stdout.write(f'[{self.node.name}] {line}')
            sys.stdout.flush()

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)


@contextlib.contextmanager
def _observer():
    """A short-lived rclpy node that only looks at the ROS graph (node names)."""
    import rclpy
    from rclpy.node import Node
    from rclpy.signals import SignalHandlerOptions

    # no rclpy signal handlers: they would shut down every context on Ctrl-C, the episode
    # runner's too, before it could stop the robot and discard its open episode
    rclpy.init(args=['--ros-args', '-r', '__node:=rl100_up_observer'],
               signal_handler_options=SignalHandlerOptions.NO)
    node = Node('rl100_up_observer')
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def _seen(node, names: list, seconds: float) -> list:
    """Spin ``node`` up to ``seconds`` (less once all are seen); those of ``names`` visible."""
    import rclpy

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=min(0.1, max(0.0, deadline - time.monotonic())))
        if set(names) <= set(node.get_node_names()):
            break
    seen = set(node.get_node_names())
    return [n for n in names if n in seen]


def wait_for_graph(names: list, timeout: float, ready: list | None = None) -> list:
    """Wait until the nodes are up; return what is missing.

    Up: every name visible over DDS, and each of ``ready`` (default: all of ``names``) has
    announced on ``/rl100/ready`` that its constructor finished. A node that is visible but has
    not announced is reported as ``'NAME (starting)'``.
    """
    import rclpy
    from rl100_ros import qos, topics
    from std_msgs.msg import String

    ready = list(names if ready is None else ready)
    announced: set = set()
    with _observer() as node:
        node.create_subscription(String, topics.READY, lambda m: announced.add(m.data),
                                 qos.LATCHED)
        deadline = time.monotonic() + timeout
        while True:
            rclpy.spin_once(node, timeout_sec=0.1)
            seen = set(node.get_node_names())
            missing = [n if n not in ready or n not in seen else f'{n} (starting)'
                       for n in names if n not in seen or (n in ready and n not in announced)]
            if not missing or time.monotonic() >= deadline:
                return missing


def already_running(names: list, settle: float, timeout: float, log=print) -> list:
    """Names of this graph's nodes that something else already runs on this ROS domain.

    Two graphs on one domain answer each other's services and drive each other's robot (an
    episode runner's StartEpisode reaches the other recorder, the sim is reset from
    elsewhere...), so a second start is refused. Looks for ``settle`` s (DDS discovery); a graph
    that was just killed stays visible until its participants' DDS leases expire, so while
    names are seen this waits up to ``timeout`` s more for them to leave.
    """
    if settle <= 0:
        return []
    with _observer() as node:
        found = _seen(node, names, settle)
        deadline = time.monotonic() + timeout
        if found:
            log(f'[up] already on ROS_DOMAIN_ID {os.environ.get("ROS_DOMAIN_ID", "0")}: '
                f'{", ".join(found)}; waiting up to {timeout:.0f} s for them to leave')
        while found and time.monotonic() < deadline:
            found = _seen(node, names, 0.5)
    return found


STACK_DUMP_WAIT_S = 1.0  # s for a hung node to print its stacks (SIGUSR1) before SIGKILL


def clean_shared_memory() -> None:
    """Remove stale Fast DDS segments (of processes that died by a signal); say so if any."""
    try:
        result = shm_clean.clean()
    except OSError as exc:  # never a reason not to start a node
        print(f'[up] warning: shared-memory clean-up failed: {exc}', flush=True)
        return
    if result.removed:
        print(f'[up] {shm_clean.report(result)}', flush=True)


class Supervisor:

    def __init__(self, nodes: list, workdir: str):
        self.procs = [NodeProcess(n, workdir) for n in nodes]
        self.stopping = False

    def start(self) -> None:
        for p in self.procs:
            p.start()
            print(f'[up] started {p.node.name} (pid {p.proc.pid}): {" ".join(p.command)}',
                  flush=True)

    def poll(self) -> str | None:
        """Restart respawning nodes that died; return an error for one that must not die."""
        for p in self.procs:
            code = p.proc.poll()
            if code is None or self.stopping:
                continue
            if p.node.respawn:
                now = time.monotonic()
                if p.respawn_at is None:
                    if now - p.started_at >= RESPAWN_STABLE_S:
                        p.delay = RESPAWN_DELAY_S[0]
                    p.respawn_at = now + p.delay
                    print(f'[up] {p.node.name} exited with {code}; respawning in {p.delay:.1f} s '
                          f'(#{p.restarts + 1})', flush=True)
                    p.delay = min(2 * p.delay, RESPAWN_DELAY_S[1])
                elif now >= p.respawn_at:
                    p.restarts += 1
                    p.respawn_at = None
                    clean_shared_memory()
                    p.start()
            else:
                return f'node {p.node.name} exited unexpectedly with code {code}'
        return None

    def stop(self) -> dict:
        """SIGINT every node, wait, then SIGTERM / SIGKILL stragglers. Returns exit codes.

        Before the SIGKILL a straggler gets SIGUSR1: a node run by ``rl100_ros.node_main``
        prints its threads' stacks then, so the log shows where it hung.
        """
        self.stopping = True
        escalation = ((signal.SIGINT, STOP_TIMEOUT_S), (signal.SIGTERM, 3.0),
                      (signal.SIGKILL, 3.0))
        for sig, grace in escalation:
            if sig == signal.SIGKILL:
                hung = [p for p in self.procs if p.proc.poll() is None]
                for p in hung:
                    print(f'[up] {p.node.name} ignored SIGINT and SIGTERM: its stacks follow',
                          flush=True)
                    p.signal(signal.SIGUSR1)
                time.sleep(STACK_DUMP_WAIT_S if hung else 0.0)
            for p in self.procs:
                p.signal(sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(p.proc.poll() is None for p in self.procs):
                time.sleep(0.05)
            if all(p.proc.poll() is not None for p in self.procs):
                break
            print(f'[up] nodes still running after {signal.Signals(sig).name}', flush=True)
        return {p.node.name: p.proc.wait() for p in self.procs}


def _episodes_meta(graph, nodes: list, args) -> dict:
    """Check the graph can run episodes; what the results JSON records about the run."""
    packages = {n.package: n for n in nodes}
    if 'rl100_sim' not in packages:
        raise graph_mod.GraphError('--episodes needs the simulated robot (use_sim:=true)')
    policy = packages.get('rl100_policy_node')
    model = policy.parameters.get('model_path', '') if policy is not None else ''
    if not model:
        raise graph_mod.GraphError('--episodes needs a policy: this graph starts the policy '
                                   'node without a model (model:=none)')
    return {'graph': graph.name, 'launch_args': list(args.launch_args), 'model': model,
            'camera_check': 'rl100_camera.camera_check' in {f'{n.package}.{n.executable}'
                                                            for n in nodes}}


class EpisodesThread:
    """The episode runner beside the supervisor loop (which keeps watching the nodes)."""

    def __init__(self, args, meta: dict):
        from .run_episodes import evaluate  # rclpy messages: only when episodes are asked for

        self.cancel = threading.Event()
        self.report = None
        parameters = {'episodes': args.episodes, 'time_limit': float(args.time_limit),
                      'results_json': args.results_json, 'max_errors': args.max_errors,
                      'episodes_jsonl': args.episodes_jsonl,
                      'check_camera': bool(meta.get('camera_check'))}

        def target():
            self.report = evaluate(parameters, self.cancel, meta,
                                   log=lambda line: print(line, flush=True))

        self.thread = threading.Thread(target=target, name='episodes', daemon=True)
        self.thread.start()

    def done(self) -> bool:
        return not self.thread.is_alive()

    def finish(self):
        """Stop the run if it is still going (its open episode is aborted); its Report."""
        from .run_episodes import Report

        self.cancel.set()
        self.thread.join(timeout=30.0)
        if self.report is None:
            return Report([], '', 'the episode runner did not stop within 30 s')
        return self.report


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='python -m rl100_bringup.up', description=__doc__.splitlines()[0])
    parser.add_argument(
        'graph', help='graph name (config/<graph>.graph.yaml) or path to a graph file')
    parser.add_argument('launch_args', nargs='*', metavar='NAME:=VALUE', help='launch arguments')
    parser.add_argument('--duration', type=float, default=0.0,
                        help='stop the graph after this many seconds (0 = run until Ctrl-C, '
                        'or until the episodes are done); with --episodes: fail if they are '
                        'not done by then')
    parser.add_argument('--episodes', type=int, default=0,
                        help='run this many evaluation episodes through the graph (simulated '
                        'robot and a policy needed), then stop it and print the results')
    parser.add_argument('--time-limit', type=float, default=0.0,
                        help='with --episodes: simulated seconds per episode (0 = the time '
                        'limit of the task)')
    parser.add_argument('--max-errors', type=int, default=0,
                        help='with --episodes: episodes that may end in a stack error (a node '
                        'died and respawns) before the run stops; each counts as a failure')
    parser.add_argument('--episodes-jsonl', default='',
                        help='with --episodes: append one JSON line per episode as it finishes')
    parser.add_argument('--results-json', default='',
                        help='with --episodes: also write the results to this JSON file')
    parser.add_argument('--ready-timeout', type=float, default=30.0,
                        help='seconds for every node to join the ROS graph')
    parser.add_argument('--conflict-check', type=float, default=2.0, metavar='S',
                        help='look this many seconds for nodes of the same names already on '
                        'this ROS domain (another graph, or one still shutting down) and refuse '
                        'to start beside them (0 = do not look)')
    parser.add_argument('--conflict-wait', type=float, default=25.0, metavar='S',
                        help='while such nodes are seen, wait this long for them to leave '
                        '(a killed graph stays visible until its DDS leases expire)')
    parser.add_argument(
        '--show-args', action='store_true', help='list the launch arguments and exit')
    args = parser.parse_intermixed_args(argv)  # NAME:=VALUE before or after the options
    # before this process's own participant and the nodes' (they inherit it): DDS transports
    os.environ.update(graph_mod.dds_environment())

    try:
        graph = graph_mod.load(args.graph)
        if args.show_args:
            for arg in graph.arguments.values():
                print(f"    '{arg.name}':\n        {arg.description}\n"
                      f"        (default: '{arg.default}')")
            return 0
        nodes = graph.resolve(graph_mod.parse_launch_args(args.launch_args))
        if args.episodes < 0:
            raise graph_mod.GraphError(f'--episodes must be >= 0, got {args.episodes}')
        if args.episodes:
            episodes_meta = _episodes_meta(graph, nodes, args)
        workdir = tempfile.TemporaryDirectory(prefix=f'rl100_up_{graph.name}_')
        supervisor = Supervisor(nodes, workdir.name)
    except graph_mod.GraphError as exc:
        print(f'[up] error: {exc}', file=sys.stderr)
        return 2

    names = [n.name for n in nodes]
    clash = already_running(names, args.conflict_check, args.conflict_wait)
    if clash:
        workdir.cleanup()
        print(f'[up] error: nodes of graph {graph.name!r} already run on ROS_DOMAIN_ID '
              f'{os.environ.get("ROS_DOMAIN_ID", "0")}: {", ".join(clash)} — stop that graph '
              f'first, or start this one on another ROS_DOMAIN_ID', file=sys.stderr)
        return 2

    stop_requested = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop_requested.set())

    clean_shared_memory()
    supervisor.start()
    t0 = time.monotonic()
    missing = wait_for_graph(names, args.ready_timeout,
                             [n.name for n in nodes if n.announces_ready])
    error = supervisor.poll()
    if missing and not error:
        error = (f'nodes not up after {args.ready_timeout:.0f} s (not in the ROS graph, or '
                 f'still starting): {", ".join(missing)}')
    if not error:
        print(f'[up] graph {graph.name!r} up: {", ".join(n.name for n in nodes)} '
              f'({time.monotonic() - t0:.1f} s)', flush=True)
    episodes = None
    if args.episodes and not error:
        episodes = EpisodesThread(args, episodes_meta)
    while not error and not stop_requested.is_set():
        if episodes is not None and episodes.done():
            break
        if args.duration and time.monotonic() - t0 >= args.duration:
            if episodes is not None:
                error = f'the episodes did not finish within --duration {args.duration:g} s'
            break
        error = supervisor.poll()
        stop_requested.wait(0.1)
    if episodes is not None:
        if not episodes.done():
            print('[up] stopping the episodes', flush=True)
        report = episodes.finish()
        if report.error and not error:
            error = report.error

    codes = supervisor.stop()
    workdir.cleanup()
    clean = {0, -signal.SIGINT, 128 + signal.SIGINT, DESTROY_HUNG_CODE}
    unclean = {name: code for name, code in codes.items() if code not in clean}
    print(f'[up] stopped: {", ".join(f"{n}={c}" for n, c in codes.items())}', flush=True)
    for name in (n for n, c in codes.items() if c == DESTROY_HUNG_CODE):
        print(f"[up] warning: {name} ended by its own SIGALRM: its cleanup ran, then rclpy's "
              'destroy_node hung on the node handle', file=sys.stderr, flush=True)
    if episodes is not None:
        print(f'\n{report.text}\n', flush=True)
    if error:
        print(f'[up] error: {error}', file=sys.stderr)
        return 1
    if unclean:
        print(f'[up] error: unclean exit of {unclean}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
