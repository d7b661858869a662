"""One orange_juicer graph that stays up while the RL loop swaps models in (issue: closed loop).

The loop's rounds need episodes run by a new model each time. :class:`StackSession` starts the
graph once (``python -m rl100_bringup.up GRAPH``, the recorder writing into one directory) and,
for every batch of episodes:

1. hot-swaps the model into the running policy node with ``LoadPolicy`` (the sha256 from the
   model card is required, so a file that changed on disk is refused);
2. runs the episodes with the episode runner of ``run_episodes`` in this process, the sim
   robot's ``seed`` parameter set to the batch's first seed (the same evaluation scenes every
   round) and ``expect_model`` set to the swapped-in model, so an episode that a respawned
   policy node ran with its start-up model is a stack error, not a silent result;
3. returns ``up --results-json``'s content: one record per episode with its bag.

With ``operator=True`` the graph starts with the sim robot's scripted operator and the safety
node taking absolute operator targets (``scripted_operator:=true teleop_device:=pose``); each
batch then switches the operator on (collection: it takes over near failure, the steps are
flagged as intervention) or off (evaluation) through the sim robot's ``scripted_operator``
parameter.

Between batches the sim robot is paused (its ``paused`` parameter): a lockstep graph otherwise
keeps stepping and inferring at full speed and takes the CPU from the training beside it.

The graph is started with ``model:=`` the first model asked for and dies with this process
(``PR_SET_PDEATHSIG``: a killed loop leaves no graph behind; the rerun starts a new one).
A graph that exits, or a batch that does not finish within ``run_timeout``, raises
:class:`StackError` with the tail of the graph's log.
"""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time

from rl100.export.card import model_id as card_model_id
from rl100.export.card import sha256_file

from .episodes import StackError

RESULTS = 'episodes.json'
NOT_READY = 'before the first episode'  # how the runner's readiness failures start
_PR_SET_PDEATHSIG = 1


def model_id(policy_onnx: Path) -> tuple[str, str]:
    """``(id, sha256)`` the policy node reports for this file (``<file>:<sha256[:12]>``)."""
    sha = sha256_file(policy_onnx)
    return card_model_id(policy_onnx, sha), sha


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def call_service(srv_type, name: str, request, owner: str, timeout: float = 30.0):
    """One service call from a ROS context of its own; the response (StackError: no answer)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(args=[], context=context)
    node = None
    try:
        node = rclpy.create_node('stack_session_client', context=context)
        client = node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout):
            raise StackError(f'{name} is not available after {timeout:g} s: is {owner} running?')
        future = client.call_async(request)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        executor.spin_until_future_complete(future, timeout_sec=timeout)
        executor.shutdown(timeout_sec=1.0)
        if not future.done():
            raise StackError(f'{owner} did not answer {name} within {timeout:g} s')
        return future.result()
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=context)


def set_parameters(node_name: str, values: dict, timeout: float = 30.0) -> None:
    """Set parameters of a running node (SetParameters); StackError naming a refused one."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    request = SetParameters.Request(parameters=[
        Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
    response = call_service(SetParameters, f'/{node_name}/set_parameters', request, node_name,
                            timeout)
    for name, result in zip(values, response.results, strict=False):
        if not result.successful:
            raise StackError(f'{node_name} refused {name}={values[name]!r}: {result.reason}')


def load_policy(policy_onnx: Path, sha256: str = '', timeout: float = 60.0) -> str:
    """LoadPolicy on the running policy node; the model id it runs now (StackError: refused)."""
    from rl100_msgs.srv import LoadPolicy
    from rl100_ros import topics

    request = LoadPolicy.Request(path=str(Path(policy_onnx).resolve()), expected_sha256=sha256)
    response = call_service(LoadPolicy, topics.LOAD_POLICY, request, 'the policy node', timeout)
    if not response.accepted:
        raise StackError(f'the policy node refused {policy_onnx}: {response.message} '
                         f'(still running {response.model_id or "no model"})')
    return response.model_id


