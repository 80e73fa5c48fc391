"""What the request-path fault tests share: the answer-time promise, a small social graph whose feeds
are in Cosmos DB, and shortcuts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared_code.bootstrap import change_feed_service
from shared_code.projections.writes import POSTS
from tests.support.api import ApiClient, Response
from tests.support.flows import drain
from tests.support.onboarding import onboard

if TYPE_CHECKING:
    from shared_code.app_context import AppContext


# The promise is an answer within 3 s; the tests allow a little more for a loaded 2-core machine.
ANSWER_WITHIN_SECONDS = 3.5


async def call_ok(api: ApiClient, method: str, path: str, subject: str, body: Any = None) -> Response:
    r = await api.call(method, path, subject=subject, json_body=body)
    assert r.status in (200, 201, 204), r
    return r


@dataclass
class Graph:
    """bob follows alice, carol and dave, mutes carol and is blocked by dave; erin is not followed.
    Everyone has posted; one of alice's posts was deleted after the feeds were built."""

    ids: dict[str, str]
    deleted_post: str

    def id(self, name: str) -> str:
        return self.ids[name]


async def build_graph(api: ApiClient, context: AppContext) -> Graph:
    ids = {}
    for name in ("alice", "bob", "carol", "dave", "erin"):
        ids[name] = (await onboard(api, name))["id"]
    for name in ("alice", "carol", "dave"):
        await call_ok(api, "PUT", f"/api/users/{ids[name]}/follow", "bob")
    await call_ok(api, "PUT", f"/api/users/{ids['carol']}/mute", "bob")
    await call_ok(api, "PUT", f"/api/users/{ids['bob']}/block", "dave")
    posts: list[str] = []
    for author, count in (("alice", 4), ("carol", 1), ("dave", 1), ("erin", 1), ("bob", 2)):
        for n in range(count):
            r = await call_ok(api, "POST", "/api/posts", author, {"content": f"{author} says {n}"})
            posts.append(r.json["id"])
    await drain(context)
    # What the change-feed function would do with the posts the relay projected.
    container = context.cosmos_db.get_container_client(POSTS)
    documents = [doc async for doc in container.query_items("SELECT * FROM c")]
    await change_feed_service(context).fan_out_posts(documents)
    deleted = posts[1]  # one of alice's, taken down after it reached the feeds (not drained again)
    await call_ok(api, "DELETE", f"/api/posts/{deleted}", "alice")
    return Graph(ids=ids, deleted_post=deleted)


async def feed_pages(api: ApiClient, subject: str, limit: int) -> list[Response]:
    """Every page of `subject`'s feed, following the cursors."""
    pages = []
    cursor = None
    while True:
        r = await api.call(
            "GET", f"/api/feed?limit={limit}" + (f"&cursor={cursor}" if cursor else ""), subject=subject
        )
        assert r.status == 200, r
        pages.append(r)
        cursor = r.json["nextCursor"]
        if not cursor:
            return pages
