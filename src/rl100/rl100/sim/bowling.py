"""``bowling``: strike a ball with the closed gripper so that it rolls into a triangle of pins.

Scene: the Panda on a table; a ball (random radius, random start) in front of it and three light
pins (a triangle, random position) near the far edge. The expert moves behind the ball, lowers the
closed fingers to the ball's centre height and sweeps through it towards the pins -- a fast,
dynamic motion, so this task raises the target filter's speed limit to 1.2 m/s. Success: at least
``min_pins`` pins knocked over (tilted beyond ``tilt_deg``) within the time limit.

Privileged state ``OBS_ENV_STATE`` (19,): ball pos (3), ball linear velocity (3), ball radius (1),
pin positions (3 x 3), pin uprightness (3, cosine of the tilt).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rl100.geometry import mat_to_rotvec, yaw_down_mat
from rl100.keys import OBS_ENV_STATE
from rl100.sim.base import PandaTaskConfig, PandaTaskEnv
from rl100.sim.experts import ScriptedExpert
from rl100.sim.panda import ImpedanceConfig
from rl100.sim.scene import WORLD_COLLIDE, fixed_camera, table_assets, table_worldbody

N_PINS = 3
PIN_RADIUS, PIN_HALF = 0.013, 0.05
PIN_BOX = 0.0115  # half side of the square collision prism inside the drawn cylinder (box-box/box-sphere are analytic)
PIN_SPACING = 0.045  # m between pin centres in the triangle


@dataclass
class BowlingConfig(PandaTaskConfig):
    """``bowling`` (see the module docstring).

    Attributes:
        ball_radius: (min, max) m.
        ball_x, ball_y: (min, max) m, ball start.
        pins_x, pins_y: (min, max) m, position of the head pin.
        min_pins: pins that must fall.
        tilt_deg: a pin tilted more than this is down.
    """

    max_steps: int = 120
    impedance: ImpedanceConfig = field(default_factory=lambda: ImpedanceConfig(max_lin_vel=1.2))
    ball_radius: tuple[float, float] = (0.028, 0.034)
    ball_x: tuple[float, float] = (0.42, 0.5)
    ball_y: tuple[float, float] = (-0.08, 0.08)
    pins_x: tuple[float, float] = (0.84, 0.9)
    pins_y: tuple[float, float] = (-0.12, 0.12)
    min_pins: int = 2
    tilt_deg: float = 45.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("ball_radius", "ball_x", "ball_y", "pins_x", "pins_y"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"{name} must be (min, max) with min <= max, got {(lo, hi)}")
        if not 0.015 <= self.ball_radius[0] and self.ball_radius[1] <= 0.05:
            raise ValueError(f"ball_radius must lie in [0.015, 0.05] m, got {self.ball_radius}")
        if not 1 <= self.min_pins <= N_PINS:
            raise ValueError(f"min_pins must be in [1, {N_PINS}], got {self.min_pins}")
        if not 0 < self.tilt_deg < 90:
            raise ValueError(f"tilt_deg must be in (0, 90), got {self.tilt_deg}")


class BowlingEnv(PandaTaskEnv):
    """Roll the ball into the pins."""

    config_cls = BowlingConfig
    env_state_dim = 19
    env_state_z = (2, 9, 12, 15)  # ball z, the pins' z

    def __init__(self, config: BowlingConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        m = self.model
        self._ball_body, self._ball_geom = m.body("ball").id, m.geom("ball").id
        self._ball_q = int(m.jnt_qposadr[m.joint("ball").id])
        self._ball_v = int(m.jnt_dofadr[m.joint("ball").id])
        self._pin_q = [int(m.jnt_qposadr[m.joint(f"pin{i}").id]) for i in range(N_PINS)]
        self._pin_v = [int(m.jnt_dofadr[m.joint(f"pin{i}").id]) for i in range(N_PINS)]
        self._pin_body = [m.body(f"pin{i}").id for i in range(N_PINS)]
        self.ball_radius = float(np.mean(self.config.ball_radius))

    def _scene(self) -> tuple[str, str]:
        r = float(np.mean(self.config.ball_radius))
        assets = (
            table_assets()
            + """
    <material name="ball" rgba=".15 .25 .8 1" specular=".5"/>
    <material name="pin" rgba=".95 .95 .95 1"/>
    <material name="pinband" rgba=".85 .1 .1 1"/>"""
        )
        pins = "\n".join(
            f"""<body name="pin{i}" pos="{0.9 + i * 0.05} 0 {PIN_HALF}">
      <freejoint name="pin{i}"/>
      <geom name="pin{i}" type="box" size="{PIN_BOX} {PIN_BOX} {PIN_HALF}" mass="0.03" group="3"
            friction="0.5 0.005 0.0001" {WORLD_COLLIDE}/>
      <geom type="cylinder" size="{PIN_RADIUS} {PIN_HALF}" material="pin" contype="0" conaffinity="0" mass="0"/>
      <geom type="cylinder" size="{PIN_RADIUS + 0.001} 0.006" pos="0 0 0.025" material="pinband"
            contype="0" conaffinity="0" mass="0"/>
    </body>"""
            for i in range(N_PINS)
        )
        worldbody = (
            table_worldbody()
            + f"""
    {fixed_camera("scene", pos=(0.25, -0.75, 0.65), target=(0.65, 0.0, 0.05))}
    <body name="ball" pos="0.45 0 {r}">
      <freejoint name="ball"/>
      <geom name="ball" type="sphere" size="{r}" material="ball" density="1500" condim="3" priority="1"
            friction="0.3 0.005 0.0001" {WORLD_COLLIDE}/>
    </body>
    {pins}"""
        )
        return worldbody, assets

    def _randomize(self, rng: np.random.Generator) -> None:
        cfg, m, d = self.config, self.model, self.data
        r = float(rng.uniform(*cfg.ball_radius))
        m.geom_size[self._ball_geom, 0] = r
        m.geom_rbound[self._ball_geom] = r
        m.geom_aabb[self._ball_geom] = (0.0, 0.0, 0.0, r, r, r)
        mass = 1500.0 * 4.0 / 3.0 * np.pi * r**3
        m.body_mass[self._ball_body] = mass
        m.body_inertia[self._ball_body] = 0.4 * mass * r * r
        self.ball_radius = r
        q, v = self._ball_q, self._ball_v
        d.qpos[q : q + 7] = (rng.uniform(*cfg.ball_x), rng.uniform(*cfg.ball_y), r + 1e-4, 1.0, 0.0, 0.0, 0.0)
        d.qvel[v : v + 6] = 0.0
        head = np.array([rng.uniform(*cfg.pins_x), rng.uniform(*cfg.pins_y)])
        offsets = PIN_SPACING * np.array([[0.0, 0.0], [0.866, 0.5], [0.866, -0.5]])  # head pin, then the back row
        for i, (pq, pv) in enumerate(zip(self._pin_q, self._pin_v, strict=True)):
            d.qpos[pq : pq + 7] = (*(head + offsets[i]), PIN_HALF + 1e-4, 1.0, 0.0, 0.0, 0.0)
            d.qvel[pv : pv + 6] = 0.0

    def pins_up(self) -> np.ndarray:
        """(3,) cosine of each pin's tilt (1 = upright)."""
        return self.data.xmat[self._pin_body, 8]

    def _env_state(self) -> np.ndarray:
        d, q, v = self.data, self._ball_q, self._ball_v
        pins = np.concatenate([d.qpos[pq : pq + 3] for pq in self._pin_q])
        return np.concatenate([d.qpos[q : q + 3], d.qvel[v : v + 3], [self.ball_radius], pins, self.pins_up()])

    def pins_down(self) -> int:
        return int(np.sum(self.pins_up() < np.cos(np.deg2rad(self.config.tilt_deg))))

    def _success(self) -> bool:
        return self.pins_down() >= self.config.min_pins

    def task_info(self) -> dict:
        return {"ball_radius": self.ball_radius, "pins_down": self.pins_down()}


