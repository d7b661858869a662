"""Safety node: the only path from the policy to the robot.

Foundation stage: the node starts in HOLD, counts incoming action chunks, and publishes its
SafetyStatus (latched, so late joiners see the mode). Limits, watchdog, e-stop and human
takeover land with the ROS runtime work; until then it forwards nothing to the robot.
"""

from __future__ import annotations

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rl100_msgs.msg import ActionChunk, SafetyStatus
from rl100_ros import diagnostics, qos, topics
from rl100_ros.node_main import run_node


class SafetyNode(Node):

    def __init__(self, **node_kwargs):
        super().__init__('safety_node', **node_kwargs)
        self.declare_parameter(
            'control_rate', 10.0,
            ParameterDescriptor(description='rate of the command loop to the robot in Hz'))
        self.declare_parameter(
            'teleop_device', 'keyboard',
            ParameterDescriptor(
                description='operator device: spacemouse, gamepad, keyboard or none'))
        rate = float(self.get_parameter('control_rate').value)
        if not rate > 0.0:
            raise ValueError(f'control_rate must be > 0 Hz, got {rate}')
        self._chunks = 0
        self._status_pub = self.create_publisher(SafetyStatus, topics.SAFETY_STATUS, qos.LATCHED)
        self.create_subscription(ActionChunk, topics.ACTION_CHUNK, self._on_chunk, qos.COMMAND)
        self._diagnostics = diagnostics.Diagnostics(self, 'safety', self._status)
        self._publish_status('started in HOLD')

    def _on_chunk(self, msg: ActionChunk) -> None:
        del msg
        self._chunks += 1

    def _publish_status(self, reason: str) -> None:
        status = SafetyStatus(mode=SafetyStatus.MODE_HOLD, reason=reason)
        status.header.stamp = self.get_clock().now().to_msg()
        self._status_pub.publish(status)

    def _status(self):
        return diagnostics.OK, 'holding', {'mode': 'hold', 'chunks_received': self._chunks}


def main(args=None) -> int:
    return run_node(SafetyNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
