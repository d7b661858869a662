"""Simulated RGB-D cameras: one offscreen pass for colour + depth, intrinsics, pose, point clouds.

Rendering is configured for CPU (llvmpipe) speed, as measured in the design notes: shadows and
reflections off, no multisampling (``model.vis.quality.offsamples = 0``). The GL backend comes from
``MUJOCO_GL`` (``egl`` or ``osmesa`` headless; :mod:`rl100.sim` defaults it to ``egl`` when there
is no display).

Frames and shapes:
- images are row 0 = top, like a real camera: rgb (H, W, 3) uint8, depth (H, W) float32 metres
  along the optical axis (z-depth, what RealSense aligned depth gives), 0 = no return;
- :class:`CameraInfo` holds the pinhole intrinsics (fx, fy, cx, cy in pixels, OpenCV/ROS convention:
  pixel centres at integer coordinates) and the camera pose ``base_T_cam`` (4, 4) of the *optical*
  frame (x right, y down, z forward), i.e. what a ROS ``camera_info`` + tf would publish;
- point clouds are (N, 3) xyz or (N, 6) xyz + rgb in [0, 1], float32, in the robot base frame; the
  pure back-projection, crop and sampling functions live in :mod:`rl100.pointcloud`.
"""

from __future__ import annotations

import atexit
import os
import weakref
from dataclasses import dataclass

import mujoco
import numpy as np

# MuJoCo cameras look along -z with y up; the optical frame looks along +z with y down
_MJ_TO_OPTICAL = np.diag([1.0, -1.0, -1.0])
_LIVE: weakref.WeakSet = weakref.WeakSet()  # renderers to free before the GL backend's own atexit runs
_ATEXIT_REGISTERED = False


def _close_all() -> None:
    for renderer in list(_LIVE):
        renderer.close()


