"""Operator keys: pynput where a display exists, the terminal otherwise; the backend says which.

Key names are pynput's: a character ("q"), or a special key ("space", "esc",
"enter"). `events()` returns the presses since the last call, so the control loop
polls it once per step and never blocks on input.
"""

from __future__ import annotations

import os
import queue
import select
import sys
import termios
import threading
import tty
from typing import Protocol

_TERMINAL_NAMES = {" ": "space", "\x1b": "esc", "\n": "enter", "\r": "enter", "\t": "tab", "\x7f": "backspace"}


class KeyInput(Protocol):
    backend: str

    def events(self) -> list[str]: ...

    def close(self) -> None: ...


class _Queued:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()

    def events(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out


class PynputKeys(_Queued):
    backend = "pynput (display)"

    def __init__(self) -> None:
        super().__init__()
        from pynput import keyboard  # needs a display: imported only here

        def on_press(key: object) -> None:
            char = getattr(key, "char", None)
            self._queue.put(char if char else getattr(key, "name", str(key)))

        self._listener = keyboard.Listener(on_press=on_press)
        self._listener.start()

    def close(self) -> None:
        self._listener.stop()


class TerminalKeys(_Queued):
    """Keys typed into this terminal, read without Enter (cbreak); Ctrl-C still interrupts."""

    backend = "terminal (no display; type keys into this terminal)"

    def __init__(self, fd: int | None = None) -> None:
        super().__init__()
        self._fd = sys.stdin.fileno() if fd is None else fd
        self._saved = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="terminal-keys", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.05)
            if ready:
                data = os.read(self._fd, 32).decode(errors="replace")
                for char in data:
                    self._queue.put(_TERMINAL_NAMES.get(char, char))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)


class NoKeys:
    backend = "none (no display and no terminal: stop with Ctrl-C or SIGTERM)"

    def events(self) -> list[str]:
        return []

    def close(self) -> None:
        pass


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def open_keys(backend: str = "auto") -> KeyInput:
    """`auto`: pynput with a display, else the terminal when stdin is one, else no keys."""
    if backend in ("auto", "pynput") and has_display():
        try:
            return PynputKeys()
        except Exception as exc:  # pynput's backends raise various errors without a usable display
            if backend == "pynput":
                raise RuntimeError(f"pynput keyboard backend failed: {exc}") from exc
    if backend in ("auto", "terminal", "pynput") and sys.stdin.isatty():
        return TerminalKeys()
    return NoKeys()
