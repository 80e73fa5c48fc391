"""What every error answer must be: an RFC 9457 problem of the right type that leaks nothing."""

from __future__ import annotations

from typing import Any

from tests.support.api import Response

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
