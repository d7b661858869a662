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
- ``observation.points`` (N, 3) when the bags hold a PointCloud2 topic (``/rl100/points``) and a
  preprocessing is given (``--card MODEL.card.json``, or ``--n-points/--crop-lo/--crop-hi/--sampler``):
  the cloud stamped like the step's robot state (or the newest one before it, within
  ``--points-tolerance``), cropped and downsampled by the policy node's own code; the crop box,
  sampler and N go into the dataset meta (``points_lo``, ``points_hi``, ``points_sampler``,
  ``n_points``), where ``rl100 export`` finds them. Leading steps without a cloud are dropped and
  counted; a later one fails the episode (rules in :mod:`rl100.ingest_points`). Without a
  preprocessing, clouds are left out and the command says so (``--no-points`` silences it);
- ``flags``: FLAG_DEMO for every step of an episode whose meta says ``source: demo``; otherwise
  FLAG_INTERVENTION when ``active``, else FLAG_ROLLOUT;
- ``reward`` 1 at the last step of an episode labelled ``success``, 0 elsewhere; the episode's
  ``success`` comes from the recorder's ``episode.json`` sidecar.
- an episode whose meta has ``table_dz`` (the recorder stores its ``table_dz`` parameter: the
  table stood that much higher than the training table) goes in in the table frame
  (:mod:`rl100.taskframe`): TCP z and target z minus ``table_dz``, the cloud cropped in the box
  moved up by it and shifted down, so data from every stand trains one policy.

Each episode is finalised atomically by the DatasetWriter, so when a bag turns out corrupt or
truncated, :class:`IngestError` names that bag and what is wrong (and, for an undecodable or
unusable message, its topic and index on that topic), the half-read episode is discarded and the
episodes already ingested stay in the dataset. Bags already in the dataset
(same recorder ``episode_id``) are skipped, so re-running over a growing directory is safe.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rl100 import geometry, keys
from rl100.ingest_points import POINTCLOUD2, MessageError, PointsMatcher, PointsPreprocessing, episode_rng, stamp_s
from rl100.pointcloud import SAMPLERS
from rl100.robot_state import split_joint_state, state_vector
from rl100.taskframe import TableFrame

EPISODE_FILE = "episode.json"  # the recorder's sidecar (rl100_recorder.bag_writer)
PARTIAL_SUFFIX = ".partial"


@dataclass(frozen=True)
class IngestSpec:
    """What to read from the bags. Topic names are those of the rl100 graph (rl100_ros.topics).

    ``rgb_topic`` / ``depth_topic``: empty = no camera key in the dataset. ``labels``: episodes
    whose sidecar label is not listed are skipped (e.g. ``("success", "failure")`` drops
    unlabelled ones). ``points``: the model's point-cloud preprocessing; None = no
    ``observation.points`` (the clouds of a bag holding ``points_topic`` are left out, and the
    report lists that bag under "points_ignored"; an empty ``points_topic`` silences that).
    ``points_tolerance``: s, how much older than the robot state the matched cloud may be.
    ``points_seed``: seeds each episode's downsampling rng (with its id).
    """

    intervention_topic: str = "/rl100/intervention"
    pose_topic: str = "/franka_robot_state_broadcaster/current_pose"
    joint_topic: str = "/joint_states"
    n_arm_joints: int = 7
    rgb_topic: str = ""
    depth_topic: str = ""
    labels: tuple[str, ...] = ("success", "failure", "unknown")
    points_topic: str = "/rl100/points"
    points: PointsPreprocessing | None = None
    points_tolerance: float = 0.1
    points_seed: int = 0


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


