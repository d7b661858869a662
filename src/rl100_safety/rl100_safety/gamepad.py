"""Gamepads through SDL2's game controller API, as ROS 2's joy package reads them (no ROS here).

``GamepadReader`` opens one SDL game controller (by device index or by name) and returns its
state in SDL's standard controller layout (``AXES``, ``BUTTONS``: the names of SDL mapping
strings, e.g. ``leftx``, ``a``, ``leftshoulder``), whatever the make: SDL's controller
database maps Xbox, PlayStation, Switch and many other pads onto that layout. A joystick SDL
has no mapping for is refused with the remedy (``SDL_GAMECONTROLLERCONFIG``).

Unplugging the pad turns the state into ``connected=False`` with every axis and button
released (so a held takeover ends); the same model plugged in again is reopened.

``GamepadMap`` / ``state_to_joy`` turn a state into the stack's sensor_msgs/Joy layout
(``rl100_safety.teleop``): sticks and triggers -> twist, a held shoulder button -> takeover,
face buttons -> operator events. ``VirtualGamepad`` is an SDL virtual controller in this
process (``SDL_JoystickAttachVirtualEx``): the readers see it as a real one, which is how the
tests drive this path without hardware or /dev access.

Needs ``pysdl2`` and the SDL2 library (``pysdl2-dll`` wheel, or the system's libSDL2).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
import warnings

import numpy as np

from .teleop import Event, JOY_BUTTONS, JOY_EVENTS

# SDL_GameControllerAxis / SDL_GameControllerButton order, as SDL names them in mapping strings
AXES = ('leftx', 'lefty', 'rightx', 'righty', 'lefttrigger', 'righttrigger')
TRIGGERS = ('lefttrigger', 'righttrigger')  # 0 released .. 1 pulled; sticks -1 .. 1
BUTTONS = ('a', 'b', 'x', 'y', 'back', 'guide', 'start', 'leftstick', 'rightstick',
           'leftshoulder', 'rightshoulder', 'dpup', 'dpdown', 'dpleft', 'dpright', 'misc1',
           'paddle1', 'paddle2', 'paddle3', 'paddle4', 'touchpad')
AXIS_MAX = 32767.0
GAMEPAD_HELP = ('left stick: move x/y   triggers: z up/down   right stick: yaw/pitch   '
                'd-pad left/right: roll   LB held: takeover   A: gripper   '
                'Y/X/Back: success/failure/abort   Start: start   B: E-STOP   '
                'd-pad down: clear e-stop   d-pad up: autonomous/teleop')


class GamepadError(RuntimeError):
    """A gamepad cannot be opened (the message says what is missing, in one line)."""


@dataclass(frozen=True)
class GamepadState:
    """One reading of a gamepad.

    Sticks in [-1, 1] with SDL's signs (x right, y *down* positive), triggers in [0, 1], both
    after the dead zone; buttons 0 / 1 (held). ``connected`` False: everything released.
    """

    axes: tuple = (0.0,) * len(AXES)
    buttons: tuple = (0,) * len(BUTTONS)
    connected: bool = False
    name: str = ''

    def axis(self, name: str) -> float:
        return self.axes[AXES.index(name)]

    def button(self, name: str) -> int:
        return self.buttons[BUTTONS.index(name)]

    def value(self, name: str) -> float:
        """An axis or a button (0.0 / 1.0) by its SDL name."""
        return self.axis(name) if name in AXES else float(self.button(name))


def apply_deadzone(value: float, deadzone: float) -> float:
    """ROS joy's scaled dead zone: |v| <= dz -> 0, else rescaled so the range stays [-1, 1]."""
    if abs(value) <= deadzone:
        return 0.0
    return float(np.sign(value) * (abs(value) - deadzone) / (1.0 - deadzone))


# --- the stack's Joy layout --------------------------------------------------------------------

