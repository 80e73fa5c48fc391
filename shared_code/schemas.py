"""The HTTP contract's bodies (docs/api.md): pydantic models the functions validate requests
with and shape responses from; the OpenAPI document is generated from them too.

Requests reject unknown fields; every documented limit is here and, again, in the
database's CHECK constraints.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

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


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _https_url(value: str) -> str:
    if not value.startswith("https://") or len(value) <= len("https://"):
        raise ValueError("must be an https:// URL")
    return value


def _unique(values: list[UUID]) -> list[UUID]:
    if len(set(values)) != len(values):
        raise ValueError("must not repeat an id")
    return values


DisplayName = Annotated[str, Field(min_length=1, max_length=DISPLAY_NAME_MAX), AfterValidator(_not_blank)]
Bio = Annotated[str, Field(max_length=BIO_MAX)]
AvatarUrl = Annotated[str, Field(max_length=AVATAR_URL_MAX), AfterValidator(_https_url)]
PostContent = Annotated[str, Field(min_length=1, max_length=POST_CONTENT_MAX), AfterValidator(_not_blank)]
CommentContent = Annotated[
    str, Field(min_length=1, max_length=COMMENT_CONTENT_MAX), AfterValidator(_not_blank)
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


# --- requests --------------------------------------------------------------------------------


class CreateUser(RequestBody):
    username: Annotated[str, Field(pattern=USERNAME_PATTERN, description="3–30 letters, digits or _")]
    display_name: DisplayName
    bio: Bio = ""
    avatar_url: AvatarUrl | None = None


class UpdateProfile(RequestBody):
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
    media_ids: Annotated[list[UUID], Field(max_length=MEDIA_PER_POST_MAX), AfterValidator(_unique)] = []


class EditPost(RequestBody):
    content: PostContent


class CreateComment(RequestBody):
    content: CommentContent
    parent_id: UUID | None = None


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
