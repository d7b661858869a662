"""Episode recorder node: wiring over :class:`rl100_recorder.bag_writer.EpisodeBagWriter`.

Subscribes to the configured topics as serialized messages (``raw=True``: the CDR bytes go
to the bag untouched), once each topic appears in the graph with a publisher (its type is
read from ``get_topic_names_and_types``; QoS adapts to the publishers, like ``ros2 bag
record``). Serves StartEpisode / EndEpisode, publishes EpisodeEvent (latched) and writes
its own events straight into the open bag (so /rl100/episode_event is never subscribed to).
The last message of every latched (transient-local) topic is kept and written at the start
of each episode, so a bag always holds the current safety status.
"""

from __future__ import annotations

import importlib
import json
import math
import os

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from rl100.keys import TABLE_DZ
from rl100_msgs.msg import EpisodeEvent
from rl100_msgs.srv import EndEpisode, StartEpisode
from rl100_recorder.bag_writer import BagWriterError, EpisodeBagWriter, LABELS
from rl100_ros import diagnostics, qos, topics
from rl100_ros.node_main import run_node

EVENT_TYPE = 'rl100_msgs/msg/EpisodeEvent'

# /rl100/points (topics.POINTS, the point-cloud policy's observation) is opt-in through the
# ``topics`` parameter (orange_juicer.yaml records it): it is most of a bag (5-6x in simulation)
DEFAULT_TOPICS = [
    topics.ACTION_CHUNK,
    topics.INTERVENTION,
    topics.SAFETY_STATUS,
    topics.EPISODE_EVENT,
    topics.JOINT_STATES,
    topics.CURRENT_POSE,
    topics.GRIPPER_STATE,
    '/camera/camera/color/image_raw',
    '/camera/camera/aligned_depth_to_color/image_raw',
    '/camera/camera/depth/color/points',
]


def message_class(msgtype: str):
    """The Python class of ``pkg/msg/Name`` (rosidl_runtime_py is not on PyPI)."""
    pkg, kind, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{pkg}.{kind}'), name)


