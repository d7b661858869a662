"""What the scene camera should see of the robot and the fixed world: the reference of the camera check.

The robot and the world it stands in (table, floor) are known: the robot from its description and
the measured joint angles, the world from the cell's model. Rendered from the camera pose the
calibration *believes*, they give the depth image the camera would return if that belief were
right; :func:`rl100.registration.register_to_expected` then finds how far off it is. The task's
objects (the orange, the juicer: they move from episode to episode) are hidden, so they count as
unexplained points, not as reference.

:class:`ExpectedScene` keeps its own copy of a Panda task's MuJoCo model with the nominal values of
every field a robustness family edits (a knocked camera in the env must not move the reference),
and renders it at the env's camera resolution (or another). Shapes: ``observation.state`` (15,)
(:mod:`rl100.robot_state`: gripper width at 7, joint angles at 8:15); depth (H, W) m; clouds
(K, 3) base frame.
"""

from __future__ import annotations

import copy
from typing import Any

import mujoco
import numpy as np

from rl100.geometry import mat_to_quat_wxyz
from rl100.pointcloud import PinholeView, depth_to_points
from rl100.registration import Registration, RegistrationConfig, organized_normals, register_to_expected
from rl100.robot_state import STATE_DIM
from rl100.sim.camera import _MJ_TO_OPTICAL, CameraRenderer

HIDDEN_GROUP = 5  # geom group the copy moves the task's objects to; not rendered
_WIDTH, _JOINTS = 7, slice(8, 15)  # offsets in observation.state


class ExpectedScene:
    """Renders the robot (at measured joints) and the fixed world from a believed camera pose.

    Args:
        env: a Panda task env (``rl100.sim.make_env``; wrappers are looked through). Its model is
            copied at construction, with any robustness family's edits undone.
        camera: which camera (default: the env's scene camera); it must be fixed to the world.
        size: (H, W) px of the expected image (default: the env's camera size); give it the real
            camera's aspect ratio (:meth:`check` takes the vertical field of view from the image).
        free_table: the table's height is not assumed (the robot may stand on another stand): the
            check estimates it with the camera pose (``Registration.table_dz``). False: the
            table is where the model has it.
    """

    def __init__(self, env: Any, camera: str | None = None, size: tuple[int, int] | None = None,
                 free_table: bool = True) -> None:
        sim = env.unwrapped
        if not hasattr(sim, "arm"):
            raise ValueError(f"the camera check needs a Panda task env, got {type(sim).__name__}")
        self.model = copy.deepcopy(sim.model)
        if getattr(sim, "disturbances", None) is not None:
            sim.disturbances.restore_model(self.model)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.camera = camera or sim.scene_camera
        self.cam_id = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, self.camera)
        if self.cam_id < 0 or m.cam_bodyid[self.cam_id] != 0:
            raise ValueError(f"camera {self.camera!r} is not a camera fixed to the world")
        base = m.body("robot_base").id
        mujoco.mj_kinematics(m, self.data)
        if not (np.allclose(self.data.xpos[base], 0.0) and np.allclose(self.data.xquat[base], [1, 0, 0, 0])):
            raise ValueError("the camera check assumes the robot base frame is the world frame")
        static = {0, base, *sim.arm.robot_bodies}
        hidden = [g for g in range(m.ngeom) if m.geom_bodyid[g] not in static]
        m.geom_group[hidden] = HIDDEN_GROUP
        self.qadr, self.finger_qadr = sim.arm.qadr.copy(), sim.arm.finger_qadr.copy()
        table = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "table")
        self.table_geom = None if table < 0 else table
        self.free_table = bool(free_table) and self.table_geom is not None
        h, w = size or sim.camera_size
        self.renderer = CameraRenderer(m, w, h)
        self.renderer.hide_geom_group(HIDDEN_GROUP)

    def render(self, state: np.ndarray, base_T_cam: np.ndarray, fovy: float | None = None) -> tuple[np.ndarray, Any]:
        """The expected depth image of robot + world at ``state``'s joints, from camera pose ``base_T_cam``.

        Rendered with this scene's own intrinsics (``size``; vertical field of view ``fovy`` deg,
        default the model camera's), which need not be the real camera's: the check compares 3D
        points; only the covered view should match. Returns (depth (H, W) m, its
        :class:`~rl100.sim.camera.CameraInfo` with ``base_T_cam``).
        """
        s = np.asarray(state, dtype=np.float64)
        if s.shape != (STATE_DIM,) or not np.all(np.isfinite(s)):
            raise ValueError(f"observation.state must be ({STATE_DIM},) finite values, got shape {s.shape}")
        pose = np.asarray(base_T_cam, dtype=np.float64)
        if pose.shape != (4, 4) or not np.all(np.isfinite(pose)) \
                or not np.allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-6):
            raise ValueError(f"base_T_cam must be a finite (4, 4) pose with a rotation, got {pose.tolist()}")
        m, d = self.model, self.data
        d.qpos[self.qadr] = s[_JOINTS]
        d.qpos[self.finger_qadr] = s[_WIDTH] / len(self.finger_qadr)
        if fovy is not None:
            if not 1.0 <= fovy <= 170.0:
                raise ValueError(f"fovy must be within [1, 170] deg, got {fovy}")
            m.cam_fovy[self.cam_id] = fovy
        m.cam_pos[self.cam_id] = pose[:3, 3]
        m.cam_quat[self.cam_id] = mat_to_quat_wxyz(pose[:3, :3] @ _MJ_TO_OPTICAL)
        mujoco.mj_kinematics(m, d)
        mujoco.mj_camlight(m, d)
        _, depth = self.renderer.render(d, self.camera, rgb=False)
        return depth, self.renderer.info(d, self.camera)

    def table_pixels(self, depth: np.ndarray) -> np.ndarray:
        """(H, W) bool: where the table top is in ``depth`` (the last :meth:`render`), by rendering without it."""
        if self.table_geom is None:
            return np.zeros(depth.shape, dtype=bool)
        group = int(self.model.geom_group[self.table_geom])
        self.model.geom_group[self.table_geom] = HIDDEN_GROUP
        try:
            _, behind = self.renderer.render(self.data, self.camera, rgb=False)
        finally:
            self.model.geom_group[self.table_geom] = group
        return (depth > 0) & ((behind == 0) | (behind - depth > 1e-3))

    def check(self, depth: np.ndarray, state: np.ndarray, view: PinholeView,
              config: RegistrationConfig | None = None) -> Registration:
        """Register an observed depth image (intrinsics and believed pose ``view``) against the expected scene.

        Returns the :class:`~rl100.registration.Registration`; ``corrected_extrinsic(view.base_T_cam,
        result)`` is where the camera is. ValueError when the fit is refused (the message says why).
        """
        depth = np.asarray(depth, dtype=np.float32)
        if depth.ndim != 2 or min(depth.shape) < 8:
            raise ValueError(f"depth must be an (H, W) image, got shape {depth.shape}")
        fovy = float(np.degrees(2.0 * np.arctan(0.5 * depth.shape[0] / view.fy)))  # the real camera's
        expected_depth, own = self.render(state, view.base_T_cam, fovy)
        expected, normals, idx = organized_normals(expected_depth, own)
        table = self.table_pixels(expected_depth).reshape(-1)[idx] if self.free_table else None
        observed, _ = depth_to_points(depth, view)
        return register_to_expected(observed, expected, normals, np.asarray(view.base_T_cam)[:3, 3], config,
                                    table=table)

    def close(self) -> None:
        self.renderer.close()
