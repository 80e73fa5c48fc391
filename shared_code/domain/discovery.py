"""Pure rules of search and trending: how long a query may be, the key range a name prefix spans,
and the hours the trending window counts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final
from uuid import UUID

SEARCH_QUERY_MAX: Final = 100
TRENDING_HOURS: Final = 24
TRENDING_LIMIT_DEFAULT: Final = 10
# Trending buckets older than this are deleted by the retention timer (the window reads 24 hours).
TRENDING_RETENTION_HOURS: Final = 48
# Post search ranks at most this many matches of a query: the newest live ones (docs/api.md "Search").
# A word found in a large share of a million posts then costs what a rarer one does.
SEARCH_POSTS_CANDIDATES: Final = 1000
# User search reads at most this many rounds of one page's worth of entries from each name index
# before it answers (a short page with a cursor when most entries were not to be listed).
USER_SEARCH_ROUNDS: Final = 4

_SURROGATES = range(0xD800, 0xE000)
_LAST_CODE_POINT = 0x10FFFF


def prefix_upper_bound(prefix: str) -> str | None:
    """The least string greater than every string that starts with `prefix`, in code-point order
    (the "C" collation's order on UTF-8): a prefix match is then the range [prefix, bound). None when
    no such string exists (the prefix is only U+10FFFF characters): the range is then unbounded."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop()) + 1
        if last in _SURROGATES:
            last = _SURROGATES.stop
        if last <= _LAST_CODE_POINT:
            return "".join(chars) + chr(last)
    return None


# Where user search stands in the merged order of both name indexes: (search key, account id).
NamePosition = tuple[str, UUID]


def seen_through(branches: Sequence[Sequence[NamePosition]], window: int) -> NamePosition | None:
    """How far one round of user search has seen every entry of both name indexes: up to the
    least last entry of the branches that filled their window (one with fewer entries has none
    left in the range). None when no branch has entries left."""
    ends = [entries[-1] for entries in branches if len(entries) >= window]
    return min(ends) if ends else None


def hour_bucket(moment: datetime) -> datetime:
    """The UTC hour a use counts in (as the SQL trigger's date_trunc('hour', used_at, 'UTC'))."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def trending_window_start(now: datetime) -> datetime:
    """The first hour the trending window counts: the current UTC hour and the TRENDING_HOURS - 1
    before it, so the window is between 23 and 24 hours long, never longer."""
    return hour_bucket(now) - timedelta(hours=TRENDING_HOURS - 1)
