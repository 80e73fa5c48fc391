"""The real app behind the local host's HTTP server, on the test session's services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devhost.host.server import FunctionHost
from devhost.services.process import free_port
from devhost.settings_file import PROJECT_DIR
from shared_code.app_context import AppContext


@pytest.fixture
async def local_host(
    app_context: AppContext,
    app_settings_values: dict[str, str],
    state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> AsyncIterator[FunctionHost]:
    for name, value in app_settings_values.items():
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)
    host = FunctionHost(PROJECT_DIR, tmp_path, port=free_port())
    await host.start()
    try:
        yield host
    finally:
        await host.stop()
