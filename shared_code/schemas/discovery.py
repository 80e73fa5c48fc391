"""The discovery routes' bodies (docs/api.md "Search, hashtags and mentions")."""

from __future__ import annotations

from datetime import datetime

from shared_code.schemas.common import ResponseBody


class TrendingTag(ResponseBody):
    tag: str
    # Live uses (in posts and comments) that started within the window.
    uses: int


class TrendingTags(ResponseBody):
    items: list[TrendingTag]
    # The first UTC hour counted: the window is the current hour and the 23 before it.
    window_start: datetime
