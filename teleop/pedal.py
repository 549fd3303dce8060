"""The takeover pedal: anything that says, once per control step, whether it is held down.

Backends (the rig file's `pedal.backend`, or `--pedal`):

- `pynput`: a USB foot pedal that types a key (most do), or a keyboard key, held
  down; needs a display.
- `evdev`: the pedal's input device read directly (`pedal.device`, e.g.
  /dev/input/by-id/...-event-kbd); works without a display, needs read access
  to the device and the `evdev` package.
- `terminal`: a key typed into this terminal. A terminal reports presses, not
  releases, so each press toggles the pedal.
- `scripted`: the simulated rig's operator presses it when its gate rule says so.
- `auto`: pynput with a display, evdev when a device is set, else the terminal.

`down(keys)` takes the key presses the loop read this step (terminal backend);
the others ignore them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from robot.rig import PedalConfig
from teleop.keys import has_display


class Pedal(Protocol):
    backend: str

    def down(self, keys: Sequence[str] = ()) -> bool: ...

    def close(self) -> None: ...


class TogglePedal:
    """Each press of `key` in the operator's key input toggles the pedal."""

    def __init__(self, key: str = "space") -> None:
        self.key = key
        self.backend = f"terminal: press {key!r} to take over, again to hand back"
        self._down = False

    def down(self, keys: Sequence[str] = ()) -> bool:
        for k in keys:
            if k == self.key:
                self._down = not self._down
        return self._down

    def close(self) -> None:
        pass


class _HeldState:
    def __init__(self) -> None:
        self._down = threading.Event()

    def down(self, keys: Sequence[str] = ()) -> bool:
        return self._down.is_set()


class PynputPedal(_HeldState):
    """Down while the key is held (a USB pedal typing `key` holds it while pressed)."""

    def __init__(self, key: str = "space") -> None:
        super().__init__()
        from pynput import keyboard  # needs a display: imported only here

        target = getattr(keyboard.Key, key, None) or keyboard.KeyCode.from_char(key)
        self.backend = f"pynput: hold {key!r} (or the pedal typing it) to take over"

        def on_press(k: object) -> None:
            if k == target:
                self._down.set()

        def on_release(k: object) -> None:
            if k == target:
                self._down.clear()

        self._listener = keyboard.Listener(on_press=on_press, on_release=on_release)
        self._listener.start()

    def close(self) -> None:
        self._listener.stop()


class EvdevPedal(_HeldState):
    """Down while the device reports the key held (value 1 press, 2 auto-repeat, 0 release)."""

    def __init__(self, device: str, key: str = "space") -> None:
        super().__init__()
        try:
            import evdev
        except ImportError:
            raise RuntimeError("the evdev pedal backend needs the evdev package: pip install evdev") from None
        code = evdev.ecodes.ecodes.get(f"KEY_{key.upper()}")
        if code is None:
            raise ValueError(f"pedal key {key!r} has no evdev code KEY_{key.upper()}")
        try:
            self._device = evdev.InputDevice(device)
        except OSError as exc:
            raise RuntimeError(f"pedal device {device}: {exc.strerror or exc}; check the path and that you may "
                               "read it (the input group, or a udev rule)") from exc
        self.backend = f"evdev: {device} ({self._device.name}), key {key!r}"
        self._code = code
        self._thread = threading.Thread(target=self._read, name="pedal-evdev", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._device.read_loop():
                if event.type == 1 and event.code == self._code:  # EV_KEY
                    (self._down.set if event.value else self._down.clear)()
        except OSError:
            self._down.clear()  # unplugged or closed: the pedal is up, the policy keeps control

    def close(self) -> None:
        self._device.close()


class ScriptedPedal:
    """The simulated operator's pedal, read from the world (robot.sim gate rules)."""

    backend = "scripted: the simulated operator's gate rule"

    def __init__(self, world: object) -> None:
        self._world = world

    def down(self, keys: Sequence[str] = ()) -> bool:
        return bool(self._world.pedal())

    def close(self) -> None:
        pass


def open_pedal(config: PedalConfig, backend: str | None = None, *, world: object | None = None) -> Pedal | None:
    """The pedal the rig (or `backend`) asks for; None for `none`."""
    backend = backend or config.backend
    if backend == "none":
        return None
    if backend == "scripted":
        if world is None:
            raise ValueError("the scripted pedal exists only in the simulated world (--rig sim with a --task)")
        return ScriptedPedal(world)
    if backend == "evdev" or (backend == "auto" and config.device and not has_display()):
        if not config.device:
            raise ValueError("the evdev pedal needs pedal.device in the rig file (e.g. /dev/input/by-id/...)")
        return EvdevPedal(config.device, config.key)
    if backend in ("pynput", "auto") and has_display():
        try:
            return PynputPedal(config.key)
        except Exception as exc:  # pynput's backends raise various errors without a usable display
            if backend == "pynput":
                raise RuntimeError(f"pynput pedal backend failed: {exc}") from exc
    if backend == "pynput":
        raise RuntimeError("the pynput pedal needs a display; use evdev (pedal.device) or terminal")
    return TogglePedal(config.key)
