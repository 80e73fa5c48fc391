"""Each limit and vocabulary is written once in Python (shared_code/domain/limits.py) and once more
in the database's CHECK constraints (sql/); these tests read the schema snapshot and fail when the
two disagree, so a change to one cannot silently leave the other behind."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import get_args

import pytest

from shared_code.domain import limits

SNAPSHOT = Path(__file__).resolve().parents[2] / "sql" / "schema.snapshot.json"


def _constraint(name: str) -> str:
    constraints: dict[str, str] = json.loads(SNAPSHOT.read_text())["constraints"]
    return constraints[name]


def _listed(name: str) -> tuple[str, ...]:
    """The values of a `column = ANY (ARRAY['a'::text, ...])` CHECK, in order."""
    return tuple(re.findall(r"'([^']*)'::text", _constraint(name)))


def _bounds(name: str) -> tuple[int | None, int]:
    """The (min, max) of a `char_length(column)` CHECK; min is None when only the max is checked."""
    check = _constraint(name)
    low = re.search(r"char_length\([^)]*\) >= (\d+)", check)
    high = re.search(r"char_length\([^)]*\) <= (\d+)", check)
    assert high is not None, check
    return (int(low.group(1)) if low else None, int(high.group(1)))


def test_the_reaction_types_are_the_ones_the_database_accepts() -> None:
    assert get_args(limits.ReactionType) == limits.REACTION_TYPES
    assert _listed("reactions.reactions_type_check") == limits.REACTION_TYPES


@pytest.mark.parametrize(
    ("constraint", "vocabulary"),
    [
        ("users.users_auth_provider_check", limits.AuthProvider),
        ("moderation_flags.moderation_flags_severity_check", limits.Severity),
    ],
)
def test_each_vocabulary_is_the_one_the_database_accepts(constraint: str, vocabulary: object) -> None:
    assert _listed(constraint) == get_args(vocabulary)


def test_every_moderation_action_and_appeal_decision_can_be_recorded() -> None:
    recorded = set(_listed("moderation_actions.moderation_actions_action_check"))
    decisions = {f"appeal_{decision}" for decision in get_args(limits.AppealDecision)}
    assert recorded == set(get_args(limits.ModerationAction)) | decisions


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        ("profiles.profiles_display_name_check", (1, limits.DISPLAY_NAME_MAX)),
        ("profiles.profiles_bio_check", (None, limits.BIO_MAX)),
        ("profiles.profiles_avatar_url_check", (None, limits.AVATAR_URL_MAX)),
        ("posts.posts_content_check", (1, limits.POST_CONTENT_MAX)),
        ("comments.comments_content_check", (1, limits.COMMENT_CONTENT_MAX)),
        ("moderation_flags.moderation_flags_reason_check", (1, limits.FLAG_REASON_MAX)),
        # A flag's snapshot holds whatever post it flagged.
        ("moderation_flags.moderation_flags_flagged_text_check", (1, limits.POST_CONTENT_MAX)),
        ("moderation_actions.moderation_actions_reason_check", (1, limits.MODERATION_REASON_MAX)),
        ("appeals.appeals_decision_reason_check", (None, limits.MODERATION_REASON_MAX)),
        ("appeals.appeals_statement_check", (1, limits.APPEAL_STATEMENT_MAX)),
    ],
)
def test_each_length_limit_is_the_one_the_database_checks(
    constraint: str, expected: tuple[int | None, int]
) -> None:
    assert _bounds(constraint) == expected


def test_the_username_rule_is_the_one_the_database_checks() -> None:
    assert f"'{limits.USERNAME_PATTERN}'" in _constraint("users.users_username_check")


def test_a_post_holds_as_many_media_as_the_database_has_positions_for() -> None:
    check = _constraint("post_media.post_media_position_check")
    assert '"position" <= ' + str(limits.MEDIA_PER_POST_MAX - 1) in check
