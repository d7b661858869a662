"""Shared machinery of the simulated Panda tasks: config, action checks, observations, stepping.

A task subclasses :class:`PandaTaskEnv` and supplies its scene (MJCF fragments), its randomised
reset, its privileged state and its success detector; everything else (the controller, cameras,
point clouds, time limit, sparse reward, termination on success) lives here.

Shapes: action (7,) float32 = TCP position (3, m, base frame), rotation vector (3, rad), gripper
(1, 0 open .. 1 closed). Observations: see :mod:`rl100.sim.obs` and :mod:`rl100.keys`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from rl100.geometry import rotvec_to_quat_wxyz
from rl100.keys import OBS_DEPTH, OBS_ENV_STATE, OBS_POINTS, OBS_RGB, OBS_STATE
from rl100.pointcloud import DEPTH_FILTERS, camera_points
from rl100.robot_state import STATE_DIM
from rl100.sim.camera import CameraInfo, CameraRenderer
from rl100.sim.obs import OBS_NAMES, OBS_WRIST_DEPTH, OBS_WRIST_RGB, parse_obs
from rl100.sim.panda import HOME_QPOS, ImpedanceConfig, PandaArm, build_model

ACTION_DIM = 7


@dataclass
class PandaTaskConfig:
    """Knobs shared by every Panda task (task configs subclass this).

    Attributes:
        control_hz: policy rate; one ``step`` advances ``1 / control_hz`` s of physics.
        physics_dt: s, MuJoCo step (the impedance loop runs at ``1 / physics_dt``).
        max_steps: control steps before truncation.
        init_joint_noise: rad, uniform noise on the home posture at reset.
        workspace_lo, workspace_hi: m, commanded TCP positions are clipped to this box.
        points_lo, points_hi: m, crop box of the point cloud (base frame); excludes the table top.
        points_color: point cloud (N, 6) xyz+rgb instead of (N, 3).
        points_sampler: ``"random"`` or ``"fps"`` (farthest point; ~10x slower).
        points_depth_filter: the camera-side depth filter before the cloud is made
            (:data:`rl100.pointcloud.DEPTH_FILTERS`: ``"none"``, ``"median3"``, ``"median5"``).
        impedance: the simulated Cartesian impedance controller.
    """

    control_hz: float = 10.0
    physics_dt: float = 0.002
    max_steps: int = 200
    init_joint_noise: float = 0.03
    workspace_lo: tuple[float, float, float] = (0.15, -0.6, 0.0)
    workspace_hi: tuple[float, float, float] = (0.85, 0.6, 0.6)
    points_lo: tuple[float, float, float] = (0.05, -0.6, 0.004)
    points_hi: tuple[float, float, float] = (1.0, 0.6, 0.6)
    points_color: bool = False
    points_sampler: str = "random"
    points_depth_filter: str = "none"
    impedance: ImpedanceConfig = field(default_factory=ImpedanceConfig)

    def __post_init__(self) -> None:
        if not self.control_hz > 0:
            raise ValueError(f"control_hz must be > 0, got {self.control_hz}")
        if not 0 < self.physics_dt <= 0.005:
            raise ValueError(f"physics_dt must be in (0, 0.005] s, got {self.physics_dt}")
        ratio = 1.0 / (self.control_hz * self.physics_dt)
        if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
            raise ValueError(f"1/control_hz must be a whole number of physics steps, got {ratio:.4f}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.init_joint_noise < 0:
            raise ValueError(f"init_joint_noise must be >= 0, got {self.init_joint_noise}")
        for lo_name, hi_name in (("workspace_lo", "workspace_hi"), ("points_lo", "points_hi")):
            lo, hi = np.asarray(getattr(self, lo_name)), np.asarray(getattr(self, hi_name))
            if lo.shape != (3,) or hi.shape != (3,) or not np.all(lo < hi):
                raise ValueError(f"{lo_name} must be 3 values each below {hi_name}, got {lo} / {hi}")
        if self.points_sampler not in ("random", "fps"):
            raise ValueError(f"points_sampler must be 'random' or 'fps', got {self.points_sampler!r}")
        if self.points_depth_filter not in DEPTH_FILTERS:
            raise ValueError(f"points_depth_filter must be one of {DEPTH_FILTERS}, got {self.points_depth_filter!r}")
        if isinstance(self.impedance, dict):
            self.impedance = ImpedanceConfig(**self.impedance)

    @property
    def substeps(self) -> int:
        return int(round(1.0 / (self.control_hz * self.physics_dt)))


def validate_action(action: Any, dim: int = ACTION_DIM) -> np.ndarray:
    """Check a policy action; returns it as float64 (dim,). Raises ValueError naming the problem."""
    try:
        a = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"action must be a numeric array of shape ({dim},), got {type(action).__name__}") from exc
    if a.shape != (dim,):
        raise ValueError(f"action must have shape ({dim},) = pos(3), rotvec(3), gripper(1); got shape {a.shape}")
    bad = ~np.isfinite(a)
    if bad.any():
        raise ValueError(f"action has non-finite values (NaN/inf) at indices {np.flatnonzero(bad).tolist()}: {a}")
    return a


class PandaTaskEnv(gym.Env):
    """Base class of the Panda tasks (a gymnasium.Env with dict observations)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    config_cls = PandaTaskConfig
    env_state_dim = 0  # set by subclasses
    env_state_z: tuple[int, ...] = ()  # indices of OBS_ENV_STATE that are base-frame heights (rl100.taskframe)
    scene_camera = "scene"
    default_seed: int | None = None

    def __init__(
        self,
        config: PandaTaskConfig | None = None,
        obs: tuple[str, ...] = ("state",),
        camera_size: tuple[int, int] = (96, 96),
        n_points: int = 512,
        render_mode: str | None = None,
    ) -> None:
        self.config = config or self.config_cls()
        self.obs_names = parse_obs(obs)
        if len(camera_size) != 2 or min(camera_size) < 8:
            raise ValueError(f"camera_size must be (height, width) >= 8 px, got {camera_size}")
        if n_points < 1:
            raise ValueError(f"n_points must be >= 1, got {n_points}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.camera_size = (int(camera_size[0]), int(camera_size[1]))
        self.n_points = int(n_points)
        self.render_mode = render_mode
        worldbody, assets = self._scene()
        self.model = build_model(worldbody, assets, timestep=self.config.physics_dt, impedance=self.config.impedance)
        self.data = mujoco.MjData(self.model)
        self.arm = PandaArm(self.model, self.data, self.config.impedance)
        self._ws_lo = np.asarray(self.config.workspace_lo, dtype=np.float64)
        self._ws_hi = np.asarray(self.config.workspace_hi, dtype=np.float64)
        self._renderer: CameraRenderer | None = None
        self._points_rng = np.random.default_rng(0)
        self._steps = 0
        # robustness families (rl100.sim.disturbances.attach); None = nominal, no per-step cost
        self.disturbances: Any = None
        self._cloud_src: np.ndarray | None = None  # depth image the last point cloud was made from
        self._cloud: np.ndarray | None = None
        self.metadata = {**self.metadata, "render_fps": self.config.control_hz}
        self.action_space = gym.spaces.Box(
            low=np.concatenate([self._ws_lo, [-2 * np.pi] * 3, [0.0]]).astype(np.float32),
            high=np.concatenate([self._ws_hi, [2 * np.pi] * 3, [1.0]]).astype(np.float32),
            dtype=np.float32,
        )
        self.observation_space = gym.spaces.Dict(self._obs_spaces())

    # -- task hooks (override) --------------------------------------------------------------------
    def _scene(self) -> tuple[str, str]:
        """MJCF (worldbody fragment, asset fragment) of the task's scene, table and cameras included."""
        raise NotImplementedError

    def _randomize(self, rng: np.random.Generator) -> None:
        """Place the task's objects (the arm is already at its randomised start)."""
        raise NotImplementedError

    def _env_state(self) -> np.ndarray:
        """(env_state_dim,) privileged object state."""
        raise NotImplementedError

    def _success(self) -> bool:
        raise NotImplementedError

    def task_info(self) -> dict[str, Any]:
        """Privileged facts an expert may use (object sizes, goal poses)."""
        return {}

    # -- gymnasium API ----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None and self._np_random is None:
            seed = self.default_seed  # make_env(seed=...) seeds the first reset
        super().reset(seed=seed)
        rng = self.np_random
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        dist = self.disturbances
        if dist is not None:  # nominal model back, this episode's draws (from a copy of rng: rng is untouched)
            dist.begin_episode(self, rng)
        noise = rng.uniform(-1.0, 1.0, size=7) * self.config.init_joint_noise
        self.arm.reset(HOME_QPOS + noise, gripper=0.0)
        self._randomize(rng)
        if dist is not None:  # shifted conditions: model and object edits after the task's own placement
            dist.apply_conditions(self)
        self._points_rng = np.random.default_rng(int(rng.integers(2**63)))
        mujoco.mj_forward(m, d)
        self.arm.command(self.arm.goal_pos.copy(), self.arm.goal_quat.copy(), 0.0)
        self.arm.step(int(round(0.1 / self.config.physics_dt)))  # let contacts settle
        mujoco.mj_forward(m, d)
        self._steps = 0
        return self._observe(), {"success": False, "is_success": False}

    def step(self, action):
        a = validate_action(action)  # finite: the clips below equal np.clip's
        pos = np.minimum(np.maximum(a[:3], self._ws_lo), self._ws_hi)
        quat = rotvec_to_quat_wxyz(a[3:6])
        self.arm.command(pos, quat, float(a[6]))  # the gripper command is clipped to [0, 1] there
        dist = self.disturbances
        if dist is not None:  # pushes, object moves
            dist.before_physics(self, a)
        self.arm.step(self.config.substeps)
        if dist is not None:
            dist.after_physics(self)
        mujoco.mj_forward(self.model, self.data)
        self._steps += 1
        success = bool(self._success())
        truncated = self._steps >= self.config.max_steps and not success
        info = {"success": success, "is_success": success, "steps": self._steps}
        return self._observe(), float(success), success, truncated, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        rgb, _ = self._get_renderer().render(self.data, self.scene_camera, depth=False)
        return rgb

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # -- observations -----------------------------------------------------------------------------
    def camera_info(self, camera: str | None = None) -> CameraInfo:
        """Intrinsics + pose (base_T_cam, optical frame) of ``camera`` (default: the scene camera)."""
        info = self._get_renderer().info(self.data, camera or self.scene_camera)
        if self.disturbances is not None:  # a bumped camera still reports its calibrated pose
            info = self.disturbances.reported_camera_info(info)
        return info

    def _get_renderer(self) -> CameraRenderer:
        if self._renderer is None:
            h, w = self.camera_size
            self._renderer = CameraRenderer(self.model, w, h)
        return self._renderer

    def _obs_spaces(self) -> dict[str, gym.spaces.Space]:
        h, w = self.camera_size
        inf = np.inf
        spaces: dict[str, gym.spaces.Space] = {
            OBS_STATE: gym.spaces.Box(-inf, inf, (STATE_DIM,), np.float32),
            OBS_ENV_STATE: gym.spaces.Box(-inf, inf, (self.env_state_dim,), np.float32),
        }
        for name in self.obs_names:
            key = OBS_NAMES[name]
            if name in ("rgb", "wrist_rgb"):
                spaces[key] = gym.spaces.Box(0, 255, (h, w, 3), np.uint8)
            elif name in ("depth", "wrist_depth"):
                spaces[key] = gym.spaces.Box(0.0, inf, (h, w), np.float32)
            elif name == "points":
                dim = 6 if self.config.points_color else 3
                spaces[key] = gym.spaces.Box(-inf, inf, (self.n_points, dim), np.float32)
        return spaces

    def _observe(self) -> dict[str, np.ndarray]:
        obs = {OBS_STATE: self.arm.state(), OBS_ENV_STATE: self._env_state().astype(np.float32)}
        names = self.obs_names
        if any(n in names for n in ("rgb", "depth", "points")):
            want_rgb = "rgb" in names or ("points" in names and self.config.points_color)
            want_depth = "depth" in names or "points" in names
            rgb, depth = self._get_renderer().render(self.data, self.scene_camera, rgb=want_rgb, depth=want_depth)
            if want_rgb:
                obs[OBS_RGB] = rgb
            if want_depth:
                obs[OBS_DEPTH] = depth
        if "wrist_rgb" in names or "wrist_depth" in names:
            rgb, depth = self._get_renderer().render(
                self.data, "wrist", rgb="wrist_rgb" in names, depth="wrist_depth" in names
            )
            if rgb is not None:
                obs[OBS_WRIST_RGB] = rgb
            if depth is not None:
                obs[OBS_WRIST_DEPTH] = depth
        if self.disturbances is not None:  # sensor noise, dropped frames, latency: before the cloud is made
            obs = self.disturbances.filter_observation(obs)
        if "points" in names:
            depth = obs[OBS_DEPTH]
            if depth is not self._cloud_src:  # a repeated (dropped) frame keeps its cloud
                self._cloud, self._cloud_src = self._points(obs.get(OBS_RGB), depth), depth
            obs[OBS_POINTS] = self._cloud
            if "depth" not in names:
                del obs[OBS_DEPTH]
            if "rgb" not in names:
                obs.pop(OBS_RGB, None)
        return obs

    def _points(self, rgb: np.ndarray | None, depth: np.ndarray) -> np.ndarray:
        cfg = self.config
        return camera_points(rgb, depth, self.camera_info(), cfg.points_lo, cfg.points_hi, self.n_points,
                             self._points_rng, cfg.points_sampler, cfg.points_color, cfg.points_depth_filter)

    # -- helpers for tasks ------------------------------------------------------------------------
    def robot_touches(self, body_id: int) -> bool:
        """True if any robot geom is in contact with a geom of ``body_id``."""
        return self.touches(body_id)[0]

    def touches(self, body_id: int) -> tuple[bool, bool]:
        """(a robot geom, any other geom) in contact with a geom of ``body_id``."""
        m, d = self.model, self.data
        robot_bodies = self.arm.robot_bodies
        robot, other = False, False
        for i in range(d.ncon):
            b1 = m.geom_bodyid[d.contact.geom1[i]]
            b2 = m.geom_bodyid[d.contact.geom2[i]]
            if body_id in (b1, b2):
                if (b2 if b1 == body_id else b1) in robot_bodies:
                    robot = True
                else:
                    other = True
        return robot, other
