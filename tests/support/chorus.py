"""Setup steps through the real API (in-process), and tokens with chosen claims."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt

from devhost.settings_file import example_settings
from devhost.tokens import signing_key
from tests.support.api import ApiClient, Response
from tests.support.onboarding import onboard


def token_with(state_dir: Path, header: dict[str, Any] | None = None, **overrides: Any) -> str:
    """A token signed by the local key, with claims overridden (None removes a claim) and header fields
    added."""
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
    return jwt.encode(claims, signing_key(state_dir), algorithm="ES256", headers=header)


class Chorus:
    """Setup steps through the real API, each asserting that it worked."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api

    async def user(self, subject: str, username: str | None = None, **fields: Any) -> dict[str, Any]:
        """Onboard `subject` (username defaults to the subject) and return the created user."""
        return await onboard(self.api, subject, username, **fields)

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
