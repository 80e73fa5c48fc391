"""The operator's actions on dead events and failed change-feed batches, by route and by CLI: skip a dead
event with a recorded reason (its aggregate moves on), list open change-feed failures, replay one once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import psycopg

from shared_code.app_context import AppContext
from shared_code.bootstrap import change_feed_service
from shared_code.projections.writes import FEED, POSTS, PROFILES
from tests.support.api import ApiClient
from tests.support.flows import drain
from tests.support.onboarding import onboard


def cli(settings: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared_code.ops", *args],
        env={**os.environ, **settings},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def outbox_rows(database_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT id, status, skip_reason, skipped_by, aggregate_version FROM outbox ORDER BY id"
        ).fetchall()


async def test_skip_gives_up_a_dead_event_with_its_reason_and_its_aggregate_moves_on(
    api: ApiClient, app_context: AppContext, database_url: str
) -> None:
    me = await onboard(api, "sam")
    r = await api.call("PATCH", "/api/users/me", subject="sam", json_body={"bio": "second version"})
    assert r.status == 200, r
    [(created, *_), (updated, *_)] = outbox_rows(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE outbox SET status = 'dead', attempts = 8, last_error = 'boom' WHERE id = %s", (created,)
        )

    skip = "/api/admin/outbox/skip"
    body = {"eventIds": [created, updated], "reason": "user.created payload cannot be projected; see INC-42"}
    assert (await api.call("POST", skip, subject="sam", json_body=body)).status == 403
    blank = await api.call("POST", skip, subject="ops", role="admin", json_body={**body, "reason": "  "})
    assert blank.status == 422, blank
    assert (
        await api.call("POST", skip, subject="ops", role="admin", json_body={"eventIds": []})
    ).status == 422
    assert [row[1] for row in outbox_rows(database_url)] == ["dead", "pending"]  # refusals changed nothing

    r = await api.call("POST", skip, subject="ops", role="admin", json_body=body)
    assert (r.status, r.json) == (200, {"skipped": [created]})  # only the dead one
    rows = outbox_rows(database_url)
    assert rows[0][1:4] == ("skipped", body["reason"], "ops")
    assert rows[1][1] == "pending"
    health = await api.call("GET", "/api/admin/health", subject="ops", role="admin")
    assert health.json["outbox"]["dead"] == 0

    # the aggregate's later event is no longer blocked
    await drain(app_context)
    assert [row[1] for row in outbox_rows(database_url)] == ["skipped", "published"]
    profile = await app_context.cosmos_db.get_container_client(PROFILES).read_item(me["id"], me["id"])
    assert (profile["version"], profile["bio"]) == (2, "second version")  # the update was projected
    # skipping it again: nothing (it is not dead any more)
    r = await api.call("POST", skip, subject="ops", role="admin", json_body=body)
    assert (r.status, r.json) == (200, {"skipped": []})


async def test_the_cli_skips_a_dead_event_with_a_reason(
    api: ApiClient, database_url: str, app_settings_values: dict[str, str]
) -> None:
    await onboard(api, "tia")
    [(event_id, *_)] = outbox_rows(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE outbox SET status = 'dead', attempts = 8, last_error = 'boom'")
    done = cli(app_settings_values, "skip", "--event-id", str(event_id), "--reason", "known bad payload")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"skipped": [event_id]}
    assert outbox_rows(database_url)[0][1:4] == ("skipped", "known bad payload", "operator-cli")


async def recorded_failure(api: ApiClient, app_context: AppContext) -> tuple[int, str, str]:
    """A post by ann (followed by bo) whose fan-out failed past its retries: recorded, feeds untouched."""
    await onboard(api, "ann")
    await onboard(api, "bob")
    ann = (await api.call("GET", "/api/users/me", subject="ann")).json["id"]
    assert (await api.call("PUT", f"/api/users/{ann}/follow", subject="bob")).status == 204
    await drain(app_context)
    post = (await api.call("POST", "/api/posts", subject="ann", json_body={"content": "hello"})).json["id"]
    await drain(app_context)
    doc = await app_context.cosmos_db.get_container_client(POSTS).read_item(post, post)
    failure_id = await change_feed_service(app_context).record_failure(
        "fan_out_posts", POSTS, [doc], TimeoutError("Cosmos timed out")
    )
    return failure_id, post, ann


async def feed_items(app_context: AppContext) -> set[str]:
    feed = app_context.cosmos_db.get_container_client(FEED)
    return {item["id"] async for item in feed.query_items("SELECT c.id FROM c")}


async def test_a_recorded_change_feed_failure_is_listed_and_replayed_once(
    api: ApiClient, app_context: AppContext, database_url: str
) -> None:
    failure_id, post, _ = await recorded_failure(api, app_context)
    listing = "/api/admin/change-feed/failures"
    assert (await api.call("GET", listing, subject="ann")).status == 403
    r = await api.call("GET", listing, subject="ops", role="admin")
    assert r.status == 200, r
    assert r.json["truncated"] is False
    [failure] = r.json["failures"]
    assert (failure["id"], failure["function"], failure["container"], failure["documentIds"]) == (
        failure_id,
        "fan_out_posts",
        POSTS,
        [post],
    )
    assert failure["error"] == "TimeoutError: Cosmos timed out"
    assert await feed_items(app_context) == set()

    replay = f"/api/admin/change-feed/failures/{failure_id}/replay"
    assert (await api.call("POST", replay, subject="ann")).status == 403
    r = await api.call("POST", replay, subject="ops", role="admin")
    assert (r.status, r.json) == (200, {"id": failure_id, "replayed": True, "documents": 1})
    assert len(await feed_items(app_context)) == 2  # ann's own feed and bo's
    again = await api.call("POST", replay, subject="ops", role="admin")
    assert again.status == 409, again
    assert "already replayed" in again.json["detail"] and "nothing was done again" in again.json["detail"]
    assert (await api.call("GET", listing, subject="ops", role="admin")).json["failures"] == []
    missing = await api.call(
        "POST", "/api/admin/change-feed/failures/999999/replay", subject="ops", role="admin"
    )
    assert missing.status == 404
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT replayed_by FROM change_feed_failures").fetchone() == ("ops",)


async def test_a_replay_that_fails_again_leaves_the_failure_open(
    api: ApiClient, app_context: AppContext, database_url: str
) -> None:
    failure_id, _, _ = await recorded_failure(api, app_context)
    with psycopg.connect(database_url) as conn:  # a batch its function can no longer handle
        conn.execute('UPDATE change_feed_failures SET documents = \'[{"id": "x"}]\'')
    r = await api.call(
        "POST", f"/api/admin/change-feed/failures/{failure_id}/replay", subject="ops", role="admin"
    )
    assert r.status == 503, r
    assert r.headers.get("retry-after") == "5"
    assert "stays open" in r.json["detail"]
    listed = await api.call("GET", "/api/admin/change-feed/failures", subject="ops", role="admin")
    assert [f["id"] for f in listed.json["failures"]] == [failure_id]


async def test_the_cli_lists_and_replays_a_failure_once(
    api: ApiClient, app_context: AppContext, app_settings_values: dict[str, str]
) -> None:
    failure_id, _, _ = await recorded_failure(api, app_context)
    listed = cli(app_settings_values, "change-feed-failures")
    assert listed.returncode == 0, listed.stderr
    assert [f["id"] for f in json.loads(listed.stdout)["failures"]] == [failure_id]
    done = cli(app_settings_values, "replay-change-feed-failure", str(failure_id))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"id": failure_id, "replayed": True, "documents": 1}
    again = cli(app_settings_values, "replay-change-feed-failure", str(failure_id))
    assert again.returncode != 0
    assert "already replayed" in again.stderr and "nothing was done again" in again.stderr
    assert len(await feed_items(app_context)) == 2
