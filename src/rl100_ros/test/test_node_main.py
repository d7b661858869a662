"""run_node: a node that fails to construct exits 1 with a one-line reason; diagnostics publish."""

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
import rclpy
from rclpy.node import Node
from rl100_ros import diagnostics
from rl100_ros.node_main import run_node


def test_failed_construction_returns_1_and_names_the_error(capsys):
    def broken_node():
        raise ValueError('model_path /nope.onnx does not exist')

    assert run_node(broken_node, args=[]) == 1
    err = capsys.readouterr().err
    assert 'broken_node failed to start: ValueError: model_path /nope.onnx does not exist' in err
    assert not rclpy.ok()  # shut down again


def test_a_stop_signal_during_construction_is_a_clean_stop(capsys):
    def interrupted_node():
        rclpy.try_shutdown()  # what SIGINT / SIGTERM do while the constructor still runs
        raise RuntimeError("Failed to create publisher: rcl node's context is invalid")

    assert run_node(interrupted_node, args=[]) == 0
    err = capsys.readouterr().err
    assert 'interrupted_node stopped during start-up' in err
    assert 'failed to start' not in err


def test_diagnostics_reach_a_subscriber():
    rclpy.init()
    try:
        source = Node('diag_source')
        sink = Node('diag_sink')
        got = []
        sink.create_subscription(DiagnosticArray, '/diagnostics', got.append, 10)
        diagnostics.Diagnostics(source, 'unit', lambda: (diagnostics.WARN, 'slow', {'rate': 9.5}),
                                period=0.05)
        executor = rclpy.executors.SingleThreadedExecutor()
        executor.add_node(source)
        executor.add_node(sink)
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert got, 'no DiagnosticArray received'
        status = got[0].status[0]
        assert status.name == 'diag_source: unit'
        assert status.level == diagnostics.WARN and status.message == 'slow'
        assert [(kv.key, kv.value) for kv in status.values] == [('rate', '9.5')]
    finally:
        rclpy.try_shutdown()


def test_rate_meter_reads_the_rate_over_the_last_period():
    meter = diagnostics.RateMeter()
    assert meter.rate(10, 100.0) is None  # first read: no period yet
    assert meter.rate(30, 102.0) == 10.0  # 20 events in 2 s
    assert meter.rate(30, 102.0) is None  # the clock did not move (paused sim time)
    assert meter.rate(31.5, 103.0) == 1.5  # floats too: simulated s per wall s
    assert diagnostics.rate_value(None) == 'n/a' and diagnostics.rate_value(9.996) == '10.00'


class _Raising(Node):
    """Raises from a timer callback, after shutting the context down when ``shutdown``.

    ``shutdown='late'``: the shutdown comes 0.1 s after the error (a signal's shutdown racing
    a callback that already failed).
    """

    def __init__(self, shutdown):
        super().__init__('raising_node')

        def tick():
            if shutdown == 'late':
                threading.Timer(0.1, rclpy.try_shutdown).start()
            elif shutdown:
                rclpy.try_shutdown()  # what SIGINT / SIGTERM do, under a running callback
            raise RuntimeError('take failed')

        self.create_timer(0.01, tick)


def test_an_error_raised_while_shutting_down_is_a_clean_stop():
    assert run_node(lambda: _Raising(shutdown=True), args=[]) == 0
    assert run_node(lambda: _Raising(shutdown='late'), args=[]) == 0


def test_an_error_raised_while_running_is_not_hidden():
    try:
        run_node(lambda: _Raising(shutdown=False), args=[])
    except RuntimeError as exc:
        assert 'take failed' in str(exc)
    else:
        raise AssertionError('the callback error was swallowed')
    assert not rclpy.ok()


NODE_SCRIPT = """
import rclpy.node
from rl100_ros.node_main import run_node

class Idle(rclpy.node.Node):
    def __init__(self):
        super().__init__('idle_for_stack_dump')
        print('up', flush=True)

raise SystemExit(run_node(Idle))
"""


