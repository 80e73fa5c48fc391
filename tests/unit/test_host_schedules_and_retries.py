import asyncio
from datetime import UTC, datetime

import pytest

from devhost.host.app_index import AppIndexError, FunctionSpec, RetryPolicy, timespan_seconds
from devhost.host.retries import invoke_with_retries
from devhost.host.timers import Schedule, next_due


def test_ncrontab_has_seconds_first() -> None:
    start = datetime(2026, 1, 1, 12, 0, 7, tzinfo=UTC)
    assert Schedule("*/10 * * * * *").next_after(start) == datetime(2026, 1, 1, 12, 0, 10, tzinfo=UTC)
    assert Schedule("0 30 9 * * *").next_after(start) == datetime(2026, 1, 2, 9, 30, 0, tzinfo=UTC)


def test_timespan_schedule_is_an_interval() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert (Schedule("00:00:15").next_after(start) - start).total_seconds() == 15


@pytest.mark.parametrize("bad", ["* * * * *", "61 * * * * *", "soon", "00:00:00"])
def test_bad_schedules_are_refused(bad: str) -> None:
    with pytest.raises(AppIndexError):
        Schedule(bad)


def test_timespans() -> None:
    assert timespan_seconds("00:00:01.5") == 1.5
    assert timespan_seconds("1.02:00:00") == 93600


def test_exponential_backoff_is_capped() -> None:
    policy = RetryPolicy("exponential_backoff", 5, minimum_seconds=1, maximum_seconds=5)
    assert [policy.delay_before(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    assert policy.allows(5)
    assert not policy.allows(6)
    assert RetryPolicy("fixed_delay", -1).allows(10_000)


def _spec(retry: RetryPolicy | None) -> FunctionSpec:
    def function() -> None: ...

    return FunctionSpec("f", function, ({"type": "timerTrigger", "name": "t"},), retry)


async def test_invoke_with_retries_retries_then_succeeds() -> None:
    calls: list[int] = []
    delays: list[float] = []

    async def flaky(
        spec: FunctionSpec,
        trigger_value: object,
        *,
        summary: str = "",
        trace_parent: str | None = None,
        retry_count: int = 0,
    ) -> str:
        calls.append(retry_count)
        if len(calls) < 3:
            raise RuntimeError("not yet")
        return "done"

    async def record(delay: float) -> None:
        delays.append(delay)

    spec = _spec(RetryPolicy("fixed_delay", 3, delay_seconds=0.5))
    assert await invoke_with_retries(spec, None, flaky, sleep=record) == "done"
    assert calls == [0, 1, 2]
    assert delays == [0.5, 0.5]


async def test_invoke_with_retries_gives_up_after_the_policy() -> None:
    calls: list[int] = []

    async def broken(
        spec: FunctionSpec,
        trigger_value: object,
        *,
        summary: str = "",
        trace_parent: str | None = None,
        retry_count: int = 0,
    ) -> None:
        calls.append(retry_count)
        raise RuntimeError("always")

    async def no_wait(delay: float) -> None: ...

    with pytest.raises(RuntimeError, match="always"):
        await invoke_with_retries(_spec(RetryPolicy("fixed_delay", 2)), None, broken, sleep=no_wait)
    assert calls == [0, 1, 2]
    calls.clear()
    with pytest.raises(RuntimeError):
        await invoke_with_retries(_spec(None), None, broken, sleep=no_wait)
    assert calls == [0]


def test_an_occurrence_missed_during_a_long_run_fires_at_once() -> None:
    every_minute = Schedule("0 * * * * *")
    ran = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    # Finished in time: the next minute.
    assert next_due(every_minute, ran, ran.replace(second=59)) == datetime(2026, 1, 1, 12, 1, tzinfo=UTC)
    # Overran by a second: 12:01 is already past and runs now, not at 12:02.
    late = datetime(2026, 1, 1, 12, 1, 1, tzinfo=UTC)
    assert next_due(every_minute, ran, late) == datetime(2026, 1, 1, 12, 1, tzinfo=UTC)
    # Overran by minutes: the missed occurrences fold into one, the latest.
    assert next_due(every_minute, ran, datetime(2026, 1, 1, 12, 3, 30, tzinfo=UTC)) == datetime(
        2026, 1, 1, 12, 3, tzinfo=UTC
    )


async def test_a_function_that_fails_because_the_host_is_stopping_is_neither_retried_nor_given_up() -> None:
    """A library may turn the stop's cancellation into its own error; the invocation must still end as a
    cancellation (so a change-feed batch is not recorded as failed and is redone after the restart)."""

    calls: list[int] = []
    running = asyncio.Event()

    async def cut_short(
        spec: FunctionSpec,
        trigger_value: object,
        *,
        summary: str = "",
        trace_parent: str | None = None,
        retry_count: int = 0,
    ) -> None:
        calls.append(retry_count)
        running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise ConnectionError("the connection was closed while a query ran") from None

    async def no_wait(delay: float) -> None: ...

    spec = _spec(RetryPolicy("fixed_delay", 5))
    task = asyncio.create_task(invoke_with_retries(spec, None, cut_short, sleep=no_wait))
    await running.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == [0]
