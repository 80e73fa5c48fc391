"""The text-search configuration post search runs under (SEARCH_TEXT_CONFIG) must exist in the
database: posts are indexed and queried under it, so a name PostgreSQL does not know would make
every post write and every post search fail. The app checks it when it starts and refuses to run
with an operator's message instead."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection


class UnknownTextSearchConfig(RuntimeError):
    """SEARCH_TEXT_CONFIG names a text-search configuration the database does not have."""


def unknown_config_message(config: str, available: list[str]) -> str:
    """What happened and what to do, naming the configurations the database has."""
    return (
        f"Chorus refuses to start: SEARCH_TEXT_CONFIG is {config!r}, but this PostgreSQL database has no "
        f"text-search configuration of that name, so no post could be written or searched. Set "
        f"SEARCH_TEXT_CONFIG to one it has ({', '.join(available)}), or create that configuration in "
        "the database first (CREATE TEXT SEARCH CONFIGURATION, as the owner), then restart the app."
    )


async def check_text_search_config(conn: AsyncConnection[Any], config: str) -> None:
    """Raise UnknownTextSearchConfig (with the operator's message) if `config` is not a text-search
    configuration `conn`'s database has where `%s::regconfig` looks (the search path)."""
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = %s AND pg_ts_config_is_visible(oid))",
        (config,),
    )
    row = await cur.fetchone()
    if row is not None and row[0]:
        return
    cur = await conn.execute(
        "SELECT cfgname::text FROM pg_ts_config WHERE pg_ts_config_is_visible(oid) ORDER BY cfgname"
    )
    available = [str(r[0]) for r in await cur.fetchall()]
    raise UnknownTextSearchConfig(unknown_config_message(config, available))
