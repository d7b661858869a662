"""A RealSense colour + aligned-depth source returning numpy arrays (no ROS in here).

``RealSenseSource`` opens a pipeline on a live camera (by serial number, or the first one) or
on a recording file (``.db3`` rosbag2 written by librealsense >= 2.58, or a ROS1 ``.bag``),
streams colour (rgb8) and depth (z16) at one width/height/fps, aligns depth to colour with
``rs.align`` and returns ``Frame`` objects. Optionally a point cloud is computed with
``rs.pointcloud`` on the aligned depth: metres, in the colour camera's optical frame
(x right, y down, z forward), cropped to a depth range and decimated on the pixel grid.

Every failure a user can cause (no camera, wrong serial, missing or corrupt recording, a
stream profile the camera does not offer) raises ``SourceError`` with a one-line message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
import os
import time

import numpy as np

try:
    import pyrealsense2 as rs
except ImportError:  # pragma: no cover - the error is raised when a source is opened
    rs = None


class SourceError(RuntimeError):
    """A camera or recording cannot be opened or read (the message says why, in one line)."""


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics and distortion of a stream (librealsense's ``rs.intrinsics``)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    model: str  # librealsense name: brown_conrady, inverse_brown_conrady, kannala_brandt4, ...
    coeffs: tuple = (0.0, 0.0, 0.0, 0.0, 0.0)

    @property
    def k(self) -> list:
        """Row-major 3x3 camera matrix, as in sensor_msgs/CameraInfo."""
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]

    @property
    def ros_distortion_model(self) -> str:
        """The CameraInfo distortion model name realsense-ros uses for this model."""
        return 'equidistant' if self.model == 'kannala_brandt4' else 'plumb_bob'

    @classmethod
    def from_rs(cls, intr) -> Intrinsics:
        return cls(width=int(intr.width), height=int(intr.height), fx=float(intr.fx),
                   fy=float(intr.fy), cx=float(intr.ppx), cy=float(intr.ppy),
                   model=str(intr.model).split('.')[-1],
                   coeffs=tuple(float(c) for c in intr.coeffs))


@dataclass
class Frame:
    """One synchronised colour + aligned-depth frame."""

    color: np.ndarray  # (H, W, 3) uint8 RGB
    depth: np.ndarray  # (H, W) uint16, aligned to colour, in units of depth_scale
    depth_scale: float  # metres per depth unit (0.001 on a D435, 0.0001 on a D405)
    intrinsics: Intrinsics  # of the colour stream (the aligned depth shares them)
    frame_number: int  # colour frame counter
    timestamp_ms: float  # librealsense frame timestamp, in timestamp_domain
    timestamp_domain: str  # hardware_clock, system_time or global_time
    hardware_timestamp_us: int | None  # sensor clock (metadata), when the device reports it
    arrival_time_ms: int | None  # host system time the frame arrived (metadata), when known
    host_time: float = field(default_factory=time.time)  # time.time() when read() returned
    points: np.ndarray | None = None  # (N, 3) float32 metres, colour optical frame

    def depth_mm(self) -> np.ndarray:
        """Depth in millimetres (uint16), the unit of realsense-ros' 16UC1 images."""
        return depth_to_mm(self.depth, self.depth_scale)


def depth_to_mm(depth: np.ndarray, scale: float) -> np.ndarray:
    """Depth units -> uint16 millimetres (unchanged when the unit already is 1 mm)."""
    if abs(scale - 0.001) < 1e-9:
        return depth
    mm = np.rint(depth.astype(np.float64) * (scale * 1000.0))
    return np.clip(mm, 0, np.iinfo(np.uint16).max).astype(np.uint16)


@dataclass(frozen=True)
class SourceConfig:
    width: int = 640
    height: int = 480
    fps: int = 30
    serial_no: str = ''  # live camera to open ('' = the first one found)
    recording_file: str = ''  # replay this recording instead of a live camera
    real_time: bool = True  # recordings: follow the recorded timing (False: as fast as read)
    repeat_playback: bool = False  # recordings: loop at the end
    pointcloud: bool = False
    pointcloud_decimation: int = 1  # keep every n-th pixel in both directions
    min_depth: float = 0.0  # m, points nearer are dropped (zero depth is always dropped)
    max_depth: float = math.inf  # m, points farther are dropped


