"""The device key directory for end-to-end encrypted messages (docs/api.md "End-to-end encryption").

A device publishes its public keys: an identity key, a signed prekey with its signature, and a batch
of one-time prekeys. A sender claims one bundle per device of a recipient: the public keys and one
one-time prekey, which is deleted as it is handed out, so no prekey ever goes to two claims (the claim
locks the key it takes with SKIP LOCKED: concurrent claims take different keys, none waits). Keys are
the client's opaque strings; the server never parses them, nor the ciphertexts made with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from shared_code.db.rows import fetch_all
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.errors import Forbidden
from shared_code.schemas.messaging import (
    ClaimedKeys,
    ClaimedPrekey,
    DeviceBundle,
    DeviceCount,
    PublishDeviceKeys,
)
from shared_code.services.guards import blocked_either_way


async def publish_keys(uow: UnitOfWork, device_id: str, body: PublishDeviceKeys) -> DeviceCount:
    """Set the device's public keys and add its one-time prekeys (a key id it has already is kept)."""
    me = uow.require_user()
    await uow.lock_live_users(me)
    await uow.conn.execute(
        """INSERT INTO device_keys (user_id, device_id, identity_key, signed_prekey_id, signed_prekey,
                                    signed_prekey_signature)
           VALUES (%s, %s, %s, %s, %s, %s)
           ON CONFLICT (user_id, device_id) DO UPDATE SET
               identity_key = EXCLUDED.identity_key, signed_prekey_id = EXCLUDED.signed_prekey_id,
               signed_prekey = EXCLUDED.signed_prekey, signed_prekey_signature = EXCLUDED.signed_prekey_signature,
               updated_at = now()""",
        (
            me,
            device_id,
            body.identity_key,
            body.signed_prekey_id,
            body.signed_prekey,
            body.signed_prekey_signature,
        ),
    )
    if body.one_time_prekeys:
        async with uow.conn.cursor() as cursor:
            await cursor.executemany(
                """INSERT INTO one_time_prekeys (user_id, device_id, key_id, public_key) VALUES (%s, %s, %s, %s)
                   ON CONFLICT DO NOTHING""",
                [(me, device_id, k.key_id, k.public_key) for k in body.one_time_prekeys],
            )
    cur = await uow.conn.execute(
        "SELECT count(*) FROM one_time_prekeys WHERE user_id = %s AND device_id = %s", (me, device_id)
    )
    row = await cur.fetchone()
    return DeviceCount(device_id=device_id, one_time_prekeys_left=row[0] if row else 0)


@dataclass(frozen=True)
class _Device:
    device_id: str
    identity_key: str
    signed_prekey_id: int
    signed_prekey: str
    signed_prekey_signature: str


async def claim_keys(uow: UnitOfWork, user_id: UUID) -> ClaimedKeys:
    """One bundle per device of `user_id`, each with a one-time prekey nobody else gets (none when the
    device has run out: the session then starts from the signed prekey alone). A block forbids it."""
    me = uow.require_user()
    await uow.lock_live_users(me, user_id)
    if user_id != me and await blocked_either_way(uow, me, user_id):
        raise Forbidden("you cannot message this user")
    devices = await fetch_all(
        uow.conn,
        _Device,
        """SELECT device_id, identity_key, signed_prekey_id, signed_prekey, signed_prekey_signature
           FROM device_keys WHERE user_id = %s ORDER BY device_id""",
        (user_id,),
    )
    bundles = []
    for device in devices:
        cur = await uow.conn.execute(
            """DELETE FROM one_time_prekeys WHERE (user_id, device_id, key_id) = (
                   SELECT user_id, device_id, key_id FROM one_time_prekeys
                   WHERE user_id = %s AND device_id = %s ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED)
               RETURNING key_id, public_key""",
            (user_id, device.device_id),
        )
        claimed = await cur.fetchone()
        bundles.append(
            DeviceBundle(
                device_id=device.device_id,
                identity_key=device.identity_key,
                signed_prekey_id=device.signed_prekey_id,
                signed_prekey=device.signed_prekey,
                signed_prekey_signature=device.signed_prekey_signature,
                one_time_prekey=ClaimedPrekey(key_id=claimed[0], public_key=claimed[1]) if claimed else None,
            )
        )
    return ClaimedKeys(user_id=user_id, devices=bundles)
