"""A Chorus user over real HTTP: a bearer token, the answers with their headers and timings."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: Any
    seconds: float

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


# What a client that lost its connection (the host killed under it) sees instead of an answer.
NO_ANSWER = 0


@dataclass
class ApiUser:
    http: aiohttp.ClientSession
    base_url: str
    token: str
    id: str = ""
    username: str = ""

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Answer:
        """One request; a connection the server dropped is an Answer with status NO_ANSWER."""
        request_headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        started = time.monotonic()
        try:
            async with self.http.request(
                method,
                self.base_url + path,
                json=body,
                headers=request_headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                text = await response.text()
                return Answer(
                    status=response.status,
                    headers={k.lower(): v for k, v in response.headers.items()},
                    body=json.loads(text) if text else None,
                    seconds=time.monotonic() - started,
                )
        except (aiohttp.ClientConnectionError, aiohttp.ServerDisconnectedError, TimeoutError):
            return Answer(status=NO_ANSWER, headers={}, body=None, seconds=time.monotonic() - started)

    async def ok(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        answer = await self.call(method, path, body, headers)
        assert answer.status in (200, 201, 204), (method, path, answer)
        return answer.body

    async def feed_post_ids(self) -> list[str]:
        page = await self.ok("GET", "/api/feed?limit=100")
        return [item["postId"] for item in page["items"]]
