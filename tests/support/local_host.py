"""The real app behind the local host's HTTP server, on the test session's services: for the tests
that reach it over HTTP as a client would (tests/e2e, tests/security)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from devhost.host.server import FunctionHost
from devhost.services.process import free_port
from devhost.settings_file import PROJECT_DIR


@asynccontextmanager
async def hosted_app(
    app_settings: dict[str, str], monkeypatch: pytest.MonkeyPatch, work_dir: Path
) -> AsyncIterator[FunctionHost]:
    """A started host with `app_settings` as its environment (an empty value unsets the variable)."""
    for name, value in app_settings.items():
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)
    host = FunctionHost(PROJECT_DIR, work_dir, port=free_port())
    await host.start()
    try:
        yield host
    finally:
        await host.stop()
