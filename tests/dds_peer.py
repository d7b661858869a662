"""A peer process for the two-process DDS test of rl100_msgs.

    python dds_peer.py listen   # subscribes to every rl100_msgs topic, serves every service
    python dds_peer.py talk     # publishes one of each message, calls each service

Both print one JSON object per line on stdout: {"kind": ..., "name": ..., "data": {...}}.
"""

from __future__ import annotations

import json
import sys
import time

import rclpy
from builtin_interfaces.msg import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from rl100_msgs.msg import ActionChunk, EpisodeEvent, Intervention, SafetyStatus
from rl100_msgs.srv import EndEpisode, LoadPolicy, SetMode, StartEpisode

QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
TOPICS = {"action_chunk": ActionChunk, "intervention": Intervention, "safety_status": SafetyStatus,
          "episode_event": EpisodeEvent}
SERVICES = {"start_episode": StartEpisode, "end_episode": EndEpisode, "load_policy": LoadPolicy,
            "set_mode": SetMode}


def to_dict(msg):
    """Message -> plain JSON-able structure (recursive over nested messages and arrays)."""
    if hasattr(msg, "get_fields_and_field_types"):
        return {name: to_dict(getattr(msg, name)) for name in msg.get_fields_and_field_types()}
    if isinstance(msg, bytes):
        return list(msg)
    if hasattr(msg, "tolist"):
        return msg.tolist()
    if isinstance(msg, (list, tuple)):
        return [to_dict(x) for x in msg]
    return msg


def emit(kind, name, data):
    print(json.dumps({"kind": kind, "name": name, "data": data}), flush=True)


def sample_messages():
    # float32 fields carry values exact in float32, so equality after the round trip is exact
    chunk = ActionChunk(horizon=2, action_dim=7, data=[0.125 * i - 0.5 for i in range(14)], model_id="cm-1:abc",
                        inference_latency=0.0009765625, period=Duration(sec=0, nanosec=100_000_000))
    chunk.header.frame_id = "fr3_link0"
    chunk.header.stamp.sec = 42
    iv = Intervention(active=True, source=Intervention.SOURCE_SPACEMOUSE, gripper=1.0)
    iv.target.position.x, iv.target.orientation.w = 0.5, 1.0
    status = SafetyStatus(mode=SafetyStatus.MODE_ESTOP, estop_latched=True, rejected_commands=3,
                          clipped=SafetyStatus.CLIP_WORKSPACE | SafetyStatus.CLIP_GRIPPER_STEP, reason="e-stop key")
    event = EpisodeEvent(event=EpisodeEvent.EVENT_END, episode_id="ep_0007", task="juicing-place",
                         label=EpisodeEvent.LABEL_SUCCESS, note="clean pour")
    return {"action_chunk": chunk, "intervention": iv, "safety_status": status, "episode_event": event}


def listen(node: Node, timeout: float) -> int:
    received = {}

    def on_msg(name):
        def cb(msg):
            received[name] = True
            emit("msg", name, to_dict(msg))
        return cb

    subs = [node.create_subscription(t, f"/rl100_test/{n}", on_msg(n), QOS) for n, t in TOPICS.items()]

    def start(req, res):
        res.accepted, res.episode_id, res.message = True, f"{req.task}#1", req.note
        res.unheard_topics = list(req.require_topics)[::-1]
        return res

    def end(req, res):
        res.accepted, res.episode_id, res.path = not req.abort, "ep_0001", f"label={req.label}"
        return res

    def load(req, res):
        res.accepted = req.expected_sha256 == "00ff"
        res.model_id, res.message = req.path[::-1], "ok" if res.accepted else "sha256 mismatch"
        return res

    def mode(req, res):
        res.accepted, res.mode, res.message = req.clear_estop, req.mode, req.reason
        return res

    handlers = {"start_episode": start, "end_episode": end, "load_policy": load, "set_mode": mode}
    srvs = [node.create_service(SERVICES[n], f"/rl100_test/{n}", h) for n, h in handlers.items()]
    emit("ready", "listener", {})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(received) < len(TOPICS):
        rclpy.spin_once(node, timeout_sec=0.1)
    # keep serving until the talker is done with its service calls
    end_serving = time.monotonic() + 5.0
    while time.monotonic() < min(deadline, end_serving):
        rclpy.spin_once(node, timeout_sec=0.1)
    del subs, srvs
    return 0 if len(received) == len(TOPICS) else 1


def talk(node: Node, timeout: float) -> int:
    pubs = {n: node.create_publisher(t, f"/rl100_test/{n}", QOS) for n, t in TOPICS.items()}
    deadline = time.monotonic() + timeout
    while any(p.get_subscription_count() == 0 for p in pubs.values()):
        if time.monotonic() > deadline:
            emit("error", "discovery", {"message": "no subscriber matched"})
            return 1
        rclpy.spin_once(node, timeout_sec=0.05)
    for name, msg in sample_messages().items():
        pubs[name].publish(msg)
        emit("sent", name, to_dict(msg))
    requests = {
        "start_episode": StartEpisode.Request(task="juicing-place", note="first",
                                              require_topics=["/a", "/b"]),
        "end_episode": EndEpisode.Request(label=EpisodeEvent.LABEL_FAILURE, abort=False),
        "load_policy": LoadPolicy.Request(path="/models/a.onnx", expected_sha256="00ff"),
        "set_mode": SetMode.Request(mode=SafetyStatus.MODE_AUTONOMOUS, clear_estop=True, reason="operator"),
    }
    for name, req in requests.items():
        client = node.create_client(SERVICES[name], f"/rl100_test/{name}")
        if not client.wait_for_service(timeout_sec=max(0.1, deadline - time.monotonic())):
            emit("error", name, {"message": "service not available"})
            return 1
        future = client.call_async(req)
        rclpy.spin_until_future_complete(node, future, timeout_sec=max(0.1, deadline - time.monotonic()))
        if future.result() is None:
            emit("error", name, {"message": "no response"})
            return 1
        emit("response", name, to_dict(future.result()))
    return 0


def main() -> int:
    role, timeout = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    rclpy.init()
    node = Node(f"rl100_test_{role}")
    try:
        return listen(node, timeout) if role == "listen" else talk(node, timeout)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
