"""A Franka Panda in MuJoCo that tracks absolute end-effector pose targets like the real stack.

The kinematic chain and meshes are read at run time from the Franka MJCF that gymnasium-robotics
ships (``envs/assets/kitchen_franka/franka_assets``, Apache-2.0, originally vikashplus/franka);
nothing of it is copied into this repository. Around that chain this module writes its own
defaults, actuators, gravity compensation and the low-level controller.

Low-level control (what stands in for the 1 kHz Cartesian impedance controller of the real robot)
runs inside MuJoCo at every physics step (500 Hz by default), with no Python in the loop:
- a mocap body ``tcp_target`` holds the target pose, which a rate-limited filter (50 Hz, max linear and
  angular speed) moves towards the pose the policy commanded (crisp's target smoothing);
- six position actuators with a *site transmission* (``site=tcp``, ``refsite=tcp_target``)
  measure the TCP's translation and rotation relative to the target, in the target frame, and push
  back with ``F = -kp * err - kv * vel``, mapped to joint torques by ``J^T``: a Cartesian spring
  and damper whose force is clipped per axis (``forcerange``) like crisp_controllers' error clip;
- gravity compensation (``gravcomp``) on every robot body, joint torque limits of the Panda
  (``actuatorfrcrange``), and a null-space posture torque (updated once per control step) that
  keeps the elbow near the home posture without disturbing the TCP;
- the two fingers are position servos whose force saturates at ``grip_force`` (franka_gripper's
  ``grasp`` with a force).

The base frame is MuJoCo's world frame: the robot base sits at the origin, the table top at z = 0.
Joint angles are the MJCF's, which differ from libfranka's on joints 6 and 7: libfranka q = MJCF q +
``LIBFRANKA_JOINT_OFFSET`` (libfranka's ready pose (0, -pi/4, 0, -3pi/4, 0, pi/2, pi/4) is
(0, -pi/4, 0, -3pi/4, 0, 0, 0) here, TCP at (0.307, 0, 0.487) pointing down in both).
"""

from __future__ import annotations

import functools
import importlib.util
import pathlib
from dataclasses import dataclass

import mujoco
import numpy as np

from rl100.geometry import quat_wxyz_to_xyzw
from rl100.robot_state import state_vector

ARM_JOINTS = tuple(f"robot:panda0_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("robot:panda0_finger_joint1", "robot:panda0_finger_joint2")
TCP_SITE = "tcp"  # 0.21 m along link7's z: Franka's default EE frame (z approach, y along the finger motion)
TARGET_BODY = "tcp_target"
ROBOT_ROOT_BODY = "panda0_link0"
FINGER_BODIES = ("panda0_leftfinger", "panda0_rightfinger")
HOME_QPOS = np.array([0.0, -0.284, 0.0, -2.4, 0.0, 0.546, 0.0])  # TCP at (0.45, 0, 0.32), pointing down, yaw 0
MAX_FINGER = 0.04  # m, per finger; gripper width = sum of both fingers (0..0.08)
JOINT_TORQUE_LIMITS = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)  # N m, Franka datasheet
LIBFRANKA_JOINT_OFFSET = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 1.57, np.pi / 4])  # add to MJCF q (chain.xml: 1.57)

# collision bit masks (MuJoCo collides a pair if (contype1 & conaffinity2) or (contype2 & conaffinity1)):
# the robot touches the table and objects, never itself or the floor; the floor catches dropped objects
ROBOT_CONTYPE, ROBOT_CONAFFINITY = 2, 1
WORLD_CONTYPE, WORLD_CONAFFINITY = 1, 3
FLOOR_CONTYPE, FLOOR_CONAFFINITY = 4, 1
NO_COLLISION_BODIES = ("panda0_link0", "panda0_link1")  # fixed / spinning in place on the table: never hit anything


@functools.cache
def franka_asset_dir() -> pathlib.Path:
    """Folder of the Franka MJCF shipped by gymnasium-robotics (found without importing the package)."""
    spec = importlib.util.find_spec("gymnasium_robotics")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the Panda model needs gymnasium-robotics (pip install 'rl100[sim]')")
    root = pathlib.Path(next(iter(spec.submodule_search_locations)))
    path = root / "envs" / "assets" / "kitchen_franka" / "franka_assets"
    if not (path / "chain.xml").is_file():
        raise FileNotFoundError(f"no Franka chain.xml under {path}")
    return path


