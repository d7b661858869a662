"""Run evaluation episodes through the running simulated graph: ROS wiring over ``episodes``.

    python -m rl100_bringup.up orange_juicer --episodes 10       # starts the graph, runs this
    python -m rl100_bringup.run_episodes --ros-args -p episodes:=10 -p results_json:=r.json

The second form drives a graph that is already up (``up`` or ``ros2 launch`` with
``use_sim:=true`` in another terminal). Per episode it resets the sim robot
(``/rl100/sim/reset``), records the episode with the recorder (StartEpisode / EndEpisode with
the success label), lets the policy drive through the safety node (SetMode AUTONOMOUS), and
polls ``/rl100/sim/success`` until success or the task's time limit in simulated time (see
:mod:`rl100_bringup.episodes` for the phases). It listens to ``/rl100/action_chunk`` for the
achieved control rate and the inference latency the policy node reports. It prints one line
per episode and then the results table; the exit code is 0 when every episode ran (whatever
the success rate) and 1 when one could not (a service missing or silent, the sim stuck).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import json
import os
import signal
import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor
from rcl_interfaces.srv import SetParameters
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rl100_msgs.msg import ActionChunk, EpisodeEvent, SafetyStatus
from rl100_msgs.srv import EndEpisode, SetMode, StartEpisode
from rl100_ros import qos, topics
from rl100_ros.conversions import seconds
from rl100_sim.sim_robot_node import SIM_RESET, SIM_SUCCESS
from std_srvs.srv import Trigger

from .episode_summary import format_results, results_dict, summarize
from .episodes import (
    CancelledError,
    EpisodeError,
    EpisodeRunner,
    PolicySample,
    RunnerConfig,
    SimStatus,
    StackError,
)

MODES = {'hold': SafetyStatus.MODE_HOLD, 'autonomous': SafetyStatus.MODE_AUTONOMOUS}
SIM = 'the sim robot (a graph with use_sim:=true)'
POLICY_NODE = 'policy_node'
RECORDER_NODE = 'recorder_node'  # the graph's name for the recorder
RECORDED = (topics.ACTION_CHUNK, topics.INTERVENTION, topics.SAFETY_STATUS, topics.JOINT_STATES,
            topics.CURRENT_POSE)  # what an evaluation episode's bag must hold from its start
POLICY_KEYS = ('model', 'published', 'stale_ticks', 'last_stale')  # of its diagnostics


class RosStack:
    """The runner's calls as ROS service calls; every wait is bounded and names what failed."""

    def __init__(self, node: Node, service_timeout: float, cancel: threading.Event,
                 ready_timeout: float = 30.0, sim_node: str = 'sim_robot'):
        self._node, self._timeout, self._cancel = node, service_timeout, cancel
        self._sim_node = sim_node
        self._ready_timeout = ready_timeout
        self._clients: dict = {}
        self._samples: list = []
        self._chunks = 0  # received since start
        self._policy_status = 'no diagnostics from the policy node'
        self._lock = threading.Lock()
        node.create_subscription(ActionChunk, topics.ACTION_CHUNK, self._on_chunk, qos.RELIABLE)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith(f'{POLICY_NODE}:'):
                values = {kv.key: kv.value for kv in status.values}
                detail = ', '.join(f'{k} {values[k]}' for k in POLICY_KEYS if values.get(k))
                self._policy_status = f'{POLICY_NODE} says {status.message!r}' + (
                    f' ({detail})' if detail else '')

    def _on_chunk(self, msg: ActionChunk) -> None:
        sample = PolicySample(stamp=seconds(msg.header.stamp),
                              latency=float(msg.inference_latency),
                              period=seconds(msg.period),
                              model_id=str(msg.model_id))
        with self._lock:
            self._samples.append(sample)
            self._chunks += 1

    def sleep(self, seconds: float) -> None:
        if self._cancel.wait(seconds):
            raise CancelledError('interrupted')

    def _call(self, srv_type, name: str, owner: str, request, cancellable: bool = True,
              timeout: float | None = None):
        """Call a service and wait for its answer (``timeout``: s, default the service timeout).

        A stop request cancels the wait, unless ``cancellable`` is False: a call whose effect
        the run must know about once it is made.
        """
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = self._node.create_client(srv_type, name)
        # after a cancel only the clean-up calls come (hold, abort): short, not cancellable
        cleanup = self._cancel.is_set()
        timeout = min(self._timeout, 3.0) if cleanup else (timeout or self._timeout)
        deadline = time.monotonic() + timeout
        while not client.service_is_ready():
            if time.monotonic() > deadline:
                raise StackError(f'service {name} is not available after {timeout:g} s: '
                                 f'is {owner} running?')
            if cleanup or not cancellable:
                time.sleep(0.05)
            else:
                self.sleep(0.05)
        future = client.call_async(request)
        answered = threading.Event()
        future.add_done_callback(lambda _: answered.set())
        while not answered.wait(0.05):
            if cancellable and self._cancel.is_set() and not cleanup:
                client.remove_pending_request(future)
                raise CancelledError('interrupted')
            if time.monotonic() > deadline:
                client.remove_pending_request(future)
                raise StackError(f'{owner} did not answer {name} within {timeout:g} s')
        if future.exception() is not None:
            raise StackError(f'{name} failed: {future.exception()}')
        return future.result()

    # --- the Stack protocol of episodes.EpisodeRunner -------------------------------------------
    def wait_ready(self) -> None:
        """Wait until the recorder records and the policy acts.

        The recorder subscribes to a topic once it sees a publisher; a policy whose inputs never
        arrive never publishes an action. The action must be received during this wait: after a
        respawn the old policy's actions say nothing about the new one, and a node restarted
        after a kill -9 gets its first message seconds later (``python -m
        rl100_bringup.bench_rematch``). (That the recorder receives, not only subscribes, is
        checked by StartEpisode: :meth:`start_episode`.)
        """
        deadline = time.monotonic() + self._ready_timeout
        with self._lock:
            chunks0 = self._chunks
        while True:
            missing = [t for t in RECORDED if not any(
                info.node_name == RECORDER_NODE
                for info in self._node.get_subscriptions_info_by_topic(t))]
            with self._lock:
                acted = self._chunks > chunks0
            if not missing and acted:
                return
            if time.monotonic() > deadline:
                if missing:
                    raise StackError(f'{RECORDER_NODE} has not subscribed to {", ".join(missing)} '
                                     f'after {self._ready_timeout:g} s: is it running, with '
                                     'them in its topics parameter?')
                raise StackError(f'the policy node published no action in '
                                 f'{self._ready_timeout:g} s: {self._policy_status}')
            self.sleep(0.1)

    def set_mode(self, mode: str, reason: str) -> None:
        request = SetMode.Request(mode=MODES[mode], reason=f'episode runner: {reason}')
        response = self._call(SetMode, topics.SET_MODE, 'the safety node', request)
        if not response.accepted:
            raise StackError(f'the safety node refused mode {mode}: {response.message}')

    def reset_sim(self) -> None:
        response = self._call(Trigger, SIM_RESET, SIM, Trigger.Request())
        if not response.success:
            raise StackError(f'the sim robot refused the reset: {response.message}')

    def set_next_seed(self, seed: int) -> None:
        request = SetParameters.Request(parameters=[Parameter('seed', value=int(seed))
                                                    .to_parameter_msg()])
        name = f'/{self._sim_node}/set_parameters'
        result = self._call(SetParameters, name, SIM, request).results[0]
        if not result.successful:
            raise StackError(f'the sim robot refused seed {seed}: {result.reason}')

    def sim_status(self) -> SimStatus:
        return SimStatus.parse(self._call(Trigger, SIM_SUCCESS, SIM, Trigger.Request()).message)

    def check_camera(self) -> dict:
        # the node waits up to its check_timeout (10 s) for a still frame, then checks (~0.3 s)
        response = self._call(Trigger, topics.CHECK_CAMERA, 'the camera_check node '
                              '(camera_check:=true)', Trigger.Request(),
                              timeout=self._timeout + 20.0)
        if not response.success:
            return {'error': response.message}
        try:
            return json.loads(response.message)
        except ValueError:
            return {'error': f'check_camera answered {response.message[:200]!r}'}

    def start_episode(self, task: str, note: str) -> str:
        """Start recording once the recorder receives every recorded topic.

        A recorder that subscribed is not yet receiving (just respawned, it is matched with the
        publishers seconds later): it refuses naming the topics, and the call is repeated until
        the ready timeout.
        """
        deadline = time.monotonic() + self._ready_timeout
        request = StartEpisode.Request(task=task, note=note, require_topics=list(RECORDED))
        while True:
            response = self._call(StartEpisode, topics.START_EPISODE, 'the recorder', request)
            if response.accepted:
                return response.episode_id
            if not response.unheard_topics:
                raise StackError(f'the recorder refused StartEpisode: {response.message}')
            if time.monotonic() > deadline:
                unheard = ', '.join(response.unheard_topics)
                raise StackError(f'the recorder is not receiving {unheard} after '
                                 f'{self._ready_timeout:g} s: {response.message}')
            self.sleep(0.1)

    def end_episode(self, success: bool, note: str) -> str:
        label = EpisodeEvent.LABEL_SUCCESS if success else EpisodeEvent.LABEL_FAILURE
        # not cancellable: the recorder may have saved the episode by the time a stop comes,
        # and a saved episode must be in the results (seen: a soak's last bag left unlisted)
        response = self._call(EndEpisode, topics.END_EPISODE, 'the recorder',
                              EndEpisode.Request(label=label, note=note), cancellable=False)
        if not response.accepted:
            raise StackError(f'the recorder refused EndEpisode: {response.message}')
        return response.path

    def abort_episode(self, note: str) -> None:
        self._call(EndEpisode, topics.END_EPISODE, 'the recorder',
                   EndEpisode.Request(abort=True, note=note))

    def policy_samples(self) -> list:
        with self._lock:
            samples, self._samples = self._samples, []
        return samples

    def policy_status(self) -> str:
        return self._policy_status


