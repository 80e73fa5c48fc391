"""The HTTP contract's bodies (docs/api.md): pydantic models the functions validate requests
with and shape responses from; the OpenAPI document is generated from them too.

Requests reject unknown fields; every documented limit is here and, again, in the
database's CHECK constraints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, Generic, TypeVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from shared_code.domain.limits import (
    AVATAR_URL_MAX,
    BIO_MAX,
    COMMENT_CONTENT_MAX,
    DISPLAY_NAME_MAX,
    MEDIA_PER_POST_MAX,
    POST_CONTENT_MAX,
    USERNAME_PATTERN,
    ReactionType,
)

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


def _unique(values: list[UUID]) -> list[UUID]:
    if len(set(values)) != len(values):
        raise ValueError("must not repeat an id")
    return values


Uuid = Annotated[UUID, BeforeValidator(_canonical_uuid), Field(json_schema_extra={"pattern": UUID_PATTERN})]
Text = Annotated[str, Matching(TEXT_PATTERN, "must not contain NUL (U+0000) characters")]
NonBlankText = Annotated[
    str, Matching(NON_BLANK_PATTERN, "must not be blank or contain NUL (U+0000) characters")
]
DisplayName = Annotated[NonBlankText, Field(min_length=1, max_length=DISPLAY_NAME_MAX)]
Bio = Annotated[Text, Field(max_length=BIO_MAX)]
AvatarUrl = Annotated[
    str, Field(max_length=AVATAR_URL_MAX), Matching(HTTPS_URL_PATTERN, "must be an https:// URL")
]
PostContent = Annotated[NonBlankText, Field(min_length=1, max_length=POST_CONTENT_MAX)]
CommentContent = Annotated[NonBlankText, Field(min_length=1, max_length=COMMENT_CONTENT_MAX)]


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


# --- requests --------------------------------------------------------------------------------


class CreateUser(RequestBody):
    username: Annotated[str, Field(pattern=USERNAME_PATTERN, description="3–30 letters, digits or _")]
    display_name: DisplayName
    bio: Bio = ""
    avatar_url: AvatarUrl | None = None


def _edit_profile_schema(schema: dict[str, Any]) -> None:
    """What the validator below enforces, stated: at least one field; displayName and bio may be
    left out but not null (avatarUrl null removes the avatar)."""
    schema["minProperties"] = 1
    for name in ("displayName", "bio"):
        field = schema["properties"][name]
        field.pop("default", None)
        (kept,) = [option for option in field.pop("anyOf") if option != {"type": "null"}]
        field.update(kept)


class UpdateProfile(RequestBody):
    model_config = ConfigDict(json_schema_extra=_edit_profile_schema)

    display_name: DisplayName | None = None
    bio: Bio | None = None
    avatar_url: AvatarUrl | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> UpdateProfile:
        if not self.model_fields_set:
            raise ValueError("give at least one of displayName, bio, avatarUrl")
        if "display_name" in self.model_fields_set and self.display_name is None:
            raise ValueError("displayName cannot be removed")
        if "bio" in self.model_fields_set and self.bio is None:
            raise ValueError('bio cannot be null; send "" to clear it')
        return self


class CreatePost(RequestBody):
    content: PostContent
    media_ids: Annotated[list[Uuid], Field(max_length=MEDIA_PER_POST_MAX), AfterValidator(_unique)] = []


class EditPost(RequestBody):
    content: PostContent


class CreateComment(RequestBody):
    content: CommentContent
    parent_id: Uuid | None = None


class SetReaction(RequestBody):
    type: ReactionType


# --- responses -------------------------------------------------------------------------------


class Author(ResponseBody):
    user_id: UUID
    username: str
    display_name: str
    avatar_url: str | None


class Media(ResponseBody):
    media_id: UUID
    content_type: str
    url: str


class Me(ResponseBody):
    id: UUID
    username: str
    display_name: str
    bio: str
    avatar_url: str | None
    email: str | None
    auth_provider: str
    created_at: datetime
    followers: int
    following: int
    posts: int


class PublicProfile(ResponseBody):
    user_id: UUID
    username: str
    display_name: str
    bio: str
    avatar_url: str | None
    followers: int
    following: int
    posts: int


class Post(ResponseBody):
    id: UUID
    author_id: UUID
    author: Author
    content: str
    media: list[Media]
    status: str
    created_at: datetime
    edited_at: datetime | None
    counts: dict[str, int]
    comment_count: int


class Comment(ResponseBody):
    id: UUID
    post_id: UUID
    author_id: UUID
    parent_id: UUID | None
    content: str
    created_at: datetime


class Reaction(ResponseBody):
    user_id: UUID
    type: str
    created_at: datetime


ItemT = TypeVar("ItemT", bound=ResponseBody)


class Page(ResponseBody, Generic[ItemT]):
    items: list[ItemT]
    next_cursor: str | None


class FeedItem(ResponseBody):
    post_id: UUID
    author_id: UUID
    author: Author
    content: str
    media: list[Media]
    created_at: datetime
    edited_at: datetime | None
    counts: dict[str, int]
    comment_count: int


# A notification's id names its cause ("<kind>:<id of the follow, comment or reaction>").
NOTIFICATION_ID_PATTERN: Final = r"^[A-Za-z0-9:_-]{1,200}$"


class Notification(ResponseBody):
    id: str
    type: str
    actor_id: UUID
    subject_id: UUID
    created_at: datetime | None
    read: bool


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
