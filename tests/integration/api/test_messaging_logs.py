"""Message content is in no log line: every route that takes or returns it, refused bodies included,
runs with every logger at DEBUG, and the text never shows in what was logged."""

from __future__ import annotations

import logging
import uuid

import pytest

from tests.support.api import ApiClient
from tests.support.chorus import Chorus


async def test_message_text_and_ciphertexts_are_in_no_log_line(
    api: ApiClient, chorus: Chorus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # The app's loggers may not propagate to the root (shared_code/observability.py): listen on them too.
    for name in ("chorus", "azure", "psycopg"):
        logging.getLogger(name).addHandler(caplog.handler)
    ann, ben = await chorus.users("logs_ann", "logs_ben")
    await chorus.do("PUT", f"/api/users/{ann['id']}/follow", "logs_ben")
    secret = f"whisper-{uuid.uuid4().hex}"
    sealed = f"sealed-{uuid.uuid4().hex}"
    r = await api.call("POST", "/api/conversations", subject="logs_ann", json_body={"memberIds": [ben["id"]]})
    assert r.status == 201, r
    conversation = r.json["id"]
    path = f"/api/conversations/{conversation}/messages"
    sent = await api.call(
        "POST", path, subject="logs_ann", json_body={"text": secret}, headers={"Idempotency-Key": secret[:40]}
    )
    assert sent.status == 201, sent
    replayed = await api.call(
        "POST", path, subject="logs_ann", json_body={"text": secret}, headers={"Idempotency-Key": secret[:40]}
    )
    assert replayed.status == 201, replayed
    encrypted = await api.call(
        "POST",
        path,
        subject="logs_ann",
        json_body={"ciphertexts": [{"recipientId": ben["id"], "deviceId": "d1", "ciphertext": sealed}]},
    )
    assert encrypted.status == 201, encrypted
    # Refused bodies (an extra field, text and ciphertexts together, a stranger's device) and an outsider.
    for body in (
        {"text": secret, "unexpected": secret},
        {"text": secret, "ciphertexts": [{"recipientId": ben["id"], "deviceId": "d1", "ciphertext": sealed}]},
        {"ciphertexts": [{"recipientId": str(uuid.uuid4()), "deviceId": "d1", "ciphertext": sealed}]},
        {"text": secret * 200},
    ):
        refused = await api.call("POST", path, subject="logs_ann", json_body=body)
        assert refused.status == 422, refused
    assert (await api.call("POST", path, subject="logs_nobody", json_body={"text": secret})).status in (
        403,
        404,
    )
    edited = await api.call(
        "PATCH", f"/api/messages/{sent.json['id']}", subject="logs_ann", json_body={"text": secret + "!"}
    )
    assert edited.status == 200, edited
    assert (await api.call("GET", "/api/conversations", subject="logs_ben")).status == 200
    for read in (path, f"{path}?since=2020-01-01T00:00:00Z"):
        answer = await api.call("GET", read, subject="logs_ben")
        assert answer.status == 200, answer
        assert secret in answer.body.decode()  # the members get it back, and nothing logs it
    logging.getLogger("chorus.messaging").warning("canary")  # what the app logs is captured here
    for name in ("chorus", "azure", "psycopg"):
        logging.getLogger(name).removeHandler(caplog.handler)
    assert "canary" in caplog.text
    logged = caplog.text + "".join(repr(record.__dict__) for record in caplog.records)
    assert secret not in logged
    assert sealed not in logged
