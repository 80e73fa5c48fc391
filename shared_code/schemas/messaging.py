"""The conversation, message and device key routes' bodies (docs/api.md "Conversations and messages",
"End-to-end encryption")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from shared_code.domain.limits import (
    CONVERSATION_TITLE_MAX,
    DEVICE_ID_PATTERN,
    DEVICE_KEY_MAX,
    MEDIA_PER_POST_MAX,
    MESSAGE_CIPHERTEXT_MAX,
    MESSAGE_CIPHERTEXTS_MAX,
    MESSAGE_TEXT_MAX,
    ONE_TIME_PREKEYS_MAX,
)
from shared_code.schemas.common import JSON_INTEGER, NonBlankText, RequestBody, ResponseBody, Uuid
from shared_code.schemas.posts import Media

MemberRole = Literal["owner", "admin", "member"]
MemberState = Literal["active", "requested", "declined", "left", "removed"]
MessageText = Annotated[NonBlankText, Field(min_length=1, max_length=MESSAGE_TEXT_MAX)]
ConversationTitle = Annotated[NonBlankText, Field(min_length=1, max_length=CONVERSATION_TITLE_MAX)]
DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN, min_length=1, max_length=64)]
KeyText = Annotated[NonBlankText, Field(min_length=1, max_length=DEVICE_KEY_MAX)]
KeyId = Annotated[int, Field(ge=0, le=2**53 - 1), JSON_INTEGER]


def _unique(values: list[UUID]) -> list[UUID]:
    if len(set(values)) != len(values):
        raise ValueError("must not repeat an id")
    return values


class CreateConversation(RequestBody):
    """One other member: the 1:1 conversation with them (the same one every time). More, or a title:
    a group the caller owns."""

    member_ids: Annotated[
        list[Uuid],
        Field(min_length=1, max_length=999, json_schema_extra={"uniqueItems": True}),
        AfterValidator(_unique),
    ]
    title: ConversationTitle | None = None


class AddMembers(RequestBody):
    member_ids: Annotated[
        list[Uuid],
        Field(min_length=1, max_length=999, json_schema_extra={"uniqueItems": True}),
        AfterValidator(_unique),
    ]


class SetMemberRole(RequestBody):
    role: Literal["admin", "member"]


class DeviceCiphertext(RequestBody):
    recipient_id: Uuid
    device_id: DeviceId
    ciphertext: Annotated[NonBlankText, Field(min_length=1, max_length=MESSAGE_CIPHERTEXT_MAX)]


class SendMessage(RequestBody):
    """Text and/or media, or (end-to-end encrypted) one opaque ciphertext per recipient device instead
    of text."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    text: MessageText | None = None
    media_ids: Annotated[
        list[Uuid],
        Field(max_length=MEDIA_PER_POST_MAX, json_schema_extra={"uniqueItems": True}),
        AfterValidator(_unique),
    ] = []  # noqa: RUF012 (pydantic copies defaults)
    ciphertexts: Annotated[list[DeviceCiphertext], Field(max_length=MESSAGE_CIPHERTEXTS_MAX)] = []  # noqa: RUF012
    reply_to_id: Uuid | None = None

    @model_validator(mode="after")
    def _something_to_send(self) -> SendMessage:
        if self.ciphertexts and self.text is not None:
            raise ValueError("an encrypted message carries ciphertexts instead of text, not both")
        if not (self.text or self.media_ids or self.ciphertexts):
            raise ValueError("a message needs text, media or ciphertexts")
        pairs = [(c.recipient_id, c.device_id) for c in self.ciphertexts]
        if len(set(pairs)) != len(pairs):
            raise ValueError("one ciphertext per recipient device")
        return self


class EditMessage(RequestBody):
    text: MessageText


class MarkRead(RequestBody):
    message_id: Uuid


class OneTimePrekey(RequestBody):
    key_id: KeyId
    public_key: KeyText


class PublishDeviceKeys(RequestBody):
    """A device's public keys, as the client encoded them (the server never parses them). One-time
    prekeys add to those not handed out yet (a key id already there is kept as it was)."""

    identity_key: KeyText
    signed_prekey_id: KeyId
    signed_prekey: KeyText
    signed_prekey_signature: KeyText
    one_time_prekeys: Annotated[list[OneTimePrekey], Field(max_length=ONE_TIME_PREKEYS_MAX)] = []  # noqa: RUF012


class ConversationMember(ResponseBody):
    user_id: UUID
    username: str
    display_name: str
    role: MemberRole
    state: MemberState


class Conversation(ResponseBody):
    id: UUID
    kind: Literal["direct", "group"]
    title: str | None
    created_by: UUID
    created_at: datetime
    last_activity_at: datetime
    # The caller's own state: "requested" until they accept or decline a request.
    state: MemberState
    members: list[ConversationMember]


class Ciphertext(ResponseBody):
    device_id: str
    ciphertext: str


class Message(ResponseBody):
    id: UUID
    conversation_id: UUID
    sender_id: UUID
    # null when encrypted (see ciphertexts), media only, or deleted.
    text: str | None
    encrypted: bool
    # The caller's own devices' ciphertexts of an encrypted message.
    ciphertexts: list[Ciphertext]
    media: list[Media]
    reply_to_id: UUID | None
    created_at: datetime
    edited_at: datetime | None
    deleted: bool


class InboxEntry(ResponseBody):
    conversation_id: UUID
    kind: Literal["direct", "group"]
    title: str | None
    state: MemberState
    member_ids: list[UUID]
    last_activity_at: datetime
    last_message: Message | None
    unread_count: int


class ReadState(ResponseBody):
    conversation_id: UUID
    last_read_message_id: UUID
    unread_count: int


class DeviceCount(ResponseBody):
    device_id: str
    one_time_prekeys_left: int


class ClaimedPrekey(ResponseBody):
    key_id: int
    public_key: str


class DeviceBundle(ResponseBody):
    """What a sender needs to start a session with one device: its public keys, and one one-time
    prekey handed out to this caller only (null when the device has none left)."""

    device_id: str
    identity_key: str
    signed_prekey_id: int
    signed_prekey: str
    signed_prekey_signature: str
    one_time_prekey: ClaimedPrekey | None


class ClaimedKeys(ResponseBody):
    user_id: UUID
    devices: list[DeviceBundle]
