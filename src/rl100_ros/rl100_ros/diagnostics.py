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


class RateMeter:
    """Rate of a running count between two reads: ``rate(count, now_s)`` -> per second or None.

    Reading it once per diagnostics period gives the rate over the last period (e.g. chunks per
    second of the node's clock, simulated seconds per wall second). None on the first read and
    when the clock did not move.
    """

    def __init__(self):
        self._last: tuple[float, float] | None = None

    def rate(self, count: float, now_s: float) -> float | None:
        last, self._last = self._last, (float(count), float(now_s))
        if last is None or now_s <= last[1]:
            return None
        return (float(count) - last[0]) / (now_s - last[1])


def rate_value(rate: float | None) -> str:
    """A RateMeter reading as a diagnostics value ('n/a' before the second read)."""
    return 'n/a' if rate is None else f'{rate:.2f}'
