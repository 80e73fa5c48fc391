"""Stopping the local host is bounded even when a loop loses its cancellation (devhost/host/cancellation.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from devhost.host import cancellation, server
from devhost.host.cancellation import awaiting_chain, cancel_and_wait
from devhost.host.server import run_supervised


async def _wait_for(event: asyncio.Event) -> None:
    await event.wait()


async def test_a_loop_that_swallows_its_first_cancellation_is_cancelled_again_and_named(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(cancellation, "STOP_GRACE_SECONDS", 0.05)
    never = asyncio.Event()
    swallowed = 0

    async def stubborn_loop() -> None:
        nonlocal swallowed
        while True:
            try:
                await _wait_for(never)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # as a library that loses a cancellation in a race does

    task = asyncio.create_task(stubborn_loop(), name="timer outbox_relay_timer")
    await asyncio.sleep(0)  # let it start waiting
    with caplog.at_level(logging.WARNING, logger="devhost.host"):
        await cancel_and_wait([task])
    assert task.cancelled()
    assert swallowed == 1
    [warning] = [r.getMessage() for r in caplog.records]
    assert "timer outbox_relay_timer is still running" in warning
    assert "_wait_for (" in warning and "stubborn_loop (" in warning


async def test_a_loop_that_never_stops_is_left_behind_with_an_error_not_waited_for_forever(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(cancellation, "STOP_GRACE_SECONDS", 0.01)
    release = asyncio.Event()

    async def deaf_loop() -> None:
        while not release.is_set():
            try:
                await _wait_for(release)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(deaf_loop(), name="change feed deaf")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="devhost.host"):
        await cancel_and_wait([task])
    assert not task.done()
    assert any(
        r.levelno == logging.ERROR and "change feed deaf did not stop" in r.getMessage()
        for r in caplog.records
    )
    release.set()
    await task


async def test_loops_that_end_when_cancelled_end_at_once_without_a_word(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = [asyncio.create_task(_wait_for(asyncio.Event())) for _ in range(3)]
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="devhost.host"):
        await cancel_and_wait(tasks)
    assert all(t.cancelled() for t in tasks)
    assert not caplog.records


async def test_the_awaiting_chain_ends_at_the_future_a_task_waits_on() -> None:
    task = asyncio.create_task(_wait_for(asyncio.Event()))
    await asyncio.sleep(0)
    chain = awaiting_chain(task)
    assert chain.startswith("_wait_for (") and "wait (" in chain and "Future" in chain
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_loop_whose_clean_up_fails_when_cancelled_is_not_started_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started = 0
    running = asyncio.Event()

    async def timer_loop() -> None:
        nonlocal started
        started += 1
        try:
            running.set()
            await _wait_for(asyncio.Event())
        finally:
            raise ConnectionError("the lock's storage did not answer the release")

    task = asyncio.create_task(run_supervised("timer outbox_relay_timer", timer_loop))
    await running.wait()
    with caplog.at_level(logging.WARNING, logger="devhost.host"):
        await cancel_and_wait([task])
    assert task.done() and started == 1
    assert any("failed while it was being stopped" in r.getMessage() for r in caplog.records)


async def test_a_loop_that_crashes_on_its_own_is_started_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "RESTART_DELAY_SECONDS", 0)
    starts = 0

    async def flaky_loop() -> None:
        nonlocal starts
        starts += 1
        if starts < 3:
            raise ConnectionError("the feed was away")

    await run_supervised("change feed flaky", flaky_loop)
    assert starts == 3
