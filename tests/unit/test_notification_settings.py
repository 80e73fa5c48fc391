"""Notification settings' schema against the notification types (shared_code/domain/notifications.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared_code.domain.notifications import NOTIFICATION_TYPES, is_turned_off
from shared_code.schemas.notification_settings import NotificationSettings, UpdateNotificationSettings


def test_every_notification_type_has_a_setting_and_nothing_else() -> None:
    assert set(NotificationSettings.model_fields) == set(NOTIFICATION_TYPES)
    assert set(UpdateNotificationSettings.model_fields) == set(NOTIFICATION_TYPES)


def test_a_change_names_at_least_one_type_each_true_or_false() -> None:
    change = UpdateNotificationSettings.model_validate({"comment": False, "followRequest": True})
    assert change.changes() == {"comment": False, "follow_request": True}
    for bad in ({}, {"comment": None}, {"comment": "no"}, {"telepathy": False}, {"follow_request": False}):
        with pytest.raises(ValidationError):
            UpdateNotificationSettings.model_validate(bad)
    schema = UpdateNotificationSettings.model_json_schema(by_alias=True)
    assert schema["minProperties"] == 1
    assert all(field["type"] == "boolean" for field in schema["properties"].values())


def test_a_type_is_written_unless_turned_off() -> None:
    assert not is_turned_off("comment", frozenset())
    assert is_turned_off("comment", frozenset({"comment"}))
    assert not is_turned_off("reaction", frozenset({"comment"}))
