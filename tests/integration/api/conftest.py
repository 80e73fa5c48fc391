"""Fixtures of the HTTP API tests: the owner's view of the test database, and a few
shortcuts for the setup steps most tests share (onboard, post, comment)."""

from __future__ import annotations

import dataclasses
import functools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import azure.functions as func
import jwt
import pytest

from devhost.settings_file import example_settings
from devhost.tokens import signing_key
from tests.support.api import ApiClient, Response
from tests.support.outbox import OwnerDb

if TYPE_CHECKING:
    from devhost.services.cosmos import CosmosEmulator
    from shared_code.app_context import AppContext


@pytest.fixture(scope="session")
def shared_cosmos_database(cosmos_emulator: CosmosEmulator) -> Iterator[str]:
    from azure.cosmos import CosmosClient

    from devhost.cosmos_provisioning import provision

    name = f"api_{uuid.uuid4().hex[:12]}"
    with CosmosClient(cosmos_emulator.endpoint, credential=cosmos_emulator.key) as client:
        provision(client, name)
        yield name
        client.delete_database(name)


@pytest.fixture
def cosmos_database_name(shared_cosmos_database: str) -> str:
    """One Cosmos database for every test here, instead of one each (about 0.3 s a test). These
    tests never run the relay, so the projections stay empty; the only Cosmos writes are cache
    refills keyed by each test's own fresh ids, so tests cannot see each other through Cosmos.
    A test that runs the relay or asserts on projections belongs elsewhere (tests/e2e), with a
    Cosmos database of its own."""
    return shared_cosmos_database


def _with_content_type(function: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Put the response's mimetype in its headers, as the local host's HTTP server does, so that
    tests can check the Content-Type a client would get."""

    @functools.wraps(function)
    async def wrapper(req: func.HttpRequest) -> Any:
        result = await function(req)
        if isinstance(result, func.HttpResponse) and result.mimetype and "Content-Type" not in result.headers:
            text = result.mimetype.startswith("text/") and result.charset
            charset = f"; charset={result.charset}" if text else ""
            result.headers["Content-Type"] = result.mimetype + charset
        return result

    return wrapper


@pytest.fixture
def api(app_context: AppContext, app_settings_values: dict[str, str], state_dir: Path) -> ApiClient:
    """The root conftest's client, with Content-Type visible in responses."""
    from tests.support.stack import app_functions

    specs = [
        dataclasses.replace(spec, user_function=_with_content_type(spec.user_function))
        if spec.trigger_type == "httpTrigger"
        else spec
        for spec in app_functions(app_settings_values)
    ]
    return ApiClient(specs, state_dir)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[OwnerDb]:
    """The test's database as its owner: outbox rows and every table, row-level security bypassed."""
    owner = await OwnerDb.connect(database_url)
    try:
        yield owner
    finally:
        await owner.close()


PROBLEM_PREFIX = "urn:chorus:problem:"
# What an error body must never carry: stack traces, SQL, driver or module names.
LEAK_MARKERS = (
    "Traceback",
    'File "',
    "psycopg",
    "SELECT ",
    "INSERT ",
    "UPDATE ",
    "shared_code",
    "functions/",
    "Error(",
    "line ",
)


def assert_problem(r: Response, status: int, slug: str) -> dict[str, Any]:
    """`r` is an RFC 9457 problem of this status and type, and leaks nothing."""
    assert r.status == status, r
    assert r.headers.get("content-type", "").startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json
    assert body["type"] == PROBLEM_PREFIX + slug, body
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    text = r.body.decode()
    for marker in LEAK_MARKERS:
        assert marker not in text, f"{marker!r} in an error body: {text}"
    return body


def error_fields(r: Response) -> set[str | None]:
    """The fields a 422 names."""
    return {error["field"] for error in r.json["errors"]}


def token_with(state_dir: Path, **overrides: Any) -> str:
    """A token signed by the local key, with claims overridden (None removes a claim)."""
    settings = example_settings()
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings["AUTH_ISSUER"],
        "aud": settings["AUTH_AUDIENCE"],
        "sub": "someone",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "roles": ["user"],
    }
    claims.update(overrides)
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, signing_key(state_dir), algorithm="ES256")


class Chorus:
    """Setup steps through the real API, each asserting that it worked."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api

    async def user(self, subject: str, username: str | None = None, **fields: Any) -> dict[str, Any]:
        """Onboard `subject` (username defaults to the subject) and return the created user."""
        body = {"username": username or subject, "displayName": subject.title(), **fields}
        r = await self.api.call("POST", "/api/users", subject=subject, json_body=body)
        assert r.status == 201, r
        user: dict[str, Any] = r.json
        return user

    async def users(self, *subjects: str) -> list[dict[str, Any]]:
        return [await self.user(subject) for subject in subjects]

    async def post(self, subject: str, content: str = "hello, world") -> dict[str, Any]:
        r = await self.api.call("POST", "/api/posts", subject=subject, json_body={"content": content})
        assert r.status == 201, r
        post: dict[str, Any] = r.json
        return post

    async def comment(
        self, subject: str, post_id: str, content: str = "nice", parent_id: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"content": content}
        if parent_id is not None:
            body["parentId"] = parent_id
        r = await self.api.call("POST", f"/api/posts/{post_id}/comments", subject=subject, json_body=body)
        assert r.status == 201, r
        comment: dict[str, Any] = r.json
        return comment

    async def do(
        self,
        method: str,
        path: str,
        subject: str,
        *,
        role: str = "user",
        json_body: Any = None,
        status: int = 204,
    ) -> Response:
        """A call that must answer `status`."""
        r = await self.api.call(method, path, subject=subject, role=role, json_body=json_body)
        assert r.status == status, r
        return r


@pytest.fixture
def chorus(api: ApiClient) -> Chorus:
    return Chorus(api)
