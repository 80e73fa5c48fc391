"""The Chorus Function App: one FunctionApp, the blueprints registered, nothing else.

Settings are read here so a missing or malformed one stops the app at start-up
with its name, instead of failing the first request.
"""

import azure.functions as func

from functions import (
    accounts,
    admin,
    api_docs,
    calendar,
    change_feed,
    discovery,
    health,
    media,
    messaging,
    moderation,
    openapi,
    outbox,
    posts,
    reads,
    social,
)
from shared_code.observability import configure_observability
from shared_code.settings import get_settings

configure_observability(get_settings())

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
for blueprint in (
    health.bp,
    openapi.bp,
    api_docs.bp,
    accounts.bp,
    social.bp,
    posts.bp,
    media.bp,
    moderation.bp,
    reads.bp,
    discovery.bp,
    calendar.bp,
    messaging.bp,
    admin.bp,
    outbox.bp,
    change_feed.bp,
):
    app.register_functions(blueprint)
