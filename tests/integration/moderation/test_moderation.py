"""Moderation against the real stack: flags, the queue (from the RLS-protected mirror), decisions,
appeals, and what each records."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from shared_code.app_context import AppContext
from tests.support.api import ApiClient
from tests.support.flows import drain
from tests.support.onboarding import onboard
from tests.support.stack import as_app_login


@pytest.fixture
async def flagged_post(api: ApiClient, app_context: AppContext) -> dict[str, Any]:
    for name in ("author", "reader", "mod", "mod2"):
        await onboard(api, name)
    post = (
        await api.call("POST", "/api/posts", subject="author", json_body={"content": "questionable"})
    ).json
    r = await api.call(
        "POST",
        f"/api/posts/{post['id']}/flags",
        subject="reader",
        json_body={"reason": "spam", "severity": "medium"},
    )
    assert r.status == 201, r
    await drain(app_context)
    return dict(post)


async def test_flags_reach_the_moderators_queue_only(api: ApiClient, flagged_post: dict[str, Any]) -> None:
    assert (await api.call("GET", "/api/moderation/queue", subject="reader")).status == 403
    queue = await api.call("GET", "/api/moderation/queue", subject="mod", role="moderator")
    assert queue.status == 200, queue
    assert [(i["postId"], i["openFlags"]) for i in queue.json["items"]] == [(flagged_post["id"], 1)]
    again = await api.call(
        "POST", f"/api/posts/{flagged_post['id']}/flags", subject="reader", json_body={"reason": "spam"}
    )
    assert again.status == 409
    own = await api.call(
        "POST", f"/api/posts/{flagged_post['id']}/flags", subject="author", json_body={"reason": "mine"}
    )
    assert own.status == 422


async def test_hide_then_restore_records_every_change(
    api: ApiClient, flagged_post: dict[str, Any], database_url: str, app_context: AppContext
) -> None:
    post_id = flagged_post["id"]
    decide = f"/api/moderation/posts/{post_id}/decision"
    assert (
        await api.call("POST", decide, subject="reader", json_body={"action": "hide", "reason": "x"})
    ).status == 403
    r = await api.call(
        "POST", decide, subject="mod", role="moderator", json_body={"action": "hide", "reason": "spam"}
    )
    assert (r.status, r.json["status"], r.json["changed"]) == (200, "hidden", True)
    assert (await api.call("GET", f"/api/posts/{post_id}", subject="reader")).status == 404
    assert (await api.call("GET", f"/api/posts/{post_id}", subject="author")).json["status"] == "hidden"
    assert (await api.call("GET", f"/api/posts/{post_id}", subject="mod2", role="moderator")).status == 200
    same = await api.call(
        "POST", decide, subject="mod", role="moderator", json_body={"action": "hide", "reason": "again"}
    )
    assert (same.status, same.json["changed"]) == (200, False)
    r = await api.call(
        "POST", decide, subject="mod", role="moderator", json_body={"action": "restore", "reason": "ok"}
    )
    assert (r.status, r.json["status"]) == (200, "visible")
    assert (await api.call("GET", f"/api/posts/{post_id}", subject="reader")).status == 200

    with psycopg.connect(database_url) as conn:
        actions = [
            row[0]
            for row in conn.execute(
                "SELECT action FROM moderation_actions WHERE post_id = %s ORDER BY created_at", (post_id,)
            )
        ]
        events = [
            row[0]
            for row in conn.execute(
                "SELECT event_type FROM outbox WHERE aggregate_id = %s ORDER BY id", (post_id,)
            )
        ]
        open_flags = conn.execute("SELECT count(*) FROM moderation_flags WHERE status = 'open'").fetchone()
    assert actions == ["hide", "restore"]
    assert events == ["post.created", "post.moderated", "post.moderated"]
    assert open_flags == (0,)
    await drain(app_context)
    queue = await api.call("GET", "/api/moderation/queue", subject="mod", role="moderator")
    assert queue.json["items"] == []


async def test_appeal_overturned_restores_the_post(api: ApiClient, flagged_post: dict[str, Any]) -> None:
    post_id = flagged_post["id"]
    early = await api.call(
        "POST", "/api/appeals", subject="author", json_body={"postId": post_id, "statement": "why"}
    )
    assert early.status == 409  # nothing to appeal yet
    await api.call(
        "POST",
        f"/api/moderation/posts/{post_id}/decision",
        subject="mod",
        role="moderator",
        json_body={"action": "remove", "reason": "rules"},
    )
    not_author = await api.call(
        "POST", "/api/appeals", subject="reader", json_body={"postId": post_id, "statement": "x"}
    )
    assert not_author.status == 404
    appeal = await api.call(
        "POST", "/api/appeals", subject="author", json_body={"postId": post_id, "statement": "it was satire"}
    )
    assert (appeal.status, appeal.json["status"]) == (201, "pending")
    twice = await api.call(
        "POST", "/api/appeals", subject="author", json_body={"postId": post_id, "statement": "!"}
    )
    assert twice.status == 409
    path = f"/api/moderation/appeals/{appeal.json['id']}/decision"
    r = await api.call(
        "POST",
        path,
        subject="mod",
        role="moderator",
        json_body={"decision": "overturned", "reason": "satire is fine"},
    )
    assert (r.status, r.json["status"]) == (200, "approved")
    assert (await api.call("GET", f"/api/posts/{post_id}", subject="reader")).status == 200
    r = await api.call(
        "POST", path, subject="mod", role="moderator", json_body={"decision": "upheld", "reason": "x"}
    )
    assert r.status == 409


async def test_the_admin_mirror_is_readable_by_moderators_only(
    flagged_post: dict[str, Any], database_url: str
) -> None:
    """Row-level security, with hand-written queries as the app's own login."""
    with psycopg.connect(as_app_login(database_url)) as conn:
        for role, visible in (("user", 0), ("moderator", 1), ("admin", 1)):
            with conn.transaction():
                conn.execute("SELECT set_config('chorus.role', %s, true)", (role,))
                (count,) = conn.execute("SELECT count(*) FROM posts_admin_mirror").fetchone()  # type: ignore[misc]
            assert count == visible, role
        # Moderators read it; only the relay ('system') writes it.
        with conn.transaction():
            conn.execute("SELECT set_config('chorus.role', 'moderator', true)")
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute("UPDATE posts_admin_mirror SET content = 'tampered'")
