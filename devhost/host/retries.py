"""The Functions retry policy for non-HTTP triggers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from devhost.host.app_index import FunctionSpec
from devhost.host.cancellation import raise_if_stopping

log = logging.getLogger("devhost.retries")


class Invoke(Protocol):
    def __call__(
        self,
        spec: FunctionSpec,
        trigger_value: Any,
        *,
        summary: str = "",
        trace_parent: str | None = None,
        retry_count: int = 0,
    ) -> Awaitable[Any]: ...


async def invoke_with_retries(
    spec: FunctionSpec,
    trigger_value: Any,
    invoke: Invoke,
    summary: str = "",
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Any:
    """Invoke; on failure retry as the function's policy says; re-raise the last failure."""
    retry_number = 0
    while True:
        try:
            return await invoke(spec, trigger_value, summary=summary, retry_count=retry_number)
        except Exception as exc:
            raise_if_stopping(exc)  # a stopping host neither retries nor gives the work up: it is redone
            retry_number += 1
            if spec.retry is None or not spec.retry.allows(retry_number):
                raise
            delay = spec.retry.delay_before(retry_number)
            log.warning(
                "%s failed (%s: %s); retry %d in %.1f s",
                spec.name,
                type(exc).__name__,
                exc,
                retry_number,
                delay,
            )
            await sleep(delay)
