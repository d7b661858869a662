"""``rl100 ingest``: recorder episode bags (rosbag2 MCAP) -> the trainer's dataset (:mod:`rl100.data`).

No rclpy: messages are decoded by rosbags with the definitions embedded in each bag (the
recorder embeds rl100_msgs and the standard messages it uses).

Resampling: one dataset step per ``/rl100/intervention`` message (the safety node publishes one
every control tick). For a tick at bag time ``t``:

- ``action`` (7,) = the executed target: ``target`` position(3), rotation vector(3) of its
  orientation, ``gripper``(1) (see :data:`rl100.keys.ACTION`);
- ``observation.state`` (15,) = the latest end-effector pose (PoseStamped: position(3), quaternion
  xyzw(4)), gripper width (sum of the ``finger`` joints, metres) and 7 arm joint positions, each
  from the last message at or before ``t``; ticks before the first pose/joint message are skipped;
- optionally ``observation.rgb`` / ``observation.depth`` from the latest image at or before ``t``;
- ``flags``: FLAG_DEMO for every step of an episode whose meta says ``source: demo``; otherwise
  FLAG_INTERVENTION when ``active``, else FLAG_ROLLOUT;
- ``reward`` 1 at the last step of an episode labelled ``success``, 0 elsewhere; the episode's
  ``success`` comes from the recorder's ``episode.json`` sidecar.

Each episode is finalised atomically by the DatasetWriter, so when a bag turns out corrupt or
truncated, :class:`IngestError` names that bag and what is wrong, the half-read episode is
discarded and the episodes already ingested stay in the dataset. Bags already in the dataset
(same recorder ``episode_id``) are skipped, so re-running over a growing directory is safe.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rl100 import geometry, keys
from rl100.robot_state import split_joint_state, state_vector

EPISODE_FILE = "episode.json"  # the recorder's sidecar (rl100_recorder.bag_writer)
PARTIAL_SUFFIX = ".partial"


@dataclass(frozen=True)
class IngestSpec:
    """What to read from the bags. Topic names are those of the rl100 graph (rl100_ros.topics).

    ``rgb_topic`` / ``depth_topic``: empty = no camera key in the dataset. ``labels``: episodes
    whose sidecar label is not listed are skipped (e.g. ``("success", "failure")`` drops
    unlabelled ones).
    """

    intervention_topic: str = "/rl100/intervention"
    pose_topic: str = "/franka_robot_state_broadcaster/current_pose"
    joint_topic: str = "/joint_states"
    n_arm_joints: int = 7
    rgb_topic: str = ""
    depth_topic: str = ""
    labels: tuple[str, ...] = ("success", "failure", "unknown")


class IngestError(RuntimeError):
    """A bag could not be ingested; the message starts with the bag's path."""

    def __init__(self, bag: Path, reason: str) -> None:
        super().__init__(f"{bag}: {reason}")
        self.bag = bag
        self.reason = reason


