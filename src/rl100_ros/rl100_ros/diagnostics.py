"""A minimal /diagnostics publisher (diagnostic_updater is not on PyPI).

Each node reports one ``DiagnosticStatus`` per second named ``<node>: <what>`` with
key/value pairs (rates, latencies, drops), in the message format the ROS tools read.
"""

from __future__ import annotations

from typing import Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN
ERROR = DiagnosticStatus.ERROR

# a callback returns (level, message, {key: value}); level is one of OK / WARN / ERROR (bytes)
StatusFn = Callable[[], 'tuple[bytes, str, dict[str, object]]']


class Diagnostics:
    """Publishes the status returned by ``status_fn`` on /diagnostics every ``period`` s."""

    def __init__(self, node: Node, what: str, status_fn: StatusFn, period: float = 1.0):
        self._node = node
        self._name = f'{node.get_name()}: {what}'
        self._status_fn = status_fn
        self._pub = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._timer = node.create_timer(period, self.publish)

    def publish(self) -> None:
        level, message, values = self._status_fn()
        status = DiagnosticStatus(
            level=level,
            name=self._name,
            message=message,
            hardware_id=self._node.get_fully_qualified_name(),
            values=[KeyValue(key=str(k), value=str(v)) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._pub.publish(array)