@dataclass
class ImpedanceConfig:
    """Cartesian impedance and target filter of the simulated controller.

    Attributes:
        kp_pos: N/m translational stiffness.
        kp_rot: N m/rad rotational stiffness.
        damping_ratio: of both springs, on a nominal 8 kg / 0.2 kg m^2 apparent inertia.
        max_force: N per axis, saturation of the spring-damper force.
        max_torque: N m per axis.
        max_lin_vel: m/s, the commanded target is approached by a rate-limited filter (crisp-style
            target smoothing); ``inf`` jumps at once.
        max_ang_vel: rad/s, the same for the orientation.
        filter_period: physics steps between two target-filter updates (10 = 50 Hz at 2 ms).
        null_kp: N m/rad pull of the redundant DoF towards ``HOME_QPOS``, projected into the null space.
        grip_force: N per finger at which the gripper servo saturates.
    """

    kp_pos: float = 2000.0
    kp_rot: float = 60.0
    damping_ratio: float = 1.0
    max_force: float = 60.0
    max_torque: float = 8.0
    max_lin_vel: float = 0.5
    max_ang_vel: float = 2.0
    filter_period: int = 10
    null_kp: float = 5.0
    grip_force: float = 30.0

    def __post_init__(self) -> None:
        positive = ("kp_pos", "kp_rot", "damping_ratio", "max_force", "max_torque", "max_lin_vel", "max_ang_vel")
        for name in (*positive, "grip_force"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ImpedanceConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.null_kp < 0:
            raise ValueError(f"ImpedanceConfig.null_kp must be >= 0, got {self.null_kp}")
        if int(self.filter_period) != self.filter_period or self.filter_period < 1:
            raise ValueError(f"ImpedanceConfig.filter_period must be an integer >= 1, got {self.filter_period}")


def _robot_defaults() -> str:
    return f"""
  <default>
    <default class="panda">
      <joint pos="0 0 0" axis="0 0 1" limited="true" armature="0.1" damping="0.5"/>
      <default class="panda_viz">
        <geom contype="0" conaffinity="0" group="0" type="mesh" rgba=".95 .99 .92 1" mass="0"/>
      </default>
      <default class="panda_col">
        <geom contype="{ROBOT_CONTYPE}" conaffinity="{ROBOT_CONAFFINITY}" group="3" type="mesh"/>
      </default>
      <default class="panda_arm"/>
      <default class="panda_forearm"/>
      <default class="panda_finger">
        <joint damping="30" armature="0.05"/>
        <geom friction="1.5 0.02 0.001" condim="4" solref="0.004 1" solimp="0.95 0.99 0.001"
              contype="{ROBOT_CONTYPE}" conaffinity="{ROBOT_CONAFFINITY}" group="3" rgba=".3 .3 .3 1"/>
      </default>
    </default>
  </default>"""


def _robot_assets(visual_dir: str) -> str:
    names = [f"link{i}" for i in range(8)] + ["hand"]
    meshes = [f'<mesh name="{n}_col" file="collision/{n}.stl"/>' for n in names]
    meshes += [f'<mesh name="{n}_viz" file="{visual_dir}/{n}.stl"/>' for n in names]
    meshes.append('<mesh name="finger_viz" file="collision/finger.stl" scale="1.75 1.0 1.75"/>')
    return "\n    ".join(meshes)


def _robot_actuators(cfg: ImpedanceConfig) -> str:
    kv_pos = 2.0 * cfg.damping_ratio * np.sqrt(cfg.kp_pos * 8.0)
    kv_rot = 2.0 * cfg.damping_ratio * np.sqrt(cfg.kp_rot * 0.2)
    lines = []
    for i, axis in enumerate("xyz"):
        springs = (("pos", cfg.kp_pos, kv_pos, cfg.max_force), ("rot", cfg.kp_rot, kv_rot, cfg.max_torque))
        for kind, kp, kv, lim in springs:
            gear = [0] * 6
            gear[i + (3 if kind == "rot" else 0)] = 1
            lines.append(
                f'<position name="tcp_{kind}_{axis}" site="{TCP_SITE}" refsite="{TARGET_BODY}" '
                f'gear="{" ".join(map(str, gear))}" kp="{kp}" kv="{kv:.3f}" forcerange="{-lim} {lim}" ctrlrange="0 0"/>'
            )
    for name in FINGER_JOINTS:  # force saturates at grip_force per finger, like franka_gripper's grasp
        lines.append(
            f'<position name="{name}_servo" joint="{name}" kp="3000" kv="40" '
            f'forcerange="{-cfg.grip_force} {cfg.grip_force}" ctrlrange="0 {MAX_FINGER}"/>'
        )
    return "\n    ".join(lines)


def build_model(
    scene_worldbody: str,
    scene_assets: str = "",
    *,
    timestep: float = 0.002,
    impedance: ImpedanceConfig | None = None,
    wrist_camera: bool = True,
    offscreen: tuple[int, int] = (640, 480),
    visual_meshes: str = "coarse",
) -> mujoco.MjModel:
    """Compile the Panda plus a task's scene into an MjModel.

    ``scene_worldbody``/``scene_assets`` are MJCF fragments placed inside ``<worldbody>``/``<asset>``;
    scene geoms should use ``contype="1" conaffinity="3"`` (``WORLD_*``) to collide with the robot.
    ``visual_meshes``: ``"coarse"`` draws the robot with its collision meshes (~2.5k triangles);
    ``"full"`` uses the detailed visual meshes (136k triangles), whose bounding-volume hierarchies
    MuJoCo clears at every step: physics runs ~1.4x slower and CPU rendering ~2x slower with them.
    """
    if visual_meshes not in ("coarse", "full"):
        raise ValueError(f"visual_meshes must be 'coarse' or 'full', got {visual_meshes!r}")
    imp = impedance or ImpedanceConfig()
    root = franka_asset_dir()
    xml = f"""<mujoco model="rl100_panda">
  <compiler angle="radian" meshdir="{root / "meshes"}" autolimits="true"/>
  <option timestep="{timestep}" integrator="implicitfast" cone="elliptic" impratio="5"/>
  <visual>
    <global offwidth="{offscreen[0]}" offheight="{offscreen[1]}"/>
    <quality shadowsize="0" offsamples="0" numslices="16" numstacks="8"/>
    <map znear="0.01" zfar="20"/>
  </visual>
  {_robot_defaults()}
  <asset>
    {_robot_assets("visual" if visual_meshes == "full" else "collision")}
    {scene_assets}
  </asset>
  <worldbody>
    <body name="robot_base" pos="0 0 0"><include file="chain.xml"/></body>
    <body name="{TARGET_BODY}" mocap="true"><site name="{TARGET_BODY}" size="0.01" group="5"/></body>
    {scene_worldbody}
  </worldbody>
  <actuator>
    {_robot_actuators(imp)}
  </actuator>
</mujoco>"""
    spec = mujoco.MjSpec.from_string(xml, {"chain.xml": (root / "chain.xml").read_bytes()})
    robot_root = spec.body(ROBOT_ROOT_BODY)
    for body in [robot_root, *robot_root.find_all(mujoco.mjtObj.mjOBJ_BODY)]:
        body.gravcomp = 1.0  # the real controller compensates gravity too
    for name in NO_COLLISION_BODIES:
        for geom in spec.body(name).geoms:
            geom.contype, geom.conaffinity = 0, 0
    for name, side in zip(FINGER_BODIES, (1.0, -1.0), strict=True):
        _flat_finger_pads(spec.body(name), side)
    for name, limit in zip(ARM_JOINTS, JOINT_TORQUE_LIMITS, strict=True):
        joint = spec.joint(name)
        joint.actfrclimited = mujoco.mjtLimited.mjLIMITED_TRUE
        joint.actfrcrange = [-limit, limit]
    # The TCP site sits with identity orientation in a jointless child body: MuJoCo 3.3's refsite
    # transmission composes a site's local quaternion in the wrong order, so it must be identity.
    link7 = spec.body("panda0_link7")
    tcp = link7.add_body(name="tcp_frame", pos=[0.0, 0.0, 0.21], quat=[np.cos(np.pi / 8), 0.0, 0.0, -np.sin(np.pi / 8)])
    tcp.add_site(name=TCP_SITE, size=[0.005, 0.005, 0.005], group=5)
    if wrist_camera:  # on the side of the hand, looking past the fingertips (a D405-style wrist mount)
        pos, x_axis = np.array([0.05, -0.05, 0.09]), np.array([1.0, 1.0, 0.0]) / np.sqrt(2.0)  # x: finger axis
        look = np.array([0.0, 0.0, 0.27]) - pos
        z_axis = -look / np.linalg.norm(look)
        y_axis = np.cross(z_axis, x_axis)
        link7.add_camera(name="wrist", pos=pos.tolist(), xyaxes=[*x_axis, *y_axis], fovy=75.0)
    return spec.compile()


def _flat_finger_pads(finger, side: float) -> None:
    """Replace a finger's 12 crossed collision capsules by one flat pad box (like the real rubber pads).

    Same envelope as the capsules (finger frame: x +-9 mm, y 0..17 mm towards the outside, z 25..95 mm),
    but flat faces: a grasp or a push does not depend on which capsule touches, and a sphere-box
    contact is one analytic test instead of a dozen.
    """
    for geom in list(finger.geoms):
        if geom.type == mujoco.mjtGeom.mjGEOM_CAPSULE:
            geom.delete()
    finger.add_geom(
        name=f"{finger.name}_pad",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[0.009, 0.0085, 0.035],
        pos=[0.0, side * 0.0085, 0.06],
        friction=[1.5, 0.02, 0.001],
        condim=4,
        solref=[0.004, 1.0],
        solimp=[0.95, 0.99, 0.001, 0.5, 2.0],
        contype=ROBOT_CONTYPE,
        conaffinity=ROBOT_CONAFFINITY,
        group=3,
        mass=0.0,
    )


class PandaArm:
    """Indices into a compiled model, proprioception, and the pose-target interface."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, impedance: ImpedanceConfig | None = None) -> None:
        self.model, self.data = model, data
        self.cfg = impedance or ImpedanceConfig()
        jid = [model.joint(n).id for n in ARM_JOINTS]
        fid = [model.joint(n).id for n in FINGER_JOINTS]
        self.qadr = np.array([model.jnt_qposadr[j] for j in jid])
        self.dadr = np.array([model.jnt_dofadr[j] for j in jid])
        self.finger_qadr = np.array([model.jnt_qposadr[j] for j in fid])
        self.finger_dadr = np.array([model.jnt_dofadr[j] for j in fid])
        self.finger_act = np.array([model.actuator(f"{n}_servo").id for n in FINGER_JOINTS])
        self.site = model.site(TCP_SITE).id
        self.mocap = int(model.body_mocapid[model.body(TARGET_BODY).id])
        root = model.body(ROBOT_ROOT_BODY).id
        self.robot_bodies = frozenset(b for b in range(model.nbody) if _has_ancestor(model, b, root))
        self.finger_bodies = frozenset(model.body(n).id for n in FINGER_BODIES)
        self.goal_pos = np.zeros(3)
        self.goal_quat = np.array([1.0, 0.0, 0.0, 0.0])  # wxyz
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        self._tmp_quat = np.zeros(4)
        self._tmp_vel = np.zeros(3)
        self._eye6, self._eye7 = np.eye(6), np.eye(7)
        # per-step fast paths (same values as the index arrays above, without fancy-indexing copies)
        self._q, self._v = _as_index(self.qadr), _as_index(self.dadr)
        self._finger_q, self._finger_ctrl = _as_index(self.finger_qadr), _as_index(self.finger_act)
        self._jac = np.zeros((6, len(jid)))  # [jacp; jacr] restricted to the arm dofs
        self._reg6 = 1e-6 * self._eye6  # == the 1e-6 * eye(6) that used to be made at every command

    def reset(self, qpos: np.ndarray, gripper: float = 0.0) -> None:
        """Put the arm at rest at joint angles ``qpos`` (7,), the target on the resulting TCP pose."""
        m, d = self.model, self.data
        d.qpos[self.qadr] = qpos
        d.qvel[self.dadr] = 0.0
        finger = MAX_FINGER * (1.0 - gripper)
        d.qpos[self.finger_qadr] = finger
        d.qvel[self.finger_dadr] = 0.0
        d.ctrl[self.finger_act] = finger
        d.qfrc_applied[self.dadr] = 0.0
        mujoco.mj_kinematics(m, d)
        self.goal_pos[:] = d.site_xpos[self.site]
        mujoco.mju_mat2Quat(self.goal_quat, d.site_xmat[self.site])
        d.mocap_pos[self.mocap] = self.goal_pos
        d.mocap_quat[self.mocap] = self.goal_quat

    # -- proprioception ---------------------------------------------------------------------------
    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """TCP position (3,) and orientation matrix (3, 3) in the base frame (kinematics must be current)."""
        return self.data.site_xpos[self.site].copy(), self.data.site_xmat[self.site].reshape(3, 3).copy()

    def gripper_width(self) -> float:
        return float(self.data.qpos[self._finger_q].sum())

    def joint_pos(self) -> np.ndarray:
        return self.data.qpos[self.qadr].copy()

    def state(self) -> np.ndarray:
        """(15,) float32: ee pos(3), ee quat xyzw(4, sign towards HOME_QUAT_XYZW), gripper width(1), joint pos(7)."""
        d = self.data
        mujoco.mju_mat2Quat(self._tmp_quat, d.site_xmat[self.site])
        quat = quat_wxyz_to_xyzw(self._tmp_quat)
        return state_vector(d.site_xpos[self.site], quat, self.gripper_width(), d.qpos[self._q])

    # -- commands ---------------------------------------------------------------------------------
    def command(self, pos: np.ndarray, quat_wxyz: np.ndarray, gripper: float) -> None:
        """Set the TCP goal pose (base frame) and the gripper command (0 open .. 1 closed)."""
        m, d = self.model, self.data
        self.goal_pos[:] = pos
        self.goal_quat[:] = quat_wxyz
        g = float(gripper)
        g = 0.0 if g < 0.0 else 1.0 if g > 1.0 else g  # np.clip(g, 0, 1) without its per-call overhead
        d.ctrl[self._finger_ctrl] = MAX_FINGER * (1.0 - g)
        if self.cfg.null_kp > 0:  # posture torque projected into the null space of the TCP Jacobian
            mujoco.mj_jacSite(m, d, self._jacp, self._jacr, self.site)
            jac, v = self._jac, self._v  # (6, 7)
            jac[:3] = self._jacp[:, v]
            jac[3:] = self._jacr[:, v]
            proj = self._eye7 - jac.T @ np.linalg.solve(jac @ jac.T + self._reg6, jac)  # (7, 7)
            tau = self.cfg.null_kp * (HOME_QPOS - d.qpos[self._q]) - 0.1 * self.cfg.null_kp * d.qvel[v]
            d.qfrc_applied[v] = proj @ tau

    def step(self, n_steps: int) -> None:
        """Advance the physics ``n_steps`` steps, moving the filtered target towards the goal.

        Once the filtered target has reached the goal (an update would leave it bit for bit where it
        is), the remaining filter periods cannot move it either, and they run as one ``mj_step`` call.
        """
        m, d = self.model, self.data
        period = self.cfg.filter_period
        done = 0
        while done < n_steps:
            chunk = min(period, n_steps - done)
            if not self._filter_update(chunk * m.opt.timestep):
                mujoco.mj_step(m, d, nstep=n_steps - done)
                return
            mujoco.mj_step(m, d, nstep=chunk)
            done += chunk

    def _filter_update(self, dt: float) -> bool:
        """Move the target (mocap) ``dt`` s of rate-limited motion towards the goal; False if it did not move."""
        d, cfg = self.data, self.cfg
        target = d.mocap_pos[self.mocap]
        delta = self.goal_pos - target
        dist = float(np.sqrt(delta @ delta))
        if dist > cfg.max_lin_vel * dt:
            delta *= cfg.max_lin_vel * dt / dist
        new = target + delta
        moved = new.tobytes() != target.tobytes()
        if moved:
            d.mocap_pos[self.mocap] = new
        quat = d.mocap_quat[self.mocap]
        mujoco.mju_subQuat(self._tmp_vel, self.goal_quat, quat)  # in the target frame
        angle = float(np.sqrt(self._tmp_vel @ self._tmp_vel))
        if angle > 1e-9:
            step = min(angle, cfg.max_ang_vel * dt)
            self._tmp_quat[:] = quat
            mujoco.mju_quatIntegrate(self._tmp_quat, self._tmp_vel, step / angle)
            d.mocap_quat[self.mocap] = self._tmp_quat
            moved = True
        return moved


def _as_index(idx: np.ndarray) -> slice | np.ndarray:
    """A slice for consecutive ascending indices (a view, no copy), else the index array itself."""
    if len(idx) and np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))):
        return slice(int(idx[0]), int(idx[0]) + len(idx))
    return idx


def _has_ancestor(model: mujoco.MjModel, body: int, ancestor: int) -> bool:
    while body > 0:
        if body == ancestor:
            return True
        body = int(model.body_parentid[body])
    return False