def find_bags(paths: Iterable[str | Path]) -> list[Path]:
    """Episode bag directories: each path is a bag (has metadata.yaml) or a directory of bags.

    ``.partial`` directories (episodes whose recorder was killed) are never taken implicitly.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if (p / "metadata.yaml").is_file() or p.name.endswith(PARTIAL_SUFFIX):
            out.append(p)
        elif p.is_dir():
            out += sorted(c for c in p.iterdir() if c.is_dir() and (c / "metadata.yaml").is_file())
        else:
            raise IngestError(p, "not a directory")
    return out


def read_sidecar(bag: Path) -> dict[str, Any]:
    if bag.name.endswith(PARTIAL_SUFFIX):
        raise IngestError(bag, "unfinished episode (.partial: the recorder stopped before closing it)")
    try:
        with open(bag / EPISODE_FILE, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise IngestError(bag, f"no {EPISODE_FILE}: not a recorder episode (or not finalised)") from None
    except (OSError, ValueError) as exc:
        raise IngestError(bag, f"unreadable {EPISODE_FILE}: {exc}") from None


def _pose(msg: Any) -> tuple[list[float], list[float]]:
    p, q = msg.pose.position, msg.pose.orientation
    return [p.x, p.y, p.z], [q.x, q.y, q.z, q.w]


def _action(msg: Any) -> np.ndarray:
    p, q = msg.target.position, msg.target.orientation
    quat = np.array([q.x, q.y, q.z, q.w], dtype=np.float64)
    norm = np.linalg.norm(quat)
    if not norm > 0:
        raise ValueError("intervention target has a zero quaternion")
    mat = geometry.quat_wxyz_to_mat(geometry.quat_xyzw_to_wxyz(quat / norm))
    return np.concatenate([[p.x, p.y, p.z], geometry.mat_to_rotvec(mat), [msg.gripper]]).astype(np.float32)


def _image(msg: Any, depth: bool) -> np.ndarray:
    h, w, enc = int(msg.height), int(msg.width), msg.encoding
    data = np.asarray(msg.data, dtype=np.uint8)
    if depth:
        if enc == "16UC1":
            return data.view("<u2").reshape(h, w).astype(np.float32) / 1000.0
        if enc == "32FC1":
            return np.nan_to_num(data.view("<f4").reshape(h, w), nan=0.0, posinf=0.0, neginf=0.0)
        raise ValueError(f"depth encoding {enc!r} not supported (16UC1, 32FC1)")
    if enc not in ("rgb8", "bgr8"):
        raise ValueError(f"image encoding {enc!r} not supported (rgb8, bgr8)")
    img = data.reshape(h, int(msg.step))[:, : w * 3].reshape(h, w, 3)
    return np.ascontiguousarray(img[..., ::-1] if enc == "bgr8" else img)


def _steps(bag: Path, spec: IngestSpec, demo: bool) -> Iterator[tuple[dict, np.ndarray, int]]:
    """(obs, action, flags) per control tick, in bag time order."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    cams = {t: k for t, k in ((spec.rgb_topic, keys.OBS_RGB), (spec.depth_topic, keys.OBS_DEPTH)) if t}
    wanted = {spec.intervention_topic, spec.pose_topic, spec.joint_topic, *cams}
    latest: dict[str, np.ndarray] = {}
    with AnyReader([bag], default_typestore=get_typestore(Stores.EMPTY)) as reader:
        present = {c.topic for c in reader.connections}
        missing = sorted(t for t in wanted if t not in present)
        if missing:
            raise ValueError(f"topics {missing} not in the bag (it has {sorted(present)})")
        conns = [c for c in reader.connections if c.topic in wanted]
        for conn, _stamp, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            topic = conn.topic
            if topic == spec.pose_topic:
                latest["pose"] = _pose(msg)
            elif topic == spec.joint_topic:
                latest["joints"] = split_joint_state(list(msg.name), msg.position, spec.n_arm_joints)
            elif topic in cams:
                latest[cams[topic]] = _image(msg, depth=cams[topic] == keys.OBS_DEPTH)
            elif all(k in latest for k in ("pose", "joints", *cams.values())):
                obs = {keys.OBS_STATE: state_vector(*latest["pose"], *latest["joints"])}
                obs.update({k: latest[k] for k in cams.values()})
                if demo:
                    flags = keys.FLAG_DEMO
                else:
                    flags = keys.FLAG_INTERVENTION if msg.active else keys.FLAG_ROLLOUT
                yield obs, _action(msg), flags


def _ingest_bag(bag: Path, writer: Any, spec: IngestSpec, side: dict[str, Any]) -> int:
    meta = dict(side.get("meta") or {})
    success = side.get("label") == "success"
    episode = writer.begin_episode(
        meta={
            "task": side.get("task", ""),
            "source": meta.get("source", "rollout"),
            "label": side.get("label", "unknown"),
            "bag_episode_id": side.get("episode_id", bag.name),
            "bag": str(bag.resolve()),
            "note": side.get("note", ""),
        }
    )
    try:
        prev = None
        for step in _steps(bag, spec, demo=meta.get("source") == "demo"):
            if prev is not None:
                episode.add_step(prev[0], prev[1], 0.0, prev[2])
            prev = step
        if prev is None:
            raise ValueError(
                f"no control tick with a robot state before it (no {spec.intervention_topic} after "
                f"the first {spec.pose_topic} and {spec.joint_topic})"
            )
        episode.add_step(prev[0], prev[1], 1.0 if success else 0.0, prev[2])
        info = episode.end(success=success)
    except BaseException as exc:
        episode.abort(f"ingest of {bag} failed: {exc!r}")
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        what = f"{exc.__class__.__name__}: {exc}"
        if type(exc).__module__.startswith("rosbags"):
            what = f"corrupt or truncated bag ({what})"
        raise IngestError(bag, what) from exc
    return info.length


