"""Policy node: runs the exported one-step policy (PolicyRuntime, ONNX Runtime) at control rate.

At each tick it assembles an observation from the robot topics (stale or skewed inputs skip
the tick and are counted), asks the shared ``rl100.runtime.PolicyRuntime`` for the action, and
publishes an ActionChunk: the action for this tick followed by the rest of the planned chunk,
so the safety node can keep following the plan through a late tick. ``LoadPolicy`` (served by
the side node ``<name>_loader``, spun in a thread of its own) loads a new model beside the
control callbacks and swaps it in between two ticks; a model that fails to
load (missing file, wrong card, sha256 mismatch, unsupported inputs) is refused with the reason
and the running one keeps going.

Models with a point-cloud input take ``/rl100/points`` (PointCloud2 xyz float32 in the base
frame, e.g. from the sim robot node's ``enable_points``), cropped and downsampled as the card
says (see ``observations``); the subscription is always there so a hot-swapped points model
finds its input, and clouds are only decoded while such a model runs.

On a table that stands ``table_dz`` m higher than the one in the training data (another stand),
the policy runs in the table frame (``rl100.taskframe``): it sees the TCP and the cloud shifted
down by ``table_dz`` and its targets are shifted back up before they are published.
``table_dz`` may be set while the node runs (the camera check measures it before an episode):
checked, then used from the next tick on.

Each episode starts with a fresh observation history and no queued actions: the recorder's
EpisodeEvent START (``/rl100/episode_event``) resets the runtime before the next tick, so an
episode never executes actions planned from the previous one's observations.
"""

from __future__ import annotations

from dataclasses import replace
import os
import threading

from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rl100.export.card import model_id as card_model_id
from rl100.runtime.policy_runtime import PolicyRuntime
from rl100_msgs.msg import ActionChunk, EpisodeEvent
from rl100_msgs.srv import LoadPolicy
from rl100_ros import diagnostics, qos, topics
from rl100_ros.conversions import seconds
from rl100_ros.node_main import run_node
from sensor_msgs.msg import JointState, PointCloud2

from .observations import Assembler, AssemblyConfig, StaleObservationError


def _stamp_s(msg) -> float:
    return seconds(msg.header.stamp)


# inference latencies kept for /diagnostics: a minute at 100 Hz (bounded memory, and the
# once-a-second summary on the control thread stays well under a millisecond)
LATENCY_WINDOW = 6000


class LoadedPolicy:
    """A runtime together with the observation assembler its card asks for."""

    def __init__(self, path: str, expected_sha256: str, assembly: AssemblyConfig,
                 temporal_ensemble: bool = False, ensemble_k: float = 0.01):
        if not os.path.isfile(path):
            raise FileNotFoundError(f'no model file {path}')
        self.runtime = PolicyRuntime(path, intra_op_threads=1, latency_window=LATENCY_WINDOW,
                                     temporal_ensemble=temporal_ensemble, ensemble_k=ensemble_k)
        self.runtime.warmup()  # the first ONNX Runtime calls are slow: not in the control loop
        sha = self.runtime.card['sha256']
        if expected_sha256 and expected_sha256 != sha:
            raise ValueError(f'sha256 {sha} is not the expected {expected_sha256}')
        self.assembler = Assembler(self.runtime.card['observation_spec'], assembly)
        self.model_id = card_model_id(path, sha)


