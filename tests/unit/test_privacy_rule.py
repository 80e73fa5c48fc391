"""The privacy rule (shared_code/domain/privacy.py): who sees an author's content."""

from __future__ import annotations

import uuid

import pytest

from shared_code.domain.privacy import AuthorAudience, may_see_content

AUTHOR = uuid.uuid4()
VIEWER = uuid.uuid4()


def _audience(visibility: str = "public", follows: bool = False, blocked: bool = False) -> AuthorAudience:
    return AuthorAudience(
        author_id=AUTHOR, visibility=visibility, viewer_follows=follows, blocked_either_way=blocked
    )


@pytest.mark.parametrize(
    ("visibility", "follows", "blocked", "seen"),
    [
        ("public", False, False, True),  # anyone sees a public account
        ("public", True, False, True),
        ("public", False, True, False),  # a block either way hides it
        ("public", True, True, False),
        ("private", False, False, False),  # a non-follower, or a pending request, does not
        ("private", True, False, True),  # an approved follower does
        ("private", True, True, False),  # not across a block
        ("followers", False, False, False),  # the schema's old third value counts as private
        ("followers", True, False, True),
    ],
)
def test_a_viewer_sees_what_visibility_follow_and_blocks_allow(
    visibility: str, follows: bool, blocked: bool, seen: bool
) -> None:
    assert may_see_content(VIEWER, False, _audience(visibility, follows, blocked)) is seen


@pytest.mark.parametrize("visibility", ["public", "private"])
@pytest.mark.parametrize("blocked", [False, True])
def test_the_author_and_moderators_always_see(visibility: str, blocked: bool) -> None:
    audience = _audience(visibility, blocked=blocked)
    assert may_see_content(AUTHOR, False, audience)
    assert may_see_content(VIEWER, True, audience)


def test_nobody_sees_a_missing_author_and_nobody_signed_in_sees_a_private_one() -> None:
    assert not may_see_content(VIEWER, False, None)
    assert not may_see_content(VIEWER, True, None)
    assert not may_see_content(None, False, _audience("private"))
    assert may_see_content(None, False, _audience("public"))
