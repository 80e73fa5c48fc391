"""The account and profile routes' bodies (docs/api.md "Accounts", "Social")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from shared_code.domain.limits import (
    AVATAR_URL_MAX,
    BIO_MAX,
    DISPLAY_NAME_MAX,
    RESERVED_USERNAMES,
    USERNAME_PATTERN,
)
from shared_code.domain.privacy import Visibility
from shared_code.schemas.common import (
    DISPLAY_NAME_PATTERN,
    HTTPS_URL_PATTERN,
    Matching,
    RequestBody,
    ResponseBody,
    Text,
)

DisplayName = Annotated[
    str,
    Field(min_length=1, max_length=DISPLAY_NAME_MAX),
    Matching(
        DISPLAY_NAME_PATTERN,
        "must show something (not only whitespace or invisible characters) and hold no bidirectional "
        "override or isolate (U+202A-U+202E, U+2066-U+2069) nor NUL",
    ),
]
Bio = Annotated[Text, Field(max_length=BIO_MAX)]
AvatarUrl = Annotated[
    str, Field(max_length=AVATAR_URL_MAX), Matching(HTTPS_URL_PATTERN, "must be an https:// URL")
]


def _not_reserved(username: str) -> str:
    if username.lower() in RESERVED_USERNAMES:
        raise ValueError("this username is reserved; choose another")
    return username


USERNAME_DESCRIPTION = (
    "3–30 letters, digits or _, compared without case; not one of the reserved names ("
    + ", ".join(sorted(RESERVED_USERNAMES))
    + "), and not a name a deleted account gave up within ERASURE_USERNAME_HOLD_DAYS (409)"
)
Username = Annotated[
    str, Field(pattern=USERNAME_PATTERN, description=USERNAME_DESCRIPTION), AfterValidator(_not_reserved)
]


class CreateUser(RequestBody):
    username: Username
    display_name: DisplayName
    bio: Bio = ""
    avatar_url: AvatarUrl | None = None


def _edit_profile_schema(schema: dict[str, Any]) -> None:
    """What the validator below enforces, stated: at least one field; displayName and bio may be
    left out but not null (avatarUrl null removes the avatar)."""
    schema["minProperties"] = 1
    for name in ("username", "displayName", "bio", "visibility"):
        field = schema["properties"][name]
        field.pop("default", None)
        (kept,) = [option for option in field.pop("anyOf") if option != {"type": "null"}]
        field.update(kept)


class UpdateProfile(RequestBody):
    model_config = ConfigDict(json_schema_extra=_edit_profile_schema)

    username: Username | None = Field(
        default=None,
        description="a new username (the same rules as at sign-up; 409 when taken or held). The old one "
        "is free for others at once; posts keep the text they were written with, and mentions keep "
        "pointing at the account",
    )
    display_name: DisplayName | None = None
    bio: Bio | None = None
    avatar_url: AvatarUrl | None = None
    visibility: Visibility | None = Field(
        default=None,
        description="`private`: posts, comments, reactions, media and follower lists reach only approved "
        "followers, and following is a request to approve; `public` approves every pending request",
    )

    @model_validator(mode="after")
    def _something_to_change(self) -> UpdateProfile:
        if not self.model_fields_set:
            raise ValueError("give at least one of username, displayName, bio, avatarUrl, visibility")
        if "visibility" in self.model_fields_set and self.visibility is None:
            raise ValueError("visibility cannot be null: public or private")
        if "username" in self.model_fields_set and self.username is None:
            raise ValueError("username cannot be removed")
        if "display_name" in self.model_fields_set and self.display_name is None:
            raise ValueError("displayName cannot be removed")
        if "bio" in self.model_fields_set and self.bio is None:
            raise ValueError('bio cannot be null; send "" to clear it')
        return self


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
    visibility: Visibility = "public"


class PublicProfile(ResponseBody):
    user_id: UUID
    username: str
    display_name: str
    bio: str
    avatar_url: str | None
    followers: int
    following: int
    posts: int
    visibility: Visibility = Field(
        description="`private`: the account's posts, comments, reactions, media and follower lists reach "
        "only its approved followers, and following it is a request (202 `requested`)"
    )


class FollowRequest(ResponseBody):
    """A pending request to follow the caller (GET /users/me/follow-requests)."""

    user_id: UUID
    username: str
    display_name: str
    avatar_url: str | None
    requested_at: datetime


class FollowAnswer(ResponseBody):
    """PUT /users/{userId}/follow of a private account: the request waits for its approval."""

    status: Literal["requested"] = "requested"


class ErasureAccepted(ResponseBody):
    """DELETE /api/users/me: the account is locked and gone from every read; its data is being erased."""

    user_id: UUID
    status: str = Field(description='always "accepted": the erasure runs in the background')
    requested_at: datetime


class ExportJob(ResponseBody):
    """An export too large to answer at once: poll `location` until it is ready."""

    export_id: UUID
    status: Literal["pending", "ready"]
    location: str = Field(description="where to poll: GET it until status is ready")
    download_url: str | None = Field(
        default=None,
        description="when ready: a read-only link to the JSON document, valid until downloadExpiresAt",
    )
    download_expires_at: datetime | None = None
    items: int | None = None
