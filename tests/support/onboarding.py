"""The one way a test onboards a user: POST /api/users with a username and a display name, asserting
that it worked. In-process through the app's functions (`onboard`), or over real HTTP to a running
host (`onboard_over_http`, `onboard_user`). Tests of onboarding itself call the route directly."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import aiohttp

from devhost.tokens import issue_token
from shared_code.domain.limits import RESERVED_USERNAMES
from tests.support.api import ApiClient
from tests.support.http_client import ApiUser


def unreserved(name: str) -> str:
    """A username for a test subject: the subject itself, unless that is a reserved name (a subject
    such as "moderator" is fine, the username is not)."""
    return f"{name}_" if name.lower() in RESERVED_USERNAMES else name


def onboarding_body(username: str, display_name: str | None = None, **fields: Any) -> dict[str, Any]:
    """A valid POST /api/users body: the display name defaults to the username, titled."""
    return {"username": username, "displayName": display_name or username.title(), **fields}


async def onboard(api: ApiClient, subject: str, username: str | None = None, **fields: Any) -> dict[str, Any]:
    """Onboard `subject` in-process (the username defaults to the subject); returns the created user."""
    body = onboarding_body(username or unreserved(subject), subject.title(), **fields)
    r = await api.call("POST", "/api/users", subject=subject, json_body=body)
    assert r.status == 201, r
    return dict(r.json)


async def onboard_user(user: ApiUser, username: str, display_name: str | None = None) -> ApiUser:
    """Onboard the holder of `user`'s token over HTTP; fills in its id and username."""
    me = await user.ok("POST", "/api/users", onboarding_body(username, display_name))
    user.id, user.username = str(me["id"]), username
    return user


async def onboard_over_http(
    http: aiohttp.ClientSession, base_url: str, state_dir: Path, role: str = "user", prefix: str = "f"
) -> ApiUser:
    """A new user with a unique name and a token of its own, onboarded over HTTP."""
    username = f"{prefix}{uuid.uuid4().hex[:12]}"
    user = ApiUser(http, base_url, issue_token(state_dir, f"sub-{username}", role))
    return await onboard_user(user, username, username)
