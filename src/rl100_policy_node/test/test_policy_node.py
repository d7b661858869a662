"""Policy node skeleton: declared parameters with descriptions, diagnostics, bad rate refused."""

import pytest
import rclpy
from rclpy.parameter import Parameter
from rl100_policy_node.policy_node import PolicyNode


@pytest.fixture
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


def test_parameters_are_declared_with_descriptions(ros):
    node = PolicyNode(parameter_overrides=[Parameter('control_rate', value=20.0)])
    try:
        assert node.get_parameter('control_rate').value == 20.0
        for name in ('model_path', 'control_rate'):
            descriptor = node.describe_parameters([name])[0]
            assert descriptor.description, f'{name} has no description'
        level, message, values = node._status()
        assert message == 'no model loaded' and values['ticks'] == 0
    finally:
        node.destroy_node()


def test_refuses_zero_rate(ros):
    with pytest.raises(ValueError, match='control_rate must be > 0 Hz, got 0.0'):
        PolicyNode(parameter_overrides=[Parameter('control_rate', value=0.0)])
