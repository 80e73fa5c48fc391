"""Opaque, tamper-proof list cursors.

A cursor is the position after the last item of a page (a keyset: for example
the last item's createdAt and id), serialised as JSON and signed with HMAC-SHA256
under CURSOR_SIGNING_KEY. It also names the list it belongs to, so a cursor of
one list cannot be replayed against another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from shared_code.domain.errors import BadCursor

_MAC_BYTES = 16  # a truncated HMAC-SHA256: 128 bits is plenty against forgery
# What a cursor looks like (unpadded base64url, far longer than any this API issues), stated in
# the OpenAPI document; anything else is refused before decoding.
CURSOR_MAX_LENGTH: Final = 1024
CURSOR_PATTERN: Final = r"^[A-Za-z0-9_-]*$"


class CursorCodec:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def encode(self, scope: str, position: dict[str, Any]) -> str:
        body = json.dumps({"s": scope, "p": position}, separators=(",", ":"), sort_keys=True).encode()
        mac = hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(mac + body).rstrip(b"=").decode()

    def decode(self, scope: str, cursor: str) -> dict[str, Any]:
        """The position a cursor holds; BadCursor if it is forged, damaged or from another list."""
        if len(cursor) > CURSOR_MAX_LENGTH or re.fullmatch(CURSOR_PATTERN, cursor) is None:
            raise BadCursor("the cursor is not one this API issued")
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (ValueError, TypeError):
            raise BadCursor("the cursor is not one this API issued") from None
        mac, body = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
        expected = hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_BYTES]
        if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, expected):
            raise BadCursor("the cursor is not one this API issued")
        document = json.loads(body)
        if document.get("s") != scope or not isinstance(document.get("p"), dict):
            raise BadCursor("the cursor belongs to another list")
        position: dict[str, Any] = document["p"]
        return position

    # The keyset most lists use: (created_at, id) of the last item of a page.

    def time_cursor(self, scope: str, created_at: datetime, item_id: UUID) -> str:
        return self.encode(scope, {"t": created_at.isoformat(), "id": str(item_id)})

    def time_position(self, scope: str, cursor: str | None) -> tuple[datetime, UUID] | None:
        """(created_at, id) after which the next page starts; None for the first page."""
        if not cursor:
            return None
        position = self.decode(scope, cursor)
        try:
            return datetime.fromisoformat(position["t"]), UUID(position["id"])
        except (KeyError, TypeError, ValueError):
            raise BadCursor("the cursor is not one this API issued") from None
