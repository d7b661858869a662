"""``pouring``: grasp a cup full of small balls, carry it over a bowl, tilt it and pour the balls in.

Scene: the Panda on a table; a square cup (four box walls and a floor, free joint, random xy) holding
``n_particles`` small spheres, and a bowl (a floor and a ring of box walls, fixed, random xy) on the
other side. The expert grasps the cup's upper walls from above (fingers along y), lifts it, carries it
beside the bowl and rolls the hand about the world x axis so that the mouth tips towards the bowl.

Success: at least ``min_fraction`` of the particles rest inside the bowl (within its inner radius,
below its rim, speed below ``max_speed``) and the cup has not been dropped -- it is either held by
the robot or standing upright off the bowl.

Privileged state ``OBS_ENV_STATE`` (13 + 3 n): cup pos (3), cup quat xyzw (4), cup uprightness (1,
cosine of its tilt), bowl pos (3, centre of its floor top), fraction of particles in the bowl (1),
cup held (1, 0/1), particle positions (n x 3).

Physics: the balls are plain spheres (condim 3, a stiffer solref so that fast ones do not sink into
thin walls); the model uses pyramidal friction cones (the other tasks: elliptic), ~1.5x faster here.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from rl100.geometry import mat_to_rotvec, quat_wxyz_to_xyzw, rotvec_to_mat, yaw_down_mat
from rl100.keys import OBS_ENV_STATE
from rl100.sim.base import PandaTaskConfig, PandaTaskEnv
from rl100.sim.experts import ScriptedExpert
from rl100.sim.scene import WORLD_COLLIDE, fixed_camera, table_assets, table_worldbody

# cup geometry (m), in the cup body frame (origin at the centre of its bottom face)
CUP_HALF, CUP_WALL, CUP_HEIGHT, CUP_FLOOR = 0.03, 0.004, 0.08, 0.005
CUP_DENSITY = 450.0  # kg/m^3 -> ~45 g
# bowl geometry: a ring of BOWL_SEGMENTS box walls around a thin floor
BOWL_RADIUS, BOWL_WALL, BOWL_HEIGHT, BOWL_FLOOR, BOWL_SEGMENTS = 0.085, 0.006, 0.045, 0.004, 12
BOWL_BURIED = 0.03  # m, the floor reaches this deep into the table: a ball punched into it is pushed back up
PARTICLE_DENSITY = 1200.0
PARTICLE_SOLREF = "0.005 1"  # stiffer than the default: small, fast balls must not sink through thin walls


@dataclass
class PouringConfig(PandaTaskConfig):
    """``pouring`` (see the module docstring).

    Attributes:
        n_particles: balls in the cup (the scene is built with this many).
        particle_radius: m.
        cup_x, cup_y: (min, max) m, uniform cup position.
        bowl_x, bowl_y: (min, max) m, uniform bowl position.
        min_fraction: share of the particles that must end in the bowl.
        max_speed: m/s, a particle counts once it is this slow.
        upright_cos: a cup standing on its own must be tilted less than arccos(upright_cos).
    """

    max_steps: int = 200
    n_particles: int = 20
    particle_radius: float = 0.007
    cup_x: tuple[float, float] = (0.4, 0.55)
    cup_y: tuple[float, float] = (-0.28, -0.14)
    bowl_x: tuple[float, float] = (0.42, 0.58)
    bowl_y: tuple[float, float] = (0.1, 0.22)
    min_fraction: float = 0.8
    max_speed: float = 0.1
    upright_cos: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("cup_x", "cup_y", "bowl_x", "bowl_y"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"{name} must be (min, max) with min <= max, got {(lo, hi)}")
        if not 1 <= self.n_particles <= 40:
            raise ValueError(f"n_particles must be in [1, 40] (the cup holds about 40), got {self.n_particles}")
        if not 0.004 <= self.particle_radius <= 0.01:
            raise ValueError(f"particle_radius must be in [0.004, 0.01] m, got {self.particle_radius}")
        if not 0.0 < self.min_fraction <= 1.0:
            raise ValueError(f"min_fraction must be in (0, 1], got {self.min_fraction}")
        if self.max_speed <= 0:
            raise ValueError(f"max_speed must be > 0, got {self.max_speed}")
        if not 0.0 < self.upright_cos < 1.0:
            raise ValueError(f"upright_cos must be in (0, 1), got {self.upright_cos}")
        if self.bowl_y[0] - self.cup_y[1] < BOWL_RADIUS + CUP_HALF + 0.02:
            raise ValueError(
                f"bowl_y must start >= {BOWL_RADIUS + CUP_HALF + 0.02:.3f} m beyond cup_y (the cup starts on the"
                f" -y side and pours towards +y), got cup_y={self.cup_y}, bowl_y={self.bowl_y}"
            )


def _particle_grid(n: int, r: float) -> np.ndarray:
    """(n, 3) start positions in the cup frame: layers of a square grid above the cup floor."""
    inner = CUP_HALF - CUP_WALL
    per_row = max(int((2 * inner) // (2.1 * r)), 1)
    span = (per_row - 1) * 2.1 * r
    coords = np.linspace(-span / 2, span / 2, per_row)
    pts = []
    layer = 0
    while len(pts) < n:
        z = CUP_FLOOR + r + 0.001 + layer * 2.1 * r
        shift = 0.5 * r * (layer % 2)
        for x in coords:
            for y in coords:
                if len(pts) < n:
                    pts.append((x + shift, y + shift, z))
        layer += 1
    return np.asarray(pts)


class PouringEnv(PandaTaskEnv):
    """Pour the cup's balls into the bowl."""

    config_cls = PouringConfig

    def __init__(self, config: PouringConfig | None = None, **kwargs) -> None:
        cfg = config or PouringConfig()
        self.env_state_dim = 13 + 3 * cfg.n_particles  # before super().__init__, which builds the spaces
        self.env_state_z = (2, 10, *range(15, 13 + 3 * cfg.n_particles, 3))  # cup, bowl, particles
        super().__init__(cfg, **kwargs)
        m, n = self.model, self.config.n_particles
        self._cup_body = m.body("cup").id
        self._cup_q = int(m.jnt_qposadr[m.joint("cup").id])
        self._cup_v = int(m.jnt_dofadr[m.joint("cup").id])
        self._bowl_body = m.body("bowl").id
        self._p_q = np.array([int(m.jnt_qposadr[m.joint(f"p{i}").id]) for i in range(n)])
        self._p_v = np.array([int(m.jnt_dofadr[m.joint(f"p{i}").id]) for i in range(n)])
        self._p_grid = _particle_grid(n, self.config.particle_radius)
        m.opt.cone = mujoco.mjtCone.mjCONE_PYRAMIDAL

    def _scene(self) -> tuple[str, str]:
        cfg = self.config
        c_in = CUP_HALF - CUP_WALL / 2
        cz = CUP_HEIGHT / 2
        wall = f'type="box" material="cup" density="{CUP_DENSITY}" friction="1.0 0.005 0.0001" {WORLD_COLLIDE}'
        cup = f"""<body name="cup" pos="0.45 -0.2 0">
      <freejoint name="cup"/>
      <geom name="cup_floor" {wall} size="{CUP_HALF} {CUP_HALF} {CUP_FLOOR / 2}" pos="0 0 {CUP_FLOOR / 2}"/>
      <geom name="cup_wx0" {wall} size="{CUP_WALL / 2} {CUP_HALF} {cz}" pos="{c_in} 0 {cz}"/>
      <geom name="cup_wx1" {wall} size="{CUP_WALL / 2} {CUP_HALF} {cz}" pos="{-c_in} 0 {cz}"/>
      <geom name="cup_wy0" {wall} size="{CUP_HALF - CUP_WALL} {CUP_WALL / 2} {cz}" pos="0 {c_in} {cz}"/>
      <geom name="cup_wy1" {wall} size="{CUP_HALF - CUP_WALL} {CUP_WALL / 2} {cz}" pos="0 {-c_in} {cz}"/>
      <site name="cup_mouth" pos="0 0 {CUP_HEIGHT}" size="0.004" group="5"/>
    </body>"""
        ang = np.linspace(0.0, 2 * np.pi, BOWL_SEGMENTS, endpoint=False)
        seg_half = (BOWL_RADIUS + BOWL_WALL) * np.tan(np.pi / BOWL_SEGMENTS) + 0.001
        bowl_walls = "\n".join(
            f'<geom name="bowl_w{i}" type="box" size="{BOWL_WALL / 2} {seg_half:.5f} {BOWL_HEIGHT / 2}" '
            f'pos="{(BOWL_RADIUS + BOWL_WALL / 2) * np.cos(a):.5f} {(BOWL_RADIUS + BOWL_WALL / 2) * np.sin(a):.5f} '
            f'{BOWL_HEIGHT / 2}" euler="0 0 {a:.5f}" material="bowl" {WORLD_COLLIDE}/>'
            for i, a in enumerate(ang)
        )
        bowl = f"""<body name="bowl" pos="0.5 0.15 0">
      <geom name="bowl_floor" type="cylinder" size="{BOWL_RADIUS + BOWL_WALL} {BOWL_BURIED / 2 + BOWL_FLOOR / 2}"
            pos="0 0 {BOWL_FLOOR / 2 - BOWL_BURIED / 2}"
            material="bowl" friction="0.8 0.005 0.0001" {WORLD_COLLIDE}/>
      {bowl_walls}
    </body>"""
        r = cfg.particle_radius
        particles = "\n".join(
            f"""<body name="p{i}" pos="0.45 -0.2 {0.02 + i * 0.02}"><freejoint name="p{i}"/>
      <geom type="sphere" size="{r}" density="{PARTICLE_DENSITY}" condim="3" material="bead{i % 3}"
            solref="{PARTICLE_SOLREF}"
            friction="0.6 0.005 0.0001" {WORLD_COLLIDE}/></body>"""
            for i in range(cfg.n_particles)
        )
        assets = (
            table_assets()
            + """
    <material name="cup" rgba=".85 .85 .9 1" specular=".3"/>
    <material name="bowl" rgba=".2 .45 .7 1"/>
    <material name="bead0" rgba=".9 .2 .2 1"/>
    <material name="bead1" rgba=".95 .75 .1 1"/>
    <material name="bead2" rgba=".2 .7 .3 1"/>"""
        )
        worldbody = (
            table_worldbody()
            + f"""
    {fixed_camera("scene", pos=(1.35, 0.0, 0.8), target=(0.48, 0.0, 0.08))}
    {cup}
    {bowl}
    {particles}"""
        )
        return worldbody, assets

    def _randomize(self, rng: np.random.Generator) -> None:
        cfg, m, d = self.config, self.model, self.data
        cup = np.array([rng.uniform(*cfg.cup_x), rng.uniform(*cfg.cup_y), 0.0])
        q, v = self._cup_q, self._cup_v
        d.qpos[q : q + 7] = (*cup[:2], 1e-4, 1.0, 0.0, 0.0, 0.0)
        d.qvel[v : v + 6] = 0.0
        m.body_pos[self._bowl_body] = (rng.uniform(*cfg.bowl_x), rng.uniform(*cfg.bowl_y), 0.0)
        jitter = rng.uniform(-0.5, 0.5, size=(cfg.n_particles, 2)) * 0.002
        for i, (pq, pv) in enumerate(zip(self._p_q, self._p_v, strict=True)):
            xy = cup[:2] + self._p_grid[i, :2] + jitter[i]
            d.qpos[pq : pq + 7] = (*xy, self._p_grid[i, 2], 1.0, 0.0, 0.0, 0.0)
            d.qvel[pv : pv + 6] = 0.0

    # -- state ------------------------------------------------------------------------------------
    def bowl_pos(self) -> np.ndarray:
        """Centre of the bowl's floor top (base frame)."""
        return self.model.body_pos[self._bowl_body] + np.array([0.0, 0.0, BOWL_FLOOR])

    def cup_pos(self) -> np.ndarray:
        return self.data.qpos[self._cup_q : self._cup_q + 3].copy()

    def cup_upright(self) -> float:
        """Cosine of the cup's tilt (1 = upright, 0 = on its side)."""
        return float(self.data.xmat[self._cup_body][8])

    def particle_pos(self) -> np.ndarray:
        q = self._p_q[:, None] + np.arange(3)
        return self.data.qpos[q].copy()

    def particles_in_bowl(self) -> np.ndarray:
        """(n,) bool: particle centre inside the bowl's inner radius, below its rim, and slow."""
        pos, bowl, r = self.particle_pos(), self.bowl_pos(), self.config.particle_radius
        vel = self.data.qvel[self._p_v[:, None] + np.arange(3)]
        inside = np.linalg.norm(pos[:, :2] - bowl[:2], axis=1) < BOWL_RADIUS - 0.5 * r
        below = pos[:, 2] < BOWL_HEIGHT + r
        return inside & below & (np.linalg.norm(vel, axis=1) < self.config.max_speed)

    def fraction_in_bowl(self) -> float:
        return float(np.mean(self.particles_in_bowl()))

    def cup_held(self) -> bool:
        return self.robot_touches(self._cup_body)

    def cup_ok(self) -> bool:
        """The cup was not dropped: held by the robot, or standing upright outside the bowl."""
        if self.cup_held():
            return True
        off_bowl = np.linalg.norm(self.cup_pos()[:2] - self.bowl_pos()[:2]) > BOWL_RADIUS + CUP_HALF
        return self.cup_upright() > self.config.upright_cos and bool(off_bowl)

    def _env_state(self) -> np.ndarray:
        d, q = self.data, self._cup_q
        return np.concatenate(
            [
                d.qpos[q : q + 3],
                quat_wxyz_to_xyzw(d.qpos[q + 3 : q + 7]),
                [self.cup_upright()],
                self.bowl_pos(),
                [self.fraction_in_bowl(), float(self.cup_held())],
                self.particle_pos().ravel(),
            ]
        )

    def _success(self) -> bool:
        return self.fraction_in_bowl() >= self.config.min_fraction and self.cup_ok()

    def task_info(self) -> dict:
        return {
            "bowl_pos": self.bowl_pos(),
            "bowl_radius": BOWL_RADIUS,
            "cup_height": CUP_HEIGHT,
            "cup_half_width": CUP_HALF,
            "fraction_in_bowl": self.fraction_in_bowl(),
        }


