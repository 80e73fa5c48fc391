"""Steps many integration tests share: draining the outbox (onboarding is tests/support/onboarding.py)."""

from __future__ import annotations

from shared_code.app_context import AppContext
from shared_code.bootstrap import outbox_relay


async def drain(context: AppContext) -> None:
    """Run the relay until the outbox has nothing claimable left."""
    relay = outbox_relay(context)
    while (await relay.run_once()).claimed:
        pass
