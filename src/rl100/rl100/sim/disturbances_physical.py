"""Physical robustness families: pushes and object moves during an episode, shifted scene conditions.

``disturbance`` families act around each control step's physics (``xfrc_applied`` forces on a body,
a teleported object); ``condition`` families edit the model once per episode after the task placed
its objects (friction, table height, object size and shape, camera pose, colours and lights). Every
model array a family edits is listed in its ``model_fields`` and restored to the nominal model at the
next reset by :class:`rl100.sim.disturbances.DisturbanceSet`.

The object a task manipulates is its registry entry's ``manipuland`` body (juicing-place: the orange).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from rl100.sim.disturbances_base import Family, check_number, check_range, register, uniform


def _int_range(family: str, name: str, value) -> tuple[int, int]:
    lo, hi = check_range(family, name, value, 0.0)
    if lo != int(lo) or hi != int(hi):
        raise ValueError(f"{family}.{name} must be whole control steps, got {value!r}")
    return int(lo), int(hi)


def _needs_manipuland(dset) -> str | None:
    return None if dset.manipuland is not None else "the task names no manipulated object (registry 'manipuland')"


@dataclass(kw_only=True)
class _Push(Family):
    """A force on a body for ``duration`` control steps, starting at a step drawn from ``window``."""

    kind = "disturbance"

    force: float | None = None
    duration: int | None = None
    window: tuple[int, int] | None = None
    vertical: float = 0.0

    def validate(self) -> None:
        self.force = check_number(self.name, "force", self.force, 0.0, 500.0)
        if int(self.duration) != self.duration or self.duration < 1:
            raise ValueError(f"{self.name}.duration must be a whole number of control steps >= 1, got {self.duration}")
        self.duration = int(self.duration)
        self.window = _int_range(self.name, "window", self.window)
        self.vertical = check_number(self.name, "vertical", self.vertical, -1.0, 1.0)

    def _body(self, env, dset) -> int:
        raise NotImplementedError

    def begin_episode(self, env, dset, rng) -> None:
        self.start = int(rng.integers(self.window[0], self.window[1] + 1))
        azimuth = rng.uniform(-np.pi, np.pi)
        h = np.sqrt(1.0 - self.vertical**2)
        self.direction = np.array([h * np.cos(azimuth), h * np.sin(azimuth), self.vertical])

    def before_physics(self, env, dset, action) -> None:
        if self.start <= dset.step < self.start + self.duration:
            body = self._body(env, dset)
            env.data.xfrc_applied[body, :3] += self.force * self.direction
            dset.pushed = True
            if dset.step == self.start:
                dset.log(self.name, f"{self.force:g} N along {np.round(self.direction, 3).tolist()} "
                                    f"on {mujoco.mj_id2name(env.model, mujoco.mjtObj.mjOBJ_BODY, body)} "
                                    f"for {self.duration} step(s)")


@register
@dataclass(kw_only=True)
class PushArm(_Push):
    """A shove on the arm: ``force`` N on ``link`` for ``duration`` control steps (impulse = force x duration / hz).

    Attributes:
        force: N (the impedance controller's force is clipped at 60 N per axis).
        duration: control steps the force lasts.
        window: (first, last) control step at which the push may start (uniform).
        vertical: z component of the unit push direction (0: horizontal, random azimuth).
        link: robot body pushed (``panda0_link7`` carries the hand).
    """

    name = "push_arm"
    presets = {
        "mild": {"force": 15.0, "duration": 1, "window": (5, 60)},
        "moderate": {"force": 35.0, "duration": 2, "window": (5, 60)},
        "severe": {"force": 60.0, "duration": 3, "window": (5, 60)},
    }
    link: str = "panda0_link7"

    def applicable(self, env, dset) -> str | None:
        if mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_BODY, self.link) not in env.arm.robot_bodies:
            return f"{self.link!r} is not a robot body"
        return None

    def _body(self, env, dset) -> int:
        return env.model.body(self.link).id


@register
@dataclass(kw_only=True)
class PushObject(_Push):
    """A flick of the manipulated object: ``force`` N through its centre for ``duration`` control steps.

    Attributes:
        force: N (the orange weighs ~0.1 kg).
        duration: control steps the force lasts.
        window: (first, last) control step at which the push may start (uniform); the default catches
            the orange on the table, before the scripted expert's grasp (~step 20).
        vertical: z component of the unit push direction (0: horizontal, random azimuth).
    """

    name = "push_object"
    presets = {
        "mild": {"force": 0.4, "duration": 1, "window": (2, 12)},
        "moderate": {"force": 0.6, "duration": 1, "window": (2, 12)},
        "severe": {"force": 0.9, "duration": 1, "window": (2, 12)},
    }

    def applicable(self, env, dset) -> str | None:
        return _needs_manipuland(dset)

    def _body(self, env, dset) -> int:
        return dset.manipuland.body


@register
@dataclass(kw_only=True)
class MoveObject(Family):
    """The object is moved at grasp onset: the first time the gripper command goes from open to closed
    (action[6] crosses 0.5; the gripper starts open) with the TCP within ``near`` of the object's centre,
    ``delay`` steps later the object jumps ``distance`` m on the table, at rest. (A task that keeps the
    gripper closed, like bowling, never triggers it.)

    Attributes:
        distance: m, the jump.
        near: m, TCP-to-object-centre distance that counts as "at the object".
        delay: control steps after the onset (the fingers need ~3 steps to close).
        direction: ``free``: along the hand's x axis (between the open finger pads, never into them),
            sign random; ``random``: any horizontal direction (may land in a finger).
    """

    name = "move_object"
    kind = "disturbance"
    presets = {"mild": {"distance": 0.01}, "moderate": {"distance": 0.025}, "severe": {"distance": 0.05}}

    distance: float | None = None
    near: float = 0.06
    delay: int = 0
    direction: str = "free"

    def validate(self) -> None:
        self.distance = check_number(self.name, "distance", self.distance, 0.0, 0.5)
        self.near = check_number(self.name, "near", self.near, 0.0, 1.0)
        if int(self.delay) != self.delay or self.delay < 0:
            raise ValueError(f"{self.name}.delay must be a whole number of control steps >= 0, got {self.delay}")
        self.delay = int(self.delay)
        if self.direction not in ("free", "random"):
            raise ValueError(f"{self.name}.direction must be 'free' or 'random', got {self.direction!r}")

    def applicable(self, env, dset) -> str | None:
        return _needs_manipuland(dset)

    def begin_episode(self, env, dset, rng) -> None:
        self.sign = 1.0 if rng.random() < 0.5 else -1.0
        self.azimuth = rng.uniform(-np.pi, np.pi)
        self.onset: int | None = None
        self.done = False
        self.closed = False  # the previous command (the gripper starts open)

    def before_physics(self, env, dset, action) -> None:
        if self.done:
            return
        d, man = env.data, dset.manipuland
        closing, self.closed = action[6] >= 0.5 and not self.closed, action[6] >= 0.5
        if self.onset is None and closing:
            tcp = d.site_xpos[env.arm.site]
            if np.linalg.norm(tcp - d.qpos[man.qadr : man.qadr + 3]) < self.near:
                self.onset = dset.step
        if self.onset is not None and dset.step == self.onset + self.delay:
            if self.direction == "free":
                x_axis = d.site_xmat[env.arm.site].reshape(3, 3)[:, 0]
                u = x_axis[:2] / max(float(np.linalg.norm(x_axis[:2])), 1e-9) * self.sign
            else:
                u = np.array([np.cos(self.azimuth), np.sin(self.azimuth)])
            d.qpos[man.qadr : man.qadr + 2] += self.distance * u
            d.qvel[man.dadr : man.dadr + 6] = 0.0
            self.done = True
            dset.log(self.name, f"object moved {self.distance:g} m along {np.round(u, 3).tolist()}")


@register
@dataclass(kw_only=True)
class Friction(Family):
    """Sliding friction of the table and of the object scaled by one factor per episode.

    MuJoCo gives a contact the larger friction of its two geoms (or the one with the higher
    ``priority``), so scaling both scales their contact's friction by exactly the factor; the finger
    pads (1.5) still dominate the grasp up to factor ~1.25.

    Attributes:
        scale: (min, max) factor, drawn log-uniformly.
    """

    name = "friction"
    kind = "condition"
    presets = {"mild": {"scale": (0.6, 1.6)}, "moderate": {"scale": (0.35, 2.5)}, "severe": {"scale": (0.15, 4.0)}}
    model_fields = ("geom_friction",)

    scale: tuple[float, float] | None = None

    def validate(self) -> None:
        self.scale = check_range(self.name, "scale", self.scale, 1e-3, 100.0)

    def begin_episode(self, env, dset, rng) -> None:
        self.value = uniform(rng, self.scale, log=True)

    def apply(self, env, dset) -> None:
        geoms = [dset.table_geom] + (list(dset.manipuland.geoms) if dset.manipuland is not None else [])
        env.model.geom_friction[geoms, 0] *= self.value
        dset.log(self.name, f"friction x{self.value:.3f}")


@register
@dataclass(kw_only=True)
class TableHeight(Family):
    """The table top moves by ``dz`` relative to the robot base (a different stand); objects go with it.

    Everything on the table moves: free objects (qpos) and static fixtures (body pos); the robot,
    the floor, the lights and the fixed cameras stay.

    Attributes:
        shift: (min, max) m, signed, uniform.
    """

    name = "table_height"
    kind = "condition"
    order = 10  # after object size/shape (they re-seat the object on the nominal table)
    presets = {"mild": {"shift": (-0.01, 0.01)}, "moderate": {"shift": (-0.025, 0.025)},
               "severe": {"shift": (-0.05, 0.05)}}
    model_fields = ("geom_pos", "body_pos")

    shift: tuple[float, float] | None = None

    def validate(self) -> None:
        self.shift = check_range(self.name, "shift", self.shift, -0.2, 0.2)

    def begin_episode(self, env, dset, rng) -> None:
        self.value = uniform(rng, self.shift)

    def apply(self, env, dset) -> None:
        m, d, dz = env.model, env.data, self.value
        m.geom_pos[dset.table_geom, 2] += dz
        for body in dset.table_bodies:
            jnt = m.body_jntadr[body]
            if m.body_jntnum[body] == 1 and m.jnt_type[jnt] == mujoco.mjtJoint.mjJNT_FREE:
                d.qpos[m.jnt_qposadr[jnt] + 2] += dz
            else:
                m.body_pos[body, 2] += dz
        dset.log(self.name, f"table top at z = {dz * 100:+.2f} cm")


@dataclass(kw_only=True)
class _ObjectGeometry(Family):
    kind = "condition"
    model_fields = ("geom_type", "geom_size", "geom_rbound", "geom_aabb", "body_mass", "body_inertia")

    def applicable(self, env, dset) -> str | None:
        if not hasattr(env, "set_object_shape"):
            return f"{type(env).__name__} has no set_object_shape() hook"
        man = dset.manipuland
        if man is None or env.model.geom_type[man.geoms[0]] != mujoco.mjtGeom.mjGEOM_SPHERE:
            return "the manipulated object is not a sphere"
        return None

    def _radius(self, env, dset) -> float:
        """The object's current radius (an ellipsoid's: that of the sphere of the same volume)."""
        g = dset.manipuland.geoms[0]
        if env.model.geom_type[g] == mujoco.mjtGeom.mjGEOM_SPHERE:
            return float(env.model.geom_size[g, 0])
        return float(np.prod(env.model.geom_size[g]) ** (1.0 / 3.0))


@register
@dataclass(kw_only=True)
class ObjectSize(_ObjectGeometry):
    """The object's radius times a factor beyond the training range (juicing: r 2.8-3.4 cm; the crown
    holds r > 2.7 cm, the gripper opens 8 cm).

    Attributes:
        scale: (min, max) factor on the task's own draw, log-uniform.
    """

    name = "object_size"
    order = 0
    presets = {"mild": {"scale": (1.0, 1.08)}, "moderate": {"scale": (0.95, 1.15)},
               "severe": {"scale": (0.85, 1.3)}}

    scale: tuple[float, float] | None = None

    def validate(self) -> None:
        self.scale = check_range(self.name, "scale", self.scale, 0.3, 3.0)

    def begin_episode(self, env, dset, rng) -> None:
        self.value = uniform(rng, self.scale, log=True)

    def apply(self, env, dset) -> None:
        r = self._radius(env, dset) * self.value
        env.set_object_shape((r, r, r))
        dset.log(self.name, f"radius {r * 100:.2f} cm (x{self.value:.3f})")


@register
@dataclass(kw_only=True)
class ObjectShape(_ObjectGeometry):
    """The object becomes an ellipsoid: each semi-axis is the task's radius times a log-uniform factor
    in [1/aspect, aspect] (z stays vertical at the start; the task reports z as its radius).

    Attributes:
        aspect: >= 1, largest factor per axis.
    """

    name = "object_shape"
    order = 1
    presets = {"mild": {"aspect": 1.1}, "moderate": {"aspect": 1.25}, "severe": {"aspect": 1.5}}

    aspect: float | None = None

    def validate(self) -> None:
        self.aspect = check_number(self.name, "aspect", self.aspect, 1.0, 3.0)

    def begin_episode(self, env, dset, rng) -> None:
        self.factors = np.exp(rng.uniform(-np.log(self.aspect), np.log(self.aspect), 3))

    def apply(self, env, dset) -> None:
        axes = self._radius(env, dset) * self.factors
        env.set_object_shape(tuple(axes))
        dset.log(self.name, f"ellipsoid semi-axes {np.round(axes * 100, 2).tolist()} cm")


@register
@dataclass(kw_only=True)
class CameraPose(Family):
    """The fixed camera is bumped: its pose moves by a random translation and rotation per episode.

    Attributes:
        translation: m, uniform per axis in [-translation, translation].
        rotation: deg, angle about a uniformly random axis, uniform in [0, rotation].
        calibrated: False: ``camera_info()`` (and so the point cloud) keeps the *nominal* extrinsics --
            a camera knocked after calibration: clouds come out shifted / tilted; True: the reported
            extrinsics follow the camera -- only the viewpoint changes.
        camera: the fixed (world-mounted) camera moved.
        offset, turn: a given knock instead of a random one: (3,) m in the world frame, and (3,)
            a rotation vector in deg about the camera centre (world axes); both or neither (empty:
            a random knock per episode).
    """

    name = "camera_pose"
    kind = "condition"
    presets = {"mild": {"translation": 0.005, "rotation": 1.0}, "moderate": {"translation": 0.015, "rotation": 3.0},
               "severe": {"translation": 0.03, "rotation": 6.0}}
    model_fields = ("cam_pos", "cam_quat")

    translation: float | None = None
    rotation: float | None = None
    calibrated: bool = False
    camera: str = "scene"
    offset: tuple[float, ...] = ()
    turn: tuple[float, ...] = ()

    def validate(self) -> None:
        self.translation = check_number(self.name, "translation", self.translation, 0.0, 0.5)
        self.rotation = check_number(self.name, "rotation", self.rotation, 0.0, 90.0)
        if not isinstance(self.calibrated, bool):
            raise ValueError(f"{self.name}.calibrated must be true or false, got {self.calibrated!r}")
        for name, limit in (("offset", 0.5), ("turn", 90.0)):
            value = getattr(self, name)
            try:
                vec = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                vec = (math.nan,)
            if len(vec) not in (0, 3) or not all(math.isfinite(v) and abs(v) <= limit for v in vec):
                raise ValueError(f"{self.name}.{name} must be 3 finite numbers within +-{limit}, got {value!r}")
            setattr(self, name, vec)
        if bool(self.offset) != bool(self.turn):
            raise ValueError(f"{self.name}: give both offset (m) and turn (deg) for a fixed knock, or neither")

    def applicable(self, env, dset) -> str | None:
        cid = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_CAMERA, self.camera)
        if cid < 0:
            return f"no camera {self.camera!r}"
        return None if env.model.cam_bodyid[cid] == 0 else f"camera {self.camera!r} is not fixed to the world"

    def begin_episode(self, env, dset, rng) -> None:
        if self.offset:  # a given knock: the same in every episode
            self.shift, self.rotvec = np.array(self.offset), np.deg2rad(np.array(self.turn))
            return
        self.shift = rng.uniform(-self.translation, self.translation, 3)
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        self.rotvec = axis * np.deg2rad(rng.uniform(0.0, self.rotation))

    def apply(self, env, dset) -> None:
        m = env.model
        cid = m.camera(self.camera).id
        if not self.calibrated:  # report the nominal optical pose (world-mounted: model pose = world pose)
            rot = np.zeros(9)
            mujoco.mju_quat2Mat(rot, m.cam_quat[cid])
            pose = np.eye(4)
            pose[:3, :3] = rot.reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
            pose[:3, 3] = m.cam_pos[cid]
            dset.reported_extrinsics[self.camera] = pose
        dq, q = np.zeros(4), np.zeros(4)
        mujoco.mju_axisAngle2Quat(dq, self.rotvec / max(np.linalg.norm(self.rotvec), 1e-12),
                                  float(np.linalg.norm(self.rotvec)))
        mujoco.mju_mulQuat(q, dq, m.cam_quat[cid])  # rotate in the world frame about the camera centre
        m.cam_quat[cid] = q
        m.cam_pos[cid] += self.shift
        dset.log(self.name, f"camera moved {np.round(self.shift * 100, 2).tolist()} cm, "
                            f"turned {np.rad2deg(np.linalg.norm(self.rotvec)):.2f} deg")


@register
@dataclass(kw_only=True)
class Appearance(Family):
    """Colours and lighting: every material and geom colour and every light changes per episode.

    Attributes:
        color: each RGB channel of every material / geom colour times a factor in [1 - color, 1 + color].
        light: each light's (and the headlight's) intensity times a factor in [1 - light, 1 + light].
        light_dir: deg, each light's direction tilted by up to this angle (random axis).
    """

    name = "appearance"
    kind = "condition"
    presets = {"mild": {"color": 0.1, "light": 0.2, "light_dir": 10.0},
               "moderate": {"color": 0.25, "light": 0.4, "light_dir": 25.0},
               "severe": {"color": 0.5, "light": 0.7, "light_dir": 45.0}}
    model_fields = ("mat_rgba", "geom_rgba", "light_diffuse", "light_ambient", "light_specular", "light_dir")

    color: float | None = None
    light: float | None = None
    light_dir: float | None = None

    def validate(self) -> None:
        self.color = check_number(self.name, "color", self.color, 0.0, 1.0)
        self.light = check_number(self.name, "light", self.light, 0.0, 0.95)
        self.light_dir = check_number(self.name, "light_dir", self.light_dir, 0.0, 90.0)

    def begin_episode(self, env, dset, rng) -> None:
        m = env.model
        self.mat = rng.uniform(1.0 - self.color, 1.0 + self.color, (m.nmat, 3))
        self.geom = rng.uniform(1.0 - self.color, 1.0 + self.color, (m.ngeom, 3))
        self.gain = rng.uniform(1.0 - self.light, 1.0 + self.light, m.nlight + 1)  # + the headlight
        self.tilt = [rng.normal(size=3) for _ in range(m.nlight)]
        self.angle = rng.uniform(0.0, np.deg2rad(self.light_dir), m.nlight)

    def apply(self, env, dset) -> None:
        m = env.model
        m.mat_rgba[:, :3] = np.clip(m.mat_rgba[:, :3] * self.mat, 0.0, 1.0)
        m.geom_rgba[:, :3] = np.clip(m.geom_rgba[:, :3] * self.geom, 0.0, 1.0)
        for i in range(m.nlight):
            for arr in (m.light_diffuse, m.light_ambient, m.light_specular):
                arr[i] = np.clip(arr[i] * self.gain[i], 0.0, 1.0)
            axis = np.cross(m.light_dir[i], self.tilt[i])
            if np.linalg.norm(axis) > 1e-9:
                rot = np.zeros(9)
                quat = np.zeros(4)
                mujoco.mju_axisAngle2Quat(quat, axis / np.linalg.norm(axis), self.angle[i])
                mujoco.mju_quat2Mat(rot, quat)
                m.light_dir[i] = rot.reshape(3, 3) @ m.light_dir[i]
        head = m.vis.headlight
        head.diffuse = np.clip(dset.nominal_headlight[0] * self.gain[-1], 0.0, 1.0)
        head.ambient = np.clip(dset.nominal_headlight[1] * self.gain[-1], 0.0, 1.0)
        dset.log(self.name, f"light x{np.round(self.gain, 2).tolist()}")
