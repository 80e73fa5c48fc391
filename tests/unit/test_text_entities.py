"""The mention and hashtag parser (shared_code/domain/text_entities.py): examples for each rule, and
properties over any text."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared_code.domain.text_entities import (
    HASHTAG_MAX_LENGTH,
    HASHTAGS_PER_TEXT_MAX,
    MENTIONS_PER_TEXT_MAX,
    TextEntities,
    bounds_problem,
    canonical_tag,
    extract,
)


@pytest.mark.parametrize(
    ("text", "mentions", "tags"),
    [
        ("hi @Bob and @alice_2!", ("bob", "alice_2"), ()),
        ("@bob.", ("bob",), ()),
        ("(@bob)", ("bob",), ()),
        ("mail a@bob.example", (), ()),
        ("@bob@example.com", (), ()),
        ("@bobé", (), ()),
        ("@ab is too short", (), ()),
        ("@" + "a" * 31, (), ()),
        ("@" + "a" * 30, ("a" * 30,), ()),
        ("@bob @BOB @Bob", ("bob",), ()),
        ("#Café #CAFÉ #cafe\u0301", (), ("café",)),
        ("#2026 is no tag, #y2026 is", (), ("y2026",)),
        ("&#38; /#top a#b", (), ()),
        ("日本語 #東京 #ｔｏｋｙｏ", (), ("東京", "tokyo")),
        ("#tag_with_underscore, #end.", (), ("tag_with_underscore", "end")),
        ("#" + "a" * HASHTAG_MAX_LENGTH, (), ("a" * HASHTAG_MAX_LENGTH,)),
        ("#" + "a" * (HASHTAG_MAX_LENGTH + 1), (), ()),
        ("#привет @bob #Straße", ("bob",), ("привет", "strasse")),
        ("# alone, @ alone", (), ()),
    ],
)
def test_examples(text: str, mentions: tuple[str, ...], tags: tuple[str, ...]) -> None:
    assert extract(text) == TextEntities(mentions=mentions, hashtags=tags)


def test_bounds() -> None:
    many_mentions = " ".join(f"@user{i:02}" for i in range(MENTIONS_PER_TEXT_MAX + 1))
    many_tags = " ".join(f"#tag{i}" for i in range(HASHTAGS_PER_TEXT_MAX + 1))
    assert bounds_problem(extract(many_mentions)) is not None
    assert bounds_problem(extract(many_tags)) is not None
    at_most = " ".join(f"@user{i:02} #tag{i}" for i in range(MENTIONS_PER_TEXT_MAX))
    assert bounds_problem(extract(at_most)) is None
    # Repeats count once.
    assert bounds_problem(extract("@bob " * 50 + "#x " * 50)) is None


@given(st.text())
def test_any_text_parses_into_valid_entities(text: str) -> None:
    entities = extract(text)
    assert len(set(entities.mentions)) == len(entities.mentions)
    assert len(set(entities.hashtags)) == len(entities.hashtags)
    for name in entities.mentions:
        assert name == name.lower() and 3 <= len(name) <= 30 and f"@{name}" in text.lower()
    for tag in entities.hashtags:
        # Canonical: canonicalising again changes nothing.
        assert canonical_tag(tag) == tag
        assert 1 <= len(tag) <= HASHTAG_MAX_LENGTH


@given(st.text(alphabet=st.characters(categories=["L", "M", "N"]), min_size=1, max_size=20))
def test_a_tag_of_letters_is_found_whatever_its_case_and_form(word: str) -> None:
    tag = canonical_tag(word)
    if tag is None:
        return  # all digits or marks, or too long once folded
    for form in ("NFC", "NFD", "NFKC"):
        variant = unicodedata.normalize(form, word)
        assert extract(f"see #{variant}!").hashtags == (tag,)


@given(st.lists(st.from_regex(r"[A-Za-z0-9_]{3,30}", fullmatch=True), min_size=1, max_size=5), st.text())
def test_mentions_in_prose_are_found_in_order(names: list[str], filler: str) -> None:
    text = " ".join(f"@{name}," for name in names)
    expected = tuple(dict.fromkeys(name.lower() for name in names))
    assert extract(text).mentions == expected
    # Whatever follows after a space cannot take a mention away.
    assert extract(text + " " + filler).mentions[: len(expected)] == expected
