"""Tokens, requests and the social graph, tried as an attacker would: over HTTP against the local
host (the real app, its relay and change-feed functions, on the test session's services), with
tokens signed by the local host's signing key. docs/security.md names each threat these stop."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from devhost.host.server import FunctionHost
from devhost.settings_file import PROJECT_DIR, example_settings
from shared_code.app_context import AppContext
from tests.support.api import Response
from tests.support.chorus import token_with
from tests.support.local_host import hosted_app
from tests.support.polling import eventually
from tests.support.problems import assert_problem

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def local_host(
    app_context: AppContext,
    app_settings_values: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> AsyncIterator[FunctionHost]:
    """The app behind the local host's HTTP server (as tests/e2e's), for this module's attacks."""
    async with hosted_app(app_settings_values, monkeypatch, tmp_path) as host:
        yield host


class Client:
    """One caller over HTTP: its token, and answers as tests.support.api.Response."""

    def __init__(self, http: aiohttp.ClientSession, host: FunctionHost, token: str) -> None:
        self.http, self.host, self.token = http, host, token
        self.id = ""

    async def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        async with self.http.request(
            method,
            self.host.base_url + path,
            json=body,
            headers={"Authorization": f"Bearer {self.token}", **(headers or {})},
        ) as response:
            return Response(
                response.status, {k.lower(): v for k, v in response.headers.items()}, await response.read()
            )

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        r = await self.call(method, path, body)
        assert r.status in (200, 201, 204), (method, path, r)
        return r.json


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def person(http: aiohttp.ClientSession, local_host: FunctionHost, state_dir: Path) -> Any:
    async def make(name: str, role: str = "user") -> Client:
        client = Client(http, local_host, token_with(state_dir, sub=f"hardening-{name}", roles=[role]))
        me = await client.ok("POST", "/api/users", {"username": f"h_{name}", "displayName": name.title()})
        client.id = me["id"]
        return client

    return make


# --- blocks work both ways ---------------------------------------------------------------------


@pytest.mark.parametrize("blocker_is_author", [True, False], ids=["author-blocks", "reader-blocks"])
async def test_a_block_forbids_comments_reactions_and_follows_in_both_directions(
    person: Any, blocker_is_author: bool
) -> None:
    author, reader = await person("author"), await person("reader")
    post = await author.ok("POST", "/api/posts", {"content": "mine"})
    readers_post = await reader.ok("POST", "/api/posts", {"content": "theirs"})
    blocker, blocked = (author, reader) if blocker_is_author else (reader, author)
    await blocker.ok("PUT", f"/api/users/{blocked.id}/block")

    for actor, target, target_post in ((reader, author, post), (author, reader, readers_post)):
        if target_post is post and blocker_is_author:
            # The blocker's posts are invisible to the blocked user (404), which forbids as well.
            expected = 404
        elif target_post is readers_post and not blocker_is_author:
            expected = 404
        else:
            expected = 403
        r = await actor.call("POST", f"/api/posts/{target_post['id']}/comments", {"content": "hi"})
        assert_problem(r, expected, "forbidden" if expected == 403 else "not-found")
        r = await actor.call("PUT", f"/api/posts/{target_post['id']}/reactions", {"type": "like"})
        assert_problem(r, expected, "forbidden" if expected == 403 else "not-found")
        assert_problem(await actor.call("PUT", f"/api/users/{target.id}/follow"), 403, "forbidden")