class EpisodeRunnerNode(Node):
    """Parameters of a run; the node itself only carries the clients and the subscription."""

    def __init__(self, **node_kwargs):
        super().__init__('episode_runner', **node_kwargs)
        p = self._declare
        self.config = RunnerConfig(
            episodes=p('episodes', 10, 'number of evaluation episodes'),
            task=p('task', 'juicing-place', 'task name stored with each recorded episode'),
            time_limit=p('time_limit', 0.0, 'simulated seconds the policy gets per episode; '
                         '0: the time limit of the simulated task (juicing-place: 20 s)'),
            poll_period=p('poll_period', 0.05, 'wall seconds between success polls'),
            reset_timeout=p('reset_timeout', 20.0, 'wall seconds for a sim reset to take effect'),
            stall_timeout=p('stall_timeout', 20.0, 'wall seconds without simulated time '
                            'advancing before the run fails'),
            max_errors=p('max_errors', 0, 'episodes that may end in a stack error (a node died '
                         'and respawns, a service timed out) before the run stops; each counts '
                         'as a failure and the next waits for the graph to be ready'),
            first_seed=p('first_seed', -1, "env seed of the first episode, set on the sim "
                         "robot's seed parameter (later episodes count on); -1: its next seed"),
            expect_model=p('expect_model', '', 'model id (ActionChunk.model_id, '
                           '<file>:<sha256[:12]>) every episode must be run by; an episode '
                           'with another is a stack error (empty: any)'),
            check_camera=p('check_camera', False, 'after every reset, have the camera_check '
                           'node check the scene camera against the robot (and correct its '
                           'calibration if it moved and the node may)'))
        self.sim_node = p('sim_node', 'sim_robot', 'name of the sim robot node (its seed '
                          'parameter is set for first_seed)')
        self.service_timeout = p('service_timeout', 10.0, 'wall seconds for a service to '
                                 'appear and answer')
        self.ready_timeout = p('ready_timeout', 30.0, 'wall seconds, before the first episode, '
                               'for the recorder to subscribe and the policy node to act')
        self.results_json = p('results_json', '', 'write the per-episode results and the '
                              'summary to this JSON file (empty: do not)')
        self.episodes_jsonl = p('episodes_jsonl', '', 'append one JSON line per episode as it '
                                'finishes, latencies included (empty: do not); what a soak '
                                'run reads while it goes on')

    def _declare(self, name, default, description):
        self.declare_parameter(name, default, ParameterDescriptor(description=description))
        return self.get_parameter(name).value