class StackSession:
    """A long-running graph; ``run`` has the signature of ``stack_loop.StackEpisodes.run``.

    ``record_dir``: where the recorder writes every bag of the session; ``extra``: more launch
    arguments (``key:=value``); ``run_timeout``: wall seconds for one batch of episodes;
    ``time_limit``: simulated seconds per episode (0: the task's own limit); ``operator``: start
    the sim robot's scripted operator (switched per batch by ``run(..., operator=)``).
    """

    def __init__(self, record_dir: Path, graph: str = 'orange_juicer', extra: tuple = (),
                 run_timeout: float = 3600.0, ready_timeout: float = 120.0,
                 log_path: Path | None = None, env: dict | None = None,
                 time_limit: float = 0.0, operator: bool = False, sim_node: str = 'sim_robot'):
        self.record_dir = Path(record_dir)
        self.graph, self.extra = graph, tuple(extra)
        self.run_timeout, self.ready_timeout = run_timeout, ready_timeout
        self.log_path = Path(log_path) if log_path else self.record_dir.parent / 'graph.log'
        self.env = env
        self.time_limit = float(time_limit)
        self.operator, self.sim_node = bool(operator), sim_node
        self._operator_on: bool | None = None  # as last set on the sim robot
        self.timed_out = False
        self.proc: subprocess.Popen | None = None
        self.running_model = ''  # model id the policy node runs, as LoadPolicy answered
        self.swaps = 0  # LoadPolicy calls accepted

    # --- the graph process -------------------------------------------------------------------
    def start(self, policy_onnx: Path) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.record_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, '-m', 'rl100_bringup.up', self.graph,
               f'model:={Path(policy_onnx).resolve()}',
               f'record_dir:={self.record_dir.resolve()}', *self.extra,
               *(('scripted_operator:=true', 'teleop_device:=pose') if self.operator else ()),
               '--ready-timeout', str(self.ready_timeout)]
        log = open(self.log_path, 'a')  # noqa: SIM115 - the child keeps writing to it
        log.write(f'\n# {time.strftime("%Y-%m-%d %H:%M:%S")} {" ".join(cmd)}\n')
        log.flush()
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent,
            env=dict(self.env if self.env is not None else os.environ))
        log.close()
        self.running_model = model_id(policy_onnx)[0]
        self._operator_on = self.operator

    def close(self, timeout: float = 30.0) -> int | None:
        """Stop the graph (SIGINT, then SIGKILL after ``timeout``); its exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return proc.returncode

    def __enter__(self) -> 'StackSession':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return '\n'.join(self.log_path.read_text(errors='replace').splitlines()[-lines:])
        except OSError:
            return '(no graph log)'

    def _check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise StackError(f'the {self.graph} graph is not running (exit code {code}):\n'
                             f'{self._log_tail()}')

    # --- a batch of episodes ---------------------------------------------------------------------
    def swap(self, policy_onnx: Path) -> str:
        """Make the policy node run ``policy_onnx`` (LoadPolicy unless it already does)."""
        wanted, sha = model_id(policy_onnx)
        if wanted != self.running_model:
            self._check_alive()
            self.running_model = load_policy(policy_onnx, sha)
            self.swaps += 1
        return self.running_model

    def run(self, policy_onnx: Path, out_dir: Path, n_episodes: int, seed: int,
            operator: bool = False, time_limit: float | None = None) -> dict:
        """Run a batch; ``operator``: the scripted operator watches (session made with it)."""
        from .run_episodes import evaluate

        if operator and not self.operator:
            raise StackError('this session was started without the scripted operator')
        self.start(policy_onnx)
        running = self.swap(policy_onnx)
        sim = {'paused': False}
        if self.operator and operator != self._operator_on:
            sim['scripted_operator'] = bool(operator)
        set_parameters(self.sim_node, sim, timeout=self.ready_timeout)  # may have just started
        self._operator_on = operator if self.operator else self._operator_on
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        results = out_dir / RESULTS
        cancel = threading.Event()
        watchdog = threading.Thread(target=self._watch, args=(cancel,), daemon=True)
        watchdog.start()
        lines: list = []
        parameters = {
            'episodes': int(n_episodes), 'first_seed': int(seed), 'expect_model': running,
            'results_json': str(results), 'ready_timeout': float(self.ready_timeout),
            'time_limit': self.time_limit if time_limit is None else float(time_limit)}
        meta = {'graph': self.graph, 'model': running, 'session': True,
                'operator': bool(operator)}
        try:
            for attempt in (1, 2):
                report = evaluate(parameters, cancel=cancel, meta=meta, log=lines.append)
                # a runner that saw nothing of a graph that is up: its fresh DDS participant
                # may have missed discovery (seen once under heavy load) -- one more try
                if attempt == 1 and report.error.startswith(NOT_READY) and not report.results \
                        and not cancel.is_set():
                    lines.append(f'[session] retrying once: {report.error}')
                    continue
                break
        finally:
            cancel.set()
            watchdog.join(timeout=2.0)
            self._pause()
        (out_dir / 'episodes.log').write_text('\n'.join(lines + [report.text]) + '\n')
        if report.error:
            self._check_alive()
            if self.timed_out:
                raise StackError(f'{n_episodes} episodes of {running} did not finish within '
                                 f'{self.run_timeout:g} s')
            raise StackError(f'{n_episodes} episodes of {running} stopped: {report.error}')
        return json.loads(results.read_text())

    def _pause(self) -> None:
        """Between batches the sim robot stops: the idle graph leaves the CPU to training."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            set_parameters(self.sim_node, {'paused': True}, timeout=10.0)
        except StackError as exc:  # costs CPU, not correctness: the next batch unpauses anyway
            print(f'[stack_session] could not pause the sim robot: {exc}', flush=True)

    def _watch(self, cancel: threading.Event) -> None:
        """Cancel the batch when the graph exits or the batch runs past ``run_timeout``."""
        deadline = time.monotonic() + self.run_timeout
        self.timed_out = False
        while not cancel.wait(0.5):
            if time.monotonic() > deadline:
                self.timed_out = True
            if self.timed_out or self.proc is None or self.proc.poll() is not None:
                cancel.set()
