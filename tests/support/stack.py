"""App settings pointing at the test session's services, and loading the real app."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from devhost.host.app_index import FunctionSpec, load_function_app
from devhost.settings_file import PROJECT_DIR, example_settings
from devhost.tokens import public_key_pem
from shared_code.settings import Settings, get_settings

if TYPE_CHECKING:
    from devhost.services.azurite import Azurite
    from devhost.services.cosmos import CosmosEmulator
    from devhost.services.eventhubs import EventHubsStandIn

APP_LOGIN = "chorus_api"


def as_app_login(database_url: str) -> str:
    """The same database, reached as the app's own login (row-level security applies to it)."""
    parts = urlsplit(database_url)
    host = parts.netloc.split("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{APP_LOGIN}@{host}", parts.path, parts.query, parts.fragment))


def app_settings(
    database_url: str,
    cosmos: CosmosEmulator,
    cosmos_database: str,
    azurite: Azurite,
    eventhubs: EventHubsStandIn | None,
    state_dir: Path,
) -> dict[str, str]:
    values = example_settings()
    values.update(
        {
            "POSTGRES_URL": as_app_login(database_url),
            "CosmosDB": cosmos.connection_string,
            "COSMOS_DATABASE": cosmos_database,
            "MediaStorage": azurite.connection_string,
            "AzureWebJobsStorage": azurite.connection_string,
            "EventHubs": eventhubs.connection_string if eventhubs else "",
            "EVENTHUB_NAME": eventhubs.hub_name if eventhubs else "chorus-events",
            "AUTH_PUBLIC_KEYS_PEM": public_key_pem(state_dir),
            "POSTGRES_POOL_MIN": "0",
            "POSTGRES_POOL_MAX": "20",
        }
    )
    return values


def settings_from(values: dict[str, str]) -> Settings:
    saved = dict(os.environ)
    try:
        os.environ.update(values)
        for name, value in values.items():
            if value == "":
                os.environ.pop(name, None)
        get_settings.cache_clear()
        return get_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


_specs: list[FunctionSpec] | None = None


def app_functions(values: dict[str, str]) -> list[FunctionSpec]:
    """The real app's functions, indexed once per test session (its settings must be valid to import)."""
    global _specs
    if _specs is None:
        saved = dict(os.environ)
        try:
            os.environ.update(values)
            get_settings.cache_clear()
            _specs = load_function_app(PROJECT_DIR)
        finally:
            os.environ.clear()
            os.environ.update(saved)
            get_settings.cache_clear()
    return _specs
