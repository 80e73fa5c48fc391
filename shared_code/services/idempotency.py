"""Idempotency-Key for creating requests (docs/api.md "Idempotency"): a retry with the same key and body
gets the first response again; the same key with another body is 409.

The key is reserved in the use case's own transaction, before the write: a
concurrent retry waits on that row and then replays the committed response; a
rolled-back attempt leaves no key behind.

Keys belong to the caller's account (a later account of the same token subject starts afresh); only
onboarding, before there is an account, scopes them to the subject. A timer deletes keys older than
IDEMPOTENCY_KEY_TTL_HOURS (a day by default): after that a retry is a new request.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from psycopg.types.json import Jsonb

from shared_code.db.rows import fetch_one
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.errors import Conflict, Invalid

MAX_KEY_LENGTH = 255
# Visible ASCII only: header values lose surrounding spaces on the way, and many HTTP stacks refuse
# or re-encode anything beyond ASCII. The OpenAPI document states this pattern.
IDEMPOTENCY_KEY_PATTERN = rf"^[\u0021-\u007e]{{1,{MAX_KEY_LENGTH}}}$"
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


@dataclass(frozen=True)
class _StoredKey:
    request_hash: str
    response_status: int
    response_body: Any
    response_headers: dict[str, str]


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    replayed: bool = False


def request_fingerprint(operation: str, body: Any) -> str:
    canonical = json.dumps([operation, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def respond_once(
    uow: UnitOfWork,
    key: str | None,
    operation: str,
    body: Any,
    create: Callable[[], Awaitable[StoredResponse]],
) -> StoredResponse:
    """Run `create` unless this key has already answered; store what it answered."""
    if key is None:
        return await create()
    if _KEY.fullmatch(key) is None:
        raise Invalid(
            f"Idempotency-Key must be 1–{MAX_KEY_LENGTH} visible ASCII characters (no spaces), "
            "for example a UUID"
        )
    fingerprint = request_fingerprint(operation, body)
    scope = key_scope(uow, operation)
    cur = await uow.conn.execute(
        """INSERT INTO idempotency_keys (scope, subject, user_id, key, operation, request_hash, response_status)
           VALUES (%s, %s, %s, %s, %s, %s, 0)
           ON CONFLICT (scope, key) DO NOTHING
           RETURNING 1""",
        (scope, uow.actor.subject, uow.user_id, key, operation, fingerprint),
    )
    if await cur.fetchone() is None:
        stored = await fetch_one(
            uow.conn,
            _StoredKey,
            """SELECT request_hash, response_status, response_body, response_headers
               FROM idempotency_keys WHERE scope = %s AND key = %s""",
            (scope, key),
        )
        assert stored is not None  # the conflicting row is committed: we waited for it
        if stored.request_hash != fingerprint:
            raise Conflict("this Idempotency-Key was used with a different request; use a new key")
        return StoredResponse(
            stored.response_status, stored.response_body, dict(stored.response_headers), replayed=True
        )
    response = await create()
    # user_id: onboarding has made the account by now, so its stored response goes with the account.
    await uow.conn.execute(
        """UPDATE idempotency_keys SET response_status = %s, response_body = %s, response_headers = %s,
                  user_id = %s
           WHERE scope = %s AND key = %s""",
        (response.status, Jsonb(response.body), Jsonb(response.headers), uow.user_id, scope, key),
    )
    return response


# Onboarding's keys belong to the token subject: its retry finds the account made, and must still replay.
ONBOARDING_OPERATION = "create_user"


def key_scope(uow: UnitOfWork, operation: str) -> str:
    """Whose keys these are: the account's, or for onboarding the token subject's."""
    if operation == ONBOARDING_OPERATION or uow.user_id is None:
        return f"subject:{uow.actor.subject}"
    return f"user:{uow.user_id}"


async def delete_expired_keys(uow: UnitOfWork, older_than_hours: float, batch: int) -> int:
    """Delete up to `batch` keys older than `older_than_hours`; how many went."""
    cur = await uow.conn.execute(
        """DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
               SELECT ctid FROM idempotency_keys WHERE created_at < now() - make_interval(secs => %s)
               ORDER BY created_at LIMIT %s))""",
        (older_than_hours * 3600, batch),
    )
    return cur.rowcount
