"""``juicing-place``: pick an orange off the table and put it on the juicer's cone (RL-100's juicer).

Scene: the Panda on a table; an orange (a sphere with rolling resistance, random radius and xy) to its
right, a juicer (base, cone and a crown ring that cradles the orange) to its left at a slightly
randomised position. Success: the orange rests on the cone -- centre within ``xy_tol`` of the cone
axis and above the crown, speed below ``max_speed``, and no robot geom touching it (released).

Privileged state ``OBS_ENV_STATE`` (14,): orange pos (3), orange quat xyzw (4), orange linear
velocity (3), orange radius (1), crown centre pos (3).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from rl100.geometry import quat_wxyz_to_xyzw
from rl100.sim.base import PandaTaskConfig, PandaTaskEnv
from rl100.sim.scene import (
    WORLD_COLLIDE,
    fixed_camera,
    fmt,
    frustum_mesh,
    ring_capsules,
    table_assets,
    table_worldbody,
    torus_mesh,
)

# juicer geometry (m), in the juicer body frame (origin on the table top)
BASE_RADIUS, BASE_HEIGHT = 0.065, 0.04
CONE_BOTTOM, CONE_TOP, CONE_HEIGHT = 0.04, 0.022, 0.03
CROWN_Z = BASE_HEIGHT + CONE_HEIGHT  # 0.07: the crown ring's centre line
CROWN_TUBE = 0.005
ROLLING_RESISTANCE = 0.004  # m: a real orange is lumpy and does not roll away when brushed
ORANGE_DENSITY = 850.0  # kg/m^3


@dataclass
class JuicingPlaceConfig(PandaTaskConfig):
    """``juicing-place`` (see the module docstring).

    Attributes:
        orange_radius: (min, max) m, uniform.
        orange_x, orange_y: (min, max) m, uniform start position on the table.
        juicer_xy: m, nominal juicer position.
        juicer_jitter: m, uniform +- offset of the juicer on each axis.
        xy_tol: m, success tolerance of the orange centre to the cone axis.
        max_speed: m/s, the orange must be this still.
        friction: sliding friction of the orange (fingers: 1.5).
    """

    max_steps: int = 200
    orange_radius: tuple[float, float] = (0.028, 0.034)
    orange_x: tuple[float, float] = (0.38, 0.58)
    orange_y: tuple[float, float] = (-0.32, -0.12)
    juicer_xy: tuple[float, float] = (0.5, 0.2)
    juicer_jitter: float = 0.04
    xy_tol: float = 0.015
    max_speed: float = 0.05
    friction: float = 1.2

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("orange_radius", "orange_x", "orange_y"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"{name} must be (min, max) with min <= max, got {(lo, hi)}")
        lo, hi = self.orange_radius
        if lo < 0.015 or hi > 0.037:
            raise ValueError(f"orange_radius must lie in [0.015, 0.037] m (the gripper opens 8 cm), got {(lo, hi)}")
        if hi <= 0.022 + CROWN_TUBE:
            raise ValueError("orange_radius must exceed the crown ring (0.027 m) or it falls through")
        for name in ("juicer_jitter", "xy_tol", "max_speed", "friction"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if len(self.juicer_xy) != 2:
            raise ValueError(f"juicer_xy must be (x, y), got {self.juicer_xy}")


class JuicingPlaceEnv(PandaTaskEnv):
    """Pick the orange, place it on the juicer cone, let go."""

    config_cls = JuicingPlaceConfig
    env_state_dim = 14
    env_state_z = (2, 13)  # orange z, crown z

    def __init__(self, config: JuicingPlaceConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        m = self.model
        self._orange_body = m.body("orange").id
        self._orange_geom = m.geom("orange").id
        self._orange_qadr = int(m.jnt_qposadr[m.joint("orange").id])
        self._orange_dadr = int(m.jnt_dofadr[m.joint("orange").id])
        self._juicer_body = m.body("juicer").id
        self._crown_site = m.site("crown").id
        self.orange_radius = float(np.mean(self.config.orange_radius))

    def _scene(self) -> tuple[str, str]:
        cfg = self.config
        r = float(np.mean(cfg.orange_radius))
        orange_collide = (
            f'friction="{cfg.friction} 0.01 {ROLLING_RESISTANCE}" condim="6" solref="0.004 1" {WORLD_COLLIDE}'
        )
        juicer_collide = f'friction="0.9 0.005 0.0001" {WORLD_COLLIDE}'
        assets = (
            table_assets()
            + f"""
    {frustum_mesh("juicer_cone", CONE_BOTTOM, CONE_TOP, CONE_HEIGHT)}
    {frustum_mesh("juicer_tip", 0.018, 0.002, 0.011)}
    {torus_mesh("juicer_crown", CONE_TOP, CROWN_TUBE)}
    <material name="orange" rgba="1 .5 .05 1" specular=".2"/>
    <material name="juicer" rgba=".92 .92 .88 1"/>
    <material name="cone" rgba=".95 .85 .45 1"/>"""
        )
        worldbody = (
            table_worldbody()
            + f"""
    {fixed_camera("scene", pos=(1.4, 0.0, 0.85), target=(0.42, 0.0, 0.14))}
    <body name="orange" pos="0.45 -0.2 {r}">
      <freejoint name="orange"/>
      <geom name="orange" type="sphere" size="{r}" material="orange"
            density="{ORANGE_DENSITY}" {orange_collide}/>
    </body>
    <body name="juicer" pos="{fmt(cfg.juicer_xy)} 0">
      <geom name="juicer_base" type="cylinder" size="{BASE_RADIUS} {BASE_HEIGHT / 2}" pos="0 0 {BASE_HEIGHT / 2}"
            material="juicer" {juicer_collide}/>
      <geom name="juicer_cone" type="mesh" mesh="juicer_cone" pos="0 0 {BASE_HEIGHT}" material="cone" {juicer_collide}/>
      <geom name="juicer_tip" type="mesh" mesh="juicer_tip" pos="0 0 {CROWN_Z - 0.016}" material="cone"
            {juicer_collide}/>
      {ring_capsules("juicer_crown", CONE_TOP, CROWN_TUBE, CROWN_Z, 12, f'group="3" {juicer_collide}')}
      <geom name="juicer_crown_visual" type="mesh" mesh="juicer_crown" pos="0 0 {CROWN_Z}" material="cone"
            contype="0" conaffinity="0" mass="0"/>
      <site name="crown" pos="0 0 {CROWN_Z}" size="0.005" group="5"/>
    </body>"""
        )
        return worldbody, assets

    def _set_orange_radius(self, r: float) -> None:
        m, g, b = self.model, self._orange_geom, self._orange_body
        m.geom_size[g, 0] = r
        m.geom_rbound[g] = r
        m.geom_aabb[g] = (0.0, 0.0, 0.0, r, r, r)
        mass = ORANGE_DENSITY * 4.0 / 3.0 * np.pi * r**3
        m.body_mass[b] = mass
        m.body_inertia[b] = 0.4 * mass * r * r
        self.orange_radius = float(r)

    def set_object_shape(self, semi_axes: tuple[float, float, float]) -> None:
        """Robustness hook (:mod:`rl100.sim.disturbances`): the orange becomes an ellipsoid with semi-axes
        (a, b, c) m (a sphere if equal), mass and inertia from its density, still resting on the table;
        ``orange_radius`` (privileged state, expert) becomes c, its vertical half-height."""
        a, b, c = (float(v) for v in semi_axes)
        m, g, body = self.model, self._orange_geom, self._orange_body
        m.geom_type[g] = mujoco.mjtGeom.mjGEOM_SPHERE if a == b == c else mujoco.mjtGeom.mjGEOM_ELLIPSOID
        m.geom_size[g] = (a, b, c)
        m.geom_rbound[g] = max(a, b, c)
        m.geom_aabb[g] = (0.0, 0.0, 0.0, a, b, c)
        mass = ORANGE_DENSITY * 4.0 / 3.0 * np.pi * a * b * c
        m.body_mass[body] = mass
        m.body_inertia[body] = (mass / 5.0) * np.array([b * b + c * c, a * a + c * c, a * a + b * b])
        self.data.qpos[self._orange_qadr + 2] += c - self.orange_radius
        self.orange_radius = c

    def _randomize(self, rng: np.random.Generator) -> None:
        cfg, m, d = self.config, self.model, self.data
        self._set_orange_radius(rng.uniform(*cfg.orange_radius))
        x, y = rng.uniform(*cfg.orange_x), rng.uniform(*cfg.orange_y)
        yaw = rng.uniform(-np.pi, np.pi)
        q = self._orange_qadr
        d.qpos[q : q + 3] = (x, y, self.orange_radius + 1e-4)
        d.qpos[q + 3 : q + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        d.qvel[self._orange_dadr : self._orange_dadr + 6] = 0.0
        jitter = rng.uniform(-1.0, 1.0, size=2) * cfg.juicer_jitter
        m.body_pos[self._juicer_body] = (*(np.asarray(cfg.juicer_xy) + jitter), 0.0)

    def crown_pos(self) -> np.ndarray:
        return self.data.site_xpos[self._crown_site].copy()

    def place_target(self) -> np.ndarray:
        """Where the orange goes (the crown's centre; :mod:`rl100.sim.outcomes`)."""
        return self.crown_pos()

    def _env_state(self) -> np.ndarray:
        d, q, v = self.data, self._orange_qadr, self._orange_dadr
        return np.concatenate(
            [
                d.qpos[q : q + 3],
                quat_wxyz_to_xyzw(d.qpos[q + 3 : q + 7]),
                d.qvel[v : v + 3],
                [self.orange_radius],
                self.crown_pos(),
            ]
        )

    def _success(self) -> bool:
        d, q, v = self.data, self._orange_qadr, self._orange_dadr
        pos, crown = d.qpos[q : q + 3], self.crown_pos()
        if np.linalg.norm(pos[:2] - crown[:2]) > self.config.xy_tol or pos[2] <= crown[2]:
            return False
        if np.linalg.norm(d.qvel[v : v + 3]) > self.config.max_speed:
            return False
        return not self.robot_touches(self._orange_body)

    def task_info(self) -> dict:
        return {"orange_radius": self.orange_radius, "crown_pos": self.crown_pos(), "crown_radius": CONE_TOP}

    def resting_height(self, radius: float | None = None) -> float:
        """Height of the orange centre above the crown when it sits in the ring."""
        r = self.orange_radius if radius is None else radius
        return float(np.sqrt(max((r + CROWN_TUBE) ** 2 - CONE_TOP**2, 0.0)))

    def orange_contacts(self) -> list[str]:
        """Names of the bodies touching the orange (debugging aid)."""
        m, d, out = self.model, self.data, []
        for i in range(d.ncon):
            g1, g2 = d.contact.geom1[i], d.contact.geom2[i]
            if m.geom_bodyid[g1] == self._orange_body:
                out.append(mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, m.geom_bodyid[g2]))
            elif m.geom_bodyid[g2] == self._orange_body:
                out.append(mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, m.geom_bodyid[g1]))
        return out