@dataclass(frozen=True)
class GamepadMap:
    """Which controls drive what.

    Each twist component (vx vy vz wx wy wz, robot base frame) is the clipped sum of
    ``(control, sign)`` terms; a control is an axis or a button name.

    Default, for an operator facing the robot along its x axis (Xbox names; PlayStation:
    A = cross, B = circle, X = square, Y = triangle, LB/RB = L1/R1):
    left stick: move x (up = forward) / y (left = left); triggers: z (right up, left down);
    right stick: yaw (left/right) / pitch (up/down); d-pad left/right: roll;
    LB held: takeover; A: gripper open/close; Y: success; X: failure; Back: abort;
    Start: start an episode; B: E-STOP; d-pad down: clear the e-stop; d-pad up:
    autonomous <-> teleop.
    """

    twist: tuple = ((('lefty', -1.0),), (('leftx', -1.0),),
                    (('righttrigger', 1.0), ('lefttrigger', -1.0)),
                    (('dpright', 1.0), ('dpleft', -1.0)), (('righty', -1.0),),
                    (('rightx', -1.0),))
    takeover: str = 'leftshoulder'
    events: dict = field(default_factory=lambda: {
        Event.GRIPPER_TOGGLE: 'a', Event.SUCCESS: 'y', Event.FAILURE: 'x', Event.ABORT: 'back',
        Event.START: 'start', Event.ESTOP: 'b', Event.CLEAR_ESTOP: 'dpdown',
        Event.TOGGLE_TELEOP: 'dpup'})

    def __post_init__(self):
        if len(self.twist) != 6:
            raise ValueError(f'twist needs 6 components, got {len(self.twist)}')
        names = [c for terms in self.twist for c, _ in terms] + [self.takeover]
        names += list(self.events.values())
        unknown = [n for n in names if n not in AXES and n not in BUTTONS]
        if unknown:
            raise ValueError(f'unknown gamepad controls {unknown}; axes: {list(AXES)}, '
                             f'buttons: {list(BUTTONS)}')
        missing = [e.value for e in JOY_EVENTS if e not in self.events]
        if missing:
            raise ValueError(f'no button for the events {missing}')


def state_to_joy(state: GamepadState, mapping: GamepadMap | None = None) -> tuple:
    """A state -> (axes: 6 floats, buttons: JOY_BUTTONS ints) in the safety node's Joy layout.

    Buttons are levels (held = 1), as a Joy message carries them: the safety node turns each
    0 -> 1 edge into one event. A disconnected pad gives the released state.
    """
    mapping = mapping or GamepadMap()
    if not state.connected:
        return [0.0] * 6, [0] * JOY_BUTTONS
    axes = [float(np.clip(sum(sign * state.value(c) for c, sign in terms), -1.0, 1.0))
            for terms in mapping.twist]
    buttons = [int(state.value(mapping.takeover) > 0.5)]
    buttons += [int(state.value(mapping.events[e]) > 0.5) for e in JOY_EVENTS]
    return axes, buttons


# --- SDL ---------------------------------------------------------------------------------------

