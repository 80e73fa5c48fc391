"""GET and PATCH /api/users/me/notification-settings: each notification type on or off.

One rule names a notification type (docs/api.md "Notification types"): its value, snake_case, as a
notification's `type` says it (`follow_request`), and the settings are keyed by that same value, so
a client turns off what it received with `settings[notification.type] = false`. The fields are the
types' values, so a new type added as a field follows the rule by itself.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasGenerator, ConfigDict, Field, StrictBool, model_validator

from shared_code.schemas.common import RequestBody, ResponseBody

# One field per type of shared_code/domain/notifications.NOTIFICATION_TYPES (a unit test checks it).
_DOCS = {
    "follow": "someone followed you",
    "follow_request": "someone asks to follow your private account",
    "follow_approved": "an account you asked to follow approved you",
    "comment": "someone commented on your post",
    "reaction": "someone reacted to your post",
    "mention": "someone mentioned you in a post or a comment",
    "reply": "someone replied to your comment",
    "event_rsvp": "someone answered going, interested or joined the waiting list of your event",
    "event_updated": "an event you answered going, interested or wait for changed",
    "event_cancelled": "an event you answered going, interested or wait for was cancelled",
    "event_promoted": "a seat freed: you moved from an event's waiting list to going",
}


# Keys are the notification types' values, not the camelCase of every other body.
_TYPE_KEYS = AliasGenerator(validation_alias=lambda kind: kind, serialization_alias=lambda kind: kind)


class NotificationSettings(ResponseBody):
    """Each notification type: true (written) or false (turned off: not written at all)."""

    model_config = ConfigDict(alias_generator=_TYPE_KEYS)

    follow: bool = Field(description=_DOCS["follow"])
    follow_request: bool = Field(description=_DOCS["follow_request"])
    follow_approved: bool = Field(description=_DOCS["follow_approved"])
    comment: bool = Field(description=_DOCS["comment"])
    reaction: bool = Field(description=_DOCS["reaction"])
    mention: bool = Field(description=_DOCS["mention"])
    reply: bool = Field(description=_DOCS["reply"])
    event_rsvp: bool = Field(description=_DOCS["event_rsvp"])
    event_updated: bool = Field(description=_DOCS["event_updated"])
    event_cancelled: bool = Field(description=_DOCS["event_cancelled"])
    event_promoted: bool = Field(description=_DOCS["event_promoted"])


def _settings_change_schema(schema: dict[str, Any]) -> None:
    """What the validator enforces, stated: at least one type, each true or false (never null)."""
    schema["minProperties"] = 1
    for field in schema["properties"].values():
        field.pop("default", None)
        (kept,) = [option for option in field.pop("anyOf") if option != {"type": "null"}]
        field.update(kept)


class UpdateNotificationSettings(RequestBody):
    """The types to turn on (true) or off (false); those left out stay as they are."""

    model_config = ConfigDict(alias_generator=_TYPE_KEYS, json_schema_extra=_settings_change_schema)

    follow: StrictBool | None = Field(default=None, description=_DOCS["follow"])
    follow_request: StrictBool | None = Field(default=None, description=_DOCS["follow_request"])
    follow_approved: StrictBool | None = Field(default=None, description=_DOCS["follow_approved"])
    comment: StrictBool | None = Field(default=None, description=_DOCS["comment"])
    reaction: StrictBool | None = Field(default=None, description=_DOCS["reaction"])
    mention: StrictBool | None = Field(default=None, description=_DOCS["mention"])
    reply: StrictBool | None = Field(default=None, description=_DOCS["reply"])
    event_rsvp: StrictBool | None = Field(default=None, description=_DOCS["event_rsvp"])
    event_updated: StrictBool | None = Field(default=None, description=_DOCS["event_updated"])
    event_cancelled: StrictBool | None = Field(default=None, description=_DOCS["event_cancelled"])
    event_promoted: StrictBool | None = Field(default=None, description=_DOCS["event_promoted"])

    @model_validator(mode="after")
    def _something_to_change(self) -> UpdateNotificationSettings:
        if not self.model_fields_set:
            raise ValueError("give at least one notification type, true or false")
        nulls = [name for name in self.model_fields_set if getattr(self, name) is None]
        if nulls:
            raise ValueError(f"a type is true or false, not null: {', '.join(sorted(nulls))}")
        return self

    def changes(self) -> dict[str, bool]:
        return {name: bool(getattr(self, name)) for name in self.model_fields_set}