def _steps(bag: Path, spec: IngestSpec, demo: bool, episode_id: str, counts: dict[str, int],
           frame: TableFrame | None = None) -> Iterator[tuple[dict, np.ndarray, int]]:
    """(obs, action, flags) per control tick, in bag time order (the cloud in ``frame``, if given).

    ``counts["dropped"]`` is set to the number of leading ticks left out for want of a cloud,
    ``counts["points_ignored"]`` to 1 when the bag has clouds but no preprocessing was given.
    """
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    cams = {t: k for t, k in ((spec.rgb_topic, keys.OBS_RGB), (spec.depth_topic, keys.OBS_DEPTH)) if t}
    wanted = {spec.intervention_topic, spec.pose_topic, spec.joint_topic, *cams}
    matcher = None
    if spec.points is not None:
        wanted.add(spec.points_topic)
        matcher = PointsMatcher(spec.points, spec.points_topic, spec.points_tolerance,
                                episode_rng(spec.points_seed, episode_id), frame)
    latest: dict[str, Any] = {}
    index: dict[str, int] = {}  # topic -> messages read on it
    with AnyReader([bag], default_typestore=get_typestore(Stores.EMPTY)) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        missing = sorted(t for t in wanted if t not in types)
        if missing:
            raise ValueError(f"topics {missing} not in the bag (it has {sorted(types)})")
        counts["points_ignored"] = int(spec.points is None and spec.points_topic in types)
        if matcher is not None and types[spec.points_topic] != POINTCLOUD2:
            raise ValueError(f"{spec.points_topic} is {types[spec.points_topic]}, not {POINTCLOUD2}")
        conns = [c for c in reader.connections if c.topic in wanted]
        for conn, _stamp, raw in reader.messages(connections=conns):
            topic = conn.topic
            i = index[topic] = index.get(topic, -1) + 1
            try:
                msg = reader.deserialize(raw, conn.msgtype)
            except Exception as exc:
                raise MessageError(f"{topic} message #{i} cannot be decoded: corrupt message "
                                   f"({exc.__class__.__name__}: {exc})") from exc
            if topic == spec.pose_topic:
                latest["pose"] = _pose(msg)
                latest["pose_stamp"] = (stamp_s(msg.header), str(msg.header.frame_id))
            elif topic == spec.joint_topic:
                latest["joints"] = split_joint_state(list(msg.name), msg.position, spec.n_arm_joints)
            elif topic in cams:
                try:
                    latest[cams[topic]] = _image(msg, depth=cams[topic] == keys.OBS_DEPTH)
                except ValueError as exc:
                    raise MessageError(f"{topic} message #{i}: {exc}") from None
            elif matcher is not None and topic == spec.points_topic:
                yield from _with_points(matcher.add_cloud(msg))
            elif all(k in latest for k in ("pose", "joints", *cams.values())):
                obs = {keys.OBS_STATE: state_vector(*latest["pose"], *latest["joints"])}
                obs.update({k: latest[k] for k in cams.values()})
                if demo:
                    flags = keys.FLAG_DEMO
                else:
                    flags = keys.FLAG_INTERVENTION if msg.active else keys.FLAG_ROLLOUT
                step = (obs, _action(msg), flags)
                if matcher is None:
                    yield step
                else:
                    yield from _with_points(matcher.add_step(i, *latest["pose_stamp"], step))
    if matcher is not None:
        yield from _with_points(matcher.finish())
        counts["dropped"] = matcher.dropped


def _with_points(resolved: list[tuple[Any, np.ndarray]]) -> Iterator[tuple[dict, np.ndarray, int]]:
    for (obs, action, flags), points in resolved:
        yield {**obs, keys.OBS_POINTS: points}, action, flags


_OWN_META = ("task", "source", "label", "bag_episode_id", "bag", "note", keys.TABLE_DZ)  # what _ingest_bag writes


def _ingest_bag(bag: Path, writer: Any, spec: IngestSpec, side: dict[str, Any],
                extra: Mapping[str, Any] | None = None) -> tuple[int, dict[str, int]]:
    """Ingest one bag as one episode: (steps written, counts of :func:`_steps`)."""
    meta = dict(side.get("meta") or {})
    success = side.get("label") == "success"
    try:  # recorded on another stand: the episode goes in as if on the training table
        frame = TableFrame(float(meta.get(keys.TABLE_DZ, 0.0)))
    except (TypeError, ValueError) as exc:
        raise IngestError(bag, f"episode meta {keys.TABLE_DZ} is not a usable table shift: {exc}") from None
    own = {
        "task": side.get("task", ""),
        "source": meta.get("source", "rollout"),
        "label": side.get("label", "unknown"),
        "bag_episode_id": side.get("episode_id", bag.name),
        "bag": str(bag.resolve()),
        "note": side.get("note", ""),
        keys.TABLE_DZ: frame.dz,
    }
    episode = writer.begin_episode(meta={**dict(extra or {}), **own})
    counts = {"dropped": 0, "points_ignored": 0}
    try:
        prev = None
        steps = _steps(bag, spec, meta.get("source") == "demo", str(side.get("episode_id", bag.name)), counts,
                       frame)
        for obs, action, flags in steps:
            if prev is not None:
                episode.add_step(prev[0], prev[1], 0.0, prev[2])
            if frame.dz:  # the cloud came out of the matcher in the table frame already
                obs = {**obs, keys.OBS_STATE: frame.state(obs[keys.OBS_STATE])}
                action = frame.action_in(action).astype(np.float32)
            prev = (obs, action, flags)
        if prev is None and counts["dropped"]:
            raise ValueError(f"none of its {counts['dropped']} control ticks has a {spec.points_topic} cloud "
                             f"stamped at most {spec.points_tolerance} s before its robot state")
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
        what = str(exc) if isinstance(exc, MessageError) else f"{exc.__class__.__name__}: {exc}"
        if type(exc).__module__.startswith("rosbags"):
            what = f"corrupt or truncated bag ({what})"
        raise IngestError(bag, what) from exc
    return info.length, counts


