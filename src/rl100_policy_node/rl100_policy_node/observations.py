"""Observation assembly for the policy node, without ROS.

The robot and camera topics arrive at their own rates; at each control tick the policy needs
one observation whose parts are recent and taken at (nearly) the same time. ``Assembler``
keeps the newest sample of each source with its header stamp, and ``assemble(now)`` returns
the observation dict, or raises ``StaleObservationError`` naming the source that is missing, too
old, or too far in time from the others.

Point clouds (``observation.points``): the node receives the full cropped cloud in the robot base
frame (``/rl100/points``, PointCloud2) and reproduces the model's training preprocessing, read from
its card's observation_spec entry (``crop_lo``, ``crop_hi``, ``sampler``, N = ``shape[1]``), with
``rl100.pointcloud.crop_and_sample`` and a seeded rng. The cloud is one more source in the age and
skew checks; a cloud in another frame is refused.

Table frame (``table_dz``, :mod:`rl100.taskframe`): on a table ``table_dz`` m higher than the
training one, the TCP z and the cloud are shifted down by it and the crop box up, so the policy
sees the scene it was trained on; the node shifts the targets back (``table_frame.action``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from rl100.keys import OBS_POINTS, OBS_STATE
from rl100.pointcloud import check_preprocessing, crop_and_sample
from rl100.robot_state import split_joint_state, state_vector
from rl100.taskframe import TableFrame

POSE, JOINTS, POINTS = 'pose', 'joints', 'points'
SUPPORTED_KEYS = (OBS_STATE, OBS_POINTS)


class StaleObservationError(RuntimeError):
    """No usable observation this tick; the message names the source and why."""


@dataclass(frozen=True)
class AssemblyConfig:
    max_age: float = 0.2  # s: a source older than this (by header stamp) is stale
    max_skew: float = 0.1  # s: largest stamp difference between sources of one observation
    base_frame: str = 'fr3_link0'  # frame point clouds must be in
    seed: int = 0  # seed of the point-cloud downsampling rng
    table_dz: float = 0.0  # m, table top now - table top in the training data (calibrated)

    def __post_init__(self):
        if not (self.max_age > 0 and self.max_skew > 0):
            raise ValueError(
                f'max_age and max_skew must be > 0, got {self.max_age}, {self.max_skew}')
        TableFrame(self.table_dz)  # raises on a non-finite or implausible shift

    @property
    def table_frame(self) -> TableFrame:
        return TableFrame(self.table_dz)


@dataclass(frozen=True)
class PointsSpec:
    """How to turn a received cloud into the model's points input (from its card entry)."""

    n: int
    crop_lo: np.ndarray
    crop_hi: np.ndarray
    sampler: str
    depth_filter: str = 'none'  # the camera-side filter the training clouds went through

    @classmethod
    def from_card_entry(cls, entry: dict) -> 'PointsSpec':
        try:
            pre = check_preprocessing(entry)
        except ValueError as exc:
            raise ValueError(f'the model card gives no usable point-cloud preprocessing for '
                             f'{OBS_POINTS} ({exc}); re-export it with the crop box and sampler '
                             f'(rl100 export --crop-lo/--crop-hi/--sampler)') from None
        shape = entry.get('shape', [])
        if len(shape) != 3 or shape[2] != 3:
            raise ValueError(f'{OBS_POINTS} must be (n_obs, N, 3) xyz in the card, got {shape}')
        return cls(int(shape[1]), np.asarray(pre['crop_lo']), np.asarray(pre['crop_hi']),
                   pre['sampler'], pre['depth_filter'])