@dataclass(frozen=True)
class CameraInfo:
    """Pinhole intrinsics and pose of one camera image (shapes in the field comments)."""

    name: str
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    base_T_cam: np.ndarray  # (4, 4) float64, optical frame -> robot base frame

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the usual name of the intrinsic matrix
        """(3, 3) intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


def make_gl_context(width: int, height: int):
    """An offscreen GL context: ``MUJOCO_GL`` if set, else EGL when there is no display.

    Chosen here rather than through ``mujoco.GLContext`` because MuJoCo fixes its choice when it is
    first imported, which may have happened before :mod:`rl100.sim` could set a headless default.
    """
    backend = os.environ.get("MUJOCO_GL", "").strip().lower()
    if not backend and not os.environ.get("DISPLAY"):
        backend = "egl"
    if backend == "egl":
        from mujoco.egl import GLContext
    elif backend == "osmesa":
        from mujoco.osmesa import GLContext
    else:
        GLContext = mujoco.GLContext  # noqa: N806 - a class
    return GLContext(width, height)


class CameraRenderer:
    """Offscreen renderer for the named cameras of one model (one GL context, reused)."""

    def __init__(self, model: mujoco.MjModel, width: int, height: int, *, flip: dict[str, bool] | None = None) -> None:
        if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
            model.vis.global_.offwidth = max(width, model.vis.global_.offwidth)
            model.vis.global_.offheight = max(height, model.vis.global_.offheight)
        self._ctx = self._gl = None  # what close() frees, also after a failed construction
        model.vis.quality.offsamples = 0  # no MSAA: 10x faster on llvmpipe
        self.model = model
        self.width, self.height = int(width), int(height)
        self.flip = dict(flip or {})  # camera name -> rotate the image by 180 deg (upside-down mounts)
        global _ATEXIT_REGISTERED
        self._gl = make_gl_context(max(width, 1), max(height, 1))
        if not _ATEXIT_REGISTERED:  # registered after the backend's hook, so it runs before it
            atexit.register(_close_all)
            _ATEXIT_REGISTERED = True
        self._gl.make_current()
        self._ctx = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
        _LIVE.add(self)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._ctx)
        self._ctx.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR  # reversed z: 1 at znear, 0 at infinity
        self._scene = mujoco.MjvScene(model, maxgeom=2000)
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        self._scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = 0
        self._option = mujoco.MjvOption()
        self._option.sitegroup[:] = 0  # sites are markers, not things a camera sees
        self._cam = mujoco.MjvCamera()
        self._cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._rect = mujoco.MjrRect(0, 0, self.width, self.height)
        self._rgb = np.empty((self.height, self.width, 3), dtype=np.uint8)
        self._depth = np.empty((self.height, self.width), dtype=np.float32)

    def hide_geom_group(self, group: int) -> None:
        """Leave the geoms of ``group`` (0-5) out of every later render."""
        self._option.geomgroup[group] = 0

    def camera_id(self, name: str) -> int:
        cid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, name)
        if cid < 0:
            raise ValueError(f"no camera named {name!r} in the model")
        return cid

    def render(self, data: mujoco.MjData, camera: str, *, rgb: bool = True, depth: bool = True):
        """One pass for camera ``camera``: returns ``(rgb (H, W, 3) uint8 | None, depth (H, W) float32 | None)``."""
        self._gl.make_current()
        self._cam.fixedcamid = self.camera_id(camera)
        mujoco.mjv_updateScene(self.model, data, self._option, None, self._cam, mujoco.mjtCatBit.mjCAT_ALL, self._scene)
        mujoco.mjr_render(self._rect, self._scene, self._ctx)
        mujoco.mjr_readPixels(self._rgb if rgb else None, self._depth if depth else None, self._rect, self._ctx)
        # OpenGL rows are bottom-up; a 180 deg mount also mirrors the columns
        rows = slice(None, None, -1)
        cols = slice(None, None, -1) if self.flip.get(camera) else slice(None)
        if self.flip.get(camera):
            rows = slice(None)
        out_rgb = self._rgb[rows, cols].copy() if rgb else None
        out_depth = self._depth_metres(self._depth[rows, cols]) if depth else None
        return out_rgb, out_depth

    def _depth_metres(self, buffer: np.ndarray) -> np.ndarray:
        """Reversed-z depth buffer (1 at znear, 0 at infinity) -> z-depth in metres, 0 = no return."""
        extent = self.model.stat.extent
        near = self.model.vis.map.znear * extent
        far = self.model.vis.map.zfar * extent
        b = buffer.astype(np.float64)
        # with reversed z the window depth is near * (far - z) / (z * (far - near)); invert it
        z = near * far / (b * (far - near) + near)
        z[b <= 0.0] = 0.0  # cleared to the far plane: nothing there
        z[z >= far * 0.999] = 0.0
        return z.astype(np.float32)

    def info(self, data: mujoco.MjData, camera: str) -> CameraInfo:
        """Intrinsics and current pose of ``camera`` at this renderer's resolution."""
        cid = self.camera_id(camera)
        fovy = np.deg2rad(self.model.cam_fovy[cid])
        f = 0.5 * self.height / np.tan(0.5 * fovy)
        rot = data.cam_xmat[cid].reshape(3, 3) @ _MJ_TO_OPTICAL
        if self.flip.get(camera):
            rot = rot @ np.diag([-1.0, -1.0, 1.0])
        pose = np.eye(4)
        pose[:3, :3] = rot
        pose[:3, 3] = data.cam_xpos[cid]
        return CameraInfo(camera, self.width, self.height, f, f, (self.width - 1) / 2.0, (self.height - 1) / 2.0, pose)

    def close(self) -> None:
        """Free the GL resources (in the thread that made them: an EGL context is per thread)."""
        _LIVE.discard(self)
        if self._ctx is not None:
            self._ctx.free()
            self._ctx = None
        if self._gl is not None:
            self._gl.free()
            self._gl = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: nothing left to free
            pass


def look_at_quat(pos: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """(4,) MuJoCo wxyz quaternion of a camera at ``pos`` looking at ``target`` (its -z axis)."""
    z = np.asarray(pos, dtype=np.float64) - np.asarray(target, dtype=np.float64)
    z /= np.linalg.norm(z)
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.stack([x, y, z], axis=1).reshape(-1))
    return quat
