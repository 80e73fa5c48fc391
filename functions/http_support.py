"""What every HTTP function shares: authenticate, parse and validate, run a use case in a
unit of work, and turn every outcome into a response. Functions stay a few lines each."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from uuid import UUID

import azure.functions as func
import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ValidationError

from functions.responses import json_response, problem_response
from shared_code.adapters.availability import (
    CosmosUnavailable,
    MediaStorageUnavailable,
    RequestBudget,
    StoreUnavailable,
)
from shared_code.app_context import AppContext
from shared_code.auth import AuthenticationError, AuthUnavailableError, Principal
from shared_code.bootstrap import get_app_context
from shared_code.db.boundary import UnsafeDatabaseLogin
from shared_code.db.unit_of_work import Actor, StaleConnection, UnitOfWork, unit_of_work
from shared_code.domain.errors import (
    DomainError,
    Invalid,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from shared_code.domain.limits import PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX
from shared_code.domain.rate_limits import Rate, client_address
from shared_code.metrics import record_degraded_read
from shared_code.observability import TraceContext, trace_context
from shared_code.schemas.common import ResponseBody, is_uuid
from shared_code.services.idempotency import StoredResponse, respond_once
from shared_code.services.rate_limits import Buckets, FanOut, LocalRateLimiter, RateLimiter

log = logging.getLogger("chorus.http")

ModelT = TypeVar("ModelT", bound=BaseModel)
ResultT = TypeVar("ResultT")

PROBLEM_TYPE_PREFIX = "urn:chorus:problem:"
# A transaction that lost a deadlock or serialization race is run again this many times.
TRANSACTION_ATTEMPTS = 3


@dataclass
class ApiRequest:
    req: func.HttpRequest
    app: AppContext
    principal: Principal | None
    trace: TraceContext

    @property
    def correlation_id(self) -> str:
        return self.trace.correlation_id

    @property
    def actor(self) -> Actor:
        assert self.principal is not None, "anonymous endpoints have no actor"
        role = "admin" if self.principal.is_admin else "moderator" if self.principal.is_moderator else "user"
        return Actor(
            subject=self.principal.subject,
            role=role,
            correlation_id=self.correlation_id,
            traceparent=self.trace.traceparent,
        )

    @property
    def client_address(self) -> str:
        """The caller's address, from the X-Forwarded-For entry the trusted proxies wrote
        (RATE_LIMIT_TRUSTED_PROXY_HOPS; docs/api.md "Limits")."""
        return client_address(
            self.req.headers.get("x-forwarded-for"), self.app.settings.rate_limit_trusted_proxy_hops
        )

    @property
    def limit_key(self) -> str:
        """Whose limits this request spends: the user's (token subject), else the client address's."""
        if self.principal is not None:
            return "user:" + self.principal.subject
        return "client:" + self.client_address

    @property
    def limiter(self) -> RateLimiter:
        return RateLimiter(self.app.pg_pool, self.app.settings.postgres_request_wait_seconds)

    @property
    def buckets(self) -> Buckets:
        s = self.app.settings
        return Buckets.of(
            writes_per_minute=s.rate_limit_writes_per_minute,
            reads_per_minute=s.rate_limit_reads_per_minute,
            anonymous_per_minute=s.rate_limit_anonymous_per_minute,
            media_bytes_per_day=s.rate_limit_media_bytes_per_day,
        )

    def cosmos_budget(self) -> RequestBudget:
        """The deadline every Cosmos call of this request shares (COSMOS_REQUEST_TIMEOUT_SECONDS)."""
        return RequestBudget(self.app.settings.cosmos_request_timeout_seconds)

    def media_storage_budget(self) -> RequestBudget:
        """The deadline this request's Blob calls share (MEDIA_STORAGE_TIMEOUT_SECONDS)."""
        return RequestBudget(self.app.settings.media_storage_timeout_seconds, MediaStorageUnavailable)

    def route_id(self, name: str) -> UUID:
        """A UUID path parameter. Ids are UUIDs, so any other value names nothing: 404."""
        value = self.req.route_params.get(name, "")
        if not is_uuid(value):
            raise NotFound(f"nothing has this {name}: ids are UUIDs (8-4-4-4-12 hexadecimal)")
        return UUID(value)

    def body(self, model: type[ModelT]) -> ModelT:
        raw = self.req.get_body() or b""
        if len(raw) > self.app.settings.max_request_body_bytes:
            raise PayloadTooLarge(
                f"the request body is over {self.app.settings.max_request_body_bytes} bytes"
            )
        content_type = self.req.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise UnsupportedMediaType("send the request body as application/json")
        try:
            document = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
            raise _Malformed("the request body is not valid JSON") from None
        if not isinstance(document, dict):
            raise _Malformed("the request body must be a JSON object")
        return model.model_validate(document)

    def page(self) -> tuple[int, str | None]:
        """`?limit=` (1–100, default 20) and `?cursor=`."""
        raw_limit = self.req.params.get("limit")
        limit = PAGE_LIMIT_DEFAULT
        if raw_limit is not None:
            # isdigit() alone lets through digits int() refuses, such as "²".
            if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= PAGE_LIMIT_MAX:
                raise Invalid(f"limit must be a whole number from 1 to {PAGE_LIMIT_MAX}", field="limit")
            limit = int(raw_limit)
        return limit, self.req.params.get("cursor") or None

    @property
    def idempotency_key(self) -> str | None:
        key: str | None = self.req.headers.get("idempotency-key")
        return key

    async def run(self, use_case: Callable[[UnitOfWork], Awaitable[ResultT]]) -> ResultT:
        """Run a use case in its own transaction; again if it lost a deadlock or serialization race,
        or if its pooled connection was found dead before it ran (then the pool checks the rest)."""
        wait = self.app.settings.postgres_request_wait_seconds
        for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
            try:
                async with unit_of_work(self.app.pg_pool, self.actor, wait_seconds=wait) as uow:
                    return await use_case(uow)
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
                if attempt == TRANSACTION_ATTEMPTS:
                    raise
                log.info(
                    "transaction lost a race (attempt %d); running it again",
                    attempt,
                    extra={"correlationId": self.correlation_id},
                )
            except StaleConnection:
                if attempt == TRANSACTION_ATTEMPTS:
                    raise
                log.warning(
                    "a pooled PostgreSQL connection was dead (server restarted or backend terminated); "
                    "dropping the dead ones and running the request again",
                    extra={"correlationId": self.correlation_id},
                )
                await self.app.pg_pool.check()
        raise AssertionError("unreachable")

    async def create(
        self,
        operation: str,
        body: BaseModel,
        use_case: Callable[[UnitOfWork], Awaitable[tuple[ResponseBody, str]]],
    ) -> func.HttpResponse:
        """A creating request: 201 with Location; honours Idempotency-Key (docs/api.md "Idempotency").

        `use_case` returns the created resource and its path under /api.
        """

        async def respond(uow: UnitOfWork) -> StoredResponse:
            async def first_time() -> StoredResponse:
                resource, path = await use_case(uow)
                return StoredResponse(201, resource.to_json(), {"Location": f"/api/{path}"})

            return await respond_once(
                uow, self.idempotency_key, operation, body.model_dump(mode="json"), first_time
            )

        stored = await self.run(respond)
        headers = dict(stored.headers)
        if stored.replayed:
            headers["Idempotent-Replayed"] = "true"
        return json_response(stored.body, status=stored.status, headers=headers)


