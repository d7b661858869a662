"""Policy node: runs the one-step policy at control rate and publishes ActionChunk.

Foundation stage: the node declares its parameters, ticks at the control rate and reports
on /diagnostics that no model is loaded; the PolicyRuntime wiring lands with the ROS
runtime work. It publishes no action while it has no model.
"""

from __future__ import annotations

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rl100_msgs.msg import ActionChunk
from rl100_ros import diagnostics, qos, topics
from rl100_ros.node_main import run_node


class PolicyNode(Node):

    def __init__(self, **node_kwargs):
        super().__init__('policy_node', **node_kwargs)
        self.declare_parameter(
            'model_path', '',
            ParameterDescriptor(
                description='ONNX model to run; its model card JSON lies beside it'))
        self.declare_parameter(
            'control_rate', 10.0,
            ParameterDescriptor(description='policy control rate in Hz'))
        rate = float(self.get_parameter('control_rate').value)
        if not rate > 0.0:
            raise ValueError(f'control_rate must be > 0 Hz, got {rate}')
        self._ticks = 0
        self._publisher = self.create_publisher(ActionChunk, topics.ACTION_CHUNK, qos.COMMAND)
        self._timer = self.create_timer(1.0 / rate, self._tick)
        self._diagnostics = diagnostics.Diagnostics(self, 'policy', self._status)
        self.get_logger().info(f'policy node up at {rate:.1f} Hz (no model loaded)')

    def _tick(self) -> None:
        self._ticks += 1

    def _status(self):
        return diagnostics.WARN, 'no model loaded', {'ticks': self._ticks}


def main(args=None) -> int:
    return run_node(PolicyNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
