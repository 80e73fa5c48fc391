"""End-to-end encryption over real HTTP: a recipient's device publishes its keys, a sender claims a
bundle, encrypts with it (X25519 key agreement, HKDF, ChaCha20-Poly1305, from the `cryptography`
library) and sends one ciphertext per device; the recipient decrypts what the server handed back. The
server only ever holds ciphertext: the plaintext is nowhere in PostgreSQL (the outbox included) or in
Cosmos DB. One-time prekeys go to one claim each, however many claims race."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import psycopg
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from devhost.host.server import FunctionHost
from tests.support.api import ApiClient
from tests.support.http_client import ApiUser
from tests.support.onboarding import onboard_user
from tests.support.polling import eventually

pytestmark = pytest.mark.timeout(300)
RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


class Device:
    """One client device: an Ed25519 identity (it signs the prekey), an X25519 signed prekey and
    one-time prekeys; it keeps its private keys to itself."""

    def __init__(self, device_id: str, one_time: int) -> None:
        self.device_id = device_id
        self.identity = Ed25519PrivateKey.generate()
        self.signed_prekey = X25519PrivateKey.generate()
        self.one_time = {n: X25519PrivateKey.generate() for n in range(one_time)}

    def published(self) -> dict[str, Any]:
        spk = self.signed_prekey.public_key().public_bytes(*RAW)
        return {
            "identityKey": _b64(self.identity.public_key().public_bytes(*RAW)),
            "signedPrekeyId": 1,
            "signedPrekey": _b64(spk),
            "signedPrekeySignature": _b64(self.identity.sign(spk)),
            "oneTimePrekeys": [
                {"keyId": n, "publicKey": _b64(k.public_key().public_bytes(*RAW))}
                for n, k in self.one_time.items()
            ],
        }

    def decrypt(self, ciphertext: str, context: bytes) -> str:
        envelope = json.loads(_unb64(ciphertext))
        ephemeral = X25519PublicKey.from_public_bytes(_unb64(envelope["ephemeral"]))
        secret = self.signed_prekey.exchange(ephemeral)
        if envelope["oneTimeKeyId"] is not None:
            secret += self.one_time.pop(envelope["oneTimeKeyId"]).exchange(ephemeral)
        key = _derive(secret)
        return (
            ChaCha20Poly1305(key)
            .decrypt(_unb64(envelope["nonce"]), _unb64(envelope["sealed"]), context)
            .decode()
        )


def _derive(secret: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"chorus-test-x3dh").derive(secret)


def encrypt_for(bundle: dict[str, Any], plaintext: str, context: bytes) -> str:
    """What a sender does with a claimed bundle: check the prekey's signature, agree a key, seal."""
    identity = Ed25519PublicKey.from_public_bytes(_unb64(bundle["identityKey"]))
    identity.verify(
        _unb64(bundle["signedPrekeySignature"]), _unb64(bundle["signedPrekey"])
    )  # raises if forged
    ephemeral = X25519PrivateKey.generate()
    secret = ephemeral.exchange(X25519PublicKey.from_public_bytes(_unb64(bundle["signedPrekey"])))
    one_time = bundle["oneTimePrekey"]
    if one_time is not None:
        secret += ephemeral.exchange(X25519PublicKey.from_public_bytes(_unb64(one_time["publicKey"])))
    nonce = os.urandom(12)
    sealed = ChaCha20Poly1305(_derive(secret)).encrypt(nonce, plaintext.encode(), context)
    envelope = {
        "ephemeral": _b64(ephemeral.public_key().public_bytes(*RAW)),
        "oneTimeKeyId": one_time["keyId"] if one_time else None,
        "nonce": _b64(nonce),
        "sealed": _b64(sealed),
    }
    return _b64(json.dumps(envelope).encode())


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _person(http: aiohttp.ClientSession, host: FunctionHost, api: ApiClient, name: str) -> ApiUser:
    return await onboard_user(
        ApiUser(http, host.base_url, api.token(f"e2ee-{name}")), f"e2ee_{name}", name.title()
    )


