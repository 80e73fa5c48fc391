"""cost_model: Cosmos DB requests and PostgreSQL statements per API operation and per change-feed step,
counted exactly, for docs/cost-model.md.

Counting needs an instrumented Cosmos client, so this scenario runs the app in the harness process, on the
same local services but in a database of its own (PostgreSQL `chorus_cost`, Cosmos `chorus_cost`) that
nothing else touches: the app's HTTP functions behind the local host's HTTP front end, and the relay and
change-feed steps called one at a time (`OutboxRelay.run_once`, `ChangeFeedService.fan_out_posts`,
`ChangeFeedService.apply_reactions`) so each step's requests are its own. Cosmos requests come from a
`raw_response_hook`; PostgreSQL statements (BEGIN and COMMIT included) from pg_stat_statements.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from azure.cosmos import CosmosClient as SyncCosmosClient

from bench.context import BenchContext
from bench.counting import CosmosCounter, PgStatements, summarise
from bench.inprocess import app_in_process
from bench.loadgen import Http
from bench.result import ScenarioResult
from devhost.cosmos_provisioning import provision
from devhost.tokens import issue_token

NAME = "cost_model"
DATABASE = "chorus_cost"
APP_LOGIN = "chorus_api"


async def run(ctx: BenchContext) -> ScenarioResult:
    fanout_sizes = (0, 10, 100) if ctx.quick else (0, 10, 100, 1000)
    result = ScenarioResult(NAME, "Cosmos requests and PostgreSQL statements per operation (counted)")
    result.parameters = {"fanout_followers": list(fanout_sizes), "database": DATABASE}
    admin_url, app_url = await _database(ctx)
    await asyncio.to_thread(_cosmos_database, ctx)
    async with app_in_process(ctx, app_url, DATABASE, http=True) as app:
        assert app.base_url is not None
        async with Http(app.base_url) as http:
            steps = await _walk(
                ctx,
                http,
                app.app_ctx,
                app.counter,
                PgStatements(admin_url, DATABASE, APP_LOGIN),
                fanout_sizes,
            )
    result.figures["steps"] = steps
    fan = [s for s in steps if s["step"].startswith("change feed posts_v2 → userFeed")]
    result.figures["fanout_fit"] = [
        {
            "followers": s["followers"],
            "cosmos_requests": s["cosmos"]["requests"],
            "postgres_statements": s["postgres"]["statements"],
        }
        for s in fan
    ]
    for s in steps:
        result.check(
            s["step"],
            "counted",
            f"{s['cosmos']['requests']} Cosmos requests (≈{s['cosmos']['estimated_ru']} RU)"
            f", {s['postgres']['statements']} PG statements",
            None,
        )
    result.notes.append(
        "The local emulator answers x-ms-request-charge: 1 for every request, so server charges "
        "are not request units; RU figures are estimates from published rules of thumb "
        "(see docs/cost-model.md)."
    )
    return result


async def _database(ctx: BenchContext) -> tuple[str, str]:
    from shared_code.db.migrations import migrate
    from shared_code.db.roles import ensure_app_login

    async with await ctx.admin() as conn:
        cur = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
        if await cur.fetchone() is None:
            await conn.execute(f'CREATE DATABASE "{DATABASE}"')
    base = ctx.stack.postgres_admin_url.rsplit("/", 1)[0]
    admin_url = f"{base}/{DATABASE}"
    app_url = ctx.stack.postgres_url.rsplit("/", 1)[0] + f"/{DATABASE}"
    await asyncio.to_thread(migrate, admin_url)
    await asyncio.to_thread(ensure_app_login, admin_url, APP_LOGIN)
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return admin_url, app_url


def _cosmos_database(ctx: BenchContext) -> None:
    with SyncCosmosClient(ctx.stack.cosmos_endpoint, credential=ctx.stack.cosmos_key) as client:
        provision(client, DATABASE)


async def _walk(
    ctx: BenchContext,
    http: Http,
    app_ctx: Any,
    counter: CosmosCounter,
    pg: PgStatements,
    fanout_sizes: tuple[int, ...],
) -> list[dict[str, Any]]:
    from shared_code.bootstrap import change_feed_service, outbox_relay

    steps: list[dict[str, Any]] = []
    relay = outbox_relay(app_ctx)
    db = app_ctx.cosmos_db

    def token(subject: str) -> str:
        return issue_token(ctx.stack.state_dir, subject)

    async def measure(step: str, action: Callable[[], Awaitable[Any]], **extra: Any) -> Any:
        counter.take()
        await pg.reset()
        value = await action()
        statements = await pg.read()
        steps.append({"step": step, **extra, "cosmos": summarise(counter.take()), "postgres": statements})
        return value

    async def relayed(event: str) -> None:
        report = await measure(f"relay: {event}", relay.run_once)
        steps[-1]["events_in_batch"] = report.claimed

    async def call(step: str, method: str, path: str, subject: str, body: Any = None) -> Any:
        return await measure(step, lambda: http.expect(method, path, token(subject), body))

    async def read_feed(step: str, subject: str) -> None:
        async def read() -> None:
            status, headers = await http.call_headers("GET", "/api/feed?limit=20", token(subject))
            if status != 200:
                raise RuntimeError(f"GET /api/feed answered {status}")
            if "chorus-degraded" in headers:
                # Cosmos DB missed the request budget and the page came from PostgreSQL: these are the
                # fallback's counts, not the feed read's; the step says so.
                degraded.append(step)

        degraded: list[str] = []
        await measure(step, read)
        if degraded:
            steps[-1]["step"] += " (served degraded from PostgreSQL: Cosmos DB missed its request budget)"

    async def fan_out(post_id: str, followers: int) -> None:
        doc = await db.get_container_client("posts_v2").read_item(post_id, post_id)
        await measure(
            f"change feed posts_v2 → userFeed (F={followers})",
            lambda: change_feed_service(app_ctx).fan_out_posts([doc]),
            followers=followers,
        )

    async def reactions_step(label: str, post_id: str, user_id: str) -> None:
        doc = await db.get_container_client("reactions").read_item(f"{post_id}:{user_id}", post_id)
        await measure(
            f"change feed reactions → counters, notifications ({label})",
            lambda: change_feed_service(app_ctx).apply_reactions([doc]),
        )

    alice = await call(
        "POST /api/users",
        "POST",
        "/api/users",
        "cost-alice",
        {"username": "cost_alice", "displayName": "Alice"},
    )
    await relayed("user.created")
    bob = await http.expect(
        "POST", "/api/users", token("cost-bob"), {"username": "cost_bob", "displayName": "Bob"}
    )
    await relay.run_once()
    await call("PUT /api/users/{id}/follow", "PUT", f"/api/users/{alice['id']}/follow", "cost-bob")
    await relayed("follow.created (back-fill of the followee's posts: none yet)")
    post = await call(
        "POST /api/posts", "POST", "/api/posts", "cost-alice", {"content": "a post " + "x" * 200}
    )
    await relayed("post.created")
    await fan_out(str(post["id"]), 1)
    for n in range(19):  # bob's feed: 20 posts
        extra = await http.expect(
            "POST", "/api/posts", token("cost-alice"), {"content": f"post {n} " + "x" * 200}
        )
        await relay.run_once()
        doc = await db.get_container_client("posts_v2").read_item(str(extra["id"]), str(extra["id"]))
        await change_feed_service(app_ctx).fan_out_posts([doc])
    await read_feed("GET /api/feed?limit=20 (first read: counters cache misses)", "cost-bob")
    await read_feed("GET /api/feed?limit=20 (steady state)", "cost-bob")
    post_id = str(post["id"])
    await call(
        "PUT /api/posts/{id}/reactions (new)",
        "PUT",
        f"/api/posts/{post_id}/reactions",
        "cost-bob",
        {"type": "like"},
    )
    await relayed("reaction.set")
    await reactions_step("new reaction", post_id, str(bob["id"]))
    await call(
        "PUT /api/posts/{id}/reactions (change)",
        "PUT",
        f"/api/posts/{post_id}/reactions",
        "cost-bob",
        {"type": "love"},
    )
    await relayed("reaction.set (changed)")
    await reactions_step("changed reaction", post_id, str(bob["id"]))
    await call("DELETE /api/posts/{id}/reactions", "DELETE", f"/api/posts/{post_id}/reactions", "cost-bob")
    await relayed("reaction.removed")
    await reactions_step("removed reaction", post_id, str(bob["id"]))
    await call(
        "POST /api/posts/{id}/comments",
        "POST",
        f"/api/posts/{post_id}/comments",
        "cost-bob",
        {"content": "nice"},
    )
    await relayed("comment.created")
    await call("GET /api/notifications", "GET", "/api/notifications", "cost-alice")
    await call("GET /api/profiles/{id}", "GET", f"/api/profiles/{alice['id']}", "cost-bob")
    await call("GET /api/posts/{id}", "GET", f"/api/posts/{post_id}", "cost-bob")
    await call("DELETE /api/users/{id}/follow", "DELETE", f"/api/users/{alice['id']}/follow", "cost-bob")
    await relayed("follow.deleted (removes the followee's posts from the feed)")

    for size in fanout_sizes:
        author = await http.expect(
            "POST",
            "/api/users",
            token(f"cost-author-{size}"),
            {"username": f"cost_author_{size}", "displayName": f"Author {size}"},
        )
        await relay.run_once()
        await _followers(pg, app_ctx, str(author["id"]), size)
        made = await http.expect(
            "POST", "/api/posts", token(f"cost-author-{size}"), {"content": "fan me out"}
        )
        await relay.run_once()
        await fan_out(str(made["id"]), size)
    return steps


async def _followers(pg: PgStatements, app_ctx: Any, author_id: str, size: int) -> None:
    """`size` set-up users following `author_id`, straight into PostgreSQL (as the owner)."""
    if size == 0:
        return
    async with (
        await psycopg.AsyncConnection.connect(pg._admin_url, autocommit=True) as conn,
        conn.transaction(),
    ):
        cur = await conn.execute(
            """INSERT INTO users (auth_subject, auth_provider, username)
               SELECT format('cost-f-%%s-%%s', %(size)s, i), 'email', format('cost_f%%s_%%s', %(size)s, i)
               FROM generate_series(1, %(size)s) i RETURNING id""",
            {"size": size},
        )
        ids = [row[0] for row in await cur.fetchall()]
        await conn.execute(
            """INSERT INTO profiles (user_id, display_name) SELECT u, 'F' FROM unnest(%s::uuid[]) u""", (ids,)
        )
        await conn.execute("INSERT INTO user_counts (user_id) SELECT unnest(%s::uuid[])", (ids,))
        await conn.execute(
            "INSERT INTO follows (follower_id, followee_id) SELECT unnest(%s::uuid[]), %s", (ids, author_id)
        )
