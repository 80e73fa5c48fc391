"""The patterns the OpenAPI document states are the rules the server checks."""

from __future__ import annotations

import re
import sys

import pytest

from shared_code.schemas.common import (
    NON_BLANK_PATTERN,
    TEXT_PATTERN,
    UUID_PATTERN,
    WHITESPACE_CLASS,
    is_uuid,
)
from shared_code.services.idempotency import IDEMPOTENCY_KEY_PATTERN


def test_the_whitespace_class_is_exactly_what_python_calls_whitespace() -> None:
    pattern = re.compile(f"[{WHITESPACE_CLASS}]")
    differing = [
        hex(code)
        for code in range(sys.maxunicode + 1)
        if chr(code).isspace() != bool(pattern.fullmatch(chr(code)))
    ]
    assert differing == []


@pytest.mark.parametrize(
    ("text", "accepted"),
    [("hello", True), ("  x  ", True), ("", False), (" \t\n\u3000", False), ("a\x00b", False)],
)
def test_non_blank_text(text: str, accepted: bool) -> None:
    assert bool(re.fullmatch(NON_BLANK_PATTERN, text)) is accepted
    assert bool(re.fullmatch(TEXT_PATTERN, text)) is ("\x00" not in text)


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("123e4567-e89b-12d3-a456-426614174000", True),
        ("123E4567-E89B-12D3-A456-426614174000", True),
        ("123e4567e89b12d3a456426614174000", False),
        ("{123e4567-e89b-12d3-a456-426614174000}", False),
        ("urn:uuid:123e4567-e89b-12d3-a456-426614174000", False),
        ("123e4567-e89b-12d3-a456-426614174000\n", False),
        ("alice", False),
    ],
)
def test_ids_are_canonical_uuids(value: str, accepted: bool) -> None:
    assert is_uuid(value) is accepted
    assert UUID_PATTERN.startswith("^") and UUID_PATTERN.endswith("$")


@pytest.mark.parametrize(
    ("key", "accepted"),
    [("6f1c-retry", True), ("x" * 255, True), ("x" * 256, False), ("", False), ("a b", False), ("é", False)],
)
def test_idempotency_keys_are_visible_ascii(key: str, accepted: bool) -> None:
    assert bool(re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key)) is accepted
