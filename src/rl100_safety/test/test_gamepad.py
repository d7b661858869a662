"""Gamepads without hardware: an SDL virtual game controller seen by the SDL reader.

SDL's virtual joysticks live in the process that attaches them, so the node runs where the
virtual pad is (this process, or a child that scripts one) and reaches the other process over
DDS: a Joy listener here, or the safety node in a child that flags the takeover.
"""

import ctypes
import signal
import subprocess
import sys
import textwrap
import time

from geometry_msgs.msg import PoseStamped
import numpy as np
import pytest
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rl100_msgs.msg import Intervention, SafetyStatus
from rl100_ros import qos, topics
from rl100_ros.conversions import array_to_pose, pose_to_array
from rl100_safety.gamepad import (
    apply_deadzone,
    AXES,
    BUTTONS,
    GamepadError,
    GamepadMap,
    GamepadReader,
    GamepadState,
    list_gamepads,
    state_to_joy,
    VirtualGamepad,
)
from rl100_safety.gamepad_teleop import GamepadTeleop
from rl100_safety.teleop import Event, JOY_BUTTONS, JOY_EVENTS, JOY_TOPIC, JoyDecoder
from sensor_msgs.msg import Joy

HOME = np.array([0.5, 0.0, 0.3, np.pi, 0.0, 0.0, 0.0])
NAME = 'rl100 test pad'
# SDL ignores every pad but the virtual ones (VirtualGamepad's USB ids), so a gamepad plugged
# into the machine running the tests changes nothing
ONLY_VIRTUAL = {'SDL_GAMECONTROLLER_IGNORE_DEVICES_EXCEPT': '0x1209/0x0001'}


@pytest.fixture(autouse=True)
def only_virtual_pads(monkeypatch):
    for key, value in ONLY_VIRTUAL.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def pad():
    virtual = VirtualGamepad(NAME)
    yield virtual
    virtual.close()


def test_reader_sees_the_virtual_pad(pad):
    reader = GamepadReader.open(name='TEST PAD', deadzone=0.1)  # a part of the name, any case
    try:
        assert reader.name == NAME and reader.connected
        state = reader.poll()
        assert state.connected and state.axes == (0.0,) * 6 and not any(state.buttons)
        pad.set_axis('leftx', -1.0)
        pad.set_axis('lefty', 0.55)
        pad.set_axis('rightx', 0.05)  # inside the dead zone
        pad.set_axis('righttrigger', 1.0)
        pad.set_axis('lefttrigger', 0.5)
        pad.set_button('leftshoulder', True)
        pad.set_button('b', True)
        state = reader.poll()
        assert state.axis('leftx') == -1.0 and state.axis('rightx') == 0.0
        assert state.axis('lefty') == pytest.approx(0.5, abs=1e-3)  # (0.55 - 0.1) / 0.9
        assert state.axis('righttrigger') == 1.0
        assert state.axis('lefttrigger') == pytest.approx(0.4 / 0.9, abs=1e-3)
        assert [b for b in ('leftshoulder', 'b', 'a') if state.button(b)] == ['leftshoulder', 'b']
        pad.set_button('b', False)
        assert reader.poll().button('b') == 0
    finally:
        reader.close()


def test_unplug_gives_the_released_state_and_the_same_pad_reconnects(pad):
    reader = GamepadReader.open(index=0)
    try:
        pad.set_axis('leftx', 1.0)
        pad.set_button('leftshoulder', True)
        assert reader.poll().button('leftshoulder') == 1
        pad.detach()
        state = reader.poll()
        assert not state.connected and not reader.connected
        assert state.axes == (0.0,) * 6 and not any(state.buttons) and state.name == NAME
        assert state_to_joy(state) == ([0.0] * 6, [0] * JOY_BUTTONS)  # takeover released
        assert not reader.poll().connected  # stays released while unplugged
        pad.attach()
        pad.set_button('a', True)
        state = reader.poll()
        assert state.connected and reader.reconnects == 1 and state.button('a') == 1
    finally:
        reader.close()


