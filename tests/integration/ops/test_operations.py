"""Runbook operations against the real stack: health, requeue, schema drift, reconcile and
feed rebuild (the admin routes, which share their code with `python -m shared_code.ops`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from azure.cosmos import CosmosClient

from devhost.cosmos_provisioning import provision
from devhost.services.cosmos import CosmosEmulator
from shared_code.app_context import AppContext
from shared_code.ops.schema_drift import SNAPSHOT_FILE, expected_schema, read_schema
from tests.support.api import ApiClient
from tests.support.flows import drain
from tests.support.onboarding import onboard
from tests.support.polling import eventually


def test_the_schema_snapshot_matches_the_migrations(postgres_server: Any, migrated_template: str) -> None:
    with psycopg.connect(postgres_server.url(migrated_template)) as conn:
        live = read_schema(conn)
    assert live == expected_schema(), (
        f"{SNAPSHOT_FILE.name} is out of date: run `make schema-snapshot` and commit it"
    )


async def test_health_reports_the_outbox_and_degrades_on_dead_events(
    api: ApiClient, database_url: str
) -> None:
    await onboard(api, "hanna")
    r = await api.call("GET", "/api/admin/health", subject="ops", role="admin")
    assert r.status == 200
    assert r.json["outbox"]["pending"] == 1
    assert r.json["status"] == "ok", r.json
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE outbox SET status = 'dead', attempts = 8, last_error = 'boom'")

    async def report() -> Any:
        return (await api.call("GET", "/api/admin/health", subject="ops", role="admin")).json

    # The report is cached for HEALTH_REPORT_CACHE_SECONDS (5 s), so the change shows within that.
    body = await eventually(report, lambda b: b["status"] == "degraded", timeout=15, what="degraded")
    assert body["outbox"]["dead"] == 1
    assert any("dead outbox event" in reason for reason in body["reasons"])


async def test_anonymous_health_is_liveness_and_the_report_is_for_admins(api: ApiClient) -> None:
    r = await api.call("GET", "/api/health")
    assert (r.status, r.json) == (200, {"status": "alive"})
    assert (await api.call("GET", "/api/admin/health", subject="ivy")).status == 403
    assert (await api.call("GET", "/api/admin/health")).status == 401


async def test_requeue_puts_dead_events_back_for_admins_only(api: ApiClient, database_url: str) -> None:
    await onboard(api, "ivan")
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE outbox SET status = 'dead', attempts = 8, last_error = 'boom'")
        (event_id,) = conn.execute("SELECT id FROM outbox").fetchone()  # type: ignore[misc]
    assert (await api.call("POST", "/api/admin/outbox/requeue", subject="ivan", json_body={})).status == 403
    r = await api.call(
        "POST", "/api/admin/outbox/requeue", subject="ops", role="admin", json_body={"eventIds": [event_id]}
    )
    assert (r.status, r.json) == (200, {"requeued": 1})
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT status, attempts FROM outbox").fetchone() == ("pending", 0)


async def test_schema_drift_is_reported_after_a_hand_made_alter_table(
    api: ApiClient, database_url: str
) -> None:
    r = await api.call("GET", "/api/admin/schema/drift", subject="ops", role="admin")
    assert (r.status, r.json) == (200, {"drifted": False, "differences": []})
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE posts ADD COLUMN mood text")
        conn.execute("DROP INDEX comments_live_by_post")
        conn.execute("UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 3")
    r = await api.call("GET", "/api/admin/schema/drift", subject="ops", role="admin")
    assert r.json["drifted"] is True
    found = {(d["kind"], d["name"], d["problem"]) for d in r.json["differences"]}
    assert ("column", "posts.mood", "extra") in found
    assert ("index", "comments.comments_live_by_post", "missing") in found
    assert any(
        kind == "migration" and "changed after it was applied" in problem for kind, _, problem in found
    )
    assert (await api.call("GET", "/api/admin/schema/drift", subject="x")).status == 403


async def test_reconcile_repairs_a_wiped_cosmos_and_rebuild_restores_feeds(
    api: ApiClient, app_context: AppContext, cosmos_emulator: CosmosEmulator, cosmos_database_name: str
) -> None:
    ann, ben = await onboard(api, "ann"), await onboard(api, "ben")
    await api.call("PUT", f"/api/users/{ann['id']}/follow", subject="ben")
    post = (
        await api.call("POST", "/api/posts", subject="ann", json_body={"content": "kept in postgres"})
    ).json
    await api.call("PUT", f"/api/posts/{post['id']}/reactions", subject="ben", json_body={"type": "wow"})
    await drain(app_context)

    clean = await api.call(
        "POST", "/api/admin/reconcile", subject="ops", role="admin", json_body={"userId": ann["id"]}
    )
    assert clean.status == 200, clean
    assert {k: v for k, v in clean.json["differenceCounts"].items() if not k.startswith("userFeed")} == {}

    with CosmosClient(cosmos_emulator.endpoint, credential=cosmos_emulator.key) as client:
        client.delete_database(cosmos_database_name)
        provision(client, cosmos_database_name)

    report = (
        await api.call(
            "POST",
            "/api/admin/reconcile",
            subject="ops",
            role="admin",
            json_body={"repair": True, "userId": ben["id"]},
        )
    ).json
    assert report["differenceCounts"]["posts_v2:missing"] == 1
    assert report["differenceCounts"]["publicProfiles:missing"] == 2
    assert report["differenceCounts"]["reactions:missing"] == 1
    assert report["repaired"] >= 4
    again = (
        await api.call(
            "POST", "/api/admin/reconcile", subject="ops", role="admin", json_body={"userId": ben["id"]}
        )
    ).json
    assert again["differenceCounts"] == {}

    rebuilt = await api.call("POST", f"/api/admin/feeds/{ben['id']}/rebuild", subject="ops", role="admin")
    assert (rebuilt.status, rebuilt.json["removed"]) == (200, 0)
    feed = (await api.call("GET", "/api/feed", subject="ben")).json
    assert [item["postId"] for item in feed["items"]] == [post["id"]]
    assert feed["items"][0]["counts"]["wow"] == 1
    profile = (await api.call("GET", f"/api/profiles/{ann['id']}", subject="ben")).json
    assert (profile["followers"], profile["posts"]) == (1, 1)


def test_the_snapshot_file_is_sorted_json() -> None:
    text = SNAPSHOT_FILE.read_text()
    assert json.loads(text) == expected_schema()
    assert Path(SNAPSHOT_FILE).suffix == ".json"


@pytest.mark.parametrize("route", ["/api/admin/reconcile", "/api/admin/outbox/requeue"])
async def test_operations_need_a_token(api: ApiClient, route: str) -> None:
    assert (await api.call("POST", route, json_body={})).status == 401