async def test_blocked_pairs_vanish_from_each_others_lists_and_notifications(person: Any) -> None:
    """ann and ben both follow cat, comment on and react to cat's post, and follow each other (so
    each has a notification from the other); then ann blocks ben. Each side no longer sees the other
    in cat's follower list, the post's comments or reactions, nor in their notifications; cat still
    sees both."""
    ann, ben, cat = await person("ann"), await person("ben"), await person("cat")
    post = await cat.ok("POST", "/api/posts", {"content": "meeting point"})
    for someone in (ann, ben):
        await someone.ok("PUT", f"/api/users/{cat.id}/follow")
        await someone.ok("POST", f"/api/posts/{post['id']}/comments", {"content": f"from {someone.id}"})
        await someone.ok("PUT", f"/api/posts/{post['id']}/reactions", {"type": "like"})
    await ann.ok("PUT", f"/api/users/{ben.id}/follow")
    await ben.ok("PUT", f"/api/users/{ann.id}/follow")
    ben_post = await ben.ok("POST", "/api/posts", {"content": "ben's"})
    await ann.ok("POST", f"/api/posts/{ben_post['id']}/comments", {"content": "hello ben"})

    async def actors(client: Client) -> set[str]:
        return {n["actorId"] for n in (await client.ok("GET", "/api/notifications?limit=100"))["items"]}

    async def reactors(client: Client) -> set[str]:
        page = await client.ok("GET", f"/api/posts/{post['id']}/reactions?limit=100")
        return {r["userId"] for r in page["items"]}

    # The projections have caught up: each sees the other's notification and reaction.
    await eventually(lambda: actors(ann), lambda seen: ben.id in seen, what="ben's follow notifies ann")
    await eventually(lambda: actors(ben), lambda seen: ann.id in seen, what="ann's comment notifies ben")
    await eventually(lambda: reactors(cat), lambda seen: seen == {ann.id, ben.id}, what="both reactions")

    await ann.ok("PUT", f"/api/users/{ben.id}/block")

    for me, other in ((ann, ben), (ben, ann)):
        followers = await me.ok("GET", f"/api/users/{cat.id}/followers?limit=100")
        assert {p["userId"] for p in followers["items"]} == {me.id}
        comments = await me.ok("GET", f"/api/posts/{post['id']}/comments?limit=100")
        assert {c["authorId"] for c in comments["items"]} == {me.id}
        assert await reactors(me) == {me.id}
        assert other.id not in await actors(me)
        unread = await me.ok("GET", "/api/notifications?unread=true&limit=100")
        assert other.id not in {n["actorId"] for n in unread["items"]}
    # Bystanders are not affected.
    followers = await cat.ok("GET", f"/api/users/{cat.id}/followers?limit=100")
    assert {p["userId"] for p in followers["items"]} == {ann.id, ben.id}
    assert await reactors(cat) == {ann.id, ben.id}

    # The block lifted, each shows to the other again.
    await ann.ok("DELETE", f"/api/users/{ben.id}/block")
    comments = await ben.ok("GET", f"/api/posts/{post['id']}/comments?limit=100")
    assert {c["authorId"] for c in comments["items"]} == {ann.id, ben.id}


# --- tokens --------------------------------------------------------------------------------------


async def test_a_token_chorus_cannot_store_is_a_401_never_a_500(
    http: aiohttp.ClientSession, local_host: FunctionHost, state_dir: Path, database_url: str
) -> None:
    body = {"username": "h_subject", "displayName": "Subject"}
    for subject in ("x" * 256, "nul\x00inside", "lone\ud800surrogate", "tab\there"):
        token = token_with(state_dir, sub=subject)
        r = await Client(http, local_host, token).call("POST", "/api/users", body)
        body_problem = assert_problem(r, 401, "unauthorized")
        assert "subject" in body_problem["detail"]
    # The longest subject the database holds is fine.
    r = await Client(http, local_host, token_with(state_dir, sub="y" * 255)).call("POST", "/api/users", body)
    assert r.status == 201, r

    # An email it cannot store (too long, not an address, NUL) is dropped, not a reason to refuse.
    for number, email in enumerate(("a" * 250 + "@x.io", "not an address", "a\x00b@example.com")):
        token = token_with(state_dir, sub=f"email-{number}", email=email)
        me = await Client(http, local_host, token).ok(
            "POST", "/api/users", {"username": f"h_email_{number}", "displayName": "E"}
        )
        assert me["email"] is None
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM users WHERE email IS NOT NULL").fetchone() == (0,)


async def test_only_access_tokens_open_the_api(
    http: aiohttp.ClientSession, local_host: FunctionHost, state_dir: Path
) -> None:
    refused = {
        "an OpenID ID token (nonce)": token_with(state_dir, nonce="n-123"),
        "an ID token with at_hash": token_with(state_dir, at_hash="abc"),
        "header typ id+jwt": token_with(state_dir, header={"typ": "id+jwt"}),
        "header typ logout+jwt": token_with(state_dir, header={"typ": "application/logout+jwt"}),
        "token_use id": token_with(state_dir, token_use="id"),
        "no scope nor role (an Entra ID token)": token_with(state_dir, roles=None),
    }
    for what, token in refused.items():
        r = await Client(http, local_host, token).call("GET", "/api/users/me")
        problem = assert_problem(r, 401, "unauthorized")
        assert "access token" in problem["detail"], what
    accepted = {
        "header typ JWT (Entra ID)": token_with(state_dir, header={"typ": "JWT"}),
        "header typ at+jwt (RFC 9068)": token_with(
            state_dir, header={"typ": "at+jwt"}, roles=None, scope="a"
        ),
        "delegated scp": token_with(state_dir, roles=None, scp="Chorus.Use"),
    }
    for what, token in accepted.items():
        # 403 not-onboarded: the token was accepted, the account does not exist yet.
        r = await Client(http, local_host, token).call("GET", "/api/users/me")
        assert r.status == 403 and r.json["type"].endswith("not-onboarded"), (what, r)