def test_missing_devices_are_named():
    with pytest.raises(GamepadError, match=r'^no gamepad found: SDL sees no joystick'):
        GamepadReader.open()
    pad = VirtualGamepad(NAME)
    try:
        with pytest.raises(GamepadError, match=r"no gamepad named 'xbox'; connected: "
                                               r"\[0: 'rl100 test pad'\]"):
            GamepadReader.open(name='xbox')
        with pytest.raises(GamepadError, match=r'no gamepad with index 3; connected: \[0: '):
            GamepadReader.open(index=3)
        assert list_gamepads() == [(0, NAME, True)]
    finally:
        pad.close()


def test_a_joystick_without_controller_mapping_is_refused():
    pad = VirtualGamepad(NAME)  # keeps SDL's joystick subsystem up
    import sdl2  # a plain virtual joystick (no game controller type): SDL has no mapping
    desc = sdl2.SDL_VirtualJoystickDesc(version=sdl2.SDL_VIRTUAL_JOYSTICK_DESC_VERSION,
                                        type=sdl2.SDL_JOYSTICK_TYPE_UNKNOWN, naxes=2,
                                        nbuttons=2, name=b'rl100 plain stick')
    index = sdl2.SDL_JoystickAttachVirtualEx(ctypes.byref(desc))
    try:
        with pytest.raises(GamepadError, match=r"joystick 1 'rl100 plain stick' has no SDL game "
                                               'controller mapping: .*SDL_GAMECONTROLLERCONFIG'):
            GamepadReader.open(name='plain')
    finally:
        sdl2.SDL_JoystickDetachVirtual(index)
        pad.close()


def test_mapping_drives_the_joy_decoder_like_any_joy_publisher():
    pressed = dict.fromkeys(GamepadMap().events.values(), 0)
    axes = {'leftx': -0.5, 'lefty': -1.0, 'rightx': 0.25, 'righty': 0.0, 'lefttrigger': 0.2,
            'righttrigger': 0.7}
    buttons = {'leftshoulder': 1, 'dpright': 1, **pressed}

    def state(**held):
        b = {**buttons, **held}
        return GamepadState(axes=tuple(axes[n] for n in AXES), connected=True,
                            buttons=tuple(b.get(n, 0) for n in BUTTONS))

    joy_axes, joy_buttons = state_to_joy(state())
    # stick up = +x, stick left = +y, triggers: z, d-pad right: +roll, right stick: yaw
    np.testing.assert_allclose(joy_axes, [1.0, 0.5, 0.5, 1.0, 0.0, -0.25])
    assert joy_buttons == [1] + [0] * len(JOY_EVENTS)
    decoder = JoyDecoder()
    sample = decoder.decode(*state_to_joy(state(b=1, y=1)))
    assert sample.takeover and set(sample.events) == {Event.ESTOP, Event.SUCCESS}
    assert decoder.decode(*state_to_joy(state(b=1, y=1))).events == ()  # held: one event
    assert decoder.decode(*state_to_joy(state(dpdown=1))).events == (Event.CLEAR_ESTOP,)


def test_map_and_deadzone_checks():
    assert apply_deadzone(0.05, 0.1) == 0.0 and apply_deadzone(-1.0, 0.1) == -1.0
    with pytest.raises(ValueError, match=r"unknown gamepad controls \['trigger'\]"):
        GamepadMap(takeover='trigger')
    with pytest.raises(ValueError, match=r"no button for the events \['estop'\]"):
        GamepadMap(events={e: 'a' for e in JOY_EVENTS if e != Event.ESTOP})
    with pytest.raises(ValueError, match=r'deadzone must be in \[0, 1\)'):
        GamepadReader(deadzone=1.0)


