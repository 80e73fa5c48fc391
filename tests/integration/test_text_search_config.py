"""SEARCH_TEXT_CONFIG names the PostgreSQL text-search configuration posts are indexed and searched
under: one the database does not have stops the app at start-up with an operator's message (what
happened, what to do), instead of failing every post write and search later (issue 15)."""

from __future__ import annotations

import logging

import pytest
from psycopg_pool import PoolTimeout

from shared_code.adapters.postgres import open_pool
from shared_code.app_context import AppContext
from shared_code.db.text_search import UnknownTextSearchConfig
from tests.support.stack import settings_from


async def test_the_app_refuses_to_start_with_a_text_search_config_the_database_lacks(
    app_settings_values: dict[str, str],
) -> None:
    settings = settings_from({**app_settings_values, "SEARCH_TEXT_CONFIG": "klingon"})
    with pytest.raises(UnknownTextSearchConfig) as refused:
        await AppContext.create(settings)
    message = str(refused.value)
    assert "refuses to start" in message and "'klingon'" in message  # what happened
    # What to do: the configurations the database has, and the setting to change.
    assert "SEARCH_TEXT_CONFIG to one it has (" in message and "english" in message and "simple" in message


async def test_a_known_config_other_than_the_default_starts(app_settings_values: dict[str, str]) -> None:
    context = await AppContext.create(settings_from({**app_settings_values, "SEARCH_TEXT_CONFIG": "english"}))
    await context.aclose()


async def test_a_pool_opened_while_the_server_was_away_checks_the_config_on_connecting(
    app_settings_values: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_from(
        {**app_settings_values, "SEARCH_TEXT_CONFIG": "klingon", "POSTGRES_POOL_MIN": "0"}
    )
    pool = await open_pool(settings)
    try:
        with caplog.at_level(logging.CRITICAL, logger="chorus.postgres"), pytest.raises(PoolTimeout):
            async with pool.connection(timeout=2):
                pass
    finally:
        await pool.close()
    assert any("SEARCH_TEXT_CONFIG is 'klingon'" in r.getMessage() for r in caplog.records), caplog.records
