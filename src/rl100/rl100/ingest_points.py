"""Point clouds for ``rl100 ingest``: PointCloud2 decoding, cloud-to-step matching, the model's preprocessing.

Pure numpy (no rclpy): messages are the objects rosbags deserialises (any object with the
PointCloud2 fields will do, so the rules are unit-testable on synthetic messages).

Matching rule (the policy node's, by header stamps): a control step whose robot state is stamped
``s`` (the header stamp of the pose its state comes from) gets the cloud stamped ``s``; failing
that, the newest cloud stamped before ``s`` and at most ``tolerance`` seconds older. A cloud stamped
after ``s`` is never used (it did not exist when the state was measured). Clouds may arrive in the
bag after the step that needs them (the recorder writes in arrival order), so a step waits until a
cloud stamped at or after ``s`` has been read, or the bag ends.

Steps without a matching cloud:

- the *leading* ones (before the first step that has a cloud: the recorder started between a
  state and its cloud, or the camera started late) are dropped and counted in the report;
- any later one fails the episode with the bag, the step's tick index and stamp, and the nearest
  cloud before it: a hole in the middle of an episode would silently join two distant moments
  into one training window, so it is refused rather than stitched.

The cloud then goes through exactly the policy node's preprocessing
(``rl100_policy_node.observations``): non-finite points removed, then
:func:`rl100.pointcloud.crop_and_sample` with the model's crop box, sampler and N, and a seeded rng.
"""

from __future__ import annotations

import zlib
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from rl100.keys import OBS_POINTS
from rl100.pointcloud import check_preprocessing, crop_and_sample
from rl100.taskframe import TableFrame

POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
FLOAT32, FLOAT64 = 7, 8  # sensor_msgs/PointField datatypes
STAMP_EPS = 1e-6  # s: stamps this close are the same tick (float rounding of sec + nanosec)


class MessageError(ValueError):
    """A bag's messages cannot make a step; the text names the topic and message index (or step) at fault."""


@dataclass(frozen=True)
class PointsPreprocessing:
    """The model's points input: N points sampled by ``sampler`` from the crop box ``[crop_lo, crop_hi]``.

    ``depth_filter``: the camera-side filter the clouds went through (recorded, not applied here).
    """

    n: int
    crop_lo: tuple[float, float, float]
    crop_hi: tuple[float, float, float]
    sampler: str = "random"
    depth_filter: str = "none"

    def __post_init__(self) -> None:
        check_preprocessing({"crop_lo": self.crop_lo, "crop_hi": self.crop_hi, "sampler": self.sampler,
                             "depth_filter": self.depth_filter})
        if int(self.n) < 1:
            raise ValueError(f"the number of points must be >= 1, got {self.n}")

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> PointsPreprocessing:
        """From a model card's ``observation.points`` observation_spec entry (shape ``(n_obs, N, 3)``)."""
        entries = [e for e in card.get("observation_spec", []) if e.get("key") == OBS_POINTS]
        if not entries:
            keys = [e.get("key") for e in card.get("observation_spec", [])]
            raise ValueError(f"the model card has no {OBS_POINTS} input (it takes {keys})")
        entry = entries[0]
        shape = list(entry.get("shape", []))
        if len(shape) != 3 or shape[2] != 3:
            raise ValueError(f"{OBS_POINTS} must be (n_obs, N, 3) xyz in the card, got {shape}")
        pre = check_preprocessing(entry)
        return cls(int(shape[1]), tuple(pre["crop_lo"]), tuple(pre["crop_hi"]), pre["sampler"], pre["depth_filter"])

    def meta(self) -> dict[str, Any]:
        """Dataset meta keys (those ``rl100 collect`` writes and ``rl100 export`` reads)."""
        return {"points_lo": [float(v) for v in self.crop_lo], "points_hi": [float(v) for v in self.crop_hi],
                "points_sampler": self.sampler, "points_depth_filter": self.depth_filter, "n_points": int(self.n)}


def stamp_s(header: Any) -> float:
    return float(header.stamp.sec) + 1e-9 * float(header.stamp.nanosec)


def cloud_xyz(msg: Any) -> np.ndarray:
    """(M, 3) float32 xyz of a PointCloud2 with float32 (or float64) x, y, z fields at any offsets.

    Raises ValueError saying what is wrong (missing field, wrong datatype, data shorter than its
    declared size...).
    """
    fields = {f.name: f for f in msg.fields}
    missing = [n for n in "xyz" if n not in fields]
    if missing:
        raise ValueError(f"no field(s) {missing} (fields: {[f.name for f in msg.fields]}); need x, y, z")
    height, width, step, row_step = int(msg.height), int(msg.width), int(msg.point_step), int(msg.row_step)
    end = ">" if msg.is_bigendian else "<"
    formats, offsets = [], []
    for n in "xyz":
        f = fields[n]
        if f.datatype not in (FLOAT32, FLOAT64) or int(f.count) != 1:
            raise ValueError(f"field {n!r} is datatype {f.datatype} x {f.count}; need FLOAT32 (7) or FLOAT64 (8) x 1")
        size = 4 if f.datatype == FLOAT32 else 8
        if int(f.offset) + size > step:
            raise ValueError(f"field {n!r} at offset {f.offset} does not fit point_step {step}")
        formats.append(f"{end}f{size}")
        offsets.append(int(f.offset))
    if width * step > row_step:
        raise ValueError(f"width {width} x point_step {step} exceeds row_step {row_step}")
    data = np.asarray(msg.data, dtype=np.uint8).reshape(-1)
    if data.size < height * row_step:
        raise ValueError(f"data has {data.size} bytes, height {height} x row_step {row_step} needs {height * row_step}")
    if height * width == 0:
        return np.zeros((0, 3), dtype=np.float32)
    rows = np.ascontiguousarray(data[: height * row_step].reshape(height, row_step)[:, : width * step])
    dtype = np.dtype({"names": list("xyz"), "formats": formats, "offsets": offsets, "itemsize": step})
    pts = rows.reshape(-1).view(dtype)
    return np.stack([pts["x"], pts["y"], pts["z"]], axis=1).astype(np.float32)


