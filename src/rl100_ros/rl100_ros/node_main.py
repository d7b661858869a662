"""One way to run a node process: init, spin, and a clean shutdown on SIGINT / SIGTERM.

Humble has no ``with rclpy.init()``, so the try/finally is written out once here.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
import rclpy.logging
from rclpy.node import Node
from std_msgs.msg import String

from . import qos, topics

SHUTDOWN_GRACE_S = 0.5  # s an error from spin may precede the context's shutdown by a signal
DESTROY_TIMEOUT_S = 5.0  # s destroy_node may take before SIGALRM ends the process
# the exit status of a node process ended that way: its stop was asked for and its own cleanup
# ran, only rclpy's teardown of the node handle hung (see _destroy_within)
DESTROY_HUNG_CODE = -signal.SIGALRM
# set by a supervisor (``rl100_bringup.up``) in its nodes' environment: its pid. A node whose
# parent is no longer that process (the supervisor was SIGKILLed or crashed) stops itself
SUPERVISOR_PID_ENV = 'RL100_SUPERVISOR_PID'
SUPERVISOR_POLL_S = 0.5


def _shut_down_within(seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while rclpy.ok():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class SideExecutors:
    """Spins each of ``node.side_nodes`` with a SingleThreadedExecutor of its own, in a thread.

    How a node keeps a slow callback (a service that loads a model) out of its control
    callbacks' way: the slow one lives on a side node. rclpy's MultiThreadedExecutor, the other
    way, busy-waits while a mutually exclusive callback group is busy (its wait set returns
    the group's ready entities at once): in the lockstep graph that cost the policy node 3/4 of
    a core and the graph 3/4 of its speed (BENCHMARKS, "the policy node's executor").
    """

    def __init__(self, node: Node):
        self.executors, self.threads = [], []
        for side in getattr(node, 'side_nodes', ()):
            executor = SingleThreadedExecutor(context=side.context)
            executor.add_node(side)
            thread = threading.Thread(target=self._spin, args=(executor,), daemon=True,
                                      name=f'spin {side.get_name()}')
            thread.start()
            self.executors.append(executor)
            self.threads.append(thread)

    @staticmethod
    def _spin(executor) -> None:
        try:
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except Exception:  # a shutdown racing a callback: see run_node; otherwise a failure
            if not _shut_down_within(SHUTDOWN_GRACE_S):
                raise

    def close(self, timeout: float = SHUTDOWN_GRACE_S) -> None:
        """Stop the executors and wait for their threads; the nodes stay (their owner's)."""
        for executor in self.executors:
            executor.shutdown(timeout_sec=timeout)
        for thread in self.threads:
            thread.join(timeout=timeout)


def _destroy_within(node: Node, seconds: float) -> None:
    """``node.destroy_node()``, but not forever: past ``seconds`` the kernel ends the process.

    Now and then (1 of 13 graph runs here; once in a CI run, the recorder) rclpy's own part of
    it -- the node handle, and with the last node the DDS participant -- never returns after a
    stop signal. It blocks in C++ *holding the GIL*, so no Python thread, timer or signal
    handler can run any more: a watchdog thread never wakes (that was measured: the main
    thread could not even return from starting it). What still works is the kernel: SIGALRM
    with its default action, armed with ``setitimer`` just before, terminates the process.
    The node's own cleanup (an override's part before ``super().destroy_node()``: the recorder
    closing its bag) must take well under ``seconds``; by then it has run. The exit status is
    then ``-SIGALRM``, which a supervisor reads as a clean stop with a warning
    (:data:`DESTROY_HUNG_CODE`). Outside the main thread (a node run embedded) there is no
    timer: Python lets only the main thread set signal handlers.
    """
    if threading.current_thread() is not threading.main_thread():  # signals are the main thread's
        node.destroy_node()
        return
    previous = signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        node.destroy_node()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _stop_without_supervisor(pid: int) -> None:
    """The supervisor is gone: output to nowhere instead of its closed pipe, then SIGINT.

    The node's stdout and stderr were pipes the supervisor read; writing to them now fails
    (BrokenPipeError in Python), which must not turn the stop into a crash halfway through the
    node's cleanup. ROS's log file (``~/.ros/log``) still gets the reason.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    try:
        rclpy.logging.get_logger('run_node').error(
            f'supervisor (pid {pid}) is gone: stopping this node')
    except Exception:  # noqa: BLE001 - the stop below matters more than the message
        pass
    os.kill(os.getpid(), signal.SIGINT)


def watch_supervisor(environ=os.environ, period: float = SUPERVISOR_POLL_S):
    """Stop this process once its supervisor (``RL100_SUPERVISOR_PID``) is gone.

    A daemon thread checks the parent pid every ``period`` s; when it is no longer the
    supervisor, it sends this process SIGINT: the same clean shutdown as Ctrl-C.

    A supervisor that is SIGKILLed cannot stop its nodes; without this they would keep running
    (the safety node still commanding, the recorder still recording) with nobody to stop them.
    The parent is checked rather than the pid's existence: a reused pid cannot fool it. Returns
    the thread, or None when no supervisor is named (a node started by hand or by ``launch``).
    """
    value = environ.get(SUPERVISOR_PID_ENV, '')
    if not value:
        return None
    try:
        pid = int(value)
    except ValueError:
        print(f'[WARN] {SUPERVISOR_PID_ENV}={value!r} is not a pid: not watching the supervisor',
              file=sys.stderr, flush=True)
        return None

    def watch():
        while os.getppid() == pid:
            time.sleep(period)
        _stop_without_supervisor(pid)

    thread = threading.Thread(target=watch, daemon=True, name='watch supervisor')
    thread.start()
    return thread


def _handle_sigterm() -> None:
    """Make SIGTERM the same clean stop as SIGINT.

    rclpy (Humble and later) handles SIGTERM itself when ``rclpy.init`` installs its handlers
    (the default): its handler wakes the executor's wait, so a node idle in ``spin`` (no
    message, no timer due: a recorder between episodes, any node on a stopped ``/clock``)
    stops at once. A Python-level handler must not replace it: Python runs signal handlers
    only in the main thread between bytecodes, and that thread is blocked in the wait, so an
    idle node would ignore SIGTERM until its supervisor's SIGKILL (measured: the recorder of
    a graph whose clock had stopped). Only an rclpy without SIGTERM handling gets one.
    """
    try:
        from rclpy.signals import get_current_signal_handlers_options, SignalHandlerOptions
        handled = get_current_signal_handlers_options() in (SignalHandlerOptions.ALL,
                                                            SignalHandlerOptions.SIGTERM)
    except ImportError:
        handled = False
    if not handled:
        signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())


def run_node(factory: Callable[[], Node], args: list[str] | None = None) -> int:
    """Create the node from ``factory`` and spin it until shutdown.

    The node is spun by a SingleThreadedExecutor; its ``side_nodes``, if any, each by one of
    their own in a thread (:class:`SideExecutors`: a slow service beside a control loop).
    SIGTERM (what a supervisor or ``docker stop`` sends) is turned into the same clean
    shutdown as SIGINT. SIGUSR1 prints every thread's Python stack to stderr without stopping
    the node (what a supervisor asks for before it SIGKILLs a node that does not stop: the log
    then says where it hung). Once the node is constructed (parameters checked, model loaded,
    simulator running) its name goes out on ``/rl100/ready`` (:func:`announce_ready`): seeing
    the node in the graph only says its constructor has begun. Returns a process exit code.
    """
    try:
        faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
    except (AttributeError, OSError, ValueError):  # no real stderr (embedded, captured)
        pass
    rclpy.init(args=args)
    _handle_sigterm()
    watch_supervisor()
    node = executor = side = None
    try:
        try:
            node = factory()
        except Exception as exc:  # a bad parameter or file: say which, exit 1, no traceback
            if _shut_down_within(SHUTDOWN_GRACE_S):
                # SIGINT / SIGTERM during start-up: whatever the constructor raised on the way
                # out (a publisher on a dead context...) is the stop that was asked for
                print(f'{getattr(factory, "__name__", "node")} stopped during start-up',
                      file=sys.stderr, flush=True)
                return 0
            print(f'[ERROR] {getattr(factory, "__name__", "node")} failed to start: '
                  f'{exc.__class__.__name__}: {exc}', file=sys.stderr, flush=True)
            return 1
        announce_ready(node)
        # an executor of our own, never rclpy's global one: on Humble (rclpy 3.3) shutting the
        # context down from the SIGTERM handler shuts the global executor down, which waits for
        # the callback the signal interrupted -- in the same thread: a deadlock (ros2/rclpy#944,
        # fixed from 3.6). A local executor only gets woken by the shutdown.
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        side = SideExecutors(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # SIGINT / SIGTERM shut the context down while a callback was taking a message: rclpy
        # then raises from inside spin (e.g. 'Unable to convert call argument'), sometimes a
        # moment before the context reads as shut down. That is the clean stop that was asked
        # for; anything raised while the context stays fine is a failure.
        if not _shut_down_within(SHUTDOWN_GRACE_S):
            raise
    finally:
        if side is not None:
            side.close()
        if executor is not None:
            executor.shutdown(timeout_sec=SHUTDOWN_GRACE_S)
        if node is not None:
            _destroy_within(node, DESTROY_TIMEOUT_S)
        rclpy.try_shutdown()
    return 0


def announce_ready(node: Node):
    """Publish the node's name on ``/rl100/ready``; returns the publisher (it lives with the node).

    Latched (transient local), so a supervisor that subscribes later still sees it.
    """
    pub = node.create_publisher(String, topics.READY, qos.LATCHED)
    pub.publish(String(data=node.get_name()))
    return pub
