"""What a use case can refuse, in domain terms. The HTTP layer maps each to a status."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(DomainError):
    """Also for what the caller may not see: it must not learn that it exists."""

    status, slug, title = 404, "not-found", "Not found"


class Forbidden(DomainError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotOnboarded(Forbidden):
    slug, title = "not-onboarded", "Account not set up"


class Conflict(DomainError):
    status, slug, title = 409, "conflict", "Conflict"


class Invalid(DomainError):
    """A request that is well-formed but breaks a rule (422)."""

    status, slug, title = 422, "validation-failed", "Validation failed"


class BadCursor(DomainError):
    status, slug, title = 400, "bad-cursor", "Invalid cursor"


class PayloadTooLarge(DomainError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class RateLimited(DomainError):
    """Over a rate limit or a quota (docs/api.md "Limits"): nothing was changed; answered 429 with
    Retry-After."""

    status, slug, title = 429, "rate-limited", "Too many requests"

    def __init__(self, detail: str, retry_after_seconds: int, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after_seconds = retry_after_seconds


class UnsupportedMediaType(DomainError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class Unavailable(DomainError):
    """A dependency failed the operation; nothing was changed, and the caller may retry
    (answered with Retry-After)."""

    status, slug, title = 503, "unavailable", "Service unavailable"
    retry_after_seconds = 5
