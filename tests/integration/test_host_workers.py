"""The local host with two worker processes (FUNCTIONS_WORKER_PROCESS_COUNT=2), as the Functions host
runs a Python app: both workers serve HTTP on the one port, each timer runs on one worker at a time,
the change-feed leases split between the workers, and a worker that dies is restarted and takes its
share back while the other keeps serving (docs/local-host.md)."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from devhost.host.app_index import load_function_app
from devhost.settings_file import PROJECT_DIR
from tests.support.http_client import ApiUser
from tests.support.onboarding import onboard_over_http
from tests.support.polling import eventually
from tests.support.running_stack import HostProcess, RunningStack

SETTLE_SECONDS = 90.0
CHANGE_FEED_FUNCTIONS = ("fan_out_posts", "count_reactions")


def _timer_names(stack: RunningStack, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The app's timer functions, indexed as the host indexes them (with the stack's settings)."""
    for name, value in stack.app_settings.items():
        monkeypatch.setenv(name, value)
    return {s.name for s in load_function_app(PROJECT_DIR) if s.trigger_type == "timerTrigger"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = RunningStack.start(tmp_path_factory.mktemp("workers-stack") / "state")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def host(stack: RunningStack) -> Iterator[HostProcess]:
    process = HostProcess(stack, "two-workers", settings={"FUNCTIONS_WORKER_PROCESS_COUNT": "2"})
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def http(host: HostProcess) -> AsyncIterator[aiohttp.ClientSession]:
    await host.wait_ready()
    async with aiohttp.ClientSession() as session:
        yield session


def _split(statuses: dict[int, dict[str, Any]]) -> bool:
    """Each change-feed function's leases: one per worker (the stack's default of two leases)."""
    return all(
        sorted(len(s["changeFeedLeases"][name]) for s in statuses.values()) == [1, 1]
        for name in CHANGE_FEED_FUNCTIONS
    )


async def test_both_workers_serve_http_on_the_one_port(
    host: HostProcess, http: aiohttp.ClientSession
) -> None:
    statuses = await host.worker_status()
    assert sorted(statuses) == [0, 1]
    assert {s["pid"] for s in statuses.values()} == set(host.worker_pids().values())
    assert len({s["pid"] for s in statuses.values()}) == 2, "one process answered for both workers"
    async with http.get(host.base_url + "/api/health") as response:
        assert response.status == 200


async def test_each_timer_is_held_by_exactly_one_worker(
    host: HostProcess, stack: RunningStack, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    timers = _timer_names(stack, monkeypatch)
    assert "outbox_relay_timer" in timers

    async def held() -> list[list[str]]:
        return [s["timers"] for s in (await host.worker_status()).values()]

    holdings = await eventually(
        held,
        lambda h: sorted(t for worker in h for t in worker) == sorted(timers),
        timeout=SETTLE_SECONDS,
        interval=0.5,
        what="every timer's singleton lock held by one worker",
    )
    # Sorted over both workers equals the set: no timer is held twice.
    assert sum(len(worker) for worker in holdings) == len(timers)


async def test_a_killed_worker_is_restarted_and_the_leases_split_again_with_nothing_lost(
    host: HostProcess, stack: RunningStack, http: aiohttp.ClientSession
) -> None:
    await eventually(
        host.worker_status,
        _split,
        timeout=SETTLE_SECONDS,
        interval=0.5,
        what="the leases split over both workers",
    )
    author = await onboard_over_http(http, host.base_url, stack.state_dir, prefix="wauthor")
    reader = await onboard_over_http(http, host.base_url, stack.state_dir, prefix="wreader")
    await reader.ok("PUT", f"/api/users/{author.id}/follow")
    before = host.worker_pids()
    os.kill(before[1], signal.SIGKILL)

    # Written while worker 1 is down or restarting: a request on a connection the kernel gave the dead
    # worker gets no answer and is retried, as a client would.
    posts = [await _post(author, f"while a worker restarts #{n}") for n in range(6)]

    statuses = await eventually(
        host.worker_status,
        lambda s: s[1]["pid"] != before[1] and _split(s),
        timeout=SETTLE_SECONDS,
        interval=0.5,
        what="worker 1 restarted and holding its share of the leases again",
    )
    assert statuses[0]["pid"] == before[0], "the other worker was restarted too"
    feed = await eventually(
        lambda: _feed_ids(reader),
        lambda ids: set(posts) <= set(ids),
        timeout=SETTLE_SECONDS,
        interval=0.5,
        what="every post in the follower's feed",
    )
    assert len([p for p in feed if p in posts]) == len(posts), "a post reached the feed twice"


async def _post(author: ApiUser, content: str) -> str:
    key = str(uuid.uuid4())  # a retry of a request that got no answer creates nothing twice

    async def attempt() -> Any:
        return await author.call("POST", "/api/posts", {"content": content}, headers={"Idempotency-Key": key})

    answer = await eventually(
        attempt, lambda a: a.status == 201, timeout=SETTLE_SECONDS, what="the post answered"
    )
    return str(answer.body["id"])


async def _feed_ids(reader: ApiUser) -> list[str]:
    return await reader.feed_post_ids()
