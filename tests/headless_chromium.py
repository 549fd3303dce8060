"""A page loaded in real headless Chromium, and a JavaScript expression evaluated in it, over the DevTools protocol
on a pipe (--remote-debugging-pipe: no port, no websocket library).

Chromium reads commands on its fd 3 and writes replies and events on its fd 4, each a JSON message ended by NUL.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; CI installs it (.ci/run)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--mute-audio")


class ChromiumError(RuntimeError):
    pass


class HeadlessChromium:
    def __init__(self, binary: Path = CHROMIUM, timeout_s: float = 60.0, flags: tuple[str, ...] = ()) -> None:
        self.timeout_s = timeout_s
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict] = []  # events that came while a call waited for its reply
        commands_r, self._commands = os.pipe()
        self._replies, replies_w = os.pipe()
        # the pipes come in as stdin and stdout; the shell moves them to fds 3 and 4, then becomes Chromium
        argv = ["sh", "-c", 'exec "$@" 3<&0 4>&1 0</dev/null 1>&2', "sh", str(binary), *FLAGS, *flags,
                f"--user-data-dir={self._profile.name}", "--remote-debugging-pipe", "about:blank"]
        self._log = tempfile.TemporaryFile()
        self._process = subprocess.Popen(argv, stdin=commands_r, stdout=replies_w, stderr=self._log)
        os.close(commands_r)
        os.close(replies_w)

    # -- protocol -------------------------------------------------------------------------------------------------
    def _send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise ChromiumError(f"no answer from Chromium in {self.timeout_s:g} s{self._log_tail()}")
            chunk = os.read(self._replies, 1 << 16)
            if not chunk:
                raise ChromiumError(f"Chromium closed its DevTools pipe{self._log_tail()}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout_s
        while True:
            message = self._message(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise ChromiumError(f"{method}: {message['error']}")
                return message["result"]
            if "method" in message:
                self._events.append(message)

    def wait_event(self, method: str, deadline: float) -> dict:
        while True:
            message = self._events.pop(0) if self._events else self._message(deadline)
            if message.get("method") == method:
                return message.get("params", {})

    def _log_tail(self) -> str:
        self._log.seek(0)
        text = self._log.read().decode(errors="replace").strip().splitlines()
        return ("; Chromium said:\n" + "\n".join(text[-15:])) if text else ""

    # -- what a test wants ----------------------------------------------------------------------------------------
    def evaluate(self, url: str, expression: str) -> Any:
        """Open `url` in a new tab, wait for its load event, then the value of `expression` (a promise is awaited;
        the value comes back as JSON)."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=session)
        navigated = self.call("Page.navigate", {"url": url}, session=session)
        if navigated.get("errorText"):
            raise ChromiumError(f"{url}: {navigated['errorText']}")
        self.wait_event("Page.loadEventFired", time.monotonic() + self.timeout_s)
        result = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True}, session=session)
        if "exceptionDetails" in result:
            raise ChromiumError(f"{url}: the expression threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self) -> None:
        try:
            if self._process.poll() is None:
                self._send("Browser.close")
                self._process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait()
        finally:
            os.close(self._commands)
            os.close(self._replies)
            self._log.close()
            self._profile.cleanup()

    def __enter__(self) -> HeadlessChromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
