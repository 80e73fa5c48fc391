"""Cosmos DB stopped, hanging, failing (503) or throttling (429) while requests come in: the home
feed answers 200 from PostgreSQL, marked degraded, with the same posts in the same order; every
other projection read answers 503 with Retry-After; each within 3 s; writes go on."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from shared_code.app_context import AppContext
from tests.support.api import ApiClient, Response
from tests.support.cosmos_fault_proxy import CosmosFaultProxy, Mode
from tests.support.problems import PROBLEM_PREFIX
from tests.support.request_faults import ANSWER_WITHIN_SECONDS, Graph, build_graph, call_ok, feed_pages

FAULTS: list[Mode] = ["refuse", "hang", "fail-503", "fail-429"]


@pytest.fixture
async def graph(api: ApiClient, app_context: AppContext) -> Graph:
    return await build_graph(api, app_context)


def post_ids(pages: list[Response]) -> list[str]:
    return [item["postId"] for page in pages for item in page.json["items"]]


async def timed(api: ApiClient, method: str, path: str, subject: str, body: Any = None) -> Response:
    started = time.monotonic()
    r = await api.call(method, path, subject=subject, json_body=body)
    elapsed = time.monotonic() - started
    assert elapsed < ANSWER_WITHIN_SECONDS, f"{method} {path} answered {r.status} after {elapsed:.2f} s"
    return r


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fault", FAULTS)
async def test_the_feed_comes_from_postgresql_with_the_same_posts_while_cosmos_is_away(
    api: ApiClient, graph: Graph, cosmos_proxy: CosmosFaultProxy, fault: Mode
) -> None:
    from_projections = await feed_pages(api, "bob", limit=2)
    assert all("chorus-degraded" not in page.headers for page in from_projections)
    expected = post_ids(from_projections)
    # The projection's view: alice's live posts and bob's own, nothing of carol (muted), dave (blocks
    # bob) or erin (not followed), and not the deleted post.
    assert len(expected) == 5 and graph.deleted_post not in expected

    await cosmos_proxy.set_mode(fault)
    pages = []
    cursor = None
    while True:
        r = await timed(api, "GET", "/api/feed?limit=2" + (f"&cursor={cursor}" if cursor else ""), "bob")
        assert r.status == 200, r
        assert r.headers.get("chorus-degraded") == "feed-from-postgres"
        pages.append(r)
        cursor = r.json["nextCursor"]
        if not cursor:
            break
    assert post_ids(pages) == expected
    assert [len(page.json["items"]) for page in pages] == [2, 2, 1]
    first = pages[0].json["items"][0]
    projected = from_projections[0].json["items"][0]
    assert first == projected, "a degraded item has the same shape and values as the projected one"


@pytest.mark.timeout(120)
async def test_a_pagination_begun_in_cosmos_goes_on_from_postgresql_and_back(
    api: ApiClient, graph: Graph, cosmos_proxy: CosmosFaultProxy
) -> None:
    expected = post_ids(await feed_pages(api, "bob", limit=2))
    first = await api.call("GET", "/api/feed?limit=2", subject="bob")
    assert "chorus-degraded" not in first.headers

    await cosmos_proxy.set_mode("refuse")
    second = await timed(api, "GET", f"/api/feed?limit=2&cursor={first.json['nextCursor']}", "bob")
    assert second.status == 200 and second.headers.get("chorus-degraded") == "feed-from-postgres"

    await cosmos_proxy.heal()
    # The cursor is one keyset for every source: the pagination goes on from Cosmos DB once it is back.
    rest = []
    cursor = second.json["nextCursor"]
    while cursor:
        page = await api.call("GET", f"/api/feed?limit=2&cursor={cursor}", subject="bob")
        assert page.status == 200 and "chorus-degraded" not in page.headers
        rest.append(page)
        cursor = page.json["nextCursor"]
    assert rest
    assert post_ids([first, second, *rest]) == expected
    fresh = await api.call("GET", "/api/feed?limit=2", subject="bob")
    assert fresh.status == 200 and "chorus-degraded" not in fresh.headers


def assert_unavailable(r: Response) -> None:
    assert r.status == 503, r
    assert r.headers.get("content-type", "").startswith("application/problem+json") or r.json["type"]
    assert r.json["type"] == PROBLEM_PREFIX + "unavailable", r.json
    assert r.json["status"] == 503
    assert int(r.headers["retry-after"]) > 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fault", FAULTS)
async def test_other_projection_reads_answer_503_with_retry_after_and_writes_go_on(
    api: ApiClient,
    graph: Graph,
    cosmos_proxy: CosmosFaultProxy,
    fault: Mode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    alice, post_id = graph.id("alice"), graph.deleted_post
    live_post = (await call_ok(api, "POST", "/api/posts", "alice", {"content": "still here"})).json["id"]
    await cosmos_proxy.set_mode(fault)
    caplog.set_level(logging.WARNING, logger="chorus.http")
    for method, path in (
        ("GET", "/api/notifications"),
        ("GET", "/api/notifications?unread=true"),
        ("POST", "/api/notifications/read-all"),
        ("POST", f"/api/notifications/{alice}:{post_id}:follow/read"),
        ("GET", f"/api/profiles/{alice}"),
        ("GET", f"/api/posts/{live_post}/reactions"),
    ):
        assert_unavailable(await timed(api, method, path, "bob"))
    # Writes touch only PostgreSQL (the outbox holds the events until Cosmos DB answers again).
    r = await timed(api, "POST", "/api/posts", "bob", {"content": "written while Cosmos DB is away"})
    assert r.status == 201, r
    # Reads served by PostgreSQL alone are not affected.
    assert (await timed(api, "GET", f"/api/posts/{live_post}", "bob")).status == 200
    operator = [
        record.getMessage()
        for record in caplog.records
        if "Cosmos DB is not answering" in record.getMessage()
    ]
    assert operator, "no operator message in the log"
    assert "Check the Cosmos DB account" in operator[0]

    await cosmos_proxy.heal()
    assert (await api.call("GET", f"/api/profiles/{alice}", subject="bob")).status == 200
    assert (await api.call("GET", "/api/notifications", subject="bob")).status == 200
