"""Debian's chromium, headless, driven over the DevTools protocol with aiohttp's websocket client:
no browser download, no driver, no extra package. Enough for a test to open a page, run a line of
JavaScript in it, type, and see what the page fetched."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.polling import eventually

CHROMIUM = "chromium"
# Headless, and quiet: no sandbox (tests run as root on CI), no calls home, no updates, no QUIC.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def chromium_missing_reason() -> str | None:
    """Why a browser test cannot run here, or None when chromium is on PATH. On a root shell with
    apt-get (CI), `make test` installs it first, so there a missing chromium is a failure."""
    if shutil.which(CHROMIUM):
        return None
    advice = (
        "chromium is not installed: `make test` installs Debian's package when run as root with apt-get "
        "(tools/ensure-chromium.sh); otherwise install it yourself (e.g. `sudo apt-get install chromium`)"
    )
    if os.geteuid() == 0 and shutil.which("apt-get"):
        raise AssertionError(advice + "; this machine could have, so run tools/ensure-chromium.sh")
    return advice


class CdpError(Exception):
    pass


@dataclass
class Page:
    """One tab: commands answered by id, events kept in order of arrival."""

    socket: aiohttp.ClientWebSocketResponse
    events: list[dict[str, Any]] = field(default_factory=list)
    _next_id: int = 0
    _waiting: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next_id] = answer
        await self.socket.send_json({"id": self._next_id, "method": method, "params": params})
        message = await asyncio.wait_for(answer, timeout=30)
        if "error" in message:
            raise CdpError(f"{method}: {message['error']}")
        result: dict[str, Any] = message.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited if it is a promise)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str, timeout: float = 20.0) -> Any:
        """Poll a JavaScript expression until it is truthy; return its value."""
        return await eventually(lambda: self.evaluate(expression), bool, timeout=timeout, what=what)

    async def click(self, selector: str, what: str) -> None:
        found = await self.wait_for(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return false; e.scrollIntoView(); e.click(); return true; })()",
            what,
        )
        assert found

    async def type_into(self, selector: str, text: str, what: str) -> None:
        """Focus the element and type as a keyboard would (so the page's own handlers see it)."""
        await self.wait_for(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return false; e.focus(); return document.activeElement === e; })()",
            what,
        )
        await self.send("Input.insertText", text=text)

    async def _read(self) -> None:
        async for message in self.socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data:
                waiting = self._waiting.pop(data["id"], None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(data)
            else:
                self.events.append(data)
        for waiting in self._waiting.values():
            if not waiting.done():
                waiting.set_exception(CdpError("the browser closed the DevTools connection"))


async def _devtools_port(user_data_dir: Path, process: asyncio.subprocess.Process) -> int:
    """Chromium writes the port it chose (--remote-debugging-port=0) to DevToolsActivePort."""
    marker = user_data_dir / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while True:
        if process.returncode is not None:
            raise AssertionError(f"chromium exited with {process.returncode} while starting")
        with suppress(FileNotFoundError, ValueError, IndexError):
            return int(marker.read_text().splitlines()[0])
        assert time.monotonic() < deadline, "chromium did not open its DevTools port within 30 s"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def chromium_page() -> AsyncIterator[Page]:
    """A fresh headless chromium (its own profile in a temporary directory) and its one tab."""
    # Chromium's helper processes (renderer, network, crash handler) outlive the browser process by a
    # moment and keep writing to the profile: the whole process group goes before the profile does.
    with tempfile.TemporaryDirectory(prefix="chorus-chromium-") as profile:
        user_data_dir = Path(profile)
        process = await asyncio.create_subprocess_exec(
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={user_data_dir}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            port = await _devtools_port(user_data_dir, process)
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                    targets = await response.json()
                tab = next(t for t in targets if t["type"] == "page")
                async with http.ws_connect(tab["webSocketDebuggerUrl"], max_msg_size=0) as socket:
                    page = Page(socket)
                    reader = asyncio.create_task(page._read())
                    try:
                        yield page
                    finally:
                        reader.cancel()
                        with suppress(asyncio.CancelledError):
                            await reader
        finally:
            await _stop_process_group(process)


async def _stop_process_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM to chromium and every helper it started, SIGKILL to what is left after 10 s, and wait
    until no process of the group remains (so nothing writes to the profile while it is removed)."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), 10)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        await asyncio.sleep(0.05)
