"""Closed-loop load: `concurrency` workers, each issuing its next operation when the last one answered,
for a fixed time (and never more than a fixed count). Every operation's latency goes into an HDR
histogram. The same loop drives HTTP requests to the host and the direct psycopg/Cosmos baselines, so
a ratio compares like with like.

A closed loop slows down when the server does (coordinated omission): its percentiles describe what
`concurrency` busy clients experience, not an open arrival rate. The reports say so.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.histogram import LatencyHistogram

# One operation of worker `w`: returns an outcome label ("ok" or an error such as "http 500").
Operation = Callable[[int], Awaitable[str]]


@dataclass
class LoadResult:
    concurrency: int
    seconds: float
    histogram: LatencyHistogram
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> int:
        return self.outcomes.get("ok", 0)

    @property
    def rate(self) -> float:
        """Successful operations per second."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "seconds": round(self.seconds, 3),
            "ok": self.ok,
            "errors": {k: v for k, v in self.outcomes.items() if k != "ok"},
            "rate_per_s": round(self.rate, 1),
            "latency": self.histogram.summary(),
        }


async def closed_loop(
    operation: Operation,
    concurrency: int,
    seconds: float,
    max_operations: int = 10**9,
    warmup_seconds: float = 0.0,
) -> LoadResult:
    """Run `operation` from `concurrency` workers for `seconds` (after an unrecorded warm-up)."""
    if warmup_seconds > 0:
        await _loop(operation, concurrency, warmup_seconds, max_operations, None, Counter())
    histogram = LatencyHistogram()
    outcomes: Counter[str] = Counter()
    started = time.perf_counter()
    await _loop(operation, concurrency, seconds, max_operations, histogram, outcomes)
    return LoadResult(concurrency, time.perf_counter() - started, histogram, outcomes)


async def _loop(
    operation: Operation,
    concurrency: int,
    seconds: float,
    max_operations: int,
    histogram: LatencyHistogram | None,
    outcomes: Counter[str],
) -> None:
    deadline = time.perf_counter() + seconds
    issued = 0

    async def worker(index: int) -> None:
        nonlocal issued
        while time.perf_counter() < deadline and issued < max_operations:
            issued += 1
            began = time.perf_counter()
            try:
                outcome = await operation(index)
            except Exception as exc:  # a failed operation is counted, never hidden
                outcome = type(exc).__name__
            if histogram is not None:
                if outcome == "ok":
                    histogram.record_seconds(time.perf_counter() - began)
                outcomes[outcome] += 1

    await asyncio.gather(*(worker(i) for i in range(concurrency)))


class Http:
    """A keep-alive HTTP client for the host's API, with bearer tokens."""

    def __init__(self, base_url: str, connections: int = 1000) -> None:
        self.base_url = base_url.rstrip("/")
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Http:
        connector = aiohttp.TCPConnector(limit=self._connections, limit_per_host=self._connections)
        timeout = aiohttp.ClientTimeout(total=120)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        assert self._session is not None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body)
        async with self._session.request(
            method, self.base_url + path, data=data, headers=headers
        ) as response:
            raw = await response.read()
            payload = json.loads(raw) if raw and response.content_type.endswith("json") else None
            return response.status, payload

    async def call_headers(
        self, method: str, path: str, token: str | None = None
    ) -> tuple[int, dict[str, str]]:
        """A bodiless request's status and response headers (lower-case names); the body is read and
        dropped."""
        assert self._session is not None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self._session.request(method, self.base_url + path, headers=headers) as response:
            await response.read()
            return response.status, {k.lower(): v for k, v in response.headers.items()}

    async def expect(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: Any = None,
        statuses: tuple[int, ...] = (200, 201, 204),
    ) -> Any:
        status, payload = await self.call(method, path, token, body)
        if status not in statuses:
            raise RuntimeError(f"{method} {path} answered {status}: {payload}")
        return payload

    def outcome_of(self, status: int, expected: tuple[int, ...] = (200, 201, 204)) -> str:
        return "ok" if status in expected else f"http {status}"
