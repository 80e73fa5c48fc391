"""Notification settings' schema against the notification types (shared_code/domain/notifications.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared_code.domain.notifications import NOTIFICATION_TYPES, is_turned_off
from shared_code.schemas.notification_settings import NotificationSettings, UpdateNotificationSettings


def test_every_notification_type_has_a_setting_and_nothing_else() -> None:
    assert set(NotificationSettings.model_fields) == set(NOTIFICATION_TYPES)
    assert set(UpdateNotificationSettings.model_fields) == set(NOTIFICATION_TYPES)


def test_a_change_names_at_least_one_type_each_true_or_false() -> None:
    change = UpdateNotificationSettings.model_validate({"comment": False, "follow_request": True})
    assert change.changes() == {"comment": False, "follow_request": True}
    for bad in (
        {},
        {"comment": None},
        {"comment": "no"},
        {"telepathy": False},
        {"followRequest": False},  # the camelCase of every other body is not a type's key
        {"follow_requests": False},
    ):
        with pytest.raises(ValidationError):
            UpdateNotificationSettings.model_validate(bad)
    schema = UpdateNotificationSettings.model_json_schema(by_alias=True)
    assert schema["minProperties"] == 1
    assert all(field["type"] == "boolean" for field in schema["properties"].values())


def test_a_type_is_written_unless_turned_off() -> None:
    assert not is_turned_off("comment", frozenset())
    assert is_turned_off("comment", frozenset({"comment"}))
    assert not is_turned_off("reaction", frozenset({"comment"}))


def test_settings_are_keyed_by_the_types_values() -> None:
    """The one rule (docs/api.md "Notification types"): a type's key is its value, as a notification's
    `type` says it, in the answer, the change and the OpenAPI document."""
    every = {kind: True for kind in NOTIFICATION_TYPES}
    assert NotificationSettings.model_validate(every).to_json() == every
    for kind in NOTIFICATION_TYPES:
        assert UpdateNotificationSettings.model_validate({kind: False}).changes() == {kind: False}
    for properties in (
        NotificationSettings.model_json_schema(by_alias=True, mode="serialization")["properties"],
        UpdateNotificationSettings.model_json_schema(by_alias=True, mode="validation")["properties"],
    ):
        assert set(properties) == set(NOTIFICATION_TYPES)


def test_every_type_is_snake_case_and_every_kind_written_is_a_type() -> None:
    """A notification's `type` is a key a client can turn off: each kind the code writes (`kind="…"`
    then `actor_id=`, a notification_document's arguments, in shared_code) is a type, and every type
    is snake_case."""
    written = {
        kind
        for path in Path("shared_code").rglob("*.py")
        for kind in re.findall(r'\bkind="([a-z_]+)",\s*actor_id=', path.read_text())
    }
    assert {"follow", "comment", "mention", "reply"} <= written
    assert written <= set(NOTIFICATION_TYPES), written - set(NOTIFICATION_TYPES)
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", kind) for kind in NOTIFICATION_TYPES)
