"""Stopping the host's loops (timers, change-feed feeders) for sure.

A loop is stopped by cancelling its task, and a cancellation is easy to lose: a library may turn it into
its own error while cleaning up, and a loop that retries, records or sleeps off errors would then carry on
for ever, so stopping never ends. Hence: an error raised while the task is being cancelled is the stop's
doing and ends the loop (`raise_if_stopping`), and stopping asks again, and says where a task is stuck,
if a task outlives its cancellation (`cancel_and_wait`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("devhost.host")

# How long stopping waits for a cancelled loop before cancelling it again, and how many times it asks
# before it leaves the loop behind.
STOP_GRACE_SECONDS = 5.0
STOP_ATTEMPTS = 4


def being_cancelled() -> bool:
    """Whether the running task has been asked to stop (a cancellation it has not withdrawn)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def raise_if_stopping(exc: BaseException) -> None:
    """Turn an error raised while this task is being cancelled back into the cancellation, so that it is
    not retried, recorded as a failed batch or slept off: the work is left for the next start to redo."""
    if being_cancelled():
        raise asyncio.CancelledError(f"stopped ({type(exc).__name__}: {exc})") from exc


async def cancel_and_wait(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel `tasks` and wait for them to end, cancelling again any that outlives STOP_GRACE_SECONDS
    (and saying where it is stuck), so that stopping is bounded even if a cancellation is lost."""
    pending = {task for task in tasks if not task.done()}
    for _ in range(STOP_ATTEMPTS):
        if not pending:
            return
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=STOP_GRACE_SECONDS)
        for task in pending:
            log.warning(
                "%s is still running %.0f s after it was cancelled; cancelling it again. It waits in: %s",
                task.get_name(),
                STOP_GRACE_SECONDS,
                awaiting_chain(task),
            )
    for task in pending:
        log.error(
            "%s did not stop after %d cancellations; leaving it behind. It waits in: %s",
            task.get_name(),
            STOP_ATTEMPTS,
            awaiting_chain(task),
        )


def awaiting_chain(task: asyncio.Task[Any]) -> str:
    """Where a task waits: each coroutine it awaits, innermost last (Task.get_stack shows only the outermost)."""
    steps: list[str] = []
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
        if frame is None:
            steps.append(repr(awaited)[:200])
            break
        steps.append(f"{frame.f_code.co_name} ({frame.f_code.co_filename}:{frame.f_lineno})")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None)
    return " -> ".join(steps)
