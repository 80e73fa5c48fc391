"""Mentions (`@username`) and hashtags (`#tag`) in a post's or a comment's text. Pure: no I/O.

The rules (also in the OpenAPI document, on `content`):

- A marker (`@` or `#`) starts an entity only at the start of the text or after a character that is
  neither a word character (any Unicode letter, mark or digit, or `_`) nor one of `@#&/`: so an
  e-mail address (`a@b.example`), an HTML entity (`&#38;`) and a URL fragment (`/#top`) are none.
- A mention is `@` and a username (3-30 ASCII letters, digits or `_`), followed by the end of the
  text or a character that is neither a word character nor `@`: `@bob.` mentions bob,
  `@bob@example.com` and `@bobé` mention nobody. Mentions are compared without case.
- A hashtag is `#` and 1-64 word characters with at least one letter (`#2026` is no tag); its
  canonical form is NFKC, case-folded (so `#Café`, `#CAFÉ` and `#cafe\u0301` are one tag).
- Each distinct mention or tag counts once, in the order of its first use; a text may hold at most
  MENTIONS_PER_TEXT_MAX distinct mentions and HASHTAGS_PER_TEXT_MAX distinct tags (more: 422).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final

MENTIONS_PER_TEXT_MAX: Final = 10
HASHTAGS_PER_TEXT_MAX: Final = 10
HASHTAG_MAX_LENGTH: Final = 64
# What GET /api/hashtags/{tag}/posts accepts as a tag, without its `#` (canonical or not: it is
# canonicalised; a value that is no tag names nothing: 404).
HASHTAG_PATTERN: Final = r"^[^\s#@&/?%\u0000]{1,64}$"

_USERNAME = re.compile(r"[A-Za-z0-9_]{3,30}")
_NO_START_AFTER: Final = frozenset("@#&/")


def _is_word(char: str) -> bool:
    """A letter, mark or digit of any script, or `_`: what a tag is made of."""
    return char == "_" or unicodedata.category(char)[0] in "LMN"


def canonical_tag(raw: str) -> str | None:
    """The tag's canonical form, or None when `raw` (without its `#`) is not a tag."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", raw).casefold())
    if not 1 <= len(folded) <= HASHTAG_MAX_LENGTH:
        return None
    if not all(_is_word(c) for c in folded):
        return None
    if not any(unicodedata.category(c)[0] == "L" for c in folded):
        return None
    return folded


@dataclass(frozen=True)
class TextEntities:
    """Distinct mentioned usernames (lower case) and canonical tags, in the order of first use."""

    mentions: tuple[str, ...]
    hashtags: tuple[str, ...]


def _may_start(text: str, index: int) -> bool:
    if index == 0:
        return True
    before = text[index - 1]
    return not _is_word(before) and before not in _NO_START_AFTER


def extract(text: str) -> TextEntities:
    """Every distinct mention and tag of `text` (without the per-text bounds: see `check_bounds`)."""
    mentions: dict[str, None] = {}
    tags: dict[str, None] = {}
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        if char not in "@#" or not _may_start(text, index):
            index += 1
            continue
        end = index + 1
        if char == "@":
            match = _USERNAME.match(text, end)
            if match is not None:
                end = match.end()
                after = text[end] if end < length else ""
                if after == "" or (not _is_word(after) and after != "@"):
                    mentions.setdefault(match.group().lower(), None)
        else:
            while end < length and _is_word(text[end]):
                end += 1
            tag = canonical_tag(text[index + 1 : end])
            if tag is not None:
                tags.setdefault(tag, None)
        index = max(end, index + 1)
    return TextEntities(mentions=tuple(mentions), hashtags=tuple(tags))


def bounds_problem(entities: TextEntities) -> str | None:
    """Why a text holds too many mentions or tags, or None when it is within the bounds."""
    if len(entities.mentions) > MENTIONS_PER_TEXT_MAX:
        return f"at most {MENTIONS_PER_TEXT_MAX} distinct @mentions per text ({len(entities.mentions)} given)"
    if len(entities.hashtags) > HASHTAGS_PER_TEXT_MAX:
        return f"at most {HASHTAGS_PER_TEXT_MAX} distinct #hashtags per text ({len(entities.hashtags)} given)"
    return None
