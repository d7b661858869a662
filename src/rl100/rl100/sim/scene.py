"""MJCF fragments shared by the Panda task scenes: table, floor, lights, fixed cameras, simple meshes.

The table top is the plane z = 0 of the robot base frame; the robot stands on it at the origin.
"""

from __future__ import annotations

import numpy as np

from rl100.sim.camera import look_at_quat
from rl100.sim.panda import FLOOR_CONAFFINITY, FLOOR_CONTYPE, WORLD_CONAFFINITY, WORLD_CONTYPE

WORLD_COLLIDE = f'contype="{WORLD_CONTYPE}" conaffinity="{WORLD_CONAFFINITY}"'


def fmt(values) -> str:
    """Numbers -> MJCF attribute string."""
    return " ".join(f"{float(v):.6g}" for v in np.ravel(values))


def table_assets() -> str:
    return """
    <texture name="wood" type="2d" builtin="flat" rgb1=".62 .5 .38" width="16" height="16"/>
    <material name="table" texture="wood" rgba="1 1 1 1"/>
    <material name="floor" rgba=".25 .27 .3 1"/>"""


def table_worldbody(size_x: float = 0.6, size_y: float = 0.7, center_x: float = 0.4) -> str:
    """Table (top at z = 0), floor, and light. The light casts no shadow: shadows are off anyway."""
    return f"""
    <light name="top" pos="0.5 0 2.0" dir="0 0 -1" directional="true" diffuse=".7 .7 .7" castshadow="false"/>
    <light name="fill" pos="1.5 -1 1.5" dir="-1 1 -1" directional="true" diffuse=".3 .3 .3" castshadow="false"/>
    <geom name="floor" type="plane" pos="0 0 -0.75" size="3 3 0.1" material="floor"
          contype="{FLOOR_CONTYPE}" conaffinity="{FLOOR_CONAFFINITY}"/>
    <geom name="table" type="box" pos="{center_x} 0 -0.025" size="{size_x} {size_y} 0.025" material="table"
          friction="0.8 0.005 0.0001" {WORLD_COLLIDE}/>"""


def fixed_camera(name: str, pos, target, fovy: float = 58.0) -> str:
    """A fixed camera at ``pos`` looking at ``target`` (base frame). 58 deg: a RealSense D435's colour fovy."""
    quat = look_at_quat(np.asarray(pos, dtype=float), np.asarray(target, dtype=float))
    return f'<camera name="{name}" pos="{fmt(pos)}" quat="{fmt(quat)}" fovy="{fovy}"/>'


def frustum_mesh(name: str, r_bottom: float, r_top: float, height: float, segments: int = 24) -> str:
    """A convex frustum (truncated cone) mesh, base at z = 0, axis +z."""
    ang = np.linspace(0.0, 2.0 * np.pi, segments, endpoint=False)
    bottom = np.stack([r_bottom * np.cos(ang), r_bottom * np.sin(ang), np.zeros(segments)], axis=1)
    top = np.stack([r_top * np.cos(ang), r_top * np.sin(ang), np.full(segments, height)], axis=1)
    return f'<mesh name="{name}" vertex="{fmt(np.concatenate([bottom, top]))}"/>'


def torus_mesh(name: str, radius: float, tube: float, n_major: int = 16, n_minor: int = 6) -> str:
    """A low-poly torus around the z axis (a visual mesh: explicit faces, so it is drawn non-convex)."""
    u = np.linspace(0.0, 2.0 * np.pi, n_major, endpoint=False)[:, None]
    v = np.linspace(0.0, 2.0 * np.pi, n_minor, endpoint=False)[None, :]
    ring = radius + tube * np.cos(v)
    verts = np.stack([ring * np.cos(u), ring * np.sin(u), tube * np.sin(v) + 0.0 * u], axis=-1).reshape(-1, 3)
    faces = []
    for i in range(n_major):
        for j in range(n_minor):
            a, b = i * n_minor + j, ((i + 1) % n_major) * n_minor + j
            c, e = ((i + 1) % n_major) * n_minor + (j + 1) % n_minor, i * n_minor + (j + 1) % n_minor
            faces += [(a, b, c), (a, c, e)]
    return f'<mesh name="{name}" vertex="{fmt(verts)}" face="{" ".join(str(k) for f in faces for k in f)}"/>'


def ring_capsules(prefix: str, radius: float, tube: float, z: float, count: int, extra: str = "") -> str:
    """A torus approximated by ``count`` capsules around the z axis at height ``z``."""
    ang = np.linspace(0.0, 2.0 * np.pi, count + 1)
    pts = np.stack([radius * np.cos(ang), radius * np.sin(ang), np.full(count + 1, z)], axis=1)
    return "\n".join(
        f'<geom name="{prefix}{i}" type="capsule" size="{tube}" fromto="{fmt(pts[i])} {fmt(pts[i + 1])}" {extra}/>'
        for i in range(count)
    )