async def test_a_message_encrypted_by_one_client_is_decrypted_by_another_and_the_server_sees_only_ciphertext(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession, database_url: str
) -> None:
    alice, bob, eve = [await _person(http, local_host, api, name) for name in ("alice", "bob", "eve")]
    phone, laptop = Device("bob-phone", one_time=2), Device("bob-laptop", one_time=1)
    for device in (phone, laptop):
        answer = await bob.ok("PUT", f"/api/users/me/devices/{device.device_id}/keys", device.published())
        assert answer["oneTimePrekeysLeft"] == len(device.one_time)
    await bob.ok("PUT", f"/api/users/{alice.id}/follow")
    conversation = (await alice.ok("POST", "/api/conversations", {"memberIds": [bob.id]}))["id"]
    context = conversation.encode()

    claimed = await alice.ok("POST", f"/api/users/{bob.id}/devices/keys/claim")
    bundles = {b["deviceId"]: b for b in claimed["devices"]}
    assert set(bundles) == {"bob-phone", "bob-laptop"}
    plaintext = "meet at the north gate 4f2a9c"
    ciphertexts = [
        {"recipientId": bob.id, "deviceId": device_id, "ciphertext": encrypt_for(bundle, plaintext, context)}
        for device_id, bundle in bundles.items()
    ]
    # Ciphertexts go to members' devices only; and never with text beside them.
    stranger = await alice.call(
        "POST",
        f"/api/conversations/{conversation}/messages",
        {"ciphertexts": [{**ciphertexts[0], "recipientId": eve.id}]},
    )
    assert stranger.status == 422, stranger
    both = await alice.call(
        "POST", f"/api/conversations/{conversation}/messages", {"text": "hi", "ciphertexts": ciphertexts}
    )
    assert both.status == 422, both
    sent = await alice.ok("POST", f"/api/conversations/{conversation}/messages", {"ciphertexts": ciphertexts})
    assert (sent["encrypted"], sent["text"], sent["ciphertexts"]) == (True, None, [])  # none was for alice

    # bob's devices each decrypt their own ciphertext, read back from the server (from PostgreSQL or the
    # projection, whichever serves the page).
    received = (await bob.ok("GET", f"/api/conversations/{conversation}/messages"))["items"][0]
    assert (received["id"], received["encrypted"], received["text"]) == (sent["id"], True, None)
    mine = {c["deviceId"]: c["ciphertext"] for c in received["ciphertexts"]}
    assert phone.decrypt(mine["bob-phone"], context) == plaintext
    assert laptop.decrypt(mine["bob-laptop"], context) == plaintext
    # Once projected, the Cosmos DB page hands out the same.
    await eventually(
        lambda: bob.ok("GET", f"/api/conversations/{conversation}/messages"),
        lambda page: {c["deviceId"] for c in page["items"][0]["ciphertexts"]} == {"bob-phone", "bob-laptop"},
        timeout=90,
        what="the encrypted message readable",
    )

    # The server holds ciphertext only: the plaintext is in no table (outbox and stored responses included).
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        )
        for (table,) in await cur.fetchall():
            found = await conn.execute(
                f"SELECT count(*) FROM {table} t WHERE t::text LIKE %s",
                (f"%{plaintext}%",),
            )
            assert (await found.fetchone()) == (0,), f"the plaintext is in {table}"
        cur = await conn.execute("SELECT text, encrypted FROM messages WHERE id = %s", (sent["id"],))
        assert await cur.fetchone() == (None, True)


async def test_each_one_time_prekey_goes_to_one_claim_however_many_race(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession
) -> None:
    owner = await _person(http, local_host, api, "owner")
    claimers = [await _person(http, local_host, api, f"claimer{n}") for n in range(4)]
    device = Device("only-device", one_time=5)
    await owner.ok("PUT", f"/api/users/me/devices/{device.device_id}/keys", device.published())

    answers = await asyncio.gather(
        *(claimers[n % 4].ok("POST", f"/api/users/{owner.id}/devices/keys/claim") for n in range(12))
    )
    handed = [a["devices"][0]["oneTimePrekey"] for a in answers]
    ids = [h["keyId"] for h in handed if h is not None]
    assert sorted(ids) == [0, 1, 2, 3, 4]  # each once, none lost
    assert handed.count(None) == 7  # the rest start from the signed prekey alone
    # Publishing more adds to what is left; a key id seen before is kept as it was.
    more = await owner.ok(
        "PUT",
        f"/api/users/me/devices/{device.device_id}/keys",
        {**device.published(), "oneTimePrekeys": [{"keyId": 9, "publicKey": "a2V5"}]},
    )
    assert more["oneTimePrekeysLeft"] == 1
    # A block forbids claiming either way.
    await owner.ok("PUT", f"/api/users/{claimers[0].id}/block")
    assert (await claimers[0].call("POST", f"/api/users/{owner.id}/devices/keys/claim")).status == 403
    bad_device = await owner.call("PUT", "/api/users/me/devices/bad%20id/keys", device.published())
    assert bad_device.status == 404
