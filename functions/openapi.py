"""GET /api/openapi.json: OpenAPI 3.1, generated from the route contracts (functions/contract.py)
and the same pydantic models the functions validate with. There is no second, hand-written copy."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import azure.functions as func
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from functions.contract import ROUTES, RouteContract, api_route
from functions.http_support import ApiRequest
from functions.responses import json_response
from shared_code.domain.limits import DEVICE_ID_PATTERN, MEDIA_SIZE_LIMIT
from shared_code.domain.text_entities import HASHTAG_PATTERN
from shared_code.schemas.common import UUID_PATTERN, ProblemDetails
from shared_code.schemas.ops import FAILURE_ID_PATTERN
from shared_code.schemas.reads import NOTIFICATION_ID_PATTERN
from shared_code.services.idempotency import IDEMPOTENCY_KEY_PATTERN

bp = func.Blueprint()

API_TITLE = "Chorus API"
API_VERSION = "1.0.0"
_PARAMETER = re.compile(r"\{(\*?)(\w+)(\??)((?::[^}]+)*)\}")
# Problems every authenticated route can answer with, besides its own success status.
_PROBLEMS = {
    400: "Malformed request or cursor",
    401: "No or bad bearer token",
    403: "Not allowed (or the account is not set up yet)",
    404: "Not found, or not visible to the caller",
    409: "Conflict",
    413: "Request body too large",
    415: "Request body is not JSON",
    422: "Validation failed",
    429: 'Over a rate limit or quota (docs/api.md "Limits"); nothing was changed: retry after Retry-After',
    500: "Internal error (quote the correlation id)",
    503: "A dependency is unavailable; retry",
}
# Every route refuses a body declared too large (413) and spends a rate limit (429).
_ANONYMOUS_PROBLEMS = {status: _PROBLEMS[status] for status in (413, 429, 500, 503)}
_RETRY_AFTER_STATUSES = ("429", "503")
# What docs/api.md "Authentication" says a token must be (shared_code/auth.py checks it): 401 otherwise.
_BEARER_RULES = (
    "An access token (JWT) of the identity provider: iss, aud, exp, iat and sub; header typ absent, JWT or "
    "at+jwt; no ID-token claims (nonce, at_hash, c_hash); a scp/scope or role claim; exp - iat at most "
    "AUTH_MAX_TOKEN_LIFETIME_SECONDS (28 hours by default); sub of at most 255 characters without control "
    "characters. Anything else answers 401."
)
_RETRY_AFTER = {"schema": {"type": "string"}, "description": "seconds to wait before trying again"}


def openapi_path(route: str) -> str:
    return "/api/" + _PARAMETER.sub(lambda m: "{" + m.group(2) + "}", route)


# Path parameters that are not UUIDs, and what they look like.
_PATH_PATTERNS = {
    "notificationId": NOTIFICATION_ID_PATTERN,
    "failureId": FAILURE_ID_PATTERN,
    "tag": HASHTAG_PATTERN,
    "deviceId": DEVICE_ID_PATTERN,
}
_NOT_FOUND_IF_OTHER = "any other value names nothing and answers a 404 problem"


def _path_parameters(route: str) -> list[dict[str, Any]]:
    parameters = []
    for match in _PARAMETER.finditer(route):
        schema: dict[str, Any] = {"type": "string"}
        if ":guid" in match.group(4):
            schema.update(format="uuid", pattern=UUID_PATTERN)
            description = f"a UUID in its 8-4-4-4-12 form; {_NOT_FOUND_IF_OTHER}"
        else:
            schema["pattern"] = _PATH_PATTERNS[match.group(2)]
            description = _NOT_FOUND_IF_OTHER
        parameters.append(
            {
                "name": match.group(2),
                "in": "path",
                "required": True,
                "schema": schema,
                "description": description,
            }
        )
    return parameters


def _required(model: type[BaseModel]) -> bool:
    """A body must be sent if a field is required or the schema asks for at least one property."""
    return any(field.is_required() for field in model.model_fields.values()) or bool(
        model.model_json_schema().get("minProperties")
    )


def _operation(route: RouteContract, refs: dict[Any, Any]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": route.summary}
    if route.response is not None:
        success["content"] = {"application/json": {"schema": refs[(route.response, "serialization")]}}
    elif route.status == 200:
        success["content"] = {"application/json": {"schema": {"type": "object"}}}
    headers: dict[str, Any] = {}
    if route.status == 201:
        headers["Location"] = {"schema": {"type": "string"}, "description": "the new resource"}
    for name, description in route.response_headers:
        headers[name] = {"schema": {"type": "string"}, "description": description}
    if headers:
        success["headers"] = headers
    problem = {"application/problem+json": {"schema": refs[(ProblemDetails, "serialization")]}}
    problems = _ANONYMOUS_PROBLEMS if route.access == "anonymous" else _PROBLEMS
    responses: dict[str, Any] = {str(route.status): success}
    for status, model, description in route.other_responses:
        responses[str(status)] = {
            "description": description,
            "content": {"application/json": {"schema": refs[(model, "serialization")]}},
            "headers": {"Retry-After": _RETRY_AFTER},
        }
    for status, description in problems.items():
        responses.setdefault(str(status), {"description": description, "content": problem})
        if str(status) in _RETRY_AFTER_STATUSES:
            responses[str(status)]["headers"] = {"Retry-After": _RETRY_AFTER}
    operation: dict[str, Any] = {
        "operationId": route.function_name,
        "summary": route.summary,
        "tags": list(route.tags),
        "parameters": _path_parameters(route.route)
        + [
            {
                "name": q.name,
                "in": "query",
                "required": q.required,
                "schema": q.schema,
                "description": q.description,
            }
            for q in route.query
        ],
        "responses": responses,
        "security": [] if route.access == "anonymous" else [{"bearerAuth": []}],
    }
    if route.access in ("moderator", "admin"):
        operation["description"] = f"Needs the {route.access} role (a claim of the bearer token)."
    if route.idempotent_create:
        operation["parameters"].append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
                "description": "1–255 visible ASCII characters (for example a UUID). A retry with the "
                "same key and body gets the first response again (with Idempotent-Replayed: true); "
                "the same key with another body answers 409. Keys are per account and kept for IDEMPOTENCY_KEY_TTL_HOURS.",
            }
        )
    if route.request is not None:
        operation["requestBody"] = {
            "required": _required(route.request),
            "content": {"application/json": {"schema": refs[(route.request, "validation")]}},
        }
    return operation


@cache
def build_openapi(media_max_bytes: int = MEDIA_SIZE_LIMIT) -> dict[str, Any]:
    """The document; `media_max_bytes` is the deployment's MEDIA_MAX_BYTES, stated as the limit."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ProblemDetails, "serialization")]
    for route in ROUTES:
        if route.request is not None:
            models.append((route.request, "validation"))
        if route.response is not None:
            models.append((route.response, "serialization"))
        models.extend((model, "serialization") for _, model, _ in route.other_responses)
    refs: dict[Any, Any]
    refs, definitions = models_json_schema(
        list(dict.fromkeys(models)), by_alias=True, ref_template="#/components/schemas/{model}"
    )
    upload = definitions["$defs"]["RequestUpload"]["properties"]["sizeBytes"]
    upload["maximum"] = min(upload["maximum"], media_max_bytes)
    paths: dict[str, dict[str, Any]] = {}
    for route in sorted(ROUTES, key=lambda r: (openapi_path(r.route), r.method)):
        paths.setdefault(openapi_path(route.route), {})[route.method.lower()] = _operation(route, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": API_TITLE,
            "version": API_VERSION,
            "description": "The Chorus social-network backend. Errors are RFC 9457 problem details; list "
            "routes page with opaque, signed cursors. A `traceparent` header (W3C Trace Context version 00) "
            "is continued, and its trace id answered as `x-correlation-id`; any other is ignored and a "
            "fresh trace started.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": _BEARER_RULES,
                }
            },
        },
    }


@api_route(bp, "GET", "openapi.json", summary="This document", access="anonymous", tag="operations")
async def openapi_document(api: ApiRequest) -> func.HttpResponse:
    return json_response(
        build_openapi(api.app.settings.media_max_bytes), headers={"Cache-Control": "public, max-age=300"}
    )