class _Malformed(DomainError):
    status, slug, title = 400, "malformed-request", "Malformed request"


Handler = Callable[[ApiRequest], Awaitable[func.HttpResponse]]
# Which limit a route spends (docs/api.md "Limits"): anonymous routes per client address (the liveness
# probe in this process's memory, as it must not touch a dependency), reads and writes per user.
LimitClass = Literal["anonymous", "liveness", "read", "write"]
# Whose followers a write reaches (a route without one costs 1): the limit's upsert weighs it by them.
Weigh = Callable[[ApiRequest], FanOut]


def endpoint(
    *, anonymous: bool = False, limit: LimitClass | None = None, weigh: Weigh | None = None
) -> Callable[[Handler], Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]]:
    """Wrap a handler into an HTTP function: the body refused by its Content-Length, the caller
    authenticated, the route's limit charged, then the handler.

    The wrapper's own signature is `(req: func.HttpRequest)`: the Python worker binds
    parameters by name and annotation, so it must not see the handler's.
    """
    limit_class: LimitClass = limit or ("anonymous" if anonymous else "write")

    def decorate(handler: Handler) -> Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]:
        async def function(req: func.HttpRequest) -> func.HttpResponse:
            trace = trace_context(req.headers.get("traceparent"))
            response = await _handle(handler, req, trace, anonymous, limit_class, weigh)
            response.headers["x-correlation-id"] = trace.correlation_id
            # A browser never guesses a type other than the one declared (a JSON body read as HTML).
            response.headers["X-Content-Type-Options"] = "nosniff"
            if not anonymous and "Cache-Control" not in response.headers:
                # Everything behind a token is personal (signed media URLs included): no cache keeps it.
                response.headers["Cache-Control"] = "no-store"
            return response

        function.__name__ = handler.__name__
        function.__qualname__ = handler.__qualname__
        function.__doc__ = handler.__doc__
        return function

    return decorate