class PolicyNode(Node):

    def __init__(self, **node_kwargs):
        super().__init__('policy_node', **node_kwargs)
        p = self._declare
        model_path = p('model_path', '', 'ONNX model to run (its model card JSON beside it); '
                       'empty: start without a model and wait for LoadPolicy')
        self._rate = p('control_rate', 10.0, 'policy control rate in Hz')
        if not self._rate > 0.0:
            raise ValueError(f'control_rate must be > 0 Hz, got {self._rate}')
        self._frame = p('base_frame', 'fr3_link0', 'frame of the published targets and of the '
                        'point clouds the policy accepts')
        self._assembly = AssemblyConfig(
            max_age=p('max_observation_age', 0.2, 'observations older than this are stale, s'),
            max_skew=p('max_observation_skew', 0.1, 'largest stamp spread in one observation, s'),
            base_frame=self._frame,
            seed=p('points_seed', 0, 'seed of the point-cloud downsampling rng'),
            table_dz=p('table_dz', 0.0, 'm, how much higher the table top stands than in the '
                       'training data (calibration: touch the table with the fingertips, compare '
                       'the TCP z); the policy sees the scene shifted by it (rl100.taskframe)'))
        self._table_frame = self._assembly.table_frame
        self._execution = {
            'temporal_ensemble': bool(p('temporal_ensemble', False, 'replan at every tick and '
                                        'average the still valid chunk predictions for it '
                                        '(PolicyRuntime; rl100 eval --temporal-ensemble)')),
            'ensemble_k': float(p('ensemble_k', 0.01, 'temporal ensembling: weight exp(-k i) '
                                  'of the i-th oldest prediction'))}
        self._lock = threading.Lock()
        self._policy: LoadedPolicy | None = None
        self._ticks = self._published = self._stale = 0
        self._last_stale = ''
        self._episode_started = False  # set by EpisodeEvent START, consumed by the next tick
        self._episode_resets = 0  # starts consumed (each reset the runtime once)
        if model_path:
            self._policy = LoadedPolicy(model_path, '', self._assembly,  # errors end start-up
                                        **self._execution)
            self.get_logger().info(f'running {self._policy.model_id}')
            self._camera_filter_notice(self._policy)
        self._publisher = self.create_publisher(ActionChunk, topics.ACTION_CHUNK, qos.COMMAND)
        self.create_subscription(PoseStamped, topics.CURRENT_POSE, self._on_pose, qos.SENSOR)
        self.create_subscription(JointState, topics.JOINT_STATES, self._on_joints, qos.SENSOR)
        # the cloud input once a model reads clouds: a state-only model's loop is not
        # blocked taking clouds it drops (rclpy builds each message; 3.7 MB costs ms)
        self._points_sub = None
        self._sync_points_subscription()
        self.create_subscription(EpisodeEvent, topics.EPISODE_EVENT, self._on_episode_event,
                                 qos.LATCHED)
        self._trigger = p('trigger', 'timer', 'timer: act at control_rate on the newest data; '
                          'observation: act as soon as a new joint_states message arrives '
                          '(at most control_rate), for the lowest latency; synced: act once '
                          'every input carries the same new stamp (a simulator in lockstep); '
                          'auto: synced under use_sim_time, timer otherwise')
        if self._trigger == 'auto':
            self._trigger = 'synced' if self.get_parameter('use_sim_time').value else 'timer'
        if self._trigger not in ('timer', 'observation', 'synced'):
            raise ValueError(
                f"trigger must be timer, observation or synced, got '{self._trigger}'")
        self._last_act_stamp = float('-inf')
        if self._trigger == 'timer':
            self._timer = self.create_timer(1.0 / self._rate, self._tick)
        # LoadPolicy is served by a side node of this process with an executor thread of its
        # own (run_node / SideExecutors): loading and warming a model takes 0.1-1 s and the
        # control callbacks go on meanwhile. Its name follows this node's (remaps included).
        self.loader = Node(f'{self.get_name()}_loader', namespace=self.get_namespace(),
                           context=self.context, start_parameter_services=False,
                           cli_args=['--ros-args', '-r', f'__node:={self.get_name()}_loader'])
        self.loader.create_service(LoadPolicy, topics.LOAD_POLICY, self._on_load)
        self.side_nodes = (self.loader,)
        self._rate_meter = diagnostics.RateMeter()  # published chunks per second (node clock)
        self._diagnostics = diagnostics.Diagnostics(self, 'policy', self._status)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info(f'policy node up at {self._rate:.1f} Hz')

    def _on_set_parameters(self, params) -> SetParametersResult:
        """``table_dz`` at run time (a new stand, measured by the camera check): checked first."""
        for param in params:
            if param.name != 'table_dz':
                continue
            try:
                assembly = replace(self._assembly, table_dz=float(param.value))
            except (TypeError, ValueError) as exc:
                return SetParametersResult(successful=False, reason=f'table_dz: {exc}')
            with self._lock:
                self._assembly, self._table_frame = assembly, assembly.table_frame
                if self._policy is not None:
                    self._policy.assembler.set_table_dz(assembly.table_dz)
            self.get_logger().info(f'table_dz set: {assembly.table_dz:+.4f} m')
        return SetParametersResult(successful=True)

    def destroy_node(self):
        loader = getattr(self, 'loader', None)
        if loader is not None:
            loader.destroy_node()
        return super().destroy_node()

    def _declare(self, name, default, description):
        self.declare_parameter(name, default, ParameterDescriptor(description=description))
        return self.get_parameter(name).value

    # --- inputs -------------------------------------------------------------------------------
    def _on_pose(self, msg: PoseStamped) -> None:
        policy = self._policy
        if policy is not None:
            p, q = msg.pose.position, msg.pose.orientation
            policy.assembler.pose(_stamp_s(msg), [p.x, p.y, p.z], [q.x, q.y, q.z, q.w])
            self._act_if_synced(policy)

    def _on_joints(self, msg: JointState) -> None:
        policy = self._policy
        if policy is not None:
            if self._points_sub is None:
                self._sync_points_subscription()  # after a swap to a model that reads clouds
            try:
                policy.assembler.joints(_stamp_s(msg), msg.name, msg.position)
            except ValueError as exc:
                self._last_stale = f'bad joint_states: {exc}'
                return
            stamp = _stamp_s(msg)
            if self._trigger == 'observation' and stamp - self._last_act_stamp >= 0.5 / self._rate:
                self._last_act_stamp = stamp
                self._tick()
            self._act_if_synced(policy)

    def _sync_points_subscription(self) -> None:
        """Subscribe to the clouds once a model that reads them runs (main thread).

        Kept after a swap to a state-only model (``_on_points`` drops the clouds then): rclpy
        may still hold a ready cloud of a destroyed subscription in the executor's current
        wait, which fails a task with an unretrieved exception.
        """
        policy = self._policy
        if policy is not None and policy.assembler.wants_points and self._points_sub is None:
            self._points_sub = self.create_subscription(PointCloud2, topics.POINTS,
                                                        self._on_points, qos.SENSOR)

    def _on_points(self, msg: PointCloud2) -> None:
        policy = self._policy
        if policy is None or not policy.assembler.wants_points:
            return
        from rl100_camera.messages import pointcloud_to_array
        try:
            if msg.point_step != 12 or [f.name for f in msg.fields[:3]] != ['x', 'y', 'z']:
                raise ValueError(f'expected x y z float32 points (point_step 12), got '
                                 f'{[f.name for f in msg.fields]} step {msg.point_step}')
            policy.assembler.cloud(_stamp_s(msg), msg.header.frame_id, pointcloud_to_array(msg))
            self._act_if_synced(policy)
        except ValueError as exc:
            self._last_stale = f'bad point cloud: {exc}'
            self.get_logger().warn(self._last_stale, throttle_duration_sec=1.0)

    def _act_if_synced(self, policy: 'LoadedPolicy') -> None:
        if self._trigger != 'synced':
            return
        stamp = policy.assembler.synced_stamp()
        if stamp is not None and stamp > self._last_act_stamp:
            self._last_act_stamp = stamp
            self._tick()

    def _on_episode_event(self, msg: EpisodeEvent) -> None:
        if msg.event == EpisodeEvent.EVENT_START:
            self._episode_started = True  # the tick resets the runtime (no race with act())

    def _on_load(self, request, response):
        try:
            new = LoadedPolicy(request.path, request.expected_sha256, self._assembly,
                               **self._execution)
        except Exception as exc:  # any failure: refuse with the reason, keep the running model
            response.accepted = False
            response.message = f'{exc.__class__.__name__}: {exc}'
            response.model_id = self._policy.model_id if self._policy else ''
            self.get_logger().error(f'LoadPolicy refused {request.path}: {response.message}')
            return response
        with self._lock:
            old, self._policy = self._policy, new
        if old is not None:  # carry the newest robot data over, so the next tick can act
            new.assembler.take_over(old.assembler)
        response.accepted, response.model_id, response.message = True, new.model_id, 'loaded'
        self.get_logger().info(f'now running {new.model_id}')
        self._camera_filter_notice(new)
        return response

    def _camera_filter_notice(self, policy: LoadedPolicy) -> None:
        """A model trained on filtered depth needs the camera to filter: it cannot be done here."""
        points = policy.assembler.points
        if points is not None and points.depth_filter != 'none':
            self.get_logger().warn(
                f'{policy.model_id} was trained on clouds from depth filtered with '
                f'{points.depth_filter}: the camera side must apply it (sim_robot depth_filter)')

    # --- the control tick ---------------------------------------------------------------------
    def _tick(self) -> None:
        self._ticks += 1
        with self._lock:
            policy = self._policy
        if policy is None:
            return
        if self._episode_started:
            self._episode_started = False
            self._episode_resets += 1
            policy.runtime.reset()
        now = self.get_clock().now()
        try:
            obs = policy.assembler.assemble(now.nanoseconds * 1e-9)
        except StaleObservationError as exc:
            self._stale += 1
            self._last_stale = str(exc)
            policy.runtime.reset()  # a gap breaks the history: start a fresh one
            return
        runtime = policy.runtime
        try:
            action = runtime.act(obs)
        except ValueError as exc:  # NaN in or out: publish nothing, the safety node holds
            self.get_logger().error(f'policy step failed: {exc}')
            runtime.reset()
            return
        if runtime.temporal_ensemble and runtime.chunks:  # the newest prediction's plan
            plan = list(runtime.chunks[-1][1][1:runtime.n_action_steps])
        else:
            plan = list(runtime.queue)
        chunk = [action, *plan]
        if self._table_frame.dz:  # the policy planned in the table frame: back to the base
            chunk = list(self._table_frame.action(np.asarray(chunk)))
        msg = ActionChunk(horizon=len(chunk), action_dim=int(action.shape[0]),
                          data=[float(v) for a in chunk for v in a], model_id=policy.model_id)
        # stamp = the newest observation the chunk was computed from (rl100_msgs/ActionChunk)
        newest_ns = int(round(policy.assembler.newest_stamp() * 1e9))
        msg.header.stamp = Time(sec=newest_ns // 10**9, nanosec=newest_ns % 10**9)
        msg.header.frame_id = self._frame
        period_ns = int(round(1e9 / self._rate))
        msg.period.sec, msg.period.nanosec = divmod(period_ns, 1_000_000_000)
        if runtime.latencies_ms:
            msg.inference_latency = float(runtime.latencies_ms[-1] * 1e-3)
        self._publisher.publish(msg)
        self._published += 1

    def _status(self):
        policy = self._policy
        if policy is None:
            return diagnostics.WARN, 'no model loaded', {'ticks': self._ticks}
        rate = self._rate_meter.rate(self._published, self.get_clock().now().nanoseconds * 1e-9)
        values = {'model': policy.model_id, 'ticks': self._ticks, 'published': self._published,
                  'rate_hz': diagnostics.rate_value(rate),
                  'predictions': policy.runtime.predictions,
                  'stale_ticks': self._stale, 'last_stale': self._last_stale}
        values.update({f'latency_{k}': f'{v:.3f}' if isinstance(v, float) else v
                       for k, v in policy.runtime.latency_stats().items()})
        level = diagnostics.OK if self._published else diagnostics.WARN
        return level, 'running' if self._published else 'waiting for observations', values


def main(args=None) -> int:
    return run_node(PolicyNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
