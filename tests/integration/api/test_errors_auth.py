"""The HTTP layer's refusals: bad tokens (401), callers not onboarded (403), bodies that are too
large (413), not JSON (415) or malformed (400); and no error ever shows a client its internals."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from devhost.tokens import public_key_pem
from tests.support.api import ApiClient
from tests.support.chorus import Chorus, token_with
from tests.support.outbox import OwnerDb
from tests.support.problems import assert_problem

ANONYMOUS_ROUTES = {
    ("GET", "health"),
    ("GET", "openapi.json"),
    ("GET", "docs"),
    ("GET", "docs/assets/{name}"),
}


def _b64(document: dict[str, Any] | bytes) -> str:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(api: ApiClient, **overrides: Any) -> dict[str, Any]:
    """The claims of a good token for "alice" (decoded from one the local host would issue)."""
    good = jwt.decode(api.token("alice"), options={"verify_signature": False})
    return {**good, **overrides}


def attack_tokens(api: ApiClient) -> dict[str, str | None]:
    """Authorization header values that must all get a 401."""
    claims = _claims(api)
    hs256_header = _b64({"alg": "HS256", "typ": "JWT"})
    # The classic confusion: HMAC "signed" with the server's public key as the shared secret.
    signing_input = f"{hs256_header}.{_b64(claims)}"
    hs_signature = jwt.utils.base64url_encode(
        __import__("hmac")
        .new(public_key_pem(api.state_dir).encode(), signing_input.encode(), "sha256")
        .digest()
    ).decode()
    now = int(time.time())
    return {
        "no header": None,
        "not bearer": "Basic YWxpY2U6c2VjcmV0",
        "empty bearer": "Bearer ",
        "malformed": "Bearer not.a.jwt",
        "garbage": "Bearer " + "x" * 40,
        "alg none": f"Bearer {_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "hs256 with the public key": f"Bearer {signing_input}.{hs_signature}",
        "wrong issuer": "Bearer " + token_with(api.state_dir, sub="alice", iss="https://evil.test/"),
        "wrong audience": "Bearer " + token_with(api.state_dir, sub="alice", aud="another-api"),
        "expired": "Bearer "
        + token_with(api.state_dir, sub="alice", iat=now - 7200, nbf=now - 7200, exp=now - 3600),
        "not valid yet": "Bearer " + token_with(api.state_dir, sub="alice", nbf=now + 3600),
        "no expiry": "Bearer " + token_with(api.state_dir, sub="alice", exp=None),
        "no subject": "Bearer " + token_with(api.state_dir, sub=None),
        "someone else's key": "Bearer "
        + jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256"),
        "signature stripped": "Bearer " + api.token("alice").rsplit(".", 1)[0] + ".",
        "roles not a list of strings": "Bearer "
        + token_with(api.state_dir, sub="alice", roles={"admin": True}),
    }


async def test_token_attacks_get_401_problem_with_www_authenticate(api: ApiClient, chorus: Chorus) -> None:
    await chorus.user("alice")
    for name, authorization in attack_tokens(api).items():
        headers = {"authorization": authorization} if authorization is not None else None
        for method, path in (("GET", "/api/users/me"), ("POST", "/api/posts")):
            r = await api.call(method, path, headers=headers, json_body={"content": "x"})
            body = assert_problem(r, 401, "unauthorized")
            assert r.headers["www-authenticate"].startswith('Bearer error="invalid_token"'), name
            token = (authorization or "").partition(" ")[2]
            if len(token) > 8:
                assert token not in r.body.decode(), f"{name}: the token is echoed"
            assert body["detail"], name
    # A good token for the same subject works: the 401s above are the tokens' doing.
    assert (await api.call("GET", "/api/users/me", subject="alice")).status == 200


async def test_every_route_but_the_anonymous_ones_wants_a_token(api: ApiClient, db: OwnerDb) -> None:
    checked = 0
    for spec in api.specs:
        if spec.trigger_type != "httpTrigger":
            continue
        route = spec.trigger["route"]
        for method in spec.trigger["methods"]:
            if (method.upper(), route) in ANONYMOUS_ROUTES:
                continue
            path = "/api/" + _fill_route(route)
            r = await api.call(method.upper(), path, json_body={})
            assert r.status == 401, (method, path, r)
            assert r.headers["www-authenticate"].startswith("Bearer"), (method, path)
            checked += 1
    assert checked >= 30
    assert await db.event_count() == 0


def _fill_route(route: str) -> str:
    """A concrete path for a route template: every parameter a fresh UUID."""
    parts = []
    for segment in route.split("/"):
        parts.append(str(uuid.uuid4()) if segment.startswith("{") else segment)
    return "/".join(parts)


async def test_a_valid_token_not_yet_onboarded_gets_403_everywhere_but_onboarding(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    alice, _ = await chorus.users("alice", "bob")
    post = await chorus.post("alice")
    comment = await chorus.comment("bob", post["id"])
    user, post_id = alice["id"], post["id"]
    routes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/api/users/me", None),
        ("PATCH", "/api/users/me", {"bio": "hi"}),
        ("DELETE", "/api/users/me", None),
        ("GET", f"/api/profiles/{user}", None),
        ("PUT", f"/api/users/{user}/follow", None),
        ("DELETE", f"/api/users/{user}/follow", None),
        ("GET", f"/api/users/{user}/followers", None),
        ("GET", f"/api/users/{user}/following", None),
        ("PUT", f"/api/users/{user}/block", None),
        ("DELETE", f"/api/users/{user}/block", None),
        ("PUT", f"/api/users/{user}/mute", None),
        ("DELETE", f"/api/users/{user}/mute", None),
        ("POST", "/api/posts", {"content": "hello"}),
        ("GET", f"/api/posts/{post_id}", None),
        ("PATCH", f"/api/posts/{post_id}", {"content": "mine"}),
        ("DELETE", f"/api/posts/{post_id}", None),
        ("GET", f"/api/users/{user}/posts", None),
        ("POST", f"/api/posts/{post_id}/comments", {"content": "hi"}),
        ("GET", f"/api/posts/{post_id}/comments", None),
        ("DELETE", f"/api/comments/{comment['id']}", None),
        ("PUT", f"/api/posts/{post_id}/reactions", {"type": "like"}),
        ("DELETE", f"/api/posts/{post_id}/reactions", None),
        ("GET", f"/api/posts/{post_id}/reactions", None),
        ("GET", "/api/feed", None),
        ("GET", "/api/notifications", None),
        ("POST", "/api/notifications/read-all", None),
        ("POST", f"/api/notifications/{uuid.uuid4()}/read", None),
    ]
    mark = await db.mark()
    for role in ("user", "moderator"):
        for method, path, body in routes:
            r = await api.call(method, path, subject="newcomer", role=role, json_body=body)
            problem = assert_problem(r, 403, "not-onboarded")
            assert "POST /api/users" in problem["detail"], (method, path)
        # The same with an Idempotency-Key: nothing is kept for a refused request.
        r = await api.call(
            "POST",
            "/api/posts",
            subject="newcomer",
            role=role,
            json_body={"content": "x"},
            headers={"Idempotency-Key": f"k-{role}"},
        )
        assert_problem(r, 403, "not-onboarded")
    assert await db.events(after=mark) == []
    assert await db.count("idempotency_keys") == 0
    assert (await db.row("SELECT count(*) FROM posts"), await db.count("follows")) == ((1,), 0)


# --- request bodies ----------------------------------------------------------------------------


async def test_a_body_over_the_limit_is_413(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    await chorus.user("alice")
    mark = await db.mark()
    limit = 65536  # MAX_REQUEST_BODY_BYTES in the test settings
    filler = "x" * (limit - len('{"content":""}') + 1)
    oversized = json.dumps({"content": filler}, separators=(",", ":")).encode()
    assert len(oversized) == limit + 1
    assert_problem(
        await api.call("POST", "/api/posts", subject="alice", body=oversized), 413, "payload-too-large"
    )
    r = await api.call("PATCH", "/api/users/me", subject="alice", body=b" " * (limit + 1))
    assert_problem(r, 413, "payload-too-large")

    # At the limit the body is read (and then refused for its content, not its size).
    at_limit = oversized[:-3] + b'"}'
    assert len(at_limit) == limit
    assert_problem(
        await api.call("POST", "/api/posts", subject="alice", body=at_limit), 422, "validation-failed"
    )
    assert await db.events(after=mark) == []


async def test_a_body_that_is_not_json_is_415(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    await chorus.user("alice")
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "text/json",
    ):
        r = await api.call(
            "POST",
            "/api/posts",
            subject="alice",
            body=b'{"content":"x"}',
            headers={"content-type": content_type},
        )
        assert_problem(r, 415, "unsupported-media-type")
    assert await db.count("posts") == 0

    # JSON with parameters, in any case, or a +json type, is JSON.
    for content_type in (
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/merge-patch+json",
    ):
        r = await api.call(
            "PATCH",
            "/api/users/me",
            subject="alice",
            json_body={"bio": content_type},
            headers={"content-type": content_type},
        )
        assert r.status == 200, (content_type, r)


MALFORMED_BODIES = {
    "empty": b"",
    "truncated": b"{",
    "trailing comma": b'{"content": "x",}',
    "not utf-8": b"\xff\xfe\x00",
    "an array": b'["content"]',
    "a string": b'"content"',
    "null": b"null",
    "single quotes": b"{'content': 1}",
    "nested past the parser's depth": b"[" * 5000 + b"]" * 5000,
}


async def test_malformed_json_is_400(api: ApiClient, chorus: Chorus, db: OwnerDb) -> None:
    await chorus.user("alice")
    mark = await db.mark()
    for case, body in MALFORMED_BODIES.items():
        r = await api.call("POST", "/api/posts", subject="alice", body=body)
        assert r.status == 400, (case, r)
        assert_problem(r, 400, "malformed-request")
    assert await db.events(after=mark) == []


async def test_nul_characters_are_refused_as_invalid_not_failed_on(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    """PostgreSQL text cannot hold U+0000: such input must be a 422, not a 500 from the database."""
    await chorus.user("alice")
    post = await chorus.post("alice")
    mark = await db.mark()
    for method, path, body in (
        ("POST", "/api/posts", {"content": "a\u0000b"}),
        ("PATCH", f"/api/posts/{post['id']}", {"content": "\u0000"}),
        ("POST", f"/api/posts/{post['id']}/comments", {"content": "x\u0000"}),
        ("PATCH", "/api/users/me", {"bio": "\u0000"}),
        ("PATCH", "/api/users/me", {"displayName": "Al\u0000ice"}),
        ("POST", "/api/users", {"username": "bob", "displayName": "B\u0000"}),
    ):
        r = await api.call(method, path, subject="bob" if path == "/api/users" else "alice", json_body=body)
        assert_problem(r, 422, "validation-failed")
    assert await db.events(after=mark) == []


async def test_validation_errors_name_fields_but_never_echo_input(api: ApiClient, chorus: Chorus) -> None:
    await chorus.user("alice")
    secret = "s3cr3t-" + "x" * 2000
    r = await api.call(
        "POST", "/api/posts", subject="alice", json_body={"content": secret, "password": secret}
    )
    body = assert_problem(r, 422, "validation-failed")
    assert secret not in r.body.decode()
    assert "s3cr3t" not in r.body.decode()
    assert {e["field"] for e in body["errors"]} == {"content", "password"}
    assert all(set(e) == {"field", "message", "code"} for e in body["errors"])


async def test_an_unexpected_failure_is_a_generic_500_with_a_correlation_id(
    api: ApiClient, chorus: Chorus, db: OwnerDb
) -> None:
    """A database failure the app does not expect (here: a trigger raising on outbox inserts)
    answers 500 with a correlation id, and nothing of the SQL, the error or the stack."""
    await chorus.user("alice")
    await db.execute("""
        CREATE FUNCTION refuse_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'INTERNAL-DETAIL: relation outbox refused (SELECT * FROM secrets)'; END $$;
        CREATE TRIGGER refuse_outbox BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION refuse_outbox();
    """)
    r = await api.call(
        "POST",
        "/api/posts",
        subject="alice",
        json_body={"content": "x"},
        headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    )
    body = assert_problem(r, 500, "internal")
    assert body == {
        "type": "urn:chorus:problem:internal",
        "title": "Internal error",
        "status": 500,
        "detail": "something went wrong on our side; quote correlation id 0af7651916cd43dd8448eb211c80319c",
    }
    assert r.headers["x-correlation-id"] == "0af7651916cd43dd8448eb211c80319c"
    assert "INTERNAL-DETAIL" not in r.body.decode()