def _require_rs():
    if rs is None:
        raise SourceError('pyrealsense2 is not installed (pip install pyrealsense2)')
    return rs


def _device_label(dev) -> str:
    def info(key):
        return dev.get_info(key) if dev.supports(key) else '?'
    return f'{info(rs.camera_info.serial_number)} ({info(rs.camera_info.name)})'


def _profiles(dev, stream, fmt) -> list:
    """Sorted (width, height, fps) of the device's video profiles for a stream and format."""
    found = set()
    for sensor in dev.query_sensors():
        for p in sensor.get_stream_profiles():
            if p.stream_type() == stream and p.format() == fmt and p.is_video_stream_profile():
                v = p.as_video_stream_profile()
                found.add((v.width(), v.height(), p.fps()))
    return sorted(found)


def _fmt_profiles(profiles: list) -> str:
    return ', '.join(f'{w}x{h}@{f}' for w, h, f in profiles) or 'none'


class RealSenseSource:
    """Colour + aligned depth (+ point cloud) frames from a camera or a recording.

    Use ``start()`` / ``stop()`` (or ``with``) and ``read()``. ``read`` returns ``None`` when
    no frame came within the timeout; ``finished`` turns true when a recording has ended.
    """

    def __init__(self, config: SourceConfig):
        if config.pointcloud_decimation < 1:
            raise SourceError(f'pointcloud_decimation must be >= 1, got '
                              f'{config.pointcloud_decimation}')
        self.config = config
        self.device_label = ''
        self.depth_scale = 0.001
        self.intrinsics: Intrinsics | None = None
        self.finished = False
        self._pipeline = None
        self._playback = None
        self._align = None
        self._pointcloud = None

    # --- opening -------------------------------------------------------------------------------
    def _check_profiles(self, dev) -> None:
        c = self.config
        want = (c.width, c.height, c.fps)
        color = _profiles(dev, rs.stream.color, rs.format.rgb8)
        depth = _profiles(dev, rs.stream.depth, rs.format.z16)
        if want not in color or want not in depth:
            raise SourceError(
                f'{self.device_label} does not support color rgb8 + depth z16 at '
                f'{c.width}x{c.height}@{c.fps}; supported: color rgb8 {_fmt_profiles(color)}; '
                f'depth z16 {_fmt_profiles(depth)}')

    def _open_live(self, cfg) -> None:
        devices = list(rs.context().query_devices())
        labels = [_device_label(d) for d in devices]
        if not devices:
            raise SourceError('no RealSense device found; connected: []')
        serial = self.config.serial_no.strip()
        if serial:
            matches = [d for d in devices
                       if d.get_info(rs.camera_info.serial_number) == serial]
            if not matches:
                raise SourceError(f"RealSense device with serial_no '{serial}' not found; "
                                  f'connected: {labels}')
            dev = matches[0]
        else:
            dev = devices[0]
        self.device_label = _device_label(dev)
        self._check_profiles(dev)
        cfg.enable_device(dev.get_info(rs.camera_info.serial_number))

    def _open_recording(self, cfg) -> None:
        path = self.config.recording_file
        if not os.path.isfile(path):
            raise SourceError(f'recording file not found: {path}')
        try:
            dev = rs.context().load_device(path)
        except RuntimeError as exc:
            raise SourceError(f"cannot read recording '{path}' (corrupt or not a "
                              f'RealSense .db3/.bag recording): {exc}') from None
        self.device_label = f"recording '{os.path.basename(path)}'"
        self._check_profiles(dev)
        del dev
        cfg.enable_device_from_file(path, repeat_playback=self.config.repeat_playback)

    def start(self) -> RealSenseSource:
        _require_rs()
        c = self.config
        cfg = rs.config()
        if c.recording_file:
            self._open_recording(cfg)
        else:
            self._open_live(cfg)
        cfg.enable_stream(rs.stream.color, c.width, c.height, rs.format.rgb8, c.fps)
        cfg.enable_stream(rs.stream.depth, c.width, c.height, rs.format.z16, c.fps)
        pipeline = rs.pipeline()
        try:
            profile = pipeline.start(cfg)
        except RuntimeError as exc:
            raise SourceError(f'cannot start {self.device_label}: {exc}') from None
        self._pipeline = pipeline
        dev = profile.get_device()
        if c.recording_file:
            self._playback = dev.as_playback()
            self._playback.set_real_time(c.real_time)
        self.depth_scale = float(dev.first_depth_sensor().get_depth_scale())
        color = profile.get_stream(rs.stream.color).as_video_stream_profile()
        self.intrinsics = Intrinsics.from_rs(color.get_intrinsics())
        self._align = rs.align(rs.stream.color)
        self._pointcloud = rs.pointcloud() if c.pointcloud else None
        self.finished = False
        return self

    def stop(self) -> None:
        # the align and point-cloud blocks keep their last output frames, which belong to the
        # device's frame pools: release them before the pipeline and the device go (a frame
        # that outlives its sensor is a use-after-free in librealsense; seen once as a
        # segfault in this method at a test's teardown on a loaded machine)
        self._align = self._pointcloud = None
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            except RuntimeError:
                pass  # already stopped (end of a recording)
        self._pipeline = self._playback = None

    def __enter__(self) -> RealSenseSource:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- reading -------------------------------------------------------------------------------
    def read(self, timeout: float = 1.0) -> Frame | None:
        """The next frame, or None if none came within ``timeout`` seconds."""
        if self._pipeline is None:
            raise SourceError('source not started')
        ok, frames = self._pipeline.try_wait_for_frames(max(1, int(timeout * 1000)))
        if not ok:
            if self._playback is not None and (
                    self._playback.current_status() == rs.playback_status.stopped):
                self.finished = True
            return None
        host_time = time.time()
        aligned = self._align.process(frames)
        color_frame = aligned.get_color_frame()
        depth_frame = aligned.get_depth_frame()
        if not color_frame or not depth_frame:
            return None  # an incomplete set (first frames of a stream)
        color = np.asanyarray(color_frame.get_data()).copy()
        depth = np.asanyarray(depth_frame.get_data()).copy()
        points = self._points(depth_frame) if self._pointcloud is not None else None
        return Frame(
            color=color, depth=depth, depth_scale=self.depth_scale,
            intrinsics=self.intrinsics, frame_number=int(color_frame.get_frame_number()),
            timestamp_ms=float(color_frame.get_timestamp()),
            timestamp_domain=str(color_frame.get_frame_timestamp_domain()).split('.')[-1],
            hardware_timestamp_us=_metadata(color_frame, 'frame_timestamp'),
            arrival_time_ms=_metadata(color_frame, 'time_of_arrival'),
            host_time=host_time, points=points)

    def _points(self, depth_frame) -> np.ndarray:
        c = self.config
        cloud = self._pointcloud.calculate(depth_frame)
        verts = np.asanyarray(cloud.get_vertices()).view(np.float32)
        verts = verts.reshape(depth_frame.get_height(), depth_frame.get_width(), 3)
        return crop_points(verts, c.pointcloud_decimation, c.min_depth, c.max_depth)


def crop_points(grid: np.ndarray, decimation: int, min_depth: float,
                max_depth: float) -> np.ndarray:
    """(H, W, 3) vertices -> (N, 3) float32: every n-th pixel, 0 < min <= z <= max."""
    pts = grid[::decimation, ::decimation].reshape(-1, 3)
    z = pts[:, 2]
    keep = (z > 0.0) & (z >= min_depth) & (z <= max_depth)
    return np.ascontiguousarray(pts[keep], dtype=np.float32)


def _metadata(frame, name: str) -> int | None:
    key = getattr(rs.frame_metadata_value, name)
    return int(frame.get_frame_metadata(key)) if frame.supports_frame_metadata(key) else None
