"""The privacy rule (shared_code/domain/privacy.py): who sees an author's content, opened or listed."""

from __future__ import annotations

import uuid

import pytest

from shared_code.domain.privacy import AuthorAudience, may_see_content, shows_in_listings

AUTHOR = uuid.uuid4()
VIEWER = uuid.uuid4()


def _audience(
    visibility: str = "public", follows: bool = False, blocked_by: bool = False, blocking: bool = False
) -> AuthorAudience:
    return AuthorAudience(
        author_id=AUTHOR,
        visibility=visibility,
        viewer_follows=follows,
        author_blocked_viewer=blocked_by,
        viewer_blocked_author=blocking,
    )


@pytest.mark.parametrize(
    ("visibility", "follows", "seen"),
    [
        ("public", False, True),  # anyone sees a public account
        ("public", True, True),
        ("private", False, False),  # a non-follower, or a pending requester, does not
        ("private", True, True),  # an approved follower does
        ("followers", False, False),  # the schema's old third value counts as private
        ("followers", True, True),
    ],
)
def test_a_viewer_sees_what_visibility_and_an_approved_follow_allow(
    visibility: str, follows: bool, seen: bool
) -> None:
    assert may_see_content(VIEWER, False, _audience(visibility, follows)) is seen
    assert shows_in_listings(VIEWER, False, _audience(visibility, follows)) is seen


@pytest.mark.parametrize("visibility", ["public", "private"])
def test_a_block_binds_the_blocked_user_and_hides_listings_both_ways(visibility: str) -> None:
    # The author blocked the viewer: nothing, even for a follower (a block ends follows anyway).
    assert not may_see_content(VIEWER, False, _audience(visibility, True, blocked_by=True))
    assert not shows_in_listings(VIEWER, False, _audience(visibility, True, blocked_by=True))
    # The viewer blocked the author: still opens it (and can report it), but it is not listed for them.
    assert may_see_content(VIEWER, False, _audience(visibility, True, blocking=True))
    assert not shows_in_listings(VIEWER, False, _audience(visibility, True, blocking=True))


@pytest.mark.parametrize("visibility", ["public", "private"])
@pytest.mark.parametrize(
    ("blocked_by", "blocking"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_the_author_and_moderators_always_see(visibility: str, blocked_by: bool, blocking: bool) -> None:
    audience = _audience(visibility, blocked_by=blocked_by, blocking=blocking)
    for rule in (may_see_content, shows_in_listings):
        assert rule(AUTHOR, False, audience)
        assert rule(VIEWER, True, audience)


def test_nobody_sees_a_missing_author_and_nobody_signed_in_sees_a_private_one() -> None:
    for rule in (may_see_content, shows_in_listings):
        assert not rule(VIEWER, False, None)
        assert not rule(VIEWER, True, None)
        assert not rule(None, False, _audience("private"))
        assert rule(None, False, _audience("public"))
