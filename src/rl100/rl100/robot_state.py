"""The robot part of ``observation.state``: one definition for the simulator, ingest and the policy node.

``observation.state`` (15,) float32 = end-effector position (3, m, base frame), end-effector
quaternion xyzw (4) with its sign chosen so that ``dot(q, HOME_QUAT_XYZW) >= 0`` (q and -q are the
same rotation; a fixed sign keeps the policy input continuous), gripper width (1, m, both fingers),
arm joint positions (7, rad).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

HOME_QUAT_XYZW = np.array([1.0, 0.0, 0.0, 0.0])  # gripper pointing down: the sign reference
STATE_DIM = 15
N_ARM_JOINTS = 7


def state_vector(position: Sequence[float], quat_xyzw: Sequence[float], gripper_width: float,
                 arm_joints: Sequence[float]) -> np.ndarray:
    """(3,), (4,), scalar, (7,) -> (15,) float32; raises ValueError on a bad size or zero quaternion."""
    pos = np.asarray(position, dtype=np.float64).reshape(-1)
    quat = np.asarray(quat_xyzw, dtype=np.float64).reshape(-1)
    joints = np.asarray(arm_joints, dtype=np.float64).reshape(-1)
    if pos.shape != (3,) or quat.shape != (4,) or joints.shape != (N_ARM_JOINTS,):
        raise ValueError(f"state parts must be position (3,), quaternion (4,), joints ({N_ARM_JOINTS},); "
                         f"got {pos.shape}, {quat.shape}, {joints.shape}")
    norm = float(np.linalg.norm(quat))
    if not norm > 0.0:
        raise ValueError("end-effector quaternion is zero")
    quat = quat / norm
    if float(np.dot(quat, HOME_QUAT_XYZW)) < 0.0:
        quat = -quat
    return np.concatenate([pos, quat, [float(gripper_width)], joints]).astype(np.float32)


def split_joint_state(names: Sequence[str], positions: Sequence[float],
                      n_arm: int = N_ARM_JOINTS) -> tuple[float, np.ndarray]:
    """A JointState's names/positions -> (gripper width = sum of ``finger`` joints, first ``n_arm`` arm joints)."""
    pos = np.asarray(positions, dtype=np.float64)
    if len(names) != len(pos):
        raise ValueError(f"joint_states has {len(names)} names but {len(pos)} positions")
    finger = [i for i, n in enumerate(names) if "finger" in n]
    arm = [i for i, n in enumerate(names) if "finger" not in n][:n_arm]
    if len(arm) < n_arm:
        raise ValueError(f"joint_states has {len(arm)} arm joints {list(names)}, expected {n_arm}")
    return float(pos[finger].sum()) if finger else 0.0, pos[arm]
