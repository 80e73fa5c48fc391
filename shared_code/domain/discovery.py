"""Pure rules of search and trending: how long a query may be, the key range a name prefix spans,
and the hours the trending window counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

SEARCH_QUERY_MAX: Final = 100
TRENDING_HOURS: Final = 24
TRENDING_LIMIT_DEFAULT: Final = 10

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


def hour_bucket(moment: datetime) -> datetime:
    """The UTC hour a use counts in (as the SQL trigger's date_trunc('hour', used_at, 'UTC'))."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def trending_window_start(now: datetime) -> datetime:
    """The first hour the trending window counts: the current UTC hour and the TRENDING_HOURS - 1
    before it, so the window is between 23 and 24 hours long, never longer."""
    return hour_bucket(now) - timedelta(hours=TRENDING_HOURS - 1)