class RecorderNode(Node):

    def __init__(self, **node_kwargs):
        super().__init__('recorder_node', **node_kwargs)

        def param(name, default, description):
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
            return self.get_parameter(name).value

        record_dir = os.path.expanduser(param(
            'record_dir', 'episodes', 'directory receiving one rosbag2 MCAP bag per episode'))
        self._task = param('task', '', 'task name stored with episodes whose StartEpisode '
                                       'request leaves it empty')
        self._source = param('source', 'rollout',
                             'what the episodes are: rollout (policy runs) or demo (teleop)')
        self._topics = list(param('topics', DEFAULT_TOPICS, 'topics recorded in every episode'))
        min_free = float(param('min_free_disk_gb', 2.0,
                               'StartEpisode is refused below this much free disk (GB)'))
        max_episodes = int(param('max_episodes', 0, 'StartEpisode is refused once record_dir '
                                                    'holds this many episodes (0: no limit)'))
        self._table_dz = float(param('table_dz', 0.0, 'm the table stands higher than the '
                                     'training table, stored with every episode; rl100 ingest '
                                     'moves the episode into the table frame (rl100.taskframe)'))
        if self._source not in ('rollout', 'demo'):
            raise ValueError(f'source must be rollout or demo, got {self._source!r}')
        if not math.isfinite(self._table_dz):
            raise ValueError(f'table_dz must be finite, got {self._table_dz}')
        self._writer = EpisodeBagWriter(record_dir, min_free_disk_gb=min_free,
                                        max_episodes=max_episodes)
        self._subscribed: dict[str, str] = {}  # topic -> msgtype
        self._latched: dict[str, tuple[str, bytes]] = {}  # topic -> (msgtype, last cdr)
        # topics a message arrived on (in this process): subscribed is not yet receiving, e.g.
        # while DDS matches a respawned recorder with the publishers (seconds: bench_rematch)
        self._heard: set[str] = set()
        self._received = self._dropped = 0
        self._last_received = 0
        self._errors: list[str] = []
        self._event_pub = self.create_publisher(EpisodeEvent, topics.EPISODE_EVENT, qos.LATCHED)
        self.create_service(StartEpisode, topics.START_EPISODE, self._on_start)
        self.create_service(EndEpisode, topics.END_EPISODE, self._on_end)
        self._diagnostics = diagnostics.Diagnostics(self, 'recorder', self._status)
        self.create_timer(0.5, self._discover)
        self._discover()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info(f'recording into {self._writer.root.resolve()}')

    def _on_set_parameters(self, params) -> SetParametersResult:
        """``table_dz`` at run time (the camera check measured a new stand): the next episodes."""
        for param in params:
            if param.name == 'table_dz':
                value = float(param.value)
                if not math.isfinite(value):
                    reason = f'table_dz must be finite, got {value}'
                    self.get_logger().warning(f'refused: {reason}')
                    return SetParametersResult(successful=False, reason=reason)
                self._table_dz = value
                self.get_logger().info(f'table_dz set: {value:+.4f} m (from the next episode)')
        return SetParametersResult(successful=True)

    # --- subscriptions ------------------------------------------------------------------------
    def _discover(self) -> None:
        """Subscribe to configured topics that now have a publisher and a known type."""
        known = dict(self.get_topic_names_and_types())
        for topic in self._topics:
            if topic in self._subscribed or topic == topics.EPISODE_EVENT or topic not in known:
                continue
            msgtype = known[topic][0]
            publishers = self.get_publishers_info_by_topic(topic)
            if not publishers:
                continue
            try:
                cls = message_class(msgtype)
            except (ImportError, AttributeError, ValueError) as exc:
                self._error(f'cannot record {topic}: type {msgtype} not importable ({exc})')
                self._subscribed[topic] = msgtype  # do not retry every tick
                continue
            profile = self._adapted_qos(publishers)
            latched = profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
            self.create_subscription(
                cls, topic,
                lambda data, t=topic, m=msgtype, la=latched: self._on_msg(t, m, data, la),
                profile, raw=True)
            self._subscribed[topic] = msgtype
            self.get_logger().info(f'recording {topic} [{msgtype}]')

    @staticmethod
    def _adapted_qos(publishers) -> QoSProfile:
        """Reliable / transient-local only when every publisher offers it (as rosbag2 does)."""
        reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers)
        latched = all(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                      for p in publishers)
        base = qos.RELIABLE if reliable else qos.SENSOR
        return QoSProfile(history=base.history, depth=base.depth, reliability=base.reliability,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL if latched
                          else DurabilityPolicy.VOLATILE)

    def _on_msg(self, topic: str, msgtype: str, data: bytes, latched: bool) -> None:
        self._received += 1
        self._heard.add(topic)
        if latched:
            self._latched[topic] = (msgtype, data)
        if self._writer.is_open:
            self._write(topic, msgtype, data)

    def _write(self, topic: str, msgtype: str, data: bytes) -> None:
        try:
            self._writer.write(topic, msgtype, data, self.get_clock().now().nanoseconds)
        except Exception as exc:  # disk full, unknown type...: count it, keep the node alive
            self._dropped += 1
            self._error(f'dropped a {topic} message: {exc.__class__.__name__}: {exc}')

    def _error(self, message: str) -> None:
        if message not in self._errors:
            self.get_logger().error(message)
            self._errors = (self._errors + [message])[-5:]

    # --- episodes -------------------------------------------------------------------------------
    def _event(self, event: int, episode_id: str, task: str, label: int = 0, note: str = ''):
        msg = EpisodeEvent(event=event, episode_id=episode_id, task=task, label=label, note=note)
        msg.header.stamp = self.get_clock().now().to_msg()
        if self._writer.is_open:
            self._write(topics.EPISODE_EVENT, EVENT_TYPE, serialize_message(msg))
        return msg

    def _on_start(self, request, response):
        unheard = [t for t in request.require_topics if t not in self._heard]
        if unheard:
            response.accepted, response.unheard_topics = False, unheard
            subscribed = ', '.join(t for t in unheard if t in self._subscribed) or 'none of them'
            response.message = f'not receiving {", ".join(unheard)} yet (subscribed: {subscribed})'
            return response
        task = request.task or self._task
        meta = {'source': self._source, 'note': request.note, 'node': self.get_name(),
                TABLE_DZ: self._table_dz}
        try:
            episode_id = self._writer.begin(task=task, meta=meta)
        except BagWriterError as exc:
            response.accepted, response.message = False, str(exc)
            self.get_logger().warning(f'StartEpisode refused: {exc}')
            return response
        for topic, (msgtype, data) in self._latched.items():
            self._write(topic, msgtype, data)
        self._event_pub.publish(self._event(EpisodeEvent.EVENT_START, episode_id, task))
        response.accepted, response.episode_id = True, episode_id
        self.get_logger().info(f'episode {episode_id} started ({task or "no task"})')
        return response

    def _on_end(self, request, response):
        if not self._writer.is_open:
            response.accepted, response.message = False, 'no episode is open'
            return response
        if request.label >= len(LABELS):
            response.accepted = False
            response.message = f'label {request.label} is not one of EpisodeEvent LABEL_* 0..2'
            return response
        episode_id, task = self._writer.episode_id, self._writer.task
        if request.abort:
            msg = self._event(EpisodeEvent.EVENT_ABORT, episode_id, task, note=request.note)
            self._writer.abort()
            response.message = 'aborted: episode discarded'
        else:
            msg = self._event(EpisodeEvent.EVENT_END, episode_id, task, request.label,
                              request.note)
            try:
                response.path = str(self._writer.end(request.label, request.note))
            except Exception as exc:
                self._writer.abort()
                response.accepted, response.episode_id = False, episode_id
                response.message = f'could not finalise {episode_id}: {exc}'
                self._error(response.message)
                return response
            response.message = f'saved as {LABELS[request.label]}'
        self._event_pub.publish(msg)
        response.accepted, response.episode_id = True, episode_id
        self.get_logger().info(f'episode {episode_id} {response.message}')
        return response

    # --- diagnostics and shutdown --------------------------------------------------------------
    def _status(self):
        rate = self._received - self._last_received  # the diagnostics period is 1 s
        self._last_received = self._received
        free = self._writer.free_disk_gb()
        values = {**self._writer.status(), 'messages_per_s': rate, 'received': self._received,
                  'dropped': self._dropped, 'free_disk_gb': f'{free:.1f}',
                  'topics': json.dumps(sorted(self._subscribed)),
                  'heard': json.dumps(sorted(self._heard))}
        if self._errors:
            return diagnostics.ERROR, self._errors[-1], values
        if free < 2 * self._writer.min_free_disk_gb:
            return diagnostics.WARN, f'low disk: {free:.1f} GB free', values
        return diagnostics.OK, f'recording {self._writer.episode_id}' if self._writer.is_open \
            else 'idle', values

    def destroy_node(self):
        if self._writer.is_open:  # keep what was recorded, unlabelled
            try:
                path = self._writer.end('unknown', 'recorder shut down during the episode')
                self.get_logger().warning(f'open episode saved unlabelled: {path}')
            except Exception as exc:
                self.get_logger().error(f'could not save the open episode: {exc}')
        return super().destroy_node()


def main(args=None) -> int:
    return run_node(RecorderNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
