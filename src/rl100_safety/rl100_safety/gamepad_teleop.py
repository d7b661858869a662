"""Gamepad teleop node: an SDL2 gamepad on this machine, published as sensor_msgs/Joy.

    python -m rl100_safety.gamepad_teleop      (or: ros2 run rl100_safety gamepad_teleop)
    ... --ros-args -p device_name:=xbox -p deadzone:=0.1

Reads one game controller with ``GamepadReader`` (SDL2, as ROS 2's joy package does) and
publishes it in the Joy layout the safety node reads with ``teleop_device:=gamepad`` (or
``joy``) on ``/rl100/teleop/joy``: hold LB to take over, sticks and triggers move the arm,
B latches the e-stop (the whole mapping: ``rl100_safety.gamepad.GamepadMap``). Run it on the
machine the pad is plugged into; it reaches the safety node over DDS.

Unplugging the pad publishes the released state at once (the takeover ends) and the node
waits for the same model to come back. Publishes on every change and, unchanged, at
``autorepeat_rate``. ``/diagnostics`` says whether the pad is connected.
"""

from __future__ import annotations

import time

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rl100_ros import diagnostics, qos
from rl100_ros.node_main import run_node
from sensor_msgs.msg import Joy

from .gamepad import GAMEPAD_HELP, GamepadMap, GamepadReader, state_to_joy
from .teleop import JOY_TOPIC


class GamepadTeleop(Node):

    def __init__(self, **node_kwargs):
        super().__init__('gamepad_teleop', **node_kwargs)
        p = self._declare
        index = p('device_index', 0, 'SDL device index of the gamepad (0: the first one); '
                  'ignored when device_name is set')
        name = p('device_name', '', 'open the gamepad whose SDL name contains this text (case '
                 'insensitive), e.g. xbox; empty: use device_index')
        rate = p('rate', 100.0, 'how often the gamepad is read, Hz')
        deadzone = p('deadzone', 0.05, 'stick and trigger travel read as zero (0..1, rescaled '
                     'beyond it, as in the joy package)')
        autorepeat = p('autorepeat_rate', 20.0, 'republish an unchanged state at this rate, Hz '
                       '(0: only on change; keep it > 0, the safety node keeps the last Joy it '
                       'received)')
        frame_id = p('frame_id', 'gamepad', 'header.frame_id of the Joy messages')
        if not rate > 0.0:
            raise ValueError(f'rate must be > 0 Hz, got {rate}')
        if not autorepeat >= 0.0:
            raise ValueError(f'autorepeat_rate must be >= 0 Hz, got {autorepeat}')
        if not 0.0 <= deadzone < 1.0:
            raise ValueError(f'deadzone must be in [0, 1), got {deadzone}')
        self._repeat_period = 1.0 / autorepeat if autorepeat > 0.0 else None
        self._frame_id = frame_id
        self._map = GamepadMap()
        self._reader = GamepadReader.open(index=int(index), name=name, deadzone=deadzone)
        self._connected = True
        self._last = None  # (axes, buttons) last published
        self._last_time = -float('inf')
        self._published = 0
        self._pub = self.create_publisher(Joy, JOY_TOPIC, qos.COMMAND)
        self._timer = self.create_timer(1.0 / rate, self._tick)
        self._diagnostics = diagnostics.Diagnostics(self, 'gamepad', self._status)
        self.get_logger().info(f"gamepad '{self._reader.name}' -> {JOY_TOPIC}: {GAMEPAD_HELP}")

    def _declare(self, name, default, description):
        self.declare_parameter(name, default, ParameterDescriptor(description=description))
        return self.get_parameter(name).value

    def _tick(self) -> None:
        state = self._reader.poll()
        if state.connected != self._connected:
            self._connected = state.connected
            if state.connected:
                self.get_logger().info(f"gamepad '{state.name}' is back")
            else:
                self.get_logger().warn(f"gamepad '{state.name}' unplugged: published released "
                                       'state, waiting for it to come back')
        joy = state_to_joy(state, self._map)
        now = time.monotonic()
        repeat = self._repeat_period is not None and now - self._last_time >= self._repeat_period
        if joy != self._last or repeat:
            msg = Joy(axes=joy[0], buttons=joy[1])
            msg.header.stamp = self.get_clock().now().to_msg()
            msg.header.frame_id = self._frame_id
            self._pub.publish(msg)
            self._last, self._last_time = joy, now
            self._published += 1

    def _status(self):
        values = {'device': self._reader.name, 'guid': self._reader.guid,
                  'messages': self._published, 'reconnects': self._reader.reconnects}
        if self._connected:
            return diagnostics.OK, 'connected', values
        return diagnostics.WARN, 'unplugged', values

    def destroy_node(self):
        self._reader.close()
        return super().destroy_node()


def main(args=None) -> int:
    return run_node(GamepadTeleop, args)


if __name__ == '__main__':
    raise SystemExit(main())