async def test_a_token_living_longer_than_the_setting_is_refused(
    http: aiohttp.ClientSession, local_host: FunctionHost, state_dir: Path
) -> None:
    limit = int(example_settings()["AUTH_MAX_TOKEN_LIFETIME_SECONDS"])
    now = int(time.time())
    too_long: dict[str, dict[str, Any]] = {
        "a year": {"iat": now, "exp": now + 365 * 86400},
        "one second too long": {"iat": now - 60, "exp": now - 60 + limit + 1},
        "no iat": {"iat": None},
    }
    for what, overrides in too_long.items():
        r = await Client(http, local_host, token_with(state_dir, **overrides)).call("GET", "/api/users/me")
        assert r.status == 401, (what, r)
        assert_problem(r, 401, "unauthorized")
    r = await Client(http, local_host, token_with(state_dir, iat=now - 60, exp=now - 60 + limit)).call(
        "GET", "/api/users/me"
    )
    assert_problem(r, 403, "not-onboarded")


def _start_app(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Import function_app as the Functions worker does at start-up, with these settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AUTH_", "CURSOR_"))}
    env.pop("WEBSITE_INSTANCE_ID", None)
    env.update(environment)
    return subprocess.run(
        [sys.executable, "-c", "import function_app"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_in_azure_the_app_refuses_to_start_with_local_secrets(app_settings_values: dict[str, str]) -> None:
    """The local host's settings start the app locally; in Azure (WEBSITE_INSTANCE_ID set, as Azure
    sets it) each local secret stops it, named, one after the other as they are fixed."""
    local = {name: value for name, value in app_settings_values.items() if value}
    assert _start_app(local).returncode == 0
    in_azure = {**local, "WEBSITE_INSTANCE_ID": "0123abcd"}

    started = _start_app(in_azure)
    assert started.returncode != 0 and "AUTH_ISSUER is the local host's issuer" in started.stderr
    in_azure["AUTH_ISSUER"] = "https://login.microsoftonline.com/tenant/v2.0"
    started = _start_app(in_azure)
    assert (
        started.returncode != 0
        and "AUTH_PUBLIC_KEYS_PEM holds the local host's signing key" in started.stderr
    )
    del in_azure["AUTH_PUBLIC_KEYS_PEM"]
    in_azure["AUTH_JWKS_URL"] = "http://login.microsoftonline.com/tenant/discovery/v2.0/keys"
    started = _start_app(in_azure)
    assert started.returncode != 0 and "AUTH_JWKS_URL must be an https:// URL" in started.stderr
    in_azure["AUTH_JWKS_URL"] = "https://login.microsoftonline.com/tenant/discovery/v2.0/keys"
    started = _start_app(in_azure)
    assert started.returncode != 0 and "CURSOR_SIGNING_KEY is the example key" in started.stderr
    in_azure["CURSOR_SIGNING_KEY"] = "a-random-key-kept-in-key-vault-0123456789"
    started = _start_app(in_azure)
    assert started.returncode == 0, started.stderr
    # CHORUS_ENVIRONMENT=azure (what infra/app-settings.json sets) is enough on its own.
    explicit = {**local, "CHORUS_ENVIRONMENT": "azure"}
    assert "AUTH_ISSUER is the local host's issuer" in _start_app(explicit).stderr


# --- moderation ----------------------------------------------------------------------------------


async def test_a_moderators_delete_is_recorded_with_its_reason_and_can_be_appealed(
    person: Any, database_url: str
) -> None:
    author, reader = await person("author"), await person("reader")
    mod, other_mod = await person("mod", "moderator"), await person("mod2", "moderator")
    post = await author.ok("POST", "/api/posts", {"content": "contested"})
    path = f"/api/posts/{post['id']}"

    assert_problem(await mod.call("DELETE", path), 422, "validation-failed")  # no reason given
    assert_problem(await mod.call("DELETE", f"{path}?reason=%20"), 422, "validation-failed")
    assert (await mod.call("DELETE", f"{path}?reason=spam%20links")).status == 204
    assert_problem(await reader.call("GET", path), 404, "not-found")
    assert (await author.ok("GET", path))["status"] == "removed"
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT a.action, a.reason, u.username FROM moderation_actions a JOIN users u ON u.id = a.moderator_id "
            "WHERE a.post_id = %s",
            (post["id"],),
        ).fetchone()
    assert row == ("remove", "spam links", "h_mod")

    appeal = await author.ok("POST", "/api/appeals", {"postId": post["id"], "statement": "not spam"})
    decision = {"decision": "overturned", "reason": "it was not spam"}
    await other_mod.ok("POST", f"/api/moderation/appeals/{appeal['id']}/decision", decision)
    assert (await reader.ok("GET", path))["content"] == "contested"


async def test_a_moderators_delete_of_a_comment_is_recorded_with_its_reason_and_can_be_appealed(
    person: Any, database_url: str
) -> None:
    author, commenter = await person("author"), await person("commenter")
    mod, other_mod = await person("mod", "moderator"), await person("mod2", "moderator")
    post = await author.ok("POST", "/api/posts", {"content": "a post"})
    comment = await commenter.ok("POST", f"/api/posts/{post['id']}/comments", {"content": "a remark"})
    path = f"/api/comments/{comment['id']}"

    assert_problem(await mod.call("DELETE", path), 422, "validation-failed")
    assert (await mod.call("DELETE", f"{path}?reason=rude")).status == 204
    assert (await author.ok("GET", f"/api/posts/{post['id']}/comments"))["items"] == []
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT action, reason FROM moderation_actions WHERE comment_id = %s", (comment["id"],)
        ).fetchone()
    assert row == ("remove", "rude")

    appeal_body = {"postId": post["id"], "commentId": comment["id"], "statement": "it was not rude"}
    # Only the comment's author appeals, once at a time.
    assert_problem(await author.call("POST", "/api/appeals", appeal_body), 404, "not-found")
    appeal = await commenter.ok("POST", "/api/appeals", appeal_body)
    assert appeal["commentId"] == comment["id"]
    assert_problem(await commenter.call("POST", "/api/appeals", appeal_body), 409, "conflict")
    decision = {"decision": "overturned", "reason": "fair comment"}
    await other_mod.ok("POST", f"/api/moderation/appeals/{appeal['id']}/decision", decision)
    comments = await author.ok("GET", f"/api/posts/{post['id']}/comments")
    assert [c["id"] for c in comments["items"]] == [comment["id"]]
    assert (await author.ok("GET", f"/api/posts/{post['id']}"))["commentCount"] == 1


async def test_no_moderator_decides_on_their_own_post_or_appeal(person: Any, database_url: str) -> None:
    mod, other_mod = await person("mod", "moderator"), await person("mod2", "moderator")
    post = await mod.ok("POST", "/api/posts", {"content": "my own"})
    decide = f"/api/moderation/posts/{post['id']}/decision"

    r = await mod.call("POST", decide, {"action": "hide", "reason": "hiding my own post"})
    assert_problem(r, 403, "forbidden")
    await other_mod.ok("POST", decide, {"action": "hide", "reason": "off topic"})
    r = await mod.call("POST", decide, {"action": "restore", "reason": "I say it is fine"})
    assert_problem(r, 403, "forbidden")

    appeal = await mod.ok("POST", "/api/appeals", {"postId": post["id"], "statement": "on topic"})
    r = await mod.call(
        "POST",
        f"/api/moderation/appeals/{appeal['id']}/decision",
        {"decision": "overturned", "reason": "mine"},
    )
    assert_problem(r, 403, "forbidden")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT status FROM posts WHERE id = %s", (post["id"],)).fetchone() == ("hidden",)
        assert conn.execute("SELECT status FROM appeals WHERE id = %s", (appeal["id"],)).fetchone() == (
            "pending",
        )


async def test_an_author_cannot_edit_a_hidden_post(person: Any, database_url: str) -> None:
    author, mod = await person("author"), await person("mod", "moderator")
    post = await author.ok("POST", "/api/posts", {"content": "before"})
    await mod.ok("POST", f"/api/moderation/posts/{post['id']}/decision", {"action": "hide", "reason": "r"})

    r = await author.call("PATCH", f"/api/posts/{post['id']}", {"content": "after, sneakily"})
    assert_problem(r, 409, "conflict")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT content FROM posts WHERE id = %s", (post["id"],)).fetchone() == (
            "before",
        )