class Assembler:
    """Newest sample per source; ``needed`` is the card's observation_spec (entries as dicts).

    Plain keys (strings, or the keys of ``PolicyRuntime.obs_spec``) do for inputs that need no
    preprocessing; ``observation.points`` needs its card entry (crop box, sampler, N).
    """

    def __init__(self, needed, config: AssemblyConfig | None = None):
        entries = {}
        for entry in needed:
            entry = {'key': entry} if isinstance(entry, str) else entry
            entries[entry['key']] = entry
        unsupported = sorted(set(entries) - set(SUPPORTED_KEYS))
        if unsupported:
            raise ValueError(f'the model needs observations {unsupported}, which this node cannot '
                             f'assemble yet (supported: {list(SUPPORTED_KEYS)})')
        self.config = config or AssemblyConfig()
        self.keys = tuple(entries)
        self.points = (PointsSpec.from_card_entry(entries[OBS_POINTS])
                       if OBS_POINTS in entries else None)
        self._sources = (POSE, JOINTS) + ((POINTS,) if self.points is not None else ())
        self._rng = np.random.default_rng(self.config.seed)
        self._frame = self.config.table_frame
        self._latest: dict = {}  # source -> (stamp s, value)

    @property
    def wants_points(self) -> bool:
        return self.points is not None

    def set_table_dz(self, table_dz: float) -> None:
        """A new table height (m) for what is assembled from now on; ValueError if implausible."""
        config = replace(self.config, table_dz=float(table_dz))  # checked by __post_init__
        self.config, self._frame = config, config.table_frame

    def pose(self, stamp: float, position, quat_xyzw) -> None:
        self._latest[POSE] = (stamp, (list(position), list(quat_xyzw)))

    def joints(self, stamp: float, names, positions) -> None:
        self._latest[JOINTS] = (stamp, split_joint_state(list(names), positions))

    def cloud(self, stamp: float, frame_id: str, points) -> None:
        """A full (M, 3) cloud; raises ValueError (and keeps the previous one) if unusable."""
        if frame_id != self.config.base_frame:
            raise ValueError(f'point cloud in frame {frame_id!r}, expected the base frame '
                             f'{self.config.base_frame!r}')
        pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)
        self._latest[POINTS] = (stamp, pts)

    def take_over(self, other: 'Assembler') -> None:
        """Start from the newest samples of another assembler (after a model swap)."""
        self._latest.update(other._latest)

    def newest_stamp(self) -> float:
        """Stamp (s) of the newest sample of any source, -inf before the first."""
        return max((stamp for stamp, _ in self._latest.values()), default=float('-inf'))

    def synced_stamp(self) -> float | None:
        """The common stamp (s) when every source's newest sample carries the same one, else None.

        A simulator in lockstep stamps all of a tick's messages alike, so this says "the whole
        observation of that tick has arrived".
        """
        if any(s not in self._latest for s in self._sources):
            return None
        stamps = [self._latest[s][0] for s in self._sources]
        return stamps[0] if max(stamps) - min(stamps) <= 1e-6 else None

    def assemble(self, now: float) -> dict:
        cfg = self.config
        for source in self._sources:
            if source not in self._latest:
                raise StaleObservationError(f'no {source} received yet')
            age = now - self._latest[source][0]
            if age > cfg.max_age:
                raise StaleObservationError(f'{source} is {age:.3f} s old (max {cfg.max_age} s)')
        stamps = {s: self._latest[s][0] for s in self._sources}
        skew = max(stamps.values()) - min(stamps.values())
        if skew > cfg.max_skew:
            first, last = min(stamps, key=stamps.get), max(stamps, key=stamps.get)
            raise StaleObservationError(
                f'{first} and {last} are {skew:.3f} s apart (max {cfg.max_skew} s)')
        (position, quat), (width, arm) = self._latest[POSE][1], self._latest[JOINTS][1]
        state = state_vector(position, quat, width, arm)
        if not np.all(np.isfinite(state)):
            raise StaleObservationError('robot state has non-finite values')
        frame = self._frame
        obs = {OBS_STATE: frame.state(state)}
        if self.points is not None:
            cloud = self._latest[POINTS][1]  # non-finite points fall outside any crop box
            spec = self.points
            lo, hi = frame.crop_box(spec.crop_lo, spec.crop_hi)
            obs[OBS_POINTS] = frame.points(crop_and_sample(cloud, None, lo, hi, spec.n, self._rng,
                                                           spec.sampler))
        return obs