GRASP_MAT = yaw_down_mat(np.pi / 2)  # gripper pointing down, fingers along world x


class PouringExpert(ScriptedExpert):
    """approach -> descend -> close -> lift -> carry beside the bowl -> lower -> tilt -> hold -> untilt.

    The hand grasps with its fingers along x (yaw 90 deg), so that no finger sits in front of the mouth,
    and tilting rolls it about the world x axis (the grip axis): the mouth turns towards +y, where the
    bowl is. Skill adds grasp and pour-point offsets, a smaller tilt, a
    faster (sloshing) tilt, a higher pour and the base class's pauses and jitter.
    """

    CARRY_Z = 0.26  # m, TCP height while carrying (the cup bottom clears the bowl rim)
    GRASP_BELOW_RIM = 0.012  # m, TCP below the cup rim when grasping: the pads cover the top ~4 cm
    POUR_Z = 0.2  # m, TCP height while pouring
    POUR_OFFSET = 0.07  # m, TCP this far on the -y side of the bowl centre while pouring
    TILT = 2.5  # rad, full tilt
    TILT_SPEED = 1.0  # rad/s
    HOLD_STEPS = 15

    def _episode_setup(self) -> None:
        p, u = self.profile, 1.0 - self.skill
        self.grasp_off = self.rng.normal(0.0, p.grasp_err, 2) if u > 0 else np.zeros(2)
        self.place_off = self.rng.normal(0.0, 2.5 * p.place_err, 2) if u > 0 else np.zeros(2)
        self.tilt_max = self.TILT - (self.rng.uniform(0.0, 0.9 * u) if u > 0 else 0.0)
        self.tilt_speed = self.TILT_SPEED * (1.0 + (self.rng.uniform(0.0, 3.0 * u) if u > 0 else 0.0))
        self.pour_z = self.POUR_Z + (self.rng.uniform(0.0, 1.5 * p.drop_height) if u > 0 else 0.0)
        self.hold_steps = self.HOLD_STEPS - (int(self.rng.integers(0, int(10 * u) + 1)) if u > 0 else 0)
        self.angle = 0.0
        self.rotvec = mat_to_rotvec(GRASP_MAT)

    def _tilt_to(self, target: float) -> bool:
        step = self.tilt_speed / self.hz
        self.angle = float(np.clip(target, self.angle - step, self.angle + step))
        self.rotvec = mat_to_rotvec(rotvec_to_mat(np.array([-self.angle, 0.0, 0.0])) @ GRASP_MAT)
        return abs(self.angle - target) < 1e-9

    def _plan(self, obs: dict[str, np.ndarray], tcp: np.ndarray) -> None:
        es = np.asarray(obs[OBS_ENV_STATE], dtype=np.float64)
        cup, bowl = es[0:3], es[8:11]
        grasp = np.array([*(cup[:2] + self.grasp_off), cup[2] + CUP_HEIGHT - self.GRASP_BELOW_RIM])
        pour = np.array([bowl[0], bowl[1] - self.POUR_OFFSET, self.pour_z]) + np.array([*self.place_off, 0.0])
        self.timer += 1
        if self.phase == 0:  # above the cup
            rest = self._advance(grasp + np.array([0.0, 0.0, 0.1]))
            if rest == 0.0 and np.linalg.norm(tcp - self.cmd) < 0.015:
                self._next()
        elif self.phase == 1:  # descend around the rim
            rest = self._advance(grasp, speed=0.6 * self.profile.speed)
            if rest == 0.0 and np.linalg.norm(tcp - self.cmd) < 0.006:
                self._next()
        elif self.phase == 2:  # close and let the grip settle
            self.gripper = 1.0
            if self.timer >= 6:
                self._next()
        elif self.phase == 3:  # lift
            self._advance(np.array([*self.cmd[:2], self.CARRY_Z]), speed=0.6 * self.profile.speed)
            if tcp[2] > self.CARRY_Z - 0.03:
                self._next()
        elif self.phase == 4:  # carry beside the bowl
            rest = self._advance(np.array([*pour[:2], self.CARRY_Z]))
            if rest == 0.0 and np.linalg.norm(tcp[:2] - pour[:2]) < 0.01:
                self._next()
        elif self.phase == 5:  # lower to the pour height
            rest = self._advance(pour, speed=0.5 * self.profile.speed)
            if rest == 0.0 and abs(tcp[2] - pour[2]) < 0.01:
                self._next()
        elif self.phase == 6:  # tilt the mouth towards the bowl
            if self._tilt_to(self.tilt_max):
                self._next()
        elif self.phase == 7:  # let it run out
            if self.timer >= self.hold_steps:
                self._next()
        else:  # turn the cup back upright and hold it
            self._tilt_to(0.0)

    def _next(self) -> None:
        self.phase += 1
        self.timer = 0
