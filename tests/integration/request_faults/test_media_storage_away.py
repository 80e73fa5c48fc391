"""Blob storage stopped or hanging while a client completes an upload: 503 with Retry-After within
3 s, the asset stays pending (the client completes it again later), never a 500 or a hang."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import pytest

from devhost.services.process import free_port
from tests.support.api import ApiClient
from tests.support.onboarding import onboard
from tests.support.outbox import OwnerDb
from tests.support.problems import PROBLEM_PREFIX
from tests.support.request_faults import ANSWER_WITHIN_SECONDS, call_ok


@pytest.fixture(params=["refused", "hanging"])
async def dead_blob_port(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    """A port where nothing listens, or where a server accepts connections and never answers."""
    if request.param == "refused":
        yield free_port()
        return
    held: list[asyncio.StreamWriter] = []

    async def never_answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.transport.abort()
        server.close()
        await server.wait_closed()


@pytest.fixture
def app_settings_values(app_settings_values: dict[str, str], dead_blob_port: int) -> dict[str, str]:
    """Media storage's blob endpoint moved to the dead port (signing needs no call: an account key)."""
    connection = re.sub(
        r"BlobEndpoint=http://127\.0\.0\.1:\d+/",
        f"BlobEndpoint=http://127.0.0.1:{dead_blob_port}/",
        app_settings_values["MediaStorage"],
    )
    assert connection != app_settings_values["MediaStorage"]
    return {**app_settings_values, "MediaStorage": connection}


@pytest.mark.timeout(60)
async def test_completing_an_upload_answers_503_and_the_asset_stays_pending(
    api: ApiClient, database_url: str
) -> None:
    await onboard(api, "alice")
    upload = (
        await call_ok(api, "POST", "/api/media", "alice", {"contentType": "image/png", "sizeBytes": 68})
    ).json
    started = time.monotonic()
    r = await api.call("POST", f"/api/media/{upload['mediaId']}/complete", subject="alice")
    elapsed = time.monotonic() - started
    assert r.status == 503, r
    assert r.json["type"] == PROBLEM_PREFIX + "unavailable" and int(r.headers["retry-after"]) > 0
    assert elapsed < ANSWER_WITHIN_SECONDS, f"503 after {elapsed:.2f} s"
    owner = await OwnerDb.connect(database_url)
    try:
        status = await owner.scalar("SELECT status FROM media_assets WHERE id = %s", (upload["mediaId"],))
    finally:
        await owner.close()
    assert status == "pending"
