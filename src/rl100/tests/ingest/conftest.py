"""Synthetic recorder episodes for the ingest tests, written with rosbags alone (no ROS install).

The bags have the recorder's layout (rosbag2 MCAP + ``episode.json``); rl100_msgs definitions come
from the source tree's .msg files. Exposed as a fixture so the tests work under any import mode.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

MSG_DIR = Path(__file__).resolve().parents[3] / "rl100_msgs" / "msg"
INTERVENTION = "/rl100/intervention"
POSE = "/franka_robot_state_broadcaster/current_pose"
JOINTS = "/joint_states"
RGB = "/camera/camera/color/image_raw"


def _typestore():
    store = get_typestore(Stores.ROS2_JAZZY)
    types = {}
    for f in sorted(MSG_DIR.glob("*.msg")):
        types.update(get_types_from_msg(f.read_text(), f"rl100_msgs/msg/{f.stem}"))
    store.register(types)
    return store


STORE = _typestore()
T = STORE.types


def _header(ns: int):
    return T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9), frame_id="base"
    )


def _pose(x: float, qz: float = 0.0):
    w = float(np.sqrt(1 - qz * qz))
    return T["geometry_msgs/msg/Pose"](
        position=T["geometry_msgs/msg/Point"](x=x, y=0.0, z=0.5),
        orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=qz, w=w),
    )


def write_episode(
    root: Path, episode_id: str, *, ticks: int = 5, active=(), label="success", source="rollout", rgb=False,
    meta: dict | None = None,
) -> Path:
    """A finished recorder episode: per tick (100 ms) joint states, pose [, image], then the intervention.

    Tick ``i`` has the arm at x = i (pose) and joints = i; the executed target is x = i + 0.5,
    rotated 0.2 rad about z, gripper i / 10.
    """
    path = root / episode_id
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    conns = {
        t: writer.add_connection(t, m, typestore=STORE)
        for t, m in [
            (JOINTS, "sensor_msgs/msg/JointState"),
            (POSE, "geometry_msgs/msg/PoseStamped"),
            (INTERVENTION, "rl100_msgs/msg/Intervention"),
            *([(RGB, "sensor_msgs/msg/Image")] if rgb else []),
        ]
    }

    def put(topic, msg, ns):
        writer.write(conns[topic], ns, STORE.serialize_cdr(msg, conns[topic].msgtype))

    qz = float(np.sin(0.1))  # rotation of 0.2 rad about z
    for i in range(ticks):
        ns = 10**9 + i * 10**8
        names = [f"fr3_joint{j + 1}" for j in range(7)] + ["fr3_finger_joint1", "fr3_finger_joint2"]
        joints = T["sensor_msgs/msg/JointState"](
            header=_header(ns),
            name=names,
            position=np.array([float(i)] * 7 + [0.01, 0.01]),
            velocity=np.zeros(0),
            effort=np.zeros(0),
        )
        put(JOINTS, joints, ns + 1)
        put(POSE, T["geometry_msgs/msg/PoseStamped"](header=_header(ns), pose=_pose(float(i))), ns + 2)
        if rgb:
            img = np.full((2, 3, 3), [i, 100, 200], dtype=np.uint8)
            msg = T["sensor_msgs/msg/Image"](
                header=_header(ns), height=2, width=3, encoding="rgb8", is_bigendian=0, step=9, data=img.ravel()
            )
            put(RGB, msg, ns + 3)
        inter = T["rl100_msgs/msg/Intervention"](
            header=_header(ns), active=i in active, source=4, target=_pose(i + 0.5, qz), gripper=i / 10
        )
        put(INTERVENTION, inter, ns + 5)
    writer.close()
    side = {
        "format": "rl100-episode-bag",
        "episode_id": episode_id,
        "task": "juicing-place",
        "meta": {"source": source, **(meta or {})},
        "label": label,
        "success": label == "success",
        "note": "",
        "steps": ticks,
        "interventions": len(active),
    }
    (path / "episode.json").write_text(json.dumps(side))
    return path


@pytest.fixture
def make_episode():
    return write_episode
