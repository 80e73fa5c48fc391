"""The media routes' bodies (docs/api.md "Media"): request an upload, then complete it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal
from uuid import UUID

from pydantic import AfterValidator, Field

from shared_code.schemas import RequestBody, ResponseBody

# What may be uploaded: raster images and common video containers. No SVG: an SVG is an XML
# document that can carry scripts and external references, so serving user SVGs invites XSS.
# Nothing else that a browser might render as a document (HTML, PDF) either.
ALLOWED_MEDIA_TYPES: Final = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "image/avif",
        "video/mp4",
        "video/webm",
        "video/quicktime",
    }
)
# The most any deployment may allow; MEDIA_MAX_BYTES sets the actual limit (checked by the service).
# 5000 MiB is the largest blob one PUT can upload.
MEDIA_SIZE_LIMIT: Final = 5000 * 1024 * 1024


def _allowed_media_type(value: str) -> str:
    normalized = value.strip().lower()
    if normalized not in ALLOWED_MEDIA_TYPES:
        raise ValueError(f"must be one of {', '.join(sorted(ALLOWED_MEDIA_TYPES))}")
    return normalized


MediaType = Annotated[str, Field(min_length=3, max_length=100), AfterValidator(_allowed_media_type)]


class RequestUpload(RequestBody):
    content_type: MediaType
    size_bytes: Annotated[
        int, Field(strict=True, ge=1, le=MEDIA_SIZE_LIMIT, description="the exact size in bytes")
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