@dataclass
class _Cloud:
    stamp: float
    frame: str
    index: int  # message index on the points topic
    points: np.ndarray  # (M, 3) finite float32


@dataclass
class _Pending:
    tick: int  # index of the control tick (intervention message) in the bag
    stamp: float  # robot-state stamp
    frame: str  # robot-state (pose) frame
    item: Any  # what is handed back with the points


class PointsMatcher:
    """Streams control steps and clouds (in bag order) and hands back each step with its points.

    ``add_step`` / ``add_cloud`` return the steps resolved so far (in step order) as
    ``(item, points (n, 3) float32)``; ``finish`` resolves the rest. ``dropped`` counts the leading
    steps without a cloud. Raises MessageError (a ValueError) for a later step without one (module
    docstring), a cloud that cannot be decoded as xyz, or one in another frame than the robot state.
    """

    def __init__(self, pre: PointsPreprocessing, topic: str, tolerance: float = 0.1,
                 rng: np.random.Generator | None = None, frame: TableFrame | None = None) -> None:
        if not tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0 s, got {tolerance}")
        self.pre, self.topic, self.tolerance = pre, topic, float(tolerance)
        self.frame = frame or TableFrame()  # clouds recorded on another stand: into the table frame
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.dropped = 0
        self.emitted = 0
        self._clouds: list[_Cloud] = []  # in arrival order
        self._pending: deque[_Pending] = deque()
        self._n_clouds = 0

    def add_cloud(self, msg: Any) -> list[tuple[Any, np.ndarray]]:
        index = self._n_clouds
        self._n_clouds += 1
        try:
            pts = cloud_xyz(msg)
        except ValueError as exc:
            raise MessageError(f"{self.topic} message #{index} is not a usable point cloud: {exc}") from None
        pts = pts[np.all(np.isfinite(pts), axis=1)]
        self._clouds.append(_Cloud(stamp_s(msg.header), str(msg.header.frame_id), index, pts))
        return self._resolve(final=False)

    def add_step(self, tick: int, stamp: float, frame: str, item: Any) -> list[tuple[Any, np.ndarray]]:
        self._pending.append(_Pending(tick, float(stamp), str(frame), item))
        return self._resolve(final=False)

    def finish(self) -> list[tuple[Any, np.ndarray]]:
        return self._resolve(final=True)

    def _resolve(self, final: bool) -> list[tuple[Any, np.ndarray]]:
        out = []
        newest = max((c.stamp for c in self._clouds), default=float("-inf"))
        while self._pending and (final or newest >= self._pending[0].stamp - STAMP_EPS):
            step = self._pending.popleft()
            cloud = self._match(step.stamp)
            if cloud is None:
                if self.emitted == 0:
                    self.dropped += 1
                    continue
                before = [c for c in self._clouds if c.stamp <= step.stamp + STAMP_EPS]
                near = (f"the newest before it is #{before[-1].index} at {before[-1].stamp:.6f} s"
                        if before else "none was kept before it")
                raise MessageError(
                    f"step {self.emitted} (control tick #{step.tick}, robot state at {step.stamp:.6f} s) has no "
                    f"{self.topic} cloud stamped at most {self.tolerance} s before it ({near}); "
                    f"a hole in the middle of an episode is refused (raise --points-tolerance if the camera is slow)")
            if step.frame and cloud.frame != step.frame:
                raise MessageError(f"{self.topic} message #{cloud.index} is in frame {cloud.frame!r}, "
                                 f"the robot state in {step.frame!r}: clouds must be in the robot base frame")
            pre = self.pre
            lo, hi = self.frame.crop_box(pre.crop_lo, pre.crop_hi)
            points = self.frame.points(crop_and_sample(cloud.points, None, lo, hi, pre.n, self.rng, pre.sampler))
            self.emitted += 1
            out.append((step.item, points))
            self._prune(step.stamp)
        return out

    def _match(self, stamp: float) -> _Cloud | None:
        best = None
        for c in self._clouds:
            if c.stamp <= stamp + STAMP_EPS and (best is None or c.stamp >= best.stamp):
                best = c
        if best is None or stamp - best.stamp > self.tolerance + STAMP_EPS:
            return None
        return best

    def _prune(self, stamp: float) -> None:
        """Forget the clouds no later step can use (steps come in stamp order): all before the newest at ``stamp``."""
        keep_from = 0
        for i, c in enumerate(self._clouds):
            if c.stamp <= stamp + STAMP_EPS:
                keep_from = i
        del self._clouds[:keep_from]


def episode_rng(seed: int, episode_id: str) -> np.random.Generator:
    """The downsampling rng of one episode: reproducible whatever the order the bags are ingested in."""
    return np.random.default_rng([int(seed), zlib.crc32(episode_id.encode("utf-8"))])