async def test_a_flag_keeps_the_text_it_flagged(person: Any, database_url: str) -> None:
    author, reader = await person("author"), await person("reader")
    post = await author.ok("POST", "/api/posts", {"content": "something nasty"})
    flag = await reader.ok("POST", f"/api/posts/{post['id']}/flags", {"reason": "abuse"})
    assert flag["flaggedText"] == "something nasty"

    await author.ok("PATCH", f"/api/posts/{post['id']}", {"content": "something nice"})
    await author.ok("DELETE", f"/api/posts/{post['id']}")
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT flagged_text FROM moderation_flags WHERE id = %s", (flag["id"],)
        ).fetchone()
    assert row == ("something nasty",)


# --- requests: traceparent, notification ids, display names ---------------------------------------

_VALID_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_an_invalid_traceparent_is_ignored_and_a_fresh_trace_started(
    person: Any, database_url: str
) -> None:
    alice = await person("alice")
    invalid = {
        "all-zero trace id": "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "all-zero parent id": "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "uppercase": _VALID_TRACEPARENT.upper(),
        "version ff": "ff" + _VALID_TRACEPARENT[2:],
        "trailing data": _VALID_TRACEPARENT + " [forged log text]",
        "short trace id": "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
        "too long": _VALID_TRACEPARENT + "-" + "a" * 5000,
    }
    for what, header in invalid.items():
        r = await alice.call("POST", "/api/posts", {"content": what}, headers={"traceparent": header})
        assert r.status == 201, (what, r)
        correlation_id = r.headers["x-correlation-id"]
        assert len(correlation_id) == 32 and correlation_id != "4bf92f3577b34da6a3ce929d0e0e4736", what
        with psycopg.connect(database_url) as conn:
            (metadata,) = conn.execute(
                "SELECT metadata FROM outbox WHERE aggregate_id = %s", (r.json["id"],)
            ).fetchone()  # type: ignore[misc]
        assert metadata["correlationId"] == correlation_id
        assert metadata["traceparent"].startswith(f"00-{correlation_id}-"), what
        assert metadata["traceparent"] != header

    r = await alice.call(
        "POST", "/api/posts", {"content": "traced"}, headers={"traceparent": _VALID_TRACEPARENT}
    )
    assert r.headers["x-correlation-id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_a_malformed_notification_id_is_a_404_problem_not_a_500(person: Any) -> None:
    alice = await person("alice")
    for notification_id in ("a" * 201, "has%20space", "dot.dot", "%C3%A9t%C3%A9", "x%00y"):
        r = await alice.call("POST", f"/api/notifications/{notification_id}/read")
        assert_problem(r, 404, "not-found")
    # Well-formed but nobody's: also a 404 problem.
    assert_problem(await alice.call("POST", "/api/notifications/follow:nothing/read"), 404, "not-found")


async def test_display_names_refuse_invisible_only_and_bidi_override_text(
    http: aiohttp.ClientSession, local_host: FunctionHost, state_dir: Path, person: Any
) -> None:
    refused = {
        "zero-width spaces": "\u200b\u200b\u200b",
        "zero-width joiner and spaces": " \u200d \ufeff ",
        "Hangul filler": "\u3164",
        "right-to-left override": "admin\u202egnp.exe",
        "first-strong isolate": "\u2068moderator\u2069",
    }
    for number, (what, name) in enumerate(refused.items()):
        client = Client(http, local_host, token_with(state_dir, sub=f"display-{number}"))
        r = await client.call("POST", "/api/users", {"username": f"h_display_{number}", "displayName": name})
        problem = assert_problem(r, 422, "validation-failed")
        assert {e["field"] for e in problem["errors"]} == {"displayName"}, what
    alice = await person("alice")
    assert_problem(
        await alice.call("PATCH", "/api/users/me", {"displayName": "\u202eecila"}), 422, "validation-failed"
    )
    # Names in any script, with joiners inside visible text (emoji sequences), are fine.
    assert (await alice.ok("PATCH", "/api/users/me", {"displayName": "Zoë 👩\u200d💻 محمد"}))["displayName"]
