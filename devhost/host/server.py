"""The local Functions host: HTTP site, timers and change-feed feeders for one app."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from devhost.host.app_index import FunctionSpec, load_function_app
from devhost.host.cancellation import being_cancelled, cancel_and_wait
from devhost.host.change_feed import ChangeFeedTrigger, trigger_config
from devhost.host.http_server import HttpFrontEnd
from devhost.host.invocation import Invoker
from devhost.host.singleton import SingletonLock, host_id, run_while_held, storage_connection
from devhost.host.timers import run_timer

log = logging.getLogger("devhost.host")

SUPPORTED_TRIGGERS = ("httpTrigger", "timerTrigger", "cosmosDBTrigger")
# How long a crashed feeder or timer loop waits before it is started again.
RESTART_DELAY_SECONDS = 1.0


def route_prefix(app_dir: Path) -> str:
    host_json = json.loads((app_dir / "host.json").read_text())
    return str(host_json.get("extensions", {}).get("http", {}).get("routePrefix", "api"))


class FunctionHost:
    def __init__(
        self,
        app_dir: Path,
        state_dir: Path,
        host: str = "127.0.0.1",
        port: int = 7071,
        module_name: str = "function_app",
        only: set[str] | None = None,
        worker_index: int | None = None,
        reuse_port: bool = False,
    ) -> None:
        """`worker_index`: this host is worker N of a multi-process host (devhost/host/workers.py);
        `reuse_port`: it shares its port with the other workers (SO_REUSEPORT), the kernel spreading
        connections over them."""
        self.app_dir = app_dir
        self.module_name = module_name
        self.only = only
        self.state_dir = state_dir
        self.host = host
        self.port = port
        self.specs: list[FunctionSpec] = []
        self._invoker = Invoker(app_dir)
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._feeders: list[ChangeFeedTrigger] = []
        self.worker_index = worker_index
        self._reuse_port = reuse_port
        self._held_timers: set[str] = set()

    @property
    def instance_name(self) -> str:
        """This host's name as a lease and lock holder: the machine and the port (and the worker), so
        one restarted in the same place takes its own leases and locks back at once."""
        name = f"{socket.gethostname()}:{self.port}"
        return name if self.worker_index is None else f"{name}/worker{self.worker_index}"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self.specs = load_function_app(self.app_dir, self.module_name)
        if self.only is not None:
            unknown = self.only - {s.name for s in self.specs}
            if unknown:
                raise RuntimeError(f"no functions named {sorted(unknown)} in the app")
            self.specs = [s for s in self.specs if s.name in self.only]
        unsupported = [s.name for s in self.specs if s.trigger_type not in SUPPORTED_TRIGGERS]
        if unsupported:
            raise RuntimeError(f"the local host does not run these functions' triggers: {unsupported}")
        environ = dict(os.environ)
        by_type = {t: [s for s in self.specs if s.trigger_type == t] for t in SUPPORTED_TRIGGERS}
        self._feeders = feeders = [
            ChangeFeedTrigger(
                spec,
                trigger_config(spec, environ),
                self._invoker.invoke,
                self.state_dir / "failed-batches",
                self.instance_name,
            )
            for spec in by_type["cosmosDBTrigger"]
        ]

        front_end = HttpFrontEnd(
            by_type["httpTrigger"], self._invoker, route_prefix(self.app_dir), status=self.status
        )
        self._runner = web.AppRunner(front_end.make_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.host, self.port, reuse_address=True, reuse_port=self._reuse_port or None
        )
        await site.start()

        storage = storage_connection(environ)
        if by_type["timerTrigger"] and storage is None:
            log.warning(
                "AzureWebJobsStorage is not set: timers run without the singleton lock, so only "
                "this one host may run them"
            )
        for spec in by_type["timerTrigger"]:
            self._spawn(f"timer {spec.name}", functools.partial(self._run_timer, spec, storage))
        for feeder in feeders:
            self._spawn(f"change feed {feeder.spec.name}", feeder.run)
        log.info(
            "hosting %d function(s) at %s/%s: %s",
            len(self.specs),
            self.base_url,
            route_prefix(self.app_dir),
            ", ".join(f"{s.name} ({s.trigger_type})" for s in self.specs),
        )

    async def _run_timer(self, spec: FunctionSpec, storage: str | None) -> None:
        """The timer on its schedule, on one worker (and one host) at a time: while this one holds the
        timer's singleton lock in the host storage, as the Functions host does."""
        if storage is None:
            await run_timer(spec, self._invoker.invoke)
            return
        lock = SingletonLock(storage, host_id(), f"Host.Functions.{spec.name}.Listener", self.instance_name)

        async def while_held(lost: asyncio.Event) -> None:
            self._held_timers.add(spec.name)
            try:
                await run_timer(spec, self._invoker.invoke, lost)
            finally:
                self._held_timers.discard(spec.name)

        await run_while_held(lock, while_held, f"timer {spec.name}")

    def status(self) -> dict[str, Any]:
        """What this host (worker) is doing: for GET /admin/host/status."""
        return {
            "state": "Running",
            "instance": self.instance_name,
            "worker": self.worker_index,
            "pid": os.getpid(),
            "timers": sorted(self._held_timers),
            "changeFeedLeases": self.change_feed_leases(),
        }

    def held_timers(self) -> list[str]:
        """The timers whose singleton lock this host holds now."""
        return sorted(self._held_timers)

    def change_feed_checkpoints(self) -> dict[str, str | None]:
        """Each Cosmos DB trigger's current checkpoint (None until it has one)."""
        return {feeder.spec.name: feeder.checkpoint for feeder in self._feeders}

    def change_feed_caught_up(self) -> bool:
        """Whether every Cosmos DB trigger's last read of each of its leases found nothing new."""
        return all(feeder.caught_up for feeder in self._feeders)

    def change_feed_delivered(self) -> dict[str, int]:
        """Documents handed to each Cosmos DB trigger so far."""
        return {feeder.spec.name: feeder.delivered for feeder in self._feeders}

    def change_feed_leases(self) -> dict[str, list[str]]:
        """The change-feed leases this host owns, per Cosmos DB trigger."""
        return {feeder.spec.name: feeder.owned_leases for feeder in self._feeders}

    def _spawn(self, label: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._tasks.append(asyncio.create_task(run_supervised(label, loop), name=label))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._invoker.close()


async def run_supervised(label: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run `loop` until it returns or is cancelled, starting it again RESTART_DELAY_SECONDS after a crash.
    A loop whose clean-up fails while it is being cancelled is not started again: its error replaces the
    cancellation, and restarting would leave a host that never stops (a timer firing on and on)."""
    while True:
        try:
            await loop()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if being_cancelled():
                log.warning("%s failed while it was being stopped (%s); it is not started again", label, exc)
                raise asyncio.CancelledError from exc
            log.exception("%s crashed; restarting it in %.0f s", label, RESTART_DELAY_SECONDS)
            await asyncio.sleep(RESTART_DELAY_SECONDS)