def ingest(
    bag_dirs: Iterable[str | Path],
    dataset_root: str | Path,
    spec: IngestSpec | None = None,
    *,
    skip_bad: bool = False,
    fsync: bool = True,
    episode_meta: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Append the episodes of ``bag_dirs`` (bags or directories of bags) to the dataset at ``dataset_root``.

    Returns a report ``{"ingested": [(bag, steps)], "skipped": [(bag, why)], "failed": [(bag, error)],
    "dropped": [(bag, n_steps, why)], "points_ignored": [bag]}`` ("dropped": leading steps left out for
    want of a point cloud; "points_ignored": bags whose clouds were left out, no preprocessing given).
    Raises :class:`IngestError` at the first bad bag unless ``skip_bad`` (then it is reported in "failed");
    the episodes ingested before it are kept either way. A dataset that already holds episodes with
    another point-cloud preprocessing (or with / without ``observation.points`` when this run is
    not) is refused before anything is written (IngestError naming the dataset).
    ``episode_meta``: extra episode meta by the recorder's episode id (what the caller knows of an
    episode that the bag does not hold, e.g. why a scripted operator took over); it cannot
    replace the keys ingest writes.
    """
    from rl100.data import Dataset, DatasetWriter

    spec = spec or IngestSpec()
    for episode_id, extra in (episode_meta or {}).items():
        clash = sorted(set(extra) & set(_OWN_META))
        if clash:
            raise ValueError(f"episode_meta for {episode_id} would replace ingest's own keys {clash}")
    bags = find_bags(bag_dirs)
    done: set[str] = set()
    root = Path(dataset_root)
    meta = spec.points.meta() if spec.points is not None else {}
    if (root / "dataset.json").is_file():
        existing = Dataset(dataset_root)
        done = {str(i.meta.get("bag_episode_id")) for i in existing.infos}
        _check_points_compatible(root, existing, meta)
    report: dict[str, list] = {"ingested": [], "skipped": [], "failed": [], "dropped": [], "points_ignored": []}
    try:
        writer = DatasetWriter(dataset_root, meta=meta, fsync=fsync, note={"tool": "rl100 ingest", "bags": len(bags)})
    except ValueError as exc:
        raise IngestError(root, str(exc)) from None
    with writer:
        for bag in bags:
            try:
                side = read_sidecar(bag)
                if side.get("label") not in spec.labels:
                    report["skipped"].append((str(bag), f"label {side.get('label')!r} not in {spec.labels}"))
                    continue
                if str(side.get("episode_id", bag.name)) in done:
                    report["skipped"].append((str(bag), "already in the dataset"))
                    continue
                extra = (episode_meta or {}).get(str(side.get("episode_id", bag.name)), {})
                steps, counts = _ingest_bag(bag, writer, spec, side, extra)
            except IngestError as exc:
                if not skip_bad:
                    raise
                report["failed"].append((str(bag), exc.reason))
                continue
            report["ingested"].append((str(bag), steps))
            if counts["dropped"]:
                why = f"leading steps without a {spec.points_topic} cloud"
                report["dropped"].append((str(bag), counts["dropped"], why))
            if counts["points_ignored"]:
                report["points_ignored"].append(str(bag))
            done.add(str(side.get("episode_id", bag.name)))
    return report


def _check_points_compatible(root: Path, existing: Any, meta: dict[str, Any]) -> None:
    has_points = keys.OBS_POINTS in (existing.specs or {})
    if len(existing) and has_points != bool(meta):
        raise IngestError(root, f"the dataset's episodes {'have' if has_points else 'have no'} {keys.OBS_POINTS}, "
                                f"this ingest {'makes' if meta else 'makes none'}; use another --out")
    old = {k: existing.meta[k] for k in meta if k in existing.meta}
    if any(old[k] != meta[k] for k in old):
        raise IngestError(root, f"the dataset was made with point-cloud preprocessing {old}, this ingest "
                                f"asks for {meta}; use another --out (a dataset has one observation spec)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bags", nargs="+", help="episode bag directories, or directories holding them")
    parser.add_argument("--out", required=True, help="dataset directory (created, or appended to)")
    parser.add_argument("--rgb", action="store_true", help=f"store {keys.OBS_RGB} from --rgb-topic")
    parser.add_argument("--rgb-topic", default="/camera/camera/color/image_raw")
    parser.add_argument("--depth", action="store_true", help=f"store {keys.OBS_DEPTH} from --depth-topic")
    parser.add_argument("--depth-topic", default="/camera/camera/aligned_depth_to_color/image_raw")
    parser.add_argument("--labels", default="success,failure,unknown", help="episode labels to ingest")
    parser.add_argument("--skip-bad", action="store_true", help="report bad bags and go on instead of stopping")
    pts = parser.add_argument_group(
        f"point clouds ({keys.OBS_POINTS})",
        "needed when the bags hold --points-topic; --card gives the model's N, crop box and sampler, "
        "the other options override it")
    pts.add_argument("--card", help="model card (MODEL.card.json): ingest for exactly that model's observation spec")
    pts.add_argument("--points-topic", default="/rl100/points", help="PointCloud2 topic (base frame, xyz)")
    pts.add_argument("--n-points", type=int, help="points per step (default: the card's; else 512)")
    pts.add_argument("--crop-lo", help="x,y,z: crop box low corner, m, base frame (default: the card's)")
    pts.add_argument("--crop-hi", help="x,y,z: crop box high corner (default: the card's)")
    pts.add_argument("--sampler", choices=SAMPLERS, help="downsampler (default: the card's; else random)")
    pts.add_argument("--points-tolerance", type=float, default=0.1,
                     help="s: how much older than the robot state a step's cloud may be (default 0.1)")
    pts.add_argument("--points-seed", type=int, default=0, help="seed of the downsampling (per episode)")
    pts.add_argument("--no-points", action="store_true", help="ignore the bags' point clouds")


def _xyz(text: str, what: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise ValueError(f"{what} must look like x,y,z, got {text!r}")
    return values  # type: ignore[return-value]


def points_from_args(args: argparse.Namespace) -> PointsPreprocessing | None:
    """The points preprocessing asked for on the command line (the card's, overridden by the options), or None."""
    given = [args.n_points is not None, args.crop_lo, args.crop_hi, args.sampler]
    if args.no_points:
        if args.card or any(given):
            raise ValueError("--no-points contradicts --card / --n-points / --crop-lo / --crop-hi / --sampler")
        return None
    base = None
    if args.card:
        from rl100.export.card import read_card

        card = read_card(args.card)
        base = PointsPreprocessing.from_card(card)
        produced = {keys.OBS_STATE, keys.OBS_POINTS} | ({keys.OBS_RGB} if args.rgb else set()) | (
            {keys.OBS_DEPTH} if args.depth else set())
        lacking = sorted({e.get("key") for e in card["observation_spec"]} - produced)
        if lacking:
            raise ValueError(f"the model {args.card} also takes {lacking}, which this ingest does not make "
                             f"(add --rgb / --depth)")
    elif not any(given):
        return None
    elif not (args.crop_lo and args.crop_hi):
        raise ValueError("point clouds need a crop box: --card MODEL.card.json, or --crop-lo and --crop-hi")
    return PointsPreprocessing(
        n=args.n_points if args.n_points is not None else base.n if base else 512,
        crop_lo=_xyz(args.crop_lo, "--crop-lo") if args.crop_lo else base.crop_lo,
        crop_hi=_xyz(args.crop_hi, "--crop-hi") if args.crop_hi else base.crop_hi,
        sampler=args.sampler or (base.sampler if base else "random"),
    )


def run(args: argparse.Namespace) -> int:
    try:
        points = points_from_args(args)
    except (OSError, ValueError) as exc:
        print(f"rl100 ingest: {exc}", file=sys.stderr)
        return 2
    spec = IngestSpec(
        rgb_topic=args.rgb_topic if args.rgb else "",
        depth_topic=args.depth_topic if args.depth else "",
        labels=tuple(s for s in args.labels.split(",") if s),
        points_topic="" if args.no_points else args.points_topic,
        points=points,
        points_tolerance=args.points_tolerance,
        points_seed=args.points_seed,
    )
    try:
        report = ingest(args.bags, args.out, spec, skip_bad=args.skip_bad)
    except IngestError as exc:
        print(f"rl100 ingest: {exc}", file=sys.stderr)
        return 1
    if points is not None:
        print(f"{keys.OBS_POINTS}: ({points.n}, 3) from {spec.points_topic}, crop {list(points.crop_lo)} .. "
              f"{list(points.crop_hi)}, sampler {points.sampler}")
    for bag, steps in report["ingested"]:
        print(f"ingested {bag}: {steps} steps")
    for bag, why in report["skipped"]:
        print(f"skipped {bag}: {why}")
    for bag, n, why in report["dropped"]:
        print(f"dropped {n} step(s) of {bag}: {why}")
    if report["points_ignored"]:
        print(f"note: {len(report['points_ignored'])} bag(s) hold point clouds on {spec.points_topic}, left out: "
              f"give --card MODEL.card.json (or --n-points/--crop-lo/--crop-hi/--sampler) to make "
              f"{keys.OBS_POINTS}, --no-points to silence this", file=sys.stderr)
    for bag, why in report["failed"]:
        print(f"FAILED {bag}: {why}", file=sys.stderr)
    print(f"{len(report['ingested'])} episode(s) added to {args.out}")
    return 1 if report["failed"] else 0
