"""Keyboard teleop node: run it in its own terminal; it publishes sensor_msgs/Joy.

    python -m rl100_safety.keyboard_teleop        (or: ros2 run rl100_safety keyboard_teleop)

Reads single key presses from the terminal (cbreak mode) and publishes them in the Joy layout
the safety node reads with ``teleop_device:=joy``.
"""

from __future__ import annotations

import sys

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rl100_ros import qos
from rl100_ros.node_main import run_node
from sensor_msgs.msg import Joy

from .devices import KEYBOARD_HELP, KeyboardReader
from .teleop import input_to_joy, JOY_TOPIC


class KeyboardTeleop(Node):

    def __init__(self, **node_kwargs):
        super().__init__('keyboard_teleop', **node_kwargs)
        self.declare_parameter('rate', 30.0, ParameterDescriptor(description='publish rate in Hz'))
        rate = float(self.get_parameter('rate').value)
        if not sys.stdin.isatty():
            raise RuntimeError('keyboard_teleop needs a terminal on stdin: run it in its own '
                               'terminal (not under a launcher)')
        self._reader = KeyboardReader(sys.stdin.fileno())
        self._pub = self.create_publisher(Joy, JOY_TOPIC, qos.COMMAND)
        self._timer = self.create_timer(1.0 / rate, self._tick)
        print(KEYBOARD_HELP, flush=True)

    def _tick(self) -> None:
        axes, buttons = input_to_joy(self._reader.poll(0.0))
        msg = Joy(axes=axes, buttons=buttons)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._pub.publish(msg)

    def destroy_node(self):
        self._reader.close()
        return super().destroy_node()


def main(args=None) -> int:
    return run_node(KeyboardTeleop, args)


if __name__ == '__main__':
    raise SystemExit(main())
