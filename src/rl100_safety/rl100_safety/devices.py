"""Operator device readers: keyboard (terminal) and 3Dconnexion SpaceMouse (Linux hidraw).

Both read raw bytes from a file descriptor, so they run unchanged on a real device and on a
recorded byte stream (tests use pipes and pseudo-terminals: this kernel offers no virtual
HID devices). Each ``poll()`` returns one ``TeleopInput``. No ROS in here.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import select
import struct
import termios
import tty

import numpy as np

from .teleop import Event, TeleopInput

# --- keyboard ------------------------------------------------------------------------------

# key -> twist axis index and sign: translation x y z, rotation about x y z
KEY_TWIST = {
    'w': (0, +1), 's': (0, -1), 'a': (1, +1), 'd': (1, -1), 'r': (2, +1), 'f': (2, -1),
    'i': (3, +1), 'k': (3, -1), 'j': (4, +1), 'l': (4, -1), 'u': (5, +1), 'o': (5, -1),
}
KEY_EVENTS = {
    ' ': Event.GRIPPER_TOGGLE, 'y': Event.SUCCESS, 'n': Event.FAILURE, 'x': Event.ABORT,
    'b': Event.START, 'p': Event.ESTOP, 'C': Event.CLEAR_ESTOP, 'm': Event.TOGGLE_TELEOP,
}
KEY_TAKEOVER = 't'  # toggles a latched takeover (a terminal cannot report a held key)
KEYBOARD_HELP = ('w/s a/d r/f: move x y z   i/k j/l u/o: rotate   space: gripper   '
                 't: takeover on/off   y/n/x: success/failure/abort   b: start   '
                 'p: E-STOP   C: clear e-stop   m: autonomous/teleop')


class KeyboardReader:
    """Reads single key presses from a terminal file descriptor (cbreak mode, no echo).

    Auto-repeat of a held key gives a continuous twist; ``t`` latches the takeover on / off.
    """

    def __init__(self, fd: int):
        self._fd = fd
        self._saved = None
        self._takeover = False
        if os.isatty(fd):
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)

    def close(self) -> None:
        if self._saved is not None:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def poll(self, timeout: float = 0.0) -> TeleopInput:
        data = b''.join(_read_blocks(self._fd, timeout))
        twist = np.zeros(6)
        events = []
        for ch in data.decode('utf-8', errors='ignore'):
            if ch in KEY_TWIST:
                axis, sign = KEY_TWIST[ch]
                twist[axis] = sign
            elif ch in KEY_EVENTS:
                events.append(KEY_EVENTS[ch])
            elif ch == KEY_TAKEOVER:
                self._takeover = not self._takeover
        return TeleopInput(twist=twist, takeover=self._takeover, events=tuple(events))


# --- SpaceMouse ----------------------------------------------------------------------------

SPACEMOUSE_VENDORS = (0x046D, 0x256F)  # Logitech (older 3Dconnexion), 3Dconnexion
FULL_SCALE = 350.0  # raw axis value at full deflection


@dataclasses.dataclass(frozen=True)
class AxisMap:
    """Device axes -> robot base frame, as signs.

    The device's axis convention differs per model and mounting; flip here, not in code.
    """

    signs: tuple = (1.0, -1.0, -1.0, 1.0, -1.0, -1.0)  # x y z rx ry rz


class SpaceMouseReader:
    """Decodes 3Dconnexion HID reports read from ``/dev/hidrawN`` (or any byte stream).

    Report 1: translation x y z (int16 LE), on newer models followed by rotation in the same
    report; report 2: rotation rx ry rz; report 3: buttons bitmask. Button 0 toggles the
    gripper, button 1 is the takeover button (held).
    """

    def __init__(self, fd: int, axis_map: AxisMap | None = None):
        self._fd = fd
        self._signs = np.asarray((axis_map or AxisMap()).signs, dtype=np.float64)
        self._axes = np.zeros(6)
        self._buttons = 0

    @classmethod
    def open(cls, path: str | None = None, axis_map: AxisMap | None = None) -> SpaceMouseReader:
        path = path or find_spacemouse()
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise RuntimeError(f'cannot open SpaceMouse {path}: {exc.strerror} '
                               '(udev rule granting read access to the hidraw device?)') from exc
        return cls(fd, axis_map)

    def close(self) -> None:
        os.close(self._fd)

    def feed(self, report: bytes) -> list:
        """Decode one HID report; returns the events it caused (button presses)."""
        if not report:
            return []
        kind, body = report[0], report[1:]
        events = []
        if kind == 1 and len(body) >= 6:
            self._axes[:3] = struct.unpack_from('<hhh', body)
            if len(body) >= 12:
                self._axes[3:] = struct.unpack_from('<hhh', body, 6)
        elif kind == 2 and len(body) >= 6:
            self._axes[3:] = struct.unpack_from('<hhh', body)
        elif kind == 3 and len(body) >= 1:
            buttons = int.from_bytes(body[:4], 'little')
            pressed = buttons & ~self._buttons
            if pressed & 1:
                events.append(Event.GRIPPER_TOGGLE)
            self._buttons = buttons
        return events

    def poll(self, timeout: float = 0.0) -> TeleopInput:
        events = []
        for report in _read_blocks(self._fd, timeout, chunk=64):  # hidraw: one report per read()
            events += self.feed(report)
        twist = np.clip(self._axes / FULL_SCALE, -1.0, 1.0) * self._signs
        return TeleopInput(twist=twist, takeover=bool(self._buttons & 2), events=tuple(events))


def find_spacemouse() -> str:
    """Path of the first 3Dconnexion hidraw device; RuntimeError saying what is missing."""
    seen = []
    for uevent in sorted(glob.glob('/sys/class/hidraw/hidraw*/device/uevent')):
        with open(uevent, encoding='utf-8') as f:
            text = f.read()
        for line in text.splitlines():
            if line.startswith('HID_ID='):
                _bus, vendor, _product = line.split('=')[1].split(':')
                seen.append(vendor)
                if int(vendor, 16) in SPACEMOUSE_VENDORS:
                    return '/dev/' + uevent.split('/')[4]
    raise RuntimeError('no SpaceMouse found: no /dev/hidraw* device with a 3Dconnexion vendor id '
                       f'(046d/256f); hidraw vendors present: {seen or "none"}')


def _read_blocks(fd: int, timeout: float, chunk: int = 1024) -> list:
    """Every block readable on ``fd`` now, one per read(); waits ``timeout`` s for the first."""
    blocks = []
    wait = timeout
    while True:
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            return blocks
        try:
            block = os.read(fd, chunk)
        except BlockingIOError:
            return blocks
        if not block:
            return blocks
        blocks.append(block)
        wait = 0.0
