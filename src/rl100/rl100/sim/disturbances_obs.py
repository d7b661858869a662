"""Observation-side robustness families: sensor noise, dropped camera frames, observation latency.

Pure numpy on an observation dict (no MuJoCo): the simulated tasks apply them inside
``PandaTaskEnv._observe`` (before the point cloud is made from the depth image, so a cloud inherits the
depth noise, a dropped frame keeps its cloud, a delayed depth image gives a delayed cloud), and the ROS
sim robot reads those observations, so the ROS stack sees exactly what ``rl100 eval`` sees.
:class:`ObservationFilter` is the same chain for any other observation stream.

What they touch: ``observation.state`` (the robot's proprioception) and the camera images (scene
``rgb`` / ``depth`` and the wrist camera's). Never ``observation.environment_state``, the privileged
ground truth of experts and critics.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from rl100.keys import OBS_DEPTH, OBS_RGB, OBS_STATE
from rl100.sim.disturbances_base import Family, check_number, register
from rl100.sim.obs import OBS_WRIST_DEPTH, OBS_WRIST_RGB

CAMERA_KEYS = (OBS_RGB, OBS_DEPTH, OBS_WRIST_RGB, OBS_WRIST_DEPTH)
RGB_KEYS = (OBS_RGB, OBS_WRIST_RGB)
DEPTH_KEYS = (OBS_DEPTH, OBS_WRIST_DEPTH)


def _small_rotation_quat_xyzw(rng: np.random.Generator, std: float) -> np.ndarray:
    """(4,) xyzw quaternion of a rotation vector drawn N(0, std^2 I) (rad)."""
    rv = rng.normal(0.0, std, 3)
    angle = float(np.linalg.norm(rv))
    if angle < 1e-12:
        return np.array([0.0, 0.0, 0.0, 1.0])
    return np.concatenate([np.sin(angle / 2) * rv / angle, [np.cos(angle / 2)]])


def _quat_mul_xyzw(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ])


@register
@dataclass(kw_only=True)
class SensorNoise(Family):
    """Gaussian noise on proprioception and cameras, fresh every observation.

    Attributes:
        pos_std: m, on the TCP position and the gripper width.
        rot_std: rad, a random rotation (rotation vector ~ N(0, rot_std^2)) of the TCP orientation.
        joint_std: rad, on the joint angles.
        depth_std: m at 1 m; the std grows with the square of the depth (a stereo camera's error).
        depth_holes: fraction of depth pixels lost (set to 0 = no return).
        rgb_std: 0..255 units, on every colour channel.
    """

    name = "sensor_noise"
    kind = "observation"
    order = 0
    presets = {
        "mild": {"pos_std": 0.001, "rot_std": 0.005, "joint_std": 0.002,
                 "depth_std": 0.002, "depth_holes": 0.0, "rgb_std": 2.0},
        "moderate": {"pos_std": 0.003, "rot_std": 0.015, "joint_std": 0.005,
                     "depth_std": 0.005, "depth_holes": 0.02, "rgb_std": 5.0},
        "severe": {"pos_std": 0.008, "rot_std": 0.04, "joint_std": 0.01,
                   "depth_std": 0.012, "depth_holes": 0.08, "rgb_std": 12.0},
    }

    pos_std: float | None = None
    rot_std: float | None = None
    joint_std: float | None = None
    depth_std: float | None = None
    depth_holes: float | None = None
    rgb_std: float | None = None

    def validate(self) -> None:
        for f in ("pos_std", "rot_std", "joint_std", "depth_std", "rgb_std"):
            setattr(self, f, check_number(self.name, f, getattr(self, f), 0.0))
        self.depth_holes = check_number(self.name, "depth_holes", self.depth_holes, 0.0, 1.0)

    def begin_episode(self, env, dset, rng) -> None:
        self.rng = rng

    def filter(self, obs):
        rng, out = self.rng, dict(obs)
        if OBS_STATE in obs:
            s = np.array(obs[OBS_STATE], dtype=np.float64)
            s[0:3] += rng.normal(0.0, self.pos_std, 3)
            q = _quat_mul_xyzw(_small_rotation_quat_xyzw(rng, self.rot_std), s[3:7])
            s[3:7] = q if np.dot(q, s[3:7]) >= 0 else -q  # keep the state's sign convention
            s[7] = max(s[7] + rng.normal(0.0, self.pos_std), 0.0)
            s[8:15] += rng.normal(0.0, self.joint_std, 7)
            out[OBS_STATE] = s.astype(np.float32)
        for key in DEPTH_KEYS:
            if key in obs:
                d = obs[key].astype(np.float64)
                noisy = d + rng.standard_normal(d.shape) * self.depth_std * d * d
                noisy[d <= 0.0] = 0.0
                if self.depth_holes > 0:
                    noisy[rng.random(d.shape) < self.depth_holes] = 0.0
                out[key] = np.maximum(noisy, 0.0).astype(np.float32)
        for key in RGB_KEYS:
            if key in obs and self.rgb_std > 0:
                img = obs[key].astype(np.float32) + rng.standard_normal(obs[key].shape, dtype=np.float32) * self.rgb_std
                out[key] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        return out


@register
@dataclass(kw_only=True)
class FrameDrop(Family):
    """Dropped camera frames: with probability ``prob`` a step's camera images are the previous ones.

    Attributes:
        prob: chance per control step that the camera frame is not updated (repeats the last one
            delivered; the first frame of an episode always arrives).
        state: the robot state is held on the same steps too (a stalled driver), not only the images.
    """

    name = "frame_drop"
    kind = "observation"
    order = 10
    presets = {"mild": {"prob": 0.1}, "moderate": {"prob": 0.3}, "severe": {"prob": 0.6}}

    prob: float | None = None
    state: bool = False

    def validate(self) -> None:
        self.prob = check_number(self.name, "prob", self.prob, 0.0, 1.0)
        if not isinstance(self.state, bool):
            raise ValueError(f"{self.name}.state must be true or false, got {self.state!r}")

    def begin_episode(self, env, dset, rng) -> None:
        self.rng, self._last, self.dropped = rng, None, 0

    def filter(self, obs):
        keys = CAMERA_KEYS + ((OBS_STATE,) if self.state else ())
        if self._last is not None and self.rng.random() < self.prob:
            self.dropped += 1
            return {**obs, **self._last}
        self._last = {k: obs[k] for k in keys if k in obs}
        return obs


@register
@dataclass(kw_only=True)
class Latency(Family):
    """Observations delayed by ``steps`` control steps (the first ones repeat the reset observation).

    Attributes:
        steps: k: the observation returned after step t is the one measured after step t - k.
        keys: ``all`` (state and cameras), ``camera`` or ``state``.
    """

    name = "latency"
    kind = "observation"
    order = 20
    presets = {"mild": {"steps": 1}, "moderate": {"steps": 2}, "severe": {"steps": 4}}

    steps: int | None = None
    keys: str = "all"

    def validate(self) -> None:
        if isinstance(self.steps, bool) or int(self.steps) != self.steps or not 0 <= self.steps <= 100:
            raise ValueError(f"{self.name}.steps must be an integer in [0, 100], got {self.steps!r}")
        self.steps = int(self.steps)
        if self.keys not in ("all", "camera", "state"):
            raise ValueError(f"{self.name}.keys must be 'all', 'camera' or 'state', got {self.keys!r}")

    def begin_episode(self, env, dset, rng) -> None:
        self._buffer: deque[dict] = deque(maxlen=self.steps + 1)

    def filter(self, obs):
        keys = {"all": CAMERA_KEYS + (OBS_STATE,), "camera": CAMERA_KEYS, "state": (OBS_STATE,)}[self.keys]
        self._buffer.append({k: obs[k] for k in keys if k in obs})
        return {**obs, **self._buffer[0]}


class ObservationFilter:
    """The observation families of one environment, applied in order (noise -> drops -> latency).

    ``begin_episode(rngs)`` with one generator per family, then call it on every observation dict.
    """

    def __init__(self, families: list[Family]) -> None:
        bad = [f.name for f in families if f.kind != "observation"]
        if bad:
            raise ValueError(f"not observation families: {bad}")
        self.families = sorted(families, key=lambda f: f.order)

    def begin_episode(self, rngs: list[np.random.Generator]) -> None:
        for family, rng in zip(self.families, rngs, strict=True):
            family.begin_episode(None, None, rng)

    def __call__(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for family in self.families:
            obs = family.filter(obs)
        return obs
