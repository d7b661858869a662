"""Operator input without hardware.

A keyboard through a pseudo-terminal; a SpaceMouse through a packet socket carrying real HID
report bytes (one report per read, as /dev/hidraw gives them).
"""

import os
import pty
import socket
import struct

import numpy as np
import pytest
from rl100_safety.devices import KeyboardReader, SpaceMouseReader
from rl100_safety.teleop import Event, TeleopConfig, TeleopInput, TeleopMapper

POSE = np.array([0.5, 0.0, 0.3, np.pi, 0.0, 0.0, 0.0])


def test_keyboard_through_a_pty():
    master, slave = pty.openpty()
    reader = KeyboardReader(slave)  # puts the terminal in cbreak mode: keys arrive unbuffered
    try:
        os.write(master, b'w')
        sample = reader.poll(timeout=1.0)
        assert sample.twist.tolist() == [1, 0, 0, 0, 0, 0] and not sample.takeover
        os.write(master, b'tu y')
        sample = reader.poll(timeout=1.0)
        assert sample.takeover
        assert sample.twist[5] == 1
        assert sample.events == (Event.GRIPPER_TOGGLE, Event.SUCCESS)
        os.write(master, b't')
        assert not reader.poll(timeout=1.0).takeover
        assert reader.poll(timeout=0.0).twist.tolist() == [0] * 6  # nothing pressed
    finally:
        reader.close()
        os.close(master)
        os.close(slave)


def _report(kind, *values, fmt='<hhh'):
    return bytes([kind]) + struct.pack(fmt, *values)


def test_spacemouse_hid_reports():
    ours, device = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    reader = SpaceMouseReader(ours.fileno())
    try:
        device.send(_report(1, 350, -175, 0))  # push right, pull back
        device.send(_report(2, 0, 0, 70))
        sample = reader.poll(timeout=1.0)
        np.testing.assert_allclose(sample.twist, [1.0, 0.5, 0.0, 0.0, 0.0, -0.2])  # default signs
        device.send(bytes([3, 0b01, 0]))  # left button pressed
        sample = reader.poll(timeout=1.0)
        assert sample.events == (Event.GRIPPER_TOGGLE,) and not sample.takeover
        device.send(bytes([3, 0b11, 0]))  # right button pressed too (held: takeover)
        sample = reader.poll(timeout=1.0)
        assert sample.events == () and sample.takeover  # no new press of button 0
        # newer models: translation and rotation in one report; 700 is clipped to full scale
        device.send(_report(1, 0, 0, 700) + struct.pack('<hhh', 0, 0, 0))
        sample = reader.poll(timeout=1.0)
        assert sample.twist[2] == -1.0 and sample.twist[5] == 0.0
    finally:
        ours.close()
        device.close()


def test_missing_spacemouse_is_named(tmp_path):
    with pytest.raises(RuntimeError, match='cannot open SpaceMouse'):
        SpaceMouseReader.open(str(tmp_path / 'hidraw9'))


def test_mapper_takeover_starts_at_robot_pose_and_integrates():
    mapper = TeleopMapper(TeleopConfig(max_linear_speed=0.1, idle_release_s=0.3))
    assert mapper.update(0.0, TeleopInput(), POSE, dt=0.1) is None  # idle: no takeover
    push = TeleopInput(twist=np.array([1.0, 0, 0, 0, 0, 0]))
    target = mapper.update(0.1, push, POSE, dt=0.1)
    np.testing.assert_allclose(target[:3], [0.51, 0.0, 0.3])
    target = mapper.update(0.2, push, POSE + 1.0, dt=0.1)  # later robot poses don't reset it
    np.testing.assert_allclose(target[:3], [0.52, 0.0, 0.3])
    target = mapper.update(0.3, TeleopInput(events=(Event.GRIPPER_TOGGLE,)), POSE, dt=0.1)
    assert target[6] == 1.0 and mapper.active
    assert mapper.update(0.7, TeleopInput(), POSE, dt=0.1) is None  # released after idle time
    assert not mapper.active


def test_mapper_dead_zone_and_held_button():
    mapper = TeleopMapper(TeleopConfig(dead_zone=0.1))
    assert mapper.update(0.0, TeleopInput(twist=np.full(6, 0.05)), POSE, dt=0.1) is None
    target = mapper.update(0.0, TeleopInput(takeover=True), POSE, dt=0.1)
    np.testing.assert_allclose(target, POSE)  # button held, no motion: hold where the robot is
    with pytest.raises(ValueError, match=r'shape \(6,\)'):
        mapper.update(0.0, TeleopInput(twist=np.zeros(3)), POSE, dt=0.1)