def ingest(
    bag_dirs: Iterable[str | Path],
    dataset_root: str | Path,
    spec: IngestSpec | None = None,
    *,
    skip_bad: bool = False,
    fsync: bool = True,
) -> dict[str, Any]:
    """Append the episodes of ``bag_dirs`` (bags or directories of bags) to the dataset at ``dataset_root``.

    Returns a report ``{"ingested": [(bag, steps)], "skipped": [(bag, why)], "failed": [(bag, error)]}``.
    Raises :class:`IngestError` at the first bad bag unless ``skip_bad`` (then it is reported in "failed");
    the episodes ingested before it are kept either way.
    """
    from rl100.data import Dataset, DatasetWriter

    spec = spec or IngestSpec()
    bags = find_bags(bag_dirs)
    done: set[str] = set()
    if (Path(dataset_root) / "dataset.json").is_file():
        done = {str(i.meta.get("bag_episode_id")) for i in Dataset(dataset_root).infos}
    report: dict[str, list] = {"ingested": [], "skipped": [], "failed": []}
    with DatasetWriter(dataset_root, fsync=fsync, note={"tool": "rl100 ingest", "bags": len(bags)}) as writer:
        for bag in bags:
            try:
                side = read_sidecar(bag)
                if side.get("label") not in spec.labels:
                    report["skipped"].append((str(bag), f"label {side.get('label')!r} not in {spec.labels}"))
                    continue
                if str(side.get("episode_id", bag.name)) in done:
                    report["skipped"].append((str(bag), "already in the dataset"))
                    continue
                steps = _ingest_bag(bag, writer, spec, side)
            except IngestError as exc:
                if not skip_bad:
                    raise
                report["failed"].append((str(bag), exc.reason))
                continue
            report["ingested"].append((str(bag), steps))
            done.add(str(side.get("episode_id", bag.name)))
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bags", nargs="+", help="episode bag directories, or directories holding them")
    parser.add_argument("--out", required=True, help="dataset directory (created, or appended to)")
    parser.add_argument("--rgb", action="store_true", help=f"store {keys.OBS_RGB} from --rgb-topic")
    parser.add_argument("--rgb-topic", default="/camera/camera/color/image_raw")
    parser.add_argument("--depth", action="store_true", help=f"store {keys.OBS_DEPTH} from --depth-topic")
    parser.add_argument("--depth-topic", default="/camera/camera/aligned_depth_to_color/image_raw")
    parser.add_argument("--labels", default="success,failure,unknown", help="episode labels to ingest")
    parser.add_argument("--skip-bad", action="store_true", help="report bad bags and go on instead of stopping")


def run(args: argparse.Namespace) -> int:
    spec = IngestSpec(
        rgb_topic=args.rgb_topic if args.rgb else "",
        depth_topic=args.depth_topic if args.depth else "",
        labels=tuple(s for s in args.labels.split(",") if s),
    )
    try:
        report = ingest(args.bags, args.out, spec, skip_bad=args.skip_bad)
    except IngestError as exc:
        print(f"rl100 ingest: {exc}", file=sys.stderr)
        return 1
    for bag, steps in report["ingested"]:
        print(f"ingested {bag}: {steps} steps")
    for bag, why in report["skipped"]:
        print(f"skipped {bag}: {why}")
    for bag, why in report["failed"]:
        print(f"FAILED {bag}: {why}", file=sys.stderr)
    print(f"{len(report['ingested'])} episode(s) added to {args.out}")
    return 1 if report["failed"] else 0
