"""Counting what an operation costs: Cosmos DB requests (an azure-cosmos `raw_response_hook` sees every
HTTP request the SDK sends, with its status, sizes and `x-ms-request-charge` when the server sends one)
and PostgreSQL statements (pg_stat_statements, filtered to one database and the app's login).

The local emulator answers `x-ms-request-charge: 1` for everything, so the charges it reports are not
request units; `estimated_ru` applies Microsoft's published rules of thumb instead (docs/cost-model.md).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg

_PATH = re.compile(
    r"/dbs/(?P<db>[^/]+)(?:/colls/(?P<coll>[^/]+))?(?:/(?P<kind>docs|pkranges))?(?:/(?P<id>[^/?]+))?"
)

# Published rules of thumb (docs/cost-model.md): RU per KB (rounded up, at least 1 KB).
READ_RU_PER_KB = 1.0
WRITE_RU_PER_KB = 5.5
QUERY_BASE_RU = 2.5
FAILED_CONDITION_RU = 1.0


@dataclass
class CosmosRequest:
    container: str
    operation: str
    status: int
    request_bytes: int
    response_bytes: int
    charge: float | None

    @property
    def estimated_ru(self) -> float:
        kb_in = max(1, -(-self.request_bytes // 1024))
        kb_out = max(1, -(-self.response_bytes // 1024))
        if self.status in (304, 404, 409, 412):
            return FAILED_CONDITION_RU
        if self.operation in ("create", "upsert", "replace", "delete"):
            return WRITE_RU_PER_KB * kb_in
        if self.operation == "patch":
            return WRITE_RU_PER_KB * kb_out  # charged on the document the patch produces
        if self.operation == "query":
            return QUERY_BASE_RU + READ_RU_PER_KB * (kb_out - 1)
        return READ_RU_PER_KB * kb_out


@dataclass
class CosmosCounter:
    """Install with `CosmosClient(..., raw_response_hook=counter.hook)`."""

    requests: list[CosmosRequest] = field(default_factory=list)

    def hook(self, response: Any) -> None:
        request = response.http_request
        http_response = response.http_response
        match = _PATH.search("/" + request.url.split("?")[0].split("://", 1)[-1].partition("/")[2])
        headers = {k.lower(): v for k, v in request.headers.items()}
        method = request.method.upper()
        container = (match and match["coll"]) or "(account)"
        kind = match["kind"] if match else None
        if kind != "docs":
            operation = "metadata"
        elif headers.get("x-ms-documentdb-isquery", "").lower() == "true" or "query" in headers.get(
            "content-type", ""
        ):
            operation = "query"
        elif headers.get("x-ms-cosmos-is-batch-request", "").lower() == "true":
            operation = "batch"
        elif method == "POST":
            operation = (
                "upsert" if headers.get("x-ms-documentdb-is-upsert", "").lower() == "true" else "create"
            )
        elif method == "GET":
            operation = (
                "change feed" if headers.get("a-im") else ("read" if match and match["id"] else "read feed")
            )
        else:
            operation = {"PUT": "replace", "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())
        charge_header = http_response.headers.get("x-ms-request-charge")
        body = request.body if isinstance(request.body, (bytes, str)) else b""
        self.requests.append(
            CosmosRequest(
                container=container,
                operation=operation,
                status=int(http_response.status_code),
                request_bytes=len(body),
                response_bytes=int(http_response.headers.get("content-length") or 0),
                charge=float(charge_header) if charge_header else None,
            )
        )

    def take(self) -> list[CosmosRequest]:
        taken, self.requests = self.requests, []
        return taken


def summarise(requests: list[CosmosRequest]) -> dict[str, Any]:
    data = [r for r in requests if r.operation != "metadata"]
    by_kind: Counter[str] = Counter(
        f"{r.container} {r.operation}" + (f" ({r.status})" if r.status >= 300 else "") for r in data
    )
    return {
        "requests": len(data),
        "metadata_requests": len(requests) - len(data),
        "by_container_operation": dict(sorted(by_kind.items())),
        "estimated_ru": round(sum(r.estimated_ru for r in data), 1),
        "server_reported_charge": round(sum(r.charge or 0.0 for r in data), 1),
        "bytes_written": sum(
            r.request_bytes for r in data if r.operation in ("create", "upsert", "replace", "patch")
        ),
    }


class PgStatements:
    """pg_stat_statements for one database and login: reset, then read the statements since."""

    def __init__(self, admin_url: str, database: str, login: str) -> None:
        self._admin_url, self._database, self._login = admin_url, database, login

    async def reset(self) -> None:
        async with await psycopg.AsyncConnection.connect(self._admin_url, autocommit=True) as conn:
            await conn.execute("SELECT pg_stat_statements_reset()")

    async def read(self) -> dict[str, Any]:
        async with await psycopg.AsyncConnection.connect(self._admin_url, autocommit=True) as conn:
            cur = await conn.execute(
                """SELECT s.query, s.calls FROM pg_stat_statements s
                   JOIN pg_database d ON d.oid = s.dbid JOIN pg_roles r ON r.oid = s.userid
                   WHERE d.datname = %s AND r.rolname = %s ORDER BY s.calls DESC""",
                (self._database, self._login),
            )
            rows = await cur.fetchall()
        statements = {" ".join(str(q).split())[:90]: int(c) for q, c in rows}
        return {"statements": sum(statements.values()), "by_statement": statements}
