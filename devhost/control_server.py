"""The stack process's fault control endpoint (see devhost/faults.py for the actions).

    GET  /services                    every service's fault state
    POST /services/{service}/{action} apply one action; answers once it is done

Errors are RFC 9457 problems. Actions run one at a time, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from aiohttp import web

from devhost.faults import SERVICES, FaultError, FaultState, apply_fault, check
from devhost.stack import LocalStack

log = logging.getLogger("devhost.control")


def _problem(status: int, title: str, detail: str) -> web.Response:
    return web.json_response(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status=status,
        content_type="application/problem+json",
    )


class ControlServer:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.state = FaultState()
        self._lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, host: str = "127.0.0.1") -> str:
        app = web.Application()
        app.router.add_get("/services", self._status)
        app.router.add_post("/services/{service}/{action}", self._apply)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        # Bound here on a port the OS picks, so there is no race for a "free" port.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((host, 0))
        await web.SockSite(self._runner, listener).start()
        self.url = f"http://{host}:{listener.getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response({name: self.state.describe(name) for name in SERVICES})

    async def _apply(self, request: web.Request) -> web.Response:
        service, action = request.match_info["service"], request.match_info["action"]
        try:
            check(service, action)
        except FaultError as exc:
            return _problem(400, "Unknown fault", str(exc))
        async with self._lock:
            loop = asyncio.get_running_loop()
            try:
                result = await loop.run_in_executor(
                    None, apply_fault, self.stack, self.state, service, action
                )
            except Exception as exc:
                log.exception("fault control: %s %s failed", service, action)
                return _problem(500, "The fault could not be applied", f"{service} {action}: {exc}")
        return web.json_response(result)