# --- the node over DDS -------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys
    from rl100_ros.node_main import run_node
    from rl100_safety.gamepad import VirtualGamepad
    from rl100_safety.gamepad_teleop import GamepadTeleop

    pad = VirtualGamepad('rl100 child pad')
    pad.set_axis('lefty', -1.0)
    pad.set_axis('righttrigger', 0.5)
    pad.set_button('leftshoulder', True)
    pad.set_button('y', True)
    sys.exit(run_node(GamepadTeleop, sys.argv))
    """)


def test_node_process_publishes_the_pad_as_joy_and_stops_on_sigint(ros_env):
    proc = subprocess.Popen([sys.executable, '-c', CHILD, '--ros-args', '-p', 'deadzone:=0.0',
                             '-p', 'device_name:=child pad'], env={**ros_env, **ONLY_VIRTUAL},
                            text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_env['ROS_DOMAIN_ID']))
    try:
        node = Node('joy_listener', context=context)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        got = []
        node.create_subscription(Joy, JOY_TOPIC, got.append, qos.COMMAND)
        deadline = time.monotonic() + 20.0
        while len(got) < 3 and time.monotonic() < deadline and proc.poll() is None:
            executor.spin_once(timeout_sec=0.05)
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
        proc.send_signal(signal.SIGINT)  # SDL must leave SIGINT to rclpy
        out = proc.communicate(timeout=15)[0]
    assert len(got) >= 3, out  # an unchanged state is repeated (autorepeat_rate)
    msg = got[-1]
    np.testing.assert_allclose(msg.axes, [1.0, 0.0, 0.5, 0.0, 0.0, 0.0], atol=1e-4)
    success = 1 + JOY_EVENTS.index(Event.SUCCESS)
    assert list(msg.buttons) == [1 if i in (0, success) else 0 for i in range(JOY_BUTTONS)]
    assert msg.header.frame_id == 'gamepad'
    assert proc.returncode == 0, out
    assert "gamepad 'rl100 child pad' -> /rl100/teleop/joy" in out


def test_node_without_a_gamepad_exits_with_one_line(ros_env):
    result = subprocess.run([sys.executable, '-m', 'rl100_safety.gamepad_teleop'],
                            env={**ros_env, **ONLY_VIRTUAL}, capture_output=True, text=True,
                            timeout=20)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        '[ERROR] GamepadTeleop failed to start: GamepadError: no gamepad found: SDL sees no '
        'joystick (is one plugged in, and can this user read /dev/input/event*?)')


def test_gamepad_takeover_reaches_the_safety_node_in_another_process(ros_env, pad):
    safety = subprocess.Popen(
        [sys.executable, '-m', 'rl100_safety.safety_node', '--ros-args',
         '-p', 'teleop_device:=gamepad', '-p', 'control_rate:=20.0'],
        env=ros_env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_env['ROS_DOMAIN_ID']))
    try:
        teleop = GamepadTeleop(context=context, parameter_overrides=[
            Parameter('device_name', value='test pad'), Parameter('rate', value=50.0)])
        robot = Node('robot', context=context)
        interventions, status = [], []
        robot.create_subscription(Intervention, topics.INTERVENTION, interventions.append,
                                  qos.RELIABLE)
        robot.create_subscription(SafetyStatus, topics.SAFETY_STATUS, status.append, qos.LATCHED)
        pose_pub = robot.create_publisher(PoseStamped, topics.CURRENT_POSE, qos.SENSOR)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(teleop)
        executor.add_node(robot)

        def spin_until(predicate, timeout=20.0):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and safety.poll() is None:
                stamp = robot.get_clock().now().to_msg()
                pose_pub.publish(array_to_pose(HOME, 'fr3_link0', stamp))
                executor.spin_once(timeout_sec=0.02)
                if predicate():
                    return True
            return False

        assert spin_until(lambda: len(interventions) >= 3)  # the safety node holds the pose
        assert not interventions[-1].active
        pad.set_button('leftshoulder', True)  # hold LB and push the left stick left: +y
        pad.set_axis('leftx', -1.0)
        assert spin_until(lambda: interventions[-1].active
                          and interventions[-1].target.position.y > 0.01)
        assert interventions[-1].source == Intervention.SOURCE_GAMEPAD

        pad.detach()  # unplugged while held: the released state ends the takeover
        assert spin_until(lambda: not interventions[-1].active)
        released = len(interventions)
        assert spin_until(lambda: len(interventions) >= released + 5)
        assert not any(iv.active for iv in interventions[released:])
        held = pose_to_array(PoseStamped(pose=interventions[-1].target), 0.0)

        pad.attach()
        pad.set_button('b', True)  # B: E-STOP
        assert spin_until(lambda: status and status[-1].estop_latched)
        assert status[-1].mode == SafetyStatus.MODE_ESTOP
        assert held[1] > 0.01  # the robot holds where the takeover left it
        teleop.destroy_node()
        robot.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
        safety.send_signal(signal.SIGINT)
        out = safety.communicate(timeout=15)[0]
    assert safety.returncode == 0, out
