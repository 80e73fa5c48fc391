"""The kinds of notification Chorus writes, each of which a user may turn off
(GET/PATCH /api/users/me/notification-settings). A new kind is added here (and to the settings
schema, shared_code/schemas/notification_settings.py, which a unit test keeps in step): it starts
on for everyone, since settings store only what was turned off."""

from __future__ import annotations

from typing import Final

NOTIFICATION_TYPES: Final = (
    "follow",  # someone followed you
    "follow_request",  # someone asks to follow your private account
    "follow_approved",  # an account you asked to follow approved you
    "comment",  # someone commented on your post
    "reaction",  # someone reacted to your post
    "mention",  # someone mentioned you in a post or a comment
    "reply",  # someone replied to your comment
    "event_rsvp",  # someone answered going, interested or joined the waiting list of your event
    "event_updated",  # an event you answered going, interested or wait for changed
    "event_cancelled",  # an event you answered going, interested or wait for was cancelled
    "event_promoted",  # a seat freed: you moved from an event's waiting list to going
)


def is_turned_off(kind: str, turned_off: frozenset[str]) -> bool:
    """Whether a notification of `kind` is not to be written for a recipient who turned off `turned_off`."""
    return kind in turned_off