@dataclass
class Report:
    """The outcome of a run: what ran, the table to print, and the error that stopped it."""

    results: list
    text: str
    error: str = ''

    @property
    def exit_code(self) -> int:
        return 1 if self.error else 0


def evaluate(parameters: dict | None = None, cancel: threading.Event | None = None,
             meta: dict | None = None, args: list | None = None,
             log=print) -> Report:
    """Run the episodes in a ROS context of their own; ``parameters`` override the node's.

    ``cancel`` stops the run between two calls (the open episode is aborted). ``log`` gets one
    line per finished episode. Nothing raises for a failed run: see ``Report.error``.
    """
    cancel = cancel or threading.Event()
    context = rclpy.Context()
    rclpy.init(args=[] if args is None else args, context=context)
    node = executor = spinner = None
    try:
        overrides = [Parameter(k, value=v) for k, v in (parameters or {}).items()]
        try:
            node = EpisodeRunnerNode(context=context, parameter_overrides=overrides)
        except Exception as exc:  # noqa: BLE001 - RunnerConfig, a parameter's type: name it
            return Report([], '', f'bad episode runner parameter: {exc.__class__.__name__}: '
                          f'{exc}')
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        spinner = threading.Thread(target=_spin, args=(executor,), name='runner_spin',
                                   daemon=True)
        spinner.start()
        stack = RosStack(node, node.service_timeout, cancel, node.ready_timeout, node.sim_node)
        config = node.config

        def progress(r):
            if node.episodes_jsonl:
                _append_jsonl(node.episodes_jsonl, {**asdict(r), 'finished_unix': time.time()})
            if r.error:
                log(f'[episodes] {r.index}/{config.episodes}: stack error, counted as a failure '
                    f'({r.error}); waiting for the graph, then going on')
                return
            log(f'[episodes] {r.index}/{config.episodes} seed {r.seed}: '
                f'{"success" if r.success else "failure"} after {r.duration:.2f} s simulated '
                f'({r.actions} policy actions, {r.wall_time:.1f} s wall) -> {r.bag}'
                + (f'\n[episodes] warning: {r.note}' if r.note else ''))

        runner = EpisodeRunner(stack, config, sleep=stack.sleep, on_result=progress)
        log(f'[episodes] running {config.episodes} episodes of {config.task}')
        error = ''
        try:
            runner.run()
        except EpisodeError as exc:
            error = str(exc)
        summary = summarize(runner.results, runner.nominal_rate)
        text = format_results(runner.results, summary)
        if node.results_json:
            info = {**(meta or {}), 'config': asdict(config), 'error': error}
            _write_json(node.results_json, results_dict(runner.results, summary, info))
        if error:
            text += (f'\n\nstopped after {len(runner.results)} of {config.episodes} episodes: '
                     f'{error}')
        return Report(runner.results, text, error)
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=context)
        if spinner is not None:
            spinner.join(timeout=2.0)


def _spin(executor) -> None:
    try:
        executor.spin()
    except (ExternalShutdownException, KeyboardInterrupt):
        pass


def _append_jsonl(path: str, record: dict) -> None:
    path = os.path.abspath(os.path.expanduser(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'a') as f:
        f.write(json.dumps(record) + '\n')
        f.flush()


def _write_json(path: str, data: dict) -> None:
    path = os.path.abspath(os.path.expanduser(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f'{path}.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=2)
        f.write('\n')
    os.replace(tmp, path)


def main(args: list | None = None) -> int:
    cancel = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: cancel.set())
    report = evaluate(cancel=cancel, args=sys.argv if args is None else args)
    print(report.text, flush=True)
    if report.error:
        print(f'[episodes] error: {report.error}', file=sys.stderr)
    return report.exit_code


if __name__ == '__main__':
    sys.exit(main())
