"""The real app behind the local host's HTTP server, on the test session's services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devhost.host.server import FunctionHost
from shared_code.app_context import AppContext
from tests.support.local_host import hosted_app


@pytest.fixture
async def local_host(
    app_context: AppContext,
    app_settings_values: dict[str, str],
    state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> AsyncIterator[FunctionHost]:
    async with hosted_app(app_settings_values, monkeypatch, tmp_path) as host:
        yield host
