"""The media routes' bodies (docs/api.md "Media"): request an upload, then complete it."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Final, Literal
from uuid import UUID

from pydantic import AfterValidator, Field

from shared_code.domain.limits import ALLOWED_MEDIA_TYPES, MEDIA_SIZE_LIMIT
from shared_code.schemas.common import JSON_INTEGER, Matching, RequestBody, ResponseBody


def _any_case(text: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in text)


# Media type names are case-insensitive (RFC 9110), so the pattern is too; the value is kept in
# lower case.
MEDIA_TYPE_PATTERN: Final = "^(?:" + "|".join(_any_case(t) for t in sorted(ALLOWED_MEDIA_TYPES)) + ")$"


class RequestUpload(RequestBody):
    content_type: Annotated[
        str,
        Matching(MEDIA_TYPE_PATTERN, f"must be one of {', '.join(sorted(ALLOWED_MEDIA_TYPES))}"),
        AfterValidator(str.lower),
        Field(description=f"one of {', '.join(sorted(ALLOWED_MEDIA_TYPES))}, in any letter case"),
    ]
    size_bytes: Annotated[
        int, Field(ge=1, le=MEDIA_SIZE_LIMIT, description="the exact size in bytes"), JSON_INTEGER
    ]


class MediaUpload(ResponseBody):
    media_id: UUID
    status: Literal["pending"] = "pending"
    content_type: str
    size_bytes: int
    # One PUT of exactly size_bytes bytes, with these headers, before expires_at.
    upload_url: str
    upload_method: Literal["PUT"] = "PUT"
    upload_headers: dict[str, str]
    expires_at: datetime


class MediaReady(ResponseBody):
    media_id: UUID
    status: Literal["ready"] = "ready"
    content_type: str
    size_bytes: int
    url: str
    url_expires_at: datetime