def weigh_by_callers_followers(api: ApiRequest) -> FanOut:
    """A post or an edit reaches the caller's followers' feeds: it weighs their fan-out."""
    assert api.principal is not None
    return FanOut(subject=api.principal.subject)


def weigh_by_followers_of(parameter: str) -> Weigh:
    """A follow back-fills the follower's feed from the followee, and joins the followee's fan-out."""

    def weigh(api: ApiRequest) -> FanOut:
        return FanOut(user_id=api.route_id(parameter))

    return weigh


_liveness_limiters: dict[Rate, LocalRateLimiter] = {}


async def _charge(api: ApiRequest, limit: LimitClass, weigh: Weigh | None) -> None:
    """Spend the request's limit before anything else runs, so a refused request changes nothing."""
    buckets = api.buckets
    if limit == "liveness":
        bucket = buckets.anonymous
        local = _liveness_limiters.setdefault(bucket.rate, LocalRateLimiter(bucket))
        local.charge(api.limit_key)
        return
    if limit == "anonymous":
        await api.limiter.charge(buckets.anonymous, api.limit_key)
    elif limit == "read":
        await api.limiter.charge(buckets.reads, api.limit_key)
    else:
        fanout = None
        if weigh is not None:
            try:
                fanout = weigh(api)
            except DomainError:  # e.g. a malformed id: the handler refuses it again; it still costs 1
                fanout = None
        await api.limiter.charge(buckets.writes, api.limit_key, fanout=fanout)


def refuse_large_body(req: func.HttpRequest, max_bytes: int) -> None:
    """413 by the declared Content-Length, before the body is looked at (docs/api.md "Limits")."""
    declared = req.headers.get("content-length", "").strip()
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"the request body is over {max_bytes} bytes (Content-Length {declared})")


async def _handle(
    handler: Handler,
    req: func.HttpRequest,
    trace: TraceContext,
    anonymous: bool,
    limit: LimitClass,
    weigh: Weigh | None,
) -> func.HttpResponse:
    correlation_id = trace.correlation_id
    try:
        app = await get_app_context()
        refuse_large_body(req, app.settings.max_request_body_bytes)
        try:
            principal = None if anonymous else await app.tokens.authenticate(req.headers.get("authorization"))
        except AuthenticationError:
            # No usable token, so no user: the attempt spends its address's anonymous limit (429 past it).
            await _charge(ApiRequest(req=req, app=app, principal=None, trace=trace), "anonymous", None)
            raise
        api = ApiRequest(req=req, app=app, principal=principal, trace=trace)
        await _charge(api, limit, weigh)
        return await handler(api)
    except AuthenticationError as exc:
        return problem_response(
            401,
            "Unauthorized",
            exc.detail,
            type_=PROBLEM_TYPE_PREFIX + "unauthorized",
            headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{exc.detail}"'},
        )
    except DomainError as exc:
        retry_after = getattr(exc, "retry_after_seconds", None)
        return problem_response(
            exc.status,
            exc.title,
            exc.detail,
            type_=PROBLEM_TYPE_PREFIX + exc.slug,
            extra=exc.extra or None,
            headers={"Retry-After": str(retry_after)} if retry_after else None,
        )
    except ValidationError as exc:
        return problem_response(
            422,
            "Validation failed",
            "the request does not meet the contract",
            type_=PROBLEM_TYPE_PREFIX + "validation-failed",
            extra={"errors": validation_errors(exc)},
        )
    except AuthUnavailableError:
        log.exception("token keys unavailable", extra={"correlationId": correlation_id})
        return _unavailable("the identity provider's keys cannot be fetched right now")
    except CosmosUnavailable as exc:
        cosmos_unavailable_log.warning(handler.__name__, exc.reason, correlation_id)
        record_degraded_read(handler.__name__)
        return _unavailable("the projections store is not answering right now")
    except MediaStorageUnavailable as exc:
        media_storage_unavailable_log.warning(handler.__name__, exc.reason, correlation_id)
        return _unavailable("media storage is not answering right now")
    except StoreUnavailable as exc:  # a store without a message of its own
        log.warning("%s is not answering (%s) in %s", exc.store, exc.reason, handler.__name__)
        return _unavailable(f"{exc.store} is not answering right now")
    except UnsafeDatabaseLogin:  # logged (critical) where it was found, with what to do
        return _unavailable("the service cannot use its database safely right now")
    except pg_errors.QueryCanceled as exc:  # POSTGRES_STATEMENT_TIMEOUT_MS: before the general case below
        postgres_statement_timeout_log.warning(handler.__name__, _first_line(exc), correlation_id)
        return _unavailable("the database took too long to answer; nothing was changed")
    except (psycopg.OperationalError, PoolTimeout, StaleConnection) as exc:
        postgres_unavailable_log.warning(handler.__name__, _first_line(exc), correlation_id)
        log.debug("database unavailable", exc_info=True, extra={"correlationId": correlation_id})
        return _unavailable("the database is not reachable right now")
    except Exception:
        log.exception("unhandled error in %s (correlation id %s)", handler.__name__, correlation_id)
        return problem_response(
            500,
            "Internal error",
            f"something went wrong on our side; quote correlation id {correlation_id}",
            type_=PROBLEM_TYPE_PREFIX + "internal",
        )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


