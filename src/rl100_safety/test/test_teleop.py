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
from rl100_safety.teleop import (
    Event,
    input_to_joy,
    JoyStream,
    PoseStream,
    TeleopConfig,
    TeleopInput,
    TeleopMapper,
)

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


def test_joy_stream_releases_a_silent_takeover_and_keeps_events():
    held = input_to_joy(TeleopInput(twist=np.array([0, 1.0, 0, 0, 0, 0]), takeover=True))
    stream = JoyStream(timeout=0.5)
    assert stream.take(0.0).takeover is False  # nothing received yet: released
    stream.push(*held, now=10.0)
    sample = stream.take(10.4)
    assert sample.takeover and sample.twist[1] == 1.0 and stream.timeouts == 0
    assert stream.peek(10.6).takeover is False  # silent for 0.6 s > 0.5 s
    assert stream.take(10.6).takeover is False and not np.any(stream.take(10.6).twist)
    assert stream.timeouts == 1  # counted once, not per tick
    stream.push(*held, now=11.0)  # the stream is back: control again
    assert stream.take(11.1).takeover
    # an event pressed just before the stream died still reaches the next tick, once
    stream.push(*input_to_joy(TeleopInput(events=(Event.ESTOP,))), now=12.0)
    assert stream.take(13.0).events == (Event.ESTOP,)
    assert stream.take(13.1).events == ()
    with pytest.raises(ValueError, match='Joy message needs'):
        stream.push([0.0], [0], now=14.0)


def test_joy_stream_timeout_off_holds_forever():
    stream = JoyStream(timeout=0.0)
    stream.push(*input_to_joy(TeleopInput(takeover=True)), now=0.0)
    assert stream.take(1e6).takeover


def test_pose_stream_passes_held_targets_and_releases_when_silent():
    stream = PoseStream(timeout=0.5, frame='fr3_link0')
    target = np.array([0.5, 0.0, 0.3, np.pi, 0.0, 0.0, 1.0])
    assert stream.command(0.0) is None  # nothing received: no takeover
    stream.push('fr3_link0', target, takeover=True, source=4, now=1.0)
    assert np.array_equal(stream.command(1.2), target) and stream.source == 4
    stream.push('fr3_link0', target, takeover=False, source=4, now=1.3)
    assert stream.command(1.3) is None  # clutch released
    stream.push('fr3_link0', target, takeover=True, source=4, now=2.0)
    assert stream.held(2.4) and not stream.held(2.6) and stream.timeouts == 0  # held() only looks
    assert stream.command(2.6) is None and stream.timeouts == 1  # went silent while in control
    assert stream.command(2.7) is None and stream.timeouts == 1  # counted once
    with pytest.raises(ValueError, match="frame 'world', not the base frame 'fr3_link0'"):
        stream.push('world', target, takeover=True, source=4, now=3.0)
    with pytest.raises(ValueError, match='7 finite numbers'):
        stream.push('fr3_link0', np.r_[target[:6], np.nan], takeover=True, source=4, now=3.0)
    assert stream.rejected == 2 and stream.command(3.0) is None  # bad input takes nothing over
