"""SimRobot: a simulated task seen as a robot (no ROS in here).

Wraps an ``rl100.sim`` task so that it behaves like the real arm behind franka_ros2: it holds
the last commanded target (the Cartesian impedance controller keeps tracking it), it accepts
targets and gripper commands asynchronously, and each ``advance()`` moves simulated time on
by one control period. Commands are validated like the real bridge would: wrong frame,
non-finite values or a target outside the reachable box are rejected with the reason, and the
robot keeps its previous target.

A reset places the robot at its start pose, which no real robot does: whoever commands it may
still hold the previous episode's last target. So after a reset the robot holds its start pose
and sets aside (``held_off``) targets farther than ``resume_tolerance`` from it and gripper
commands, until a target near the start pose arrives (the safety node re-anchors on the
episode's START and then moves at most one step limit, 5 cm, per tick: ``resume_tolerance``
6 cm tells that apart from the last episode's target, typically 20-30 cm away); from then on it
follows commands as usual.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from rl100.geometry import mat_to_rotvec, quat_wxyz_to_mat, quat_xyzw_to_wxyz
from rl100.keys import OBS_DEPTH, OBS_RGB, OBS_STATE

ARM_JOINTS = [f'fr3_joint{i}' for i in range(1, 8)]
FINGER_JOINTS = ['fr3_finger_joint1', 'fr3_finger_joint2']
REACH_LO = np.array([0.0, -0.9, -0.1])  # m: anything outside is not a sane Panda target
REACH_HI = np.array([0.95, 0.9, 1.0])


class CommandRejectedError(ValueError):
    """A target or gripper command the robot refuses (the message says why)."""


@dataclass
class RobotReading:
    """One control tick's robot state (what franka_ros2 would publish)."""

    time: float  # s, simulated
    position: np.ndarray  # (3,) end-effector position, base frame
    quat_xyzw: np.ndarray  # (4,)
    joints: np.ndarray  # (7,) rad
    gripper_width: float  # m, both fingers
    success: bool
    steps: int
    obs: dict  # the task's observation dict (camera images when enabled)


class SimRobot:

    def __init__(self, env, base_frame: str = 'fr3_link0', resume_tolerance: float = 0.06):
        self.env = env
        self.resume_tolerance = float(resume_tolerance)  # m
        self._settling = False  # after a reset: waiting for a target near the start pose
        self.held_off = 0
        self.base_frame = base_frame
        self.dt = 1.0 / float(env.config.control_hz)
        self.time = 0.0
        self._target: np.ndarray | None = None  # (7,) held command
        self._gripper = 0.0
        self._obs: dict = {}
        self._info: dict = {}
        # (4, 4) the hand-eye calibration the cloud is made with; None: the simulator's own
        self.camera_pose: np.ndarray | None = None
        self.rejected = 0

    def reset(self, seed: int | None = None) -> RobotReading:
        self._obs, self._info = self.env.reset(seed=seed)
        self._target = None
        self._gripper = 0.0
        self._settling = True
        return self.reading()

    def reading(self) -> RobotReading:
        state = np.asarray(self._obs[OBS_STATE], dtype=np.float64)
        return RobotReading(time=self.time, position=state[0:3], quat_xyzw=state[3:7],
                            gripper_width=float(state[7]), joints=state[8:15],
                            success=bool(self._info.get('success', False)),
                            steps=int(self._info.get('steps', 0)), obs=self._obs)

    def command_pose(self, frame_id: str, position, quat_xyzw) -> None:
        """A new end-effector target (PoseStamped fields); raises CommandRejectedError."""
        try:
            if frame_id != self.base_frame:
                raise CommandRejectedError(f"target frame '{frame_id}' is not the base frame "
                                      f"'{self.base_frame}'")
            pos = np.asarray(position, dtype=np.float64)
            quat = np.asarray(quat_xyzw, dtype=np.float64)
            if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat))):
                raise CommandRejectedError(f'target has non-finite values: {pos}, {quat}')
            norm = float(np.linalg.norm(quat))
            if not 0.5 < norm < 1.5:
                raise CommandRejectedError(f'target quaternion is not unit (norm {norm:.3f})')
            if np.any(pos < REACH_LO) or np.any(pos > REACH_HI):
                raise CommandRejectedError(
                    f'target position {pos.round(3).tolist()} is out of reach')
        except CommandRejectedError:
            self.rejected += 1
            raise
        if self._settling:
            if np.linalg.norm(pos - self.reading().position) > self.resume_tolerance:
                self.held_off += 1
                return  # a target from before the reset: keep holding the start pose
            self._settling = False
        rotvec = mat_to_rotvec(quat_wxyz_to_mat(quat_xyzw_to_wxyz(quat / norm)))
        self._target = np.concatenate([pos, rotvec, [self._gripper]])

    def command_gripper(self, value: float) -> None:
        if not np.isfinite(value) or not -0.01 <= value <= 1.01:
            self.rejected += 1
            raise CommandRejectedError(f'gripper command {value} is not in [0, 1]')
        if self._settling:
            self.held_off += 1
            return  # the start pose's gripper (open) holds until a target is taken
        self._gripper = float(np.clip(value, 0.0, 1.0))

    def advance(self) -> RobotReading:
        """One control period of physics towards the held target (the current pose if none)."""
        if self._target is None:
            r = self.reading()
            rotvec = mat_to_rotvec(quat_wxyz_to_mat(quat_xyzw_to_wxyz(r.quat_xyzw)))
            self._target = np.concatenate([r.position, rotvec, [self._gripper]])
        self._target[6] = self._gripper
        self._obs, _reward, _terminated, _truncated, self._info = self.env.step(self._target)
        self.time += self.dt
        return self.reading()

    def camera_images(self) -> tuple:
        """(rgb (H, W, 3) uint8 | None, depth (H, W) float32 m | None) of the scene camera."""
        return self._obs.get(OBS_RGB), self._obs.get(OBS_DEPTH)

    def points(self) -> np.ndarray:
        """(M, 3) float32 scene-camera cloud in the base frame, cropped to the task's box.

        The full cropped cloud, not downsampled: consumers (the policy node) apply the crop box
        and sampler their model was trained with (``rl100.pointcloud``). Needs the depth image
        (the env made with ``depth`` in its observations). The depth goes through the task's
        ``points_depth_filter`` first, as a camera's own filter would. ``camera_pose`` (when set)
        replaces the simulator's calibration, as cloud_to_base's ``camera_pose`` parameter does on
        the robot.
        """
        from rl100.pointcloud import crop, depth_to_points, filter_depth

        depth = self._obs.get(OBS_DEPTH)
        if depth is None:
            raise RuntimeError('no depth image: make the env with depth observations')
        cfg = self.env.config
        depth = filter_depth(depth, cfg.points_depth_filter)
        view = self.env.camera_info()
        if self.camera_pose is not None:  # a calibration given by the operator (check_camera)
            view = replace(view, base_T_cam=self.camera_pose)
        pts, _ = depth_to_points(depth, view)
        return pts[crop(pts, cfg.points_lo, cfg.points_hi)].astype(np.float32)
