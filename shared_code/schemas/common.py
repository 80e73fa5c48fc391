"""What every route group's bodies share: the request and response bases, the string rules
(each one regular expression, stated in the OpenAPI document as the field's `pattern`), ids,
pages and the problem body.

The bodies themselves live in one module per route group (accounts, posts, reads, media,
moderation, ops); their limits and vocabularies come from `shared_code.domain.limits`, which the
database's CHECK constraints repeat (tests/unit/test_limits_match_schema.py holds them together).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Final, Generic, TypeVar
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    field_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

# Each rule below is one regular expression: the server checks it with Python's `re` and the
# OpenAPI document states it as the field's `pattern`, so the two cannot differ. They are written
# in the subset that Python and ECMA-262 (JSON Schema's dialect) read alike.

# PostgreSQL text cannot hold U+0000, so no request string may contain it.
TEXT_PATTERN: Final = r"^[^\u0000]*$"
# Exactly the characters str.isspace() calls whitespace (a unit test checks the list).
WHITESPACE_CLASS: Final = (
    r"\t\n\u000b\u000c\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
)
# Some character that is neither whitespace nor NUL, and no NUL anywhere.
NON_BLANK_PATTERN: Final = rf"^[^\u0000]*[^\u0000{WHITESPACE_CLASS}][^\u0000]*$"
# Bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069) reorder the text around them:
# in a name they make "alice\u202egnp.exe" read as another thing. Refused anywhere in a name.
BIDI_CONTROL_CLASS: Final = r"\u202a-\u202e\u2066-\u2069"
# Characters that draw nothing (zero-width spaces and joiners, bidi marks, word joiners, the BOM,
# variation selectors, Hangul fillers, the soft hyphen...): a name made only of these, with or
# without whitespace, looks empty or impersonates by looking like nothing.
INVISIBLE_CLASS: Final = (
    r"\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2060-\u2064"
    r"\u206a-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0"
)
# A display name: no NUL, no bidi control anywhere, and at least one character that shows.
DISPLAY_NAME_PATTERN: Final = (
    rf"^[^\u0000{BIDI_CONTROL_CLASS}]*"
    rf"[^\u0000{BIDI_CONTROL_CLASS}{WHITESPACE_CLASS}{INVISIBLE_CLASS}]"
    rf"[^\u0000{BIDI_CONTROL_CLASS}]*$"
)
HTTPS_URL_PATTERN: Final = r"^https://[^\u0000]+$"
# The canonical 8-4-4-4-12 form only (uuid.UUID would also take braces, a urn: prefix, no hyphens).
UUID_PATTERN: Final = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"


@dataclass(frozen=True)
class Matching:
    """A string rule: checked with `pattern`, and stated in the JSON schema as that pattern."""

    pattern: str
    message: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        compiled = re.compile(self.pattern)

        def check(value: str) -> str:
            if compiled.fullmatch(value) is None:
                raise ValueError(self.message)
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = self.pattern
        return json_schema


_UUID = re.compile(UUID_PATTERN)


def is_uuid(value: str) -> bool:
    return _UUID.fullmatch(value) is not None


def _canonical_uuid(value: Any) -> Any:
    if isinstance(value, str) and not is_uuid(value):
        raise ValueError("must be a UUID in its 8-4-4-4-12 hexadecimal form")
    return value


def _json_integer(value: Any) -> Any:
    """An integer as JSON Schema means it: 7 or 7.0, never true, "7" or 7.5."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be an integer")
        return int(value)
    return value


# Put it after the bounds (`Annotated[int, Field(ge=..), JSON_INTEGER]`) so the schema keeps them.
JSON_INTEGER: Final = BeforeValidator(_json_integer)


Uuid = Annotated[UUID, BeforeValidator(_canonical_uuid), Field(json_schema_extra={"pattern": UUID_PATTERN})]
Text = Annotated[str, Matching(TEXT_PATTERN, "must not contain NUL (U+0000) characters")]
NonBlankText = Annotated[
    str, Matching(NON_BLANK_PATTERN, "must not be blank or contain NUL (U+0000) characters")
]


class RequestBody(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=False,
        extra="forbid",
        frozen=True,
        str_strip_whitespace=False,
    )

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold U+0000: refuse it here (422), not in the database (500).
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL (U+0000) characters")
        return value


class ResponseBody(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


ItemT = TypeVar("ItemT", bound=ResponseBody)


class Page(ResponseBody, Generic[ItemT]):
    items: list[ItemT]
    next_cursor: str | None


class FieldError(ResponseBody):
    field: str | None
    message: str
    code: str


class ProblemDetails(ResponseBody):
    """RFC 9457 problem details: every error the API answers with."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] | None = None
