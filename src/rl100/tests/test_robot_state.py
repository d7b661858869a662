"""observation.state assembly shared by the simulator, ingest and the policy node."""

import numpy as np
import pytest

from rl100.robot_state import STATE_DIM, split_joint_state, state_vector


def test_quaternion_sign_is_canonical_and_normalised():
    joints = np.arange(7) * 0.1
    a = state_vector([0.5, 0, 0.3], [1, 0, 0, 0], 0.04, joints)
    b = state_vector([0.5, 0, 0.3], [-2, 0, 0, 0], 0.04, joints)  # same rotation, other sign, not unit
    assert a.shape == (STATE_DIM,) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a[3:7], [1, 0, 0, 0])
    assert a[7] == pytest.approx(0.04)


def test_bad_parts_are_named():
    with pytest.raises(ValueError, match="quaternion is zero"):
        state_vector([0, 0, 0], [0, 0, 0, 0], 0.0, np.zeros(7))
    with pytest.raises(ValueError, match=r"joints \(7,\)"):
        state_vector([0, 0, 0], [1, 0, 0, 0], 0.0, np.zeros(6))


def test_split_joint_state():
    names = [f"fr3_joint{i}" for i in range(1, 8)] + ["fr3_finger_joint1", "fr3_finger_joint2"]
    width, arm = split_joint_state(names, list(range(7)) + [0.02, 0.02])
    assert width == pytest.approx(0.04)
    np.testing.assert_array_equal(arm, np.arange(7))
    with pytest.raises(ValueError, match="3 arm joints"):
        split_joint_state(["a", "b", "c"], [0, 0, 0])
