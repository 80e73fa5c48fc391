"""A big author's post is pullable from its commit (sql/0024, services/posts.py): the post's own
transaction widens the author's pull window, so a follower's feed read pulls the post as soon as the
relay has written it to authorPosts, without waiting for the change-feed fan-out. The relay and the
change feed never run in these tests, so only the commit can have opened the window."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.support.chorus import Chorus
from tests.support.outbox import OwnerDb

# More than one follower makes an author big here.
SETTINGS = {"FANOUT_MAX_FOLLOWERS": "1"}


@pytest.fixture
def app_settings_values(app_settings_values: dict[str, str]) -> dict[str, str]:
    return {**app_settings_values, **SETTINGS}


async def _window(db: OwnerDb, author_id: str) -> tuple[datetime, datetime, bool] | None:
    row = await db.row(
        "SELECT pulled_since, pulled_last, pulling FROM fanout_pull_windows WHERE author_id = %s",
        (author_id,),
    )
    return (row[0], row[1], row[2]) if row else None


async def test_a_big_authors_posts_widen_the_pull_window_in_their_own_transaction(
    chorus: Chorus, db: OwnerDb
) -> None:
    star, fan, other = await chorus.users("pw_star", "pw_fan", "pw_other")
    await chorus.do("PUT", f"/api/users/{star['id']}/follow", "pw_fan")
    assert await _window(db, star["id"]) is None

    small = await chorus.post("pw_star", "to one follower")  # at the threshold: fanned out
    assert await _window(db, star["id"]) is None, small

    await chorus.do("PUT", f"/api/users/{star['id']}/follow", "pw_other")  # above it now
    first = await chorus.post("pw_star", "to the many")
    first_at = datetime.fromisoformat(first["createdAt"].replace("Z", "+00:00"))
    assert await _window(db, star["id"]) == (first_at, first_at, True)

    second = await chorus.post("pw_star", "to the many again")
    second_at = datetime.fromisoformat(second["createdAt"].replace("Z", "+00:00"))
    assert await _window(db, star["id"]) == (first_at, second_at, True)

    # A closed window (the fan-out found the author small again) is only widened, never narrowed.
    await db.execute("UPDATE fanout_pull_windows SET pulling = false WHERE author_id = %s", (star["id"],))
    third = await chorus.post("pw_star", "and again")
    third_at = datetime.fromisoformat(third["createdAt"].replace("Z", "+00:00"))
    assert await _window(db, star["id"]) == (first_at, third_at, True)

    # A small author's post opens no window.
    await chorus.post("pw_fan", "to nobody")
    assert await _window(db, fan["id"]) is None
    assert await _window(db, other["id"]) is None