class OutageLog:
    """An operator's message for a dependency outage: what happened and what to do, at most once per
    `every` seconds (with how many requests it hit meanwhile), not once per request."""

    def __init__(self, message: str, every: float = 10.0) -> None:
        self._message = message
        self._every = every
        self._last = -math.inf
        self._suppressed = 0

    def reset(self) -> None:
        """The next outage is logged at once (tests)."""
        self._last, self._suppressed = -math.inf, 0

    def warning(self, function_name: str, reason: str, correlation_id: str) -> None:
        now = time.monotonic()
        if now - self._last < self._every:
            self._suppressed += 1
            return
        self._last, suppressed, self._suppressed = now, self._suppressed, 0
        log.warning(
            self._message,
            {"function": function_name, "reason": reason, "others": suppressed, "every": self._every},
            extra={"correlationId": correlation_id},
        )


cosmos_unavailable_log = OutageLog(
    "Cosmos DB is not answering (%(reason)s) in %(function)s, and %(others)d other requests in the last "
    "%(every)g s: projection reads answer 503 with Retry-After, the home feed is served from PostgreSQL "
    "(header Chorus-Degraded), writes are not affected and the outbox brings the projections up to date "
    "when Cosmos DB answers again. Check the Cosmos DB account's availability and, for 429s, its "
    "throughput (RU/s); COSMOS_REQUEST_* settings bound how long a request waits for it."
)
media_storage_unavailable_log = OutageLog(
    "Blob storage is not answering (%(reason)s) in %(function)s, and %(others)d other requests in the "
    "last %(every)g s: completing media uploads answers 503 with Retry-After and the asset stays pending "
    "(the client completes it again later; nothing is lost). Check the storage account's availability "
    "and, in Azure, the app's role on it; MEDIA_STORAGE_TIMEOUT_SECONDS bounds how long a request waits."
)
postgres_unavailable_log = OutageLog(
    "PostgreSQL is not reachable (%(reason)s) in %(function)s, and %(others)d other requests in the last "
    "%(every)g s: they answer 503 with Retry-After and nothing was half-written (each request is one "
    "transaction). The connection pool reconnects by itself; if this lasts, check that the server is up, "
    "its connection limit and the app's login (POSTGRES_URL)."
)

postgres_statement_timeout_log = OutageLog(
    "A PostgreSQL statement ran past the statement timeout (%(reason)s) in %(function)s, and %(others)d "
    "other requests in the last %(every)g s: the server cancelled it, the request answered 503 with "
    "Retry-After and its transaction was rolled back. Look for a lock held by a long transaction or an "
    "operator's session (pg_stat_activity, pg_locks) or a slow plan; POSTGRES_STATEMENT_TIMEOUT_MS sets "
    "the limit."
)


def _unavailable(detail: str) -> func.HttpResponse:
    return problem_response(
        503,
        "Service unavailable",
        detail + "; retry shortly",
        type_=PROBLEM_TYPE_PREFIX + "unavailable",
        headers={"Retry-After": "5"},
    )


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors as `{field, message}`; never the submitted values."""
    errors = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        field = ".".join(str(part) for part in error["loc"]) or None
        errors.append({"field": field, "message": error["msg"], "code": error["type"]})
    return errors


# --- responses -------------------------------------------------------------------------------


def ok(
    body: ResponseBody | dict[str, Any], status: int = 200, location: str | None = None
) -> func.HttpResponse:
    payload = body.to_json() if isinstance(body, ResponseBody) else body
    return json_response(payload, status=status, headers={"Location": location} if location else None)


def no_content() -> func.HttpResponse:
    return func.HttpResponse(status_code=204)
