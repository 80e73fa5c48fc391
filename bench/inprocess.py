"""The app hosted inside the harness process, with a Cosmos client whose every request is counted
(bench/counting.py): for the scenarios that count what a step costs (cost_model, celebrity).

The counted clients are the ones the app uses (`AppContext.cosmos_db` for the background work,
`AppContext.request_cosmos_db` for the request paths), built as shared_code.adapters.cosmos builds them
plus the counting hook. The HTTP front end is optional: a scenario
that only calls services (a change-feed step) does not need one.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from azure.cosmos.aio import CosmosClient

from bench.context import BenchContext
from bench.counting import CosmosCounter
from devhost.services.process import free_port
from devhost.settings_file import PROJECT_DIR


@dataclass
class InProcessApp:
    app_ctx: Any  # shared_code.app_context.AppContext (imported late: settings come from the environment)
    counter: CosmosCounter
    base_url: str | None  # the HTTP front end, when one was asked for


@asynccontextmanager
async def app_in_process(
    ctx: BenchContext, postgres_url: str, cosmos_database: str, http: bool = False
) -> AsyncIterator[InProcessApp]:
    """The app's context (and with `http`, its HTTP functions behind the local host's front end) in this
    process, on the given PostgreSQL database and Cosmos database, every Cosmos request counted."""
    values = {
        **ctx.stack.app_settings,
        "POSTGRES_URL": postgres_url,
        "COSMOS_DATABASE": cosmos_database,
        "POSTGRES_POOL_MIN": "0",
    }
    saved = dict(os.environ)
    os.environ.update(values)
    counter = CosmosCounter()
    try:
        from devhost.host.app_index import load_function_app
        from devhost.host.http_server import HttpFrontEnd
        from devhost.host.invocation import Invoker
        from devhost.host.server import route_prefix
        from shared_code.adapters.cosmos import direct_transport, request_client_options
        from shared_code.app_context import AppContext
        from shared_code.bootstrap import use_app_context
        from shared_code.settings import get_settings

        get_settings.cache_clear()
        app_ctx = await AppContext.create(get_settings())
        await app_ctx.cosmos.close()
        app_ctx.cosmos = CosmosClient(
            ctx.stack.cosmos_endpoint,
            credential=ctx.stack.cosmos_key,
            transport=direct_transport(),
            raw_response_hook=counter.hook,
        )
        app_ctx.cosmos_db = app_ctx.cosmos.get_database_client(cosmos_database)
        # The request paths (GET /api/feed, notifications, profiles, reactions) use their own client, with
        # the request timeouts and retry budget: counted too, or their rows would show no Cosmos requests.
        await app_ctx.request_cosmos.close()
        app_ctx.request_cosmos = CosmosClient(
            ctx.stack.cosmos_endpoint,
            credential=ctx.stack.cosmos_key,
            transport=direct_transport(),
            raw_response_hook=counter.hook,
            **request_client_options(app_ctx.settings),
        )
        app_ctx.request_cosmos_db = app_ctx.request_cosmos.get_database_client(cosmos_database)
        use_app_context(app_ctx)
        runner: web.AppRunner | None = None
        invoker = None
        try:
            base_url = None
            if http:
                specs = load_function_app(PROJECT_DIR)
                invoker = Invoker(PROJECT_DIR)
                front = HttpFrontEnd(
                    [s for s in specs if s.trigger_type == "httpTrigger"], invoker, route_prefix(PROJECT_DIR)
                )
                runner = web.AppRunner(front.make_app(), access_log=None, handle_signals=False)
                await runner.setup()
                port = free_port()
                await web.TCPSite(runner, "127.0.0.1", port).start()
                base_url = f"http://127.0.0.1:{port}"
            yield InProcessApp(app_ctx, counter, base_url)
        finally:
            if runner is not None:
                await runner.cleanup()
            if invoker is not None:
                invoker.close()
            use_app_context(None)
            await app_ctx.aclose()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        from shared_code.settings import get_settings

        get_settings.cache_clear()
