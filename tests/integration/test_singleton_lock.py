"""The timers' singleton lock (devhost/host/singleton.py) on blob leases in Azurite: one holder at a
time, a released or expired lock passes to the next, and a holder restarted in the same place takes its
own lock back at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import pytest

from devhost.host import singleton
from devhost.host.singleton import SingletonLock, run_while_held
from tests.support.polling import eventually

if TYPE_CHECKING:
    from devhost.services.azurite import Azurite


@pytest.fixture
async def locks(azurite: Azurite) -> AsyncIterator[list[SingletonLock]]:
    """Three holders of one fresh lock name: "a", "b" and "a" again (as if restarted)."""
    name = f"Host.Functions.t{uuid.uuid4().hex[:8]}.Listener"
    made = [SingletonLock(azurite.connection_string, "test-host", name, holder) for holder in ("a", "b", "a")]
    yield made
    for lock in made:
        await lock.release()
        await lock.close()


async def test_one_holder_at_a_time_and_a_released_lock_passes_on(locks: list[SingletonLock]) -> None:
    a, b, _ = locks
    assert await a.try_acquire()
    assert not await b.try_acquire()
    assert await a.renew()
    assert not await b.renew()
    await a.release()
    assert await b.try_acquire()
    assert not await a.try_acquire()


async def test_a_holder_restarted_in_the_same_place_takes_its_lock_back(locks: list[SingletonLock]) -> None:
    a, b, a_again = locks
    assert await a.try_acquire()
    # The first "a" died without releasing; its successor proposes the same lease id.
    assert await a_again.try_acquire()
    assert not await b.try_acquire()


async def test_an_abandoned_lock_expires_and_another_holder_takes_it(locks: list[SingletonLock]) -> None:
    a, b, _ = locks
    assert await a.try_acquire()  # and never renewed: its holder is gone
    await eventually(
        b.try_acquire,
        lambda taken: taken,
        timeout=singleton.LEASE_SECONDS * 3,
        interval=0.5,
        what="the expired lock taken by another holder",
    )
    assert not await a.renew()


async def test_two_contenders_never_run_at_once_and_the_survivor_takes_over(
    locks: list[SingletonLock], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(singleton, "POLL_SECONDS", 0.1)
    a, b, _ = locks
    running: set[str] = set()
    overlaps: list[set[str]] = []
    ran: list[str] = []

    def body(holder: str) -> Callable[[asyncio.Event], Awaitable[None]]:
        async def run(lost: asyncio.Event) -> None:
            while not lost.is_set():
                running.add(holder)
                if len(running) > 1:
                    overlaps.append(set(running))
                ran.append(holder)
                await asyncio.sleep(0.02)
                running.discard(holder)
                await asyncio.sleep(0)

        return run

    first = asyncio.create_task(run_while_held(a, body("a"), "test a"))
    await eventually(lambda: _value(ran), lambda r: "a" in r, timeout=60, what="the first holder running")
    second = asyncio.create_task(run_while_held(b, body("b"), "test b"))
    first.cancel()  # the holder stops: it releases the lock on its way out
    await asyncio.gather(first, return_exceptions=True)
    running.discard("a")
    await eventually(lambda: _value(ran), lambda r: "b" in r, timeout=60, what="the second holder running")
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    assert overlaps == []
    assert ran.index("b") > max(i for i, h in enumerate(ran) if h == "a")


async def _value(ran: list[str]) -> list[str]:
    return list(ran)
