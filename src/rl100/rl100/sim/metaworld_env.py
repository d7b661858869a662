"""Meta-World v3 behind the rl100 observation/success conventions (``make_env("metaworld/<task>-v3")``).

What matches the Panda tasks:
- observations are dicts: ``OBS_STATE`` (15,) = Sawyer TCP pos (3), hand quat xyzw (4), gripper
  width between the pads (1, m), arm joint pos (7); ``OBS_ENV_STATE`` (39,) = Meta-World's own
  observation (goal visible; privileged: the scripted policies read it); camera keys on request;
- sparse reward 1.0 on success, ``terminated`` on success, ``truncated`` at ``max_steps``;
  ``info["success"]`` (Meta-World's dense-reward terms stay in ``info["mw_reward"]`` etc.);
- ``reset(seed=s)`` draws the object/goal positions from Meta-World's seeded random vector.

What differs: the **action is Meta-World's own (4,) float32 in [-1, 1]**: xyz hand displacement
(x 1/100 m per step, a mocap target) and gripper effort (-1 open .. 1 close). It is *not* the
Panda's absolute TCP pose. Meta-World's ``corner`` cameras (corner .. corner4) are mounted upside
down (their image "up" points at the floor); their images are rotated by 180 degrees here, and
``camera_info`` describes the rotated image.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import gymnasium as gym
import mujoco
import numpy as np

from rl100.geometry import quat_wxyz_to_xyzw
from rl100.keys import OBS_DEPTH, OBS_ENV_STATE, OBS_POINTS, OBS_RGB, OBS_STATE
from rl100.pointcloud import camera_points
from rl100.sim.base import validate_action
from rl100.sim.camera import CameraInfo, CameraRenderer
from rl100.sim.obs import OBS_NAMES, parse_obs

SAWYER_JOINTS = tuple(f"right_j{i}" for i in range(7))
CAMERAS = ("corner", "corner2", "corner3", "corner4", "topview", "behindGripper", "gripperPOV")


@dataclass
class MetaWorldConfig:
    """Options of a Meta-World task.

    Attributes:
        max_steps: control steps before truncation (Meta-World's own limit is 500).
        camera: which Meta-World camera gives ``rgb``/``depth``/``points``.
        points_lo, points_hi: m, crop box of the point cloud (Meta-World world frame; table top z = 0).
        points_color: (N, 6) xyz+rgb instead of (N, 3).
        points_sampler: ``"random"`` or ``"fps"``.
    """

    max_steps: int = 200
    camera: str = "corner2"
    points_lo: tuple[float, float, float] = (-0.6, 0.25, 0.005)
    points_hi: tuple[float, float, float] = (0.6, 1.1, 0.6)
    points_color: bool = False
    points_sampler: str = "random"

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.max_steps > 500:
            raise ValueError(f"max_steps must be in [1, 500] (Meta-World's limit), got {self.max_steps}")
        if self.camera not in CAMERAS:
            raise ValueError(f"camera must be one of {CAMERAS}, got {self.camera!r}")
        lo, hi = np.asarray(self.points_lo), np.asarray(self.points_hi)
        if lo.shape != (3,) or hi.shape != (3,) or not np.all(lo < hi):
            raise ValueError(f"points_lo must be 3 values each below points_hi, got {lo} / {hi}")
        if self.points_sampler not in ("random", "fps"):
            raise ValueError(f"points_sampler must be 'random' or 'fps', got {self.points_sampler!r}")


def metaworld_task_names() -> list[str]:
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return sorted(ALL_V3_ENVIRONMENTS)


class MetaWorldEnv(gym.Env):
    """One Meta-World v3 task with rl100's dict observations and sparse success reward."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}
    default_seed: int | None = None

    def __init__(self, task: str, obs=("state",), camera_size=(96, 96), n_points: int = 512, **config) -> None:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

        key = f"{task}-goal-observable"
        if key not in ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE:
            raise ValueError(f"unknown Meta-World task {task!r}; e.g. {metaworld_task_names()[:5]} ...")
        try:
            self.config = MetaWorldConfig(**config)
        except TypeError as exc:
            valid = sorted(MetaWorldConfig.__dataclass_fields__)
            raise ValueError(f"bad Meta-World option: {exc}; valid: {valid}") from exc
        self.task = task
        self.obs_names = parse_obs(obs)
        self.camera_size = (int(camera_size[0]), int(camera_size[1]))
        self.n_points = int(n_points)
        self.mw = ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[key]()
        self.mw.max_path_length = 500
        self.model, self.data = self.mw.model, self.mw.data
        self.model.vis.quality.offsamples = 0
        m = self.model
        self._qadr = np.array([m.jnt_qposadr[m.joint(n).id] for n in SAWYER_JOINTS])
        self._hand = m.body("hand").id
        self._pads = (m.body("leftpad").id, m.body("rightpad").id)
        self._renderer: CameraRenderer | None = None
        self._points_rng = np.random.default_rng(0)
        self._steps = 0
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        h, w = self.camera_size
        spaces = {
            OBS_STATE: gym.spaces.Box(-np.inf, np.inf, (15,), np.float32),
            OBS_ENV_STATE: gym.spaces.Box(-np.inf, np.inf, (39,), np.float32),
        }
        for name in self.obs_names:
            if name in ("rgb", "wrist_rgb"):
                spaces[OBS_NAMES[name]] = gym.spaces.Box(0, 255, (h, w, 3), np.uint8)
            elif name in ("depth", "wrist_depth"):
                spaces[OBS_NAMES[name]] = gym.spaces.Box(0.0, np.inf, (h, w), np.float32)
            elif name == "points":
                dim = 6 if self.config.points_color else 3
                spaces[OBS_POINTS] = gym.spaces.Box(-np.inf, np.inf, (self.n_points, dim), np.float32)
        self.observation_space = gym.spaces.Dict(spaces)
        self._last_raw = np.zeros(39)

    # -- gymnasium API ----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None and self._np_random is None:
            seed = self.default_seed
        super().reset(seed=seed)
        mw_seed = int(self.np_random.integers(2**31 - 1))
        self.mw._freeze_rand_vec = False
        self.mw.seeded_rand_vec = True
        self.mw.seed(mw_seed)
        raw, _ = self.mw.reset()
        self._points_rng = np.random.default_rng(mw_seed)
        self._last_raw = np.asarray(raw, dtype=np.float64)
        self._steps = 0
        return self._observe(), {"success": False, "is_success": False}

    def step(self, action):
        a = np.clip(validate_action(action, dim=4), -1.0, 1.0).astype(np.float32)
        raw, mw_reward, _, _, info = self.mw.step(a)
        self._last_raw = np.asarray(raw, dtype=np.float64)
        self._steps += 1
        success = bool(info.get("success", 0.0))
        truncated = self._steps >= self.config.max_steps and not success
        out = {"success": success, "is_success": success, "steps": self._steps, "mw_reward": float(mw_reward)}
        out.update({k: v for k, v in info.items() if k not in ("success",)})
        return self._observe(), float(success), success, truncated, out

    def render(self):
        rgb, _ = self._get_renderer().render(self.data, self.config.camera, depth=False)
        return rgb

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.mw.close()

    # -- observations -----------------------------------------------------------------------------
    def raw_observation(self) -> np.ndarray:
        """(39,) float64 Meta-World observation of the current state."""
        return self._last_raw.copy()

    def camera_info(self, camera: str | None = None) -> CameraInfo:
        return self._get_renderer().info(self.data, camera or self.config.camera)

    def _get_renderer(self) -> CameraRenderer:
        if self._renderer is None:
            h, w = self.camera_size
            mujoco.mj_kinematics(self.model, self.data)
            # a camera whose image-up axis points at the floor is mounted upside down
            flip = {self.model.camera(i).name: bool(self.data.cam_xmat[i][7] < -0.2) for i in range(self.model.ncam)}
            self._renderer = CameraRenderer(self.model, w, h, flip=flip)
        return self._renderer

    def _state(self) -> np.ndarray:
        d = self.data
        pad_l, pad_r = d.xpos[self._pads[0]], d.xpos[self._pads[1]]
        quat = quat_wxyz_to_xyzw(d.xquat[self._hand])
        width = float(np.linalg.norm(pad_l - pad_r))
        return np.concatenate([self.mw.tcp_center, quat, [width], d.qpos[self._qadr]]).astype(np.float32)

    def _observe(self) -> dict[str, np.ndarray]:
        obs = {OBS_STATE: self._state(), OBS_ENV_STATE: self._last_raw.astype(np.float32)}
        names, cfg = self.obs_names, self.config
        if any(n in names for n in ("rgb", "depth", "points")):
            want_rgb = "rgb" in names or ("points" in names and cfg.points_color)
            want_depth = "depth" in names or "points" in names
            rgb, depth = self._get_renderer().render(self.data, cfg.camera, rgb=want_rgb, depth=want_depth)
            if "rgb" in names:
                obs[OBS_RGB] = rgb
            if "depth" in names:
                obs[OBS_DEPTH] = depth
            if "points" in names:
                obs[OBS_POINTS] = camera_points(rgb, depth, self.camera_info(), cfg.points_lo, cfg.points_hi,
                                                self.n_points, self._points_rng, cfg.points_sampler, cfg.points_color)
        if "wrist_rgb" in names or "wrist_depth" in names:
            rgb, depth = self._get_renderer().render(
                self.data, "gripperPOV", rgb="wrist_rgb" in names, depth="wrist_depth" in names
            )
            if rgb is not None:
                obs[OBS_NAMES["wrist_rgb"]] = rgb
            if depth is not None:
                obs[OBS_NAMES["wrist_depth"]] = depth
        return obs


class MetaWorldExpert:
    """Meta-World's scripted policy for the task, with the same skill knob as the Panda experts.

    Below skill 1 the 4-d action gets Gaussian noise (std ``0.6 * (1 - skill)``) and, with
    probability ``0.3 * (1 - skill)`` per step, a pause (zero motion, gripper held).

    Meta-World's scripted policies assume the start pose: gripper open, hand well above the table (they never open
    a gripper they did not close, and a half-closed gripper lands on the object instead of around it). An expert
    ``reset()`` mid-episode (a scripted operator taking over) therefore first opens the gripper and lifts the hand
    to ``RECOVER_Z`` (or the task's start height, if lower) before handing over to the scripted policy; at an
    episode start that takes no step.
    """

    RECOVER_OPEN = 0.9
    """Meta-World's gripper opening (OBS_ENV_STATE[3], 1 = open) the recovery waits for"""
    RECOVER_Z = 0.12
    """m: the hand height the recovery lifts to (the tasks start at 0.15-0.2)"""

    def __init__(self, env: MetaWorldEnv, skill: float = 1.0, seed: int | None = None) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        if not 0.0 <= skill <= 1.0:
            raise ValueError(f"skill must be in [0, 1], got {skill}")
        self.env = env.unwrapped
        self.policy = ENV_POLICY_MAP[self.env.task]()
        self.skill = float(skill)
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        self._last = np.zeros(4, dtype=np.float32)
        self._recovering = True

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if self._recovering:
            raw = self.env.raw_observation()
            start_z = float(np.asarray(getattr(self.env.mw, "hand_init_pos", (0.0, 0.0, self.RECOVER_Z)))[2])
            opened, low = raw[3] >= self.RECOVER_OPEN, raw[2] < min(self.RECOVER_Z, start_z) - 1e-3
            if opened and not low:
                self._recovering = False
            else:  # open first, then lift straight up (lifting a closed gripper would carry the object along)
                self._last = np.array([0.0, 0.0, 1.0 if opened and low else 0.0, -1.0], dtype=np.float32)
                return self._last.copy()
        u = 1.0 - self.skill
        if u > 0 and self.rng.random() < 0.3 * u:
            return np.array([0.0, 0.0, 0.0, self._last[3]], dtype=np.float32)
        with warnings.catch_warnings():  # Meta-World's policies warn about gains on every call
            warnings.simplefilter("ignore", UserWarning)
            action = np.asarray(self.policy.get_action(self.env.raw_observation()), dtype=np.float32)
        if u > 0:
            action = action + self.rng.normal(0.0, 0.6 * u, 4).astype(np.float32)
        self._last = np.clip(action, -1.0, 1.0)
        return self._last.copy()
