"""Steps many integration tests share: onboarding a user, draining the outbox."""

from __future__ import annotations

from typing import Any

from shared_code.app_context import AppContext
from shared_code.bootstrap import outbox_relay
from tests.support.api import ApiClient


async def onboard(api: ApiClient, name: str) -> dict[str, Any]:
    r = await api.call("POST", "/api/users", subject=name, json_body={"username": name, "displayName": name})
    assert r.status == 201, r
    return dict(r.json)


async def drain(context: AppContext) -> None:
    """Run the relay until the outbox has nothing claimable left."""
    relay = outbox_relay(context)
    while (await relay.run_once()).claimed:
        pass