def test_sigusr1_prints_the_stacks_and_the_node_keeps_running(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    env = dict(os.environ, ROS_DOMAIN_ID='231')  # localhost-only as the pytest process (conftest)
    err = open(tmp_path / 'stderr', 'w+')
    proc = subprocess.Popen([sys.executable, '-c', NODE_SCRIPT], stdout=subprocess.PIPE,
                            stderr=err, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == 'up'
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10.0
        while 'File ' not in (tmp_path / 'stderr').read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        dump = (tmp_path / 'stderr').read_text()
        assert 'most recent call first' in dump and 'File ' in dump, dump
        assert proc.poll() is None  # a stack dump does not stop the node
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        err.close()


HANGING_SCRIPT = """
import ctypes
import rclpy.node
from rl100_ros import node_main

class Stuck(rclpy.node.Node):
    def __init__(self):
        super().__init__('stuck_in_destroy')
        self.timer = self.create_timer(0.05, self.spinning)

    def spinning(self):  # 'up' once spinning: a SIGINT now is a stop, not a start-up one
        self.timer.cancel()
        print('up', flush=True)

    def destroy_node(self):
        print('cleaned up', flush=True)  # the node's own cleanup runs
        # then rclpy's part blocks in C holding the GIL (PyDLL keeps it): no Python runs again
        ctypes.PyDLL(None).sleep(60)
        print('never', flush=True)

node_main.DESTROY_TIMEOUT_S = 1.0
raise SystemExit(node_main.run_node(Stuck))
"""


def test_a_destroy_node_blocked_holding_the_gil_does_not_hang_the_process(tmp_path):
    """What CI once met in the recorder: rclpy's destroy_node blocked in C++ with the GIL held.

    A watchdog thread cannot run then; the kernel's SIGALRM ends the process after the node's
    own cleanup, with the status a supervisor reads as a clean stop (``DESTROY_HUNG_CODE``).
    """
    import os
    import signal
    import subprocess
    import sys

    from rl100_ros.node_main import DESTROY_HUNG_CODE

    env = dict(os.environ, ROS_DOMAIN_ID='231')
    proc = subprocess.Popen([sys.executable, '-c', HANGING_SCRIPT], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    t0 = time.monotonic()
    try:
        assert proc.stdout.readline().strip() == 'up'
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == DESTROY_HUNG_CODE == -signal.SIGALRM, err
    assert 'cleaned up' in out and 'never' not in out
    assert time.monotonic() - t0 < 15.0  # the 1 s alarm, not the 60 s sleep


def test_a_destroy_node_that_returns_disarms_the_alarm():
    """After a normal destroy_node no alarm is left pending (the process lives on past it)."""
    import signal

    from rl100_ros.node_main import _destroy_within

    class Quick:
        def destroy_node(self):
            self.destroyed = True

    node, handler = Quick(), signal.getsignal(signal.SIGALRM)
    _destroy_within(node, 0.2)
    assert node.destroyed
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) == handler
    time.sleep(0.4)  # an alarm still armed would end this test process here


IDLE_NODE = """
import sys
from rclpy.node import Node
from rl100_ros.node_main import run_node

class Idle(Node):  # sim time and no /clock: no timer ever fires, spin waits for good
    def __init__(self):
        super().__init__('idle', automatically_declare_parameters_from_overrides=True)
        self.create_timer(0.1, lambda: None)
        print('constructed', flush=True)

sys.exit(run_node(Idle, ['--ros-args', '-p', 'use_sim_time:=true']))
"""


def _start_idle(env):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, '-c', IDLE_NODE], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout.readline().strip() == 'constructed', proc.stdout.read()
    time.sleep(0.5)  # in spin now
    return proc


def test_sigterm_stops_a_node_idle_in_spin():
    """SIGTERM stops a node whose main thread is blocked in the executor's wait.

    A Python-level handler would wait for that thread: a stop that hangs until the supervisor's
    SIGKILL (the recorder of a graph whose clock had stopped did).
    """
    import os
    import signal
    import subprocess

    proc = _start_idle(dict(os.environ))
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(10) == 0
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError('an idle node ignored SIGTERM') from None
    finally:
        proc.stdout.close()


def test_a_node_stops_when_its_supervisor_is_gone(tmp_path):
    """The node's parent (a shell standing in for ``up``) exits: the orphan stops itself."""
    import os
    import subprocess
    import sys

    from rl100_ros.node_main import SUPERVISOR_PID_ENV

    out = tmp_path / 'node.log'
    script = (f'{SUPERVISOR_PID_ENV}=$$ "{sys.executable}" -c "$IDLE" > "{out}" 2>&1 & echo $!; '
              f'until grep -q constructed "{out}"; do sleep 0.1; done; sleep 0.5')
    shell = subprocess.run(['sh', '-c', script], env=dict(os.environ, IDLE=IDLE_NODE),
                           capture_output=True, text=True, timeout=60)
    pid = int(shell.stdout.split()[0])

    def running():
        try:
            with open(f'/proc/{pid}/stat') as f:  # an orphan's exit may stay a zombie here
                return f.read().rsplit(') ', 1)[-1][:1] != 'Z'
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 10
    while running() and time.monotonic() < deadline:
        time.sleep(0.1)
    if running():
        os.kill(pid, 9)
        raise AssertionError(f'the node outlived its supervisor:\n{out.read_text()}')