class BowlingExpert(ScriptedExpert):
    """behind the ball -> lower -> sweep through it towards the pins -> lift.

    The hand is turned so that a finger's flat outer side, not the rounded finger ends, meets the
    ball: the ball then leaves along the sweep direction.

    Skill adds an aim error (std 9 deg at skill 0), a slower, shorter strike, a contact-height
    error and the base class's pauses and jitter.
    """

    STRIKE_ABOVE_CENTRE = 0.035  # m, TCP above the ball centre: the closed fingertips hit the equator

    def _episode_setup(self) -> None:
        u = 1.0 - self.skill
        self.gripper = 1.0
        self.aim_err = self.rng.normal(0.0, np.deg2rad(9.0) * u) if u > 0 else 0.0
        self.strike_speed = 1.2 - 0.9 * u * self.rng.uniform(0.4, 1.0)
        self.height_err = self.rng.normal(0.0, 0.015 * u) if u > 0 else 0.0
        self.aim: np.ndarray | None = None

    def _plan(self, obs: dict[str, np.ndarray], tcp: np.ndarray) -> None:
        es = np.asarray(obs[OBS_ENV_STATE], dtype=np.float64)
        ball, radius, pins = es[0:3], float(es[6]), es[7:16].reshape(N_PINS, 3)
        self.gripper = 1.0
        self.timer += 1
        if self.aim is None or self.phase < 2:
            target = pins[:, :2].mean(axis=0)
            direction = target - ball[:2]
            angle = np.arctan2(direction[1], direction[0]) + self.aim_err
            self.aim = np.array([np.cos(angle), np.sin(angle)])
            # turn the hand so that the flat outer side of a finger faces the aim direction
            yaw = angle - np.pi / 2 if angle >= 0 else angle + np.pi / 2
            self.rotvec = mat_to_rotvec(yaw_down_mat(yaw))
        strike_z = ball[2] + self.STRIKE_ABOVE_CENTRE + self.height_err
        behind = ball[:2] - self.aim * (radius + 0.07)
        if self.phase == 0:  # above the point behind the ball
            rest = self._advance(np.array([*behind, strike_z + 0.08]))
            if rest == 0.0 and np.linalg.norm(tcp - self.cmd) < 0.015:
                self._next()
        elif self.phase == 1:  # lower to strike height
            rest = self._advance(np.array([*behind, strike_z]), speed=0.6 * self.profile.speed)
            if rest == 0.0 and np.linalg.norm(tcp - self.cmd) < 0.006:
                self._next()
        elif self.phase == 2:  # sweep through the ball
            through = ball[:2] + self.aim * 0.2 if self.timer == 1 else self.cmd[:2]
            if self.timer == 1:
                self.goal = np.array([*through, strike_z])
            rest = self._advance(self.goal, speed=self.strike_speed)
            if rest == 0.0:
                self._next()
        else:  # lift clear and wait
            self._advance(np.array([*self.cmd[:2], 0.2]))

    def _next(self) -> None:
        self.phase += 1
        self.timer = 0