def _sdl():
    """The pysdl2 module, its joystick and controller subsystems initialised (ref-counted)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # "Using SDL2 binaries from pysdl2-dll ..."
            import sdl2
    except ImportError as exc:
        if 'sdl2' in str(exc).lower() and 'library' in str(exc).lower():
            raise GamepadError('the SDL2 library was not found (pip install pysdl2-dll, or '
                               'install the system package libsdl2-2.0-0)') from None
        raise GamepadError('pysdl2 is not installed (pip install pysdl2 pysdl2-dll)') from None
    # before SDL_Init: leave SIGINT / SIGTERM to rclpy, and read the pad without a focused window
    sdl2.SDL_SetHint(sdl2.SDL_HINT_NO_SIGNAL_HANDLERS, b'1')
    sdl2.SDL_SetHint(sdl2.SDL_HINT_JOYSTICK_ALLOW_BACKGROUND_EVENTS, b'1')
    if sdl2.SDL_InitSubSystem(sdl2.SDL_INIT_GAMECONTROLLER) != 0:
        raise GamepadError('SDL could not start its game controller subsystem: '
                           f'{sdl2.SDL_GetError().decode(errors="replace")}')
    return sdl2


def _text(value) -> str:
    return value.decode('utf-8', errors='replace') if value else ''


def _guid(sdl2, device_index: int) -> str:
    buf = ctypes.create_string_buffer(33)
    sdl2.SDL_JoystickGetGUIDString(sdl2.SDL_JoystickGetDeviceGUID(device_index), buf, 33)
    return buf.value.decode()


def list_gamepads() -> list:
    """(device index, name, is a game controller) of every joystick SDL sees now."""
    sdl2 = _sdl()
    try:
        sdl2.SDL_JoystickUpdate()
        return [(i, _text(sdl2.SDL_JoystickNameForIndex(i)), bool(sdl2.SDL_IsGameController(i)))
                for i in range(sdl2.SDL_NumJoysticks())]
    finally:
        sdl2.SDL_QuitSubSystem(sdl2.SDL_INIT_GAMECONTROLLER)


class GamepadReader:
    """Reads one SDL game controller. Call ``poll()`` from the thread that opened it."""

    def __init__(self, index: int = 0, name: str = '', deadzone: float = 0.05):
        if not 0.0 <= deadzone < 1.0:
            raise ValueError(f'deadzone must be in [0, 1), got {deadzone}')
        if index < 0:
            raise ValueError(f'device index must be >= 0, got {index}')
        self._deadzone = deadzone
        self._sdl = _sdl()
        self._controller = None
        self._instance = -1
        self.name = ''
        self.guid = ''
        self.reconnects = 0
        self._event = self._sdl.SDL_Event()
        try:
            self._open(self._select(index, name.strip()))
        except BaseException:
            self._sdl.SDL_QuitSubSystem(self._sdl.SDL_INIT_GAMECONTROLLER)
            raise

    @classmethod
    def open(cls, index: int = 0, name: str = '', deadzone: float = 0.05) -> GamepadReader:
        return cls(index=index, name=name, deadzone=deadzone)

    @property
    def connected(self) -> bool:
        return self._controller is not None

    def _connected_list(self) -> str:
        sdl2 = self._sdl
        found = [f"{i}: '{_text(sdl2.SDL_JoystickNameForIndex(i))}'"
                 + ('' if sdl2.SDL_IsGameController(i) else ' (no controller mapping)')
                 for i in range(sdl2.SDL_NumJoysticks())]
        return f'[{", ".join(found)}]'

    def _select(self, index: int, name: str) -> int:
        sdl2 = self._sdl
        sdl2.SDL_JoystickUpdate()
        count = sdl2.SDL_NumJoysticks()
        if count <= 0:
            raise GamepadError('no gamepad found: SDL sees no joystick (is one plugged in, and '
                               'can this user read /dev/input/event*?)')
        if name:
            matches = [i for i in range(count)
                       if name.lower() in _text(sdl2.SDL_JoystickNameForIndex(i)).lower()]
            if not matches:
                raise GamepadError(f"no gamepad named '{name}'; connected: "
                                   f'{self._connected_list()}')
            index = next((i for i in matches if sdl2.SDL_IsGameController(i)), matches[0])
        elif index >= count:
            raise GamepadError(f'no gamepad with index {index}; connected: '
                               f'{self._connected_list()}')
        if not sdl2.SDL_IsGameController(index):
            raise GamepadError(
                f"joystick {index} '{_text(sdl2.SDL_JoystickNameForIndex(index))}' has no SDL "
                'game controller mapping: add one with the SDL_GAMECONTROLLERCONFIG environment '
                f'variable (its GUID is {_guid(sdl2, index)})')
        return index

    def _open(self, index: int) -> None:
        sdl2 = self._sdl
        controller = sdl2.SDL_GameControllerOpen(index)
        if not controller:
            raise GamepadError(f'cannot open gamepad {index}: '
                               f'{_text(sdl2.SDL_GetError())}')
        self._controller = controller
        self._instance = sdl2.SDL_JoystickInstanceID(
            sdl2.SDL_GameControllerGetJoystick(controller))
        self.name = _text(sdl2.SDL_GameControllerName(controller))
        self.guid = _guid(sdl2, index)

    def _close_controller(self) -> None:
        if self._controller is not None:
            self._sdl.SDL_GameControllerClose(self._controller)
            self._controller = None
            self._instance = -1

    def poll(self) -> GamepadState:
        """The current state; handles unplug (released state) and re-plug of the same model."""
        sdl2 = self._sdl
        ev = self._event
        while sdl2.SDL_PollEvent(ctypes.byref(ev)):  # also pumps the joystick state
            if ev.type == sdl2.SDL_CONTROLLERDEVICEREMOVED and ev.cdevice.which == self._instance:
                self._close_controller()
            elif ev.type == sdl2.SDL_CONTROLLERDEVICEADDED and self._controller is None:
                index = ev.cdevice.which
                if _guid(sdl2, index) == self.guid:
                    try:
                        self._open(index)
                    except GamepadError:
                        continue  # try again at its next added event
                    self.reconnects += 1
        if self._controller is not None and not sdl2.SDL_GameControllerGetAttached(
                self._controller):
            self._close_controller()
        if self._controller is None:
            return GamepadState(name=self.name)
        c, dz = self._controller, self._deadzone
        axes = []
        for i, axis in enumerate(AXES):
            value = min(max(sdl2.SDL_GameControllerGetAxis(c, i) / AXIS_MAX, -1.0), 1.0)
            axes.append(apply_deadzone(max(value, 0.0) if axis in TRIGGERS else value, dz))
        buttons = tuple(int(sdl2.SDL_GameControllerGetButton(c, i)) for i in range(len(BUTTONS)))
        return GamepadState(axes=tuple(axes), buttons=buttons, connected=True, name=self.name)

    def close(self) -> None:
        if self._sdl is None:
            return
        self._close_controller()
        self._sdl.SDL_QuitSubSystem(self._sdl.SDL_INIT_GAMECONTROLLER)
        self._sdl = None


class VirtualGamepad:
    """An SDL virtual game controller in this process: every SDL reader here sees it.

    Values are set in the reader's units (sticks -1..1 with SDL's signs, triggers 0..1,
    buttons held or not) and seen at the reader's next ``poll()``.
    """

    def __init__(self, name: str = 'rl100 virtual gamepad', vendor_id: int = 0x1209,
                 product_id: int = 0x0001):
        self._sdl = sdl2 = _sdl()
        desc = sdl2.SDL_VirtualJoystickDesc()
        desc.version = sdl2.SDL_VIRTUAL_JOYSTICK_DESC_VERSION
        desc.type = sdl2.SDL_JOYSTICK_TYPE_GAMECONTROLLER
        desc.naxes, desc.nbuttons, desc.nhats = len(AXES), len(BUTTONS), 0
        desc.vendor_id, desc.product_id = vendor_id, product_id
        desc.name = name.encode()
        self._desc = desc
        self.name = name
        self._joystick = None
        self.attach()

    def attach(self) -> None:
        """Plug it in (again)."""
        sdl2 = self._sdl
        index = sdl2.SDL_JoystickAttachVirtualEx(ctypes.byref(self._desc))
        if index < 0:
            raise GamepadError(f'cannot attach a virtual gamepad: {_text(sdl2.SDL_GetError())}')
        self._joystick = sdl2.SDL_JoystickOpen(index)
        for trigger in TRIGGERS:  # a virtual trigger axis at 0 would read as half pulled
            self.set_axis(trigger, 0.0)

    def detach(self) -> None:
        """Unplug it."""
        if self._joystick is not None:
            sdl2 = self._sdl
            instance = sdl2.SDL_JoystickInstanceID(self._joystick)
            index = next(i for i in range(sdl2.SDL_NumJoysticks())
                         if sdl2.SDL_JoystickGetDeviceInstanceID(i) == instance)
            sdl2.SDL_JoystickClose(self._joystick)
            self._joystick = None
            sdl2.SDL_JoystickDetachVirtual(index)

    def set_axis(self, name: str, value: float) -> None:
        if name in TRIGGERS:  # the virtual axis' full range maps onto 0..1
            raw = -32768 + float(np.clip(value, 0.0, 1.0)) * 65535
        else:
            raw = float(np.clip(value, -1.0, 1.0)) * AXIS_MAX
        self._sdl.SDL_JoystickSetVirtualAxis(self._joystick, AXES.index(name), int(round(raw)))

    def set_button(self, name: str, pressed: bool) -> None:
        self._sdl.SDL_JoystickSetVirtualButton(self._joystick, BUTTONS.index(name), int(pressed))

    def close(self) -> None:
        if self._sdl is not None:
            self.detach()
            self._sdl.SDL_QuitSubSystem(self._sdl.SDL_INIT_GAMECONTROLLER)
            self._sdl = None
