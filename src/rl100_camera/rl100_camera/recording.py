"""Write synthetic RealSense recordings (test support; no camera, no ROS).

An ``rs.software_device`` with a depth (z16) and a colour (rgb8) sensor is wrapped in an
``rs.recorder``; frames are injected with ``on_video_frame`` while the *recorder's* sensors
run. librealsense 2.58+ writes a rosbag2 ``.db3`` file, finalised when the recorder is
destroyed. Played back through ``rs.pipeline`` the pixels come back exactly.

The recorder stamps messages with the wall clock, so frames are injected one frame period
apart (``pace=True``): a recording written in a burst lasts a few milliseconds and its
playback races the pipeline's start, losing frames. For the same reason ``pauses`` (extra
seconds of wall clock before given frames) make a recording whose real-time playback stalls.
"""

from __future__ import annotations

from dataclasses import dataclass
import gc
import os
import time
from typing import Callable

import numpy as np
import pyrealsense2 as rs

from .realsense_source import Intrinsics

SERIAL = '000000000042'
NAME = 'rl100 synthetic camera'


@dataclass(frozen=True)
class SyntheticSpec:
    width: int = 64
    height: int = 48
    fps: int = 30
    frames: int = 8
    depth_units: float = 0.001  # m per z16 unit
    # fx = fy = 64 px with the principal point on a pixel corner: rs.align maps depth to colour
    # pixel for pixel (other values can leave one-pixel seams from float rounding)
    intrinsics: Intrinsics = Intrinsics(64, 48, 64.0, 64.0, 32.0, 24.0, 'brown_conrady')


def color_pattern(spec: SyntheticSpec, n: int) -> np.ndarray:
    """Colour frame n: R = column, G = row, B = frame number (all mod 256)."""
    img = np.empty((spec.height, spec.width, 3), np.uint8)
    img[..., 0] = (np.arange(spec.width) % 256)[None, :]
    img[..., 1] = (np.arange(spec.height) % 256)[:, None]
    img[..., 2] = n % 256
    return img


# Flat walls that rs.align maps pixel for pixel with the default intrinsics. Other distances
# can leave one-pixel seams of zeros: align projects each depth pixel's corners through
# float32 deprojection/projection and rounds, and z = 0.8 m, for one, rounds some corners onto
# the neighbouring pixel (measured with librealsense 2.59.1).
SEAM_FREE_DEPTHS = (500, 1000, 1500, 2000, 250, 750, 512, 1024)


def flat_depth(spec: SyntheticSpec, n: int) -> np.ndarray:
    """Depth frame n: a flat wall at ``SEAM_FREE_DEPTHS[n % 8]`` units (mm by default)."""
    value = SEAM_FREE_DEPTHS[n % len(SEAM_FREE_DEPTHS)]
    return np.full((spec.height, spec.width), value, np.uint16)


def _rs_intrinsics(i: Intrinsics):
    out = rs.intrinsics()
    out.width, out.height = i.width, i.height
    out.fx, out.fy, out.ppx, out.ppy = i.fx, i.fy, i.cx, i.cy
    out.model = getattr(rs.distortion, i.model)
    out.coeffs = list(i.coeffs)
    return out


def _stream(kind, uid, spec: SyntheticSpec, fmt, bpp):
    s = rs.video_stream()
    s.type, s.index, s.uid = kind, 0, uid
    s.width, s.height, s.fps = spec.width, spec.height, spec.fps
    s.bpp, s.fmt = bpp, fmt
    s.intrinsics = _rs_intrinsics(spec.intrinsics)
    return s


def write_recording(path: str, spec: SyntheticSpec = SyntheticSpec(),
                    color_fn: Callable = color_pattern, depth_fn: Callable = flat_depth,
                    pace: bool = True, pauses: dict | None = None) -> str:
    """Record ``spec.frames`` synthetic frames to ``path`` (must end in .db3); returns path.

    pauses: {frame number: seconds} of silence recorded before that frame (a stalled stream,
    when played back in real time).
    """
    if not path.endswith('.db3'):
        raise ValueError(f'librealsense {rs.__version__} records rosbag2 .db3 files: {path}')
    if os.path.exists(path):
        os.remove(path)
    dev = rs.software_device()
    dev.register_info(rs.camera_info.name, NAME)
    dev.register_info(rs.camera_info.serial_number, SERIAL)
    depth_sensor = dev.add_sensor('Stereo Module')
    color_sensor = dev.add_sensor('RGB Camera')
    depth_profile = depth_sensor.add_video_stream(
        _stream(rs.stream.depth, 0, spec, rs.format.z16, 2))
    color_profile = color_sensor.add_video_stream(
        _stream(rs.stream.color, 1, spec, rs.format.rgb8, 3))
    depth_sensor.add_read_only_option(rs.option.depth_units, spec.depth_units)
    identity = rs.extrinsics()
    identity.rotation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    identity.translation = [0.0, 0.0, 0.0]
    depth_profile.register_extrinsics_to(color_profile, identity)
    dev.create_matcher(rs.matchers.default)

    recorder = rs.recorder(path, dev)
    sensors = recorder.query_sensors()
    for s in sensors:
        s.open(s.get_stream_profiles()[0])
        s.start(lambda frame: None)
    period = 1.0 / spec.fps
    for n in range(spec.frames):
        if pace:
            time.sleep(period)
        time.sleep((pauses or {}).get(n, 0.0))
        stamp_ms = 1000.0 * n * period
        for sensor, profile, image, bpp in (
                (depth_sensor, depth_profile, depth_fn(spec, n), 2),
                (color_sensor, color_profile, color_fn(spec, n), 3)):
            f = rs.software_video_frame()
            f.pixels = np.ascontiguousarray(image)
            f.bpp, f.stride = bpp, spec.width * bpp
            f.timestamp, f.domain = stamp_ms, rs.timestamp_domain.hardware_clock
            f.frame_number = n
            f.profile = profile.as_video_stream_profile()
            sensor.on_video_frame(f)
    for s in sensors:
        s.stop()
        s.close()
    del s, sensors, recorder  # the file is finalised when the recorder is destroyed
    gc.collect()
    return path
