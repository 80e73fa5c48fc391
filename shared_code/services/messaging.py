"""Conversations and messages (docs/api.md "Conversations and messages").

PostgreSQL is canonical: a conversation row, one member row per person ever in it, messages numbered
by `seq` within their conversation. A send takes the conversation's row lock to take the next `seq`,
so messages are totally ordered and a member's unread count is exact by construction: the messages
after max(their last read, their joining) from others, not deleted, counted in the reading
transaction. A read receipt only ever raises `last_read_seq` (GREATEST), so receipts racing each other
or a send cannot lose or double-count.

Members only: whoever is not an active member (or a recipient of a pending request, who may look
before accepting) gets 404 for everything about a conversation, as if it did not exist. Message
content is in rows and in the events' confidential fields only (never in a log line, the published
Event Hubs payload or the moderators' mirror, which mirrors posts).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from shared_code.adapters.media_signing import MediaUrls
from shared_code.cursors import CursorCodec
from shared_code.db.rows import fetch_all, fetch_one
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.errors import BadCursor, Conflict, Forbidden, Invalid, NotFound
from shared_code.domain.events import (
    ConversationCreated,
    ConversationMemberChanged,
    ConversationRead,
    MediaRef,
    MessageCiphertext,
    MessageDeleted,
    MessageEdited,
    MessageSent,
)
from shared_code.schemas.common import Page
from shared_code.schemas.messaging import (
    Ciphertext,
    Conversation,
    ConversationMember,
    CreateConversation,
    EditMessage,
    InboxEntry,
    Message,
    ReadState,
    SendMessage,
)
from shared_code.services.guards import blocked_either_way_ids
from shared_code.services.media_attachments import attach_media
from shared_code.services.post_rows import media_view

NO_SUCH_CONVERSATION = "no such conversation"
NO_SUCH_MESSAGE = "no such message"
# Who may look at a conversation: its active members, and those a request is waiting for.
READERS = ("active", "requested")


@dataclass(frozen=True)
class _Membership:
    member_id: UUID
    conversation_id: UUID
    kind: str
    title: str | None
    created_by: UUID
    created_at: datetime
    last_activity_at: datetime
    last_seq: int
    role: str
    state: str
    joined_seq: int
    last_read_seq: int


_MEMBERSHIP = """
    SELECT m.id AS member_id, c.id AS conversation_id, c.kind, c.title, c.created_by, c.created_at,
           c.last_activity_at, c.last_seq, m.role, m.state, m.joined_seq, m.last_read_seq
    FROM conversations c JOIN conversation_members m ON m.conversation_id = c.id AND m.user_id = %(me)s
    WHERE c.id = %(c)s"""


async def _membership(
    uow: UnitOfWork, conversation_id: UUID, states: tuple[str, ...] = READERS, lock: bool = False
) -> _Membership:
    """The caller's membership, or 404 (whoever may not look must not learn it exists). `lock`: the
    conversation's row lock first, which every change of the conversation (a send, a membership
    change) takes, so the membership read after it stays true until this transaction ends."""
    me = uow.require_user()
    if lock:
        cur = await uow.conn.execute(
            "SELECT 1 FROM conversations WHERE id = %s AND chorus_in_conversation(id) FOR UPDATE",
            (conversation_id,),
        )
        if await cur.fetchone() is None:
            raise NotFound(NO_SUCH_CONVERSATION)
    row = await fetch_one(uow.conn, _Membership, _MEMBERSHIP, {"me": me, "c": conversation_id})
    if row is None or row.state not in states:
        raise NotFound(NO_SUCH_CONVERSATION)
    return row


async def membership(uow: UnitOfWork, conversation_id: UUID) -> _Membership:
    """The caller's membership of a conversation they may read, or 404 (services/message_reads.py)."""
    return await _membership(uow, conversation_id)


def messages_scope(conversation_id: UUID, reader: UUID) -> str:
    """The cursor scope of a conversation's messages for one reader, from either store."""
    return f"messages:{conversation_id}:{reader}"


# --- conversations -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _MemberRow:
    id: UUID
    user_id: UUID
    role: str
    state: str
    version: int


async def _follower_ids(uow: UnitOfWork, followee: UUID, candidates: list[UUID]) -> set[UUID]:
    """Those of `candidates` who follow `followee` (approved follows): a message from someone they do
    not follow reaches them as a request."""
    cur = await uow.conn.execute(
        """SELECT follower_id FROM follows
           WHERE followee_id = %s AND follower_id = ANY(%s) AND deleted_at IS NULL""",
        (followee, candidates),
    )
    return {row[0] for row in await cur.fetchall()}


async def _refuse_blocked(uow: UnitOfWork, me: UUID, others: list[UUID]) -> None:
    """Blocks forbid messaging either way (docs/privacy.md)."""
    blocked = set(await blocked_either_way_ids(uow, me)) & set(others)
    if blocked:
        raise Forbidden(
            "you cannot message this user" if len(others) == 1 else "you cannot message some of these users"
        )


async def _set_member(
    uow: UnitOfWork,
    conversation_id: UUID,
    user_id: UUID,
    *,
    role: str,
    state: str,
    joined_seq: int,
    change: str,
) -> None:
    """Add a member, or bring back one who left, was removed or declined, and record it."""
    me = uow.require_user()
    row = await fetch_one(
        uow.conn,
        _MemberRow,
        """INSERT INTO conversation_members (conversation_id, user_id, role, state, joined_seq)
           VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (conversation_id, user_id) DO UPDATE
               SET role = EXCLUDED.role, state = EXCLUDED.state, joined_seq = EXCLUDED.joined_seq,
                   last_read_seq = EXCLUDED.joined_seq, version = conversation_members.version + 1,
                   joined_at = now(), updated_at = now()
           RETURNING id, user_id, role, state, version""",
        (conversation_id, user_id, role, state, joined_seq),
    )
    assert row is not None
    _record_member(uow, conversation_id, row, change, me)


def _record_member(uow: UnitOfWork, conversation_id: UUID, row: _MemberRow, change: str, by: UUID) -> None:
    uow.record(
        ConversationMemberChanged(
            member_id=row.id,
            conversation_id=conversation_id,
            user_id=row.user_id,
            role=row.role,
            state=row.state,
            change=change,
            by_user_id=by,
        ),
        row.id,
        row.version,
    )


async def _change_member(
    uow: UnitOfWork, conversation_id: UUID, user_id: UUID, change: str, **columns: str
) -> None:
    sets = ", ".join(f"{name} = %({name})s" for name in columns)
    row = await fetch_one(
        uow.conn,
        _MemberRow,
        f"""UPDATE conversation_members SET {sets}, version = version + 1, updated_at = now()
            WHERE conversation_id = %(c)s AND user_id = %(u)s
            RETURNING id, user_id, role, state, version""",  # noqa: S608 (column names are this module's)
        {**columns, "c": conversation_id, "u": user_id},
    )
    assert row is not None
    _record_member(uow, conversation_id, row, change, uow.require_user())


async def create_conversation(
    uow: UnitOfWork, body: CreateConversation, max_members: int
) -> tuple[Conversation, bool]:
    """A 1:1 conversation (one other member, no title: the same one every time; the bool says whether
    it is new) or a group the caller owns. Someone who does not follow the caller gets it as a request."""
    me = uow.require_user()
    others = [m for m in body.member_ids if m != me]
    if not others:
        raise Invalid("memberIds must name someone besides you", field="memberIds")
    direct = len(others) == 1 and body.title is None
    if not direct and len(others) + 1 > max_members:
        raise Invalid(f"a group holds at most {max_members} members, you included", field="memberIds")
    await uow.lock_live_users(me, *others)
    await _refuse_blocked(uow, me, others)
    followers = await _follower_ids(uow, me, others)
    conversation_id = uuid4()
    if direct:
        low, high = sorted((me, others[0]))
        cur = await uow.conn.execute(
            """INSERT INTO conversations (id, kind, direct_low, direct_high, created_by)
               VALUES (%s, 'direct', %s, %s, %s)
               ON CONFLICT ON CONSTRAINT conversations_one_per_pair DO NOTHING RETURNING id""",
            (conversation_id, low, high, me),
        )
        if await cur.fetchone() is None:
            return await _existing_direct(uow, me, low, high), False
    else:
        await uow.conn.execute(
            "INSERT INTO conversations (id, kind, title, created_by) VALUES (%s, 'group', %s, %s)",
            (conversation_id, body.title, me),
        )
    created_at = await _conversation_time(uow, conversation_id)
    conversation_kind = "direct" if direct else "group"  # (not `kind="…"`: that names notification types)
    uow.record(
        ConversationCreated(
            conversation_id=conversation_id,
            kind=conversation_kind,
            title=body.title,
            created_by=me,
            created_at=created_at,
        ),
        conversation_id,
        1,
    )
    await _set_member(uow, conversation_id, me, role="owner", state="active", joined_seq=0, change="added")
    for other in others:
        state = "active" if other in followers else "requested"
        await _set_member(
            uow, conversation_id, other, role="member", state=state, joined_seq=0, change="added"
        )
    return await get_conversation(uow, conversation_id), True


async def _conversation_time(uow: UnitOfWork, conversation_id: UUID) -> datetime:
    cur = await uow.conn.execute("SELECT created_at FROM conversations WHERE id = %s", (conversation_id,))
    row = await cur.fetchone()
    assert row is not None
    created: datetime = row[0]
    return created


async def _existing_direct(uow: UnitOfWork, me: UUID, low: UUID, high: UUID) -> Conversation:
    """The pair's conversation, already there. The caller starting it again brings it back to their
    inbox if they had left it or declined it; the other person's state stays theirs."""
    cur = await uow.conn.execute(
        "SELECT id FROM conversations WHERE direct_low = %s AND direct_high = %s", (low, high)
    )
    row = await cur.fetchone()
    assert row is not None, "a conversation that conflicted on its pair exists"
    conversation_id: UUID = row[0]
    mine = await _membership(
        uow, conversation_id, states=("active", "requested", "declined", "left"), lock=True
    )
    if mine.state != "active":
        await _change_member(uow, conversation_id, me, "accepted", state="active")
    return await get_conversation(uow, conversation_id)


async def get_conversation(uow: UnitOfWork, conversation_id: UUID) -> Conversation:
    mine = await _membership(uow, conversation_id)
    members = await fetch_all(
        uow.conn,
        ConversationMember,
        """SELECT m.user_id, u.username, p.display_name, m.role, m.state
           FROM conversation_members m JOIN users u ON u.id = m.user_id JOIN profiles p ON p.user_id = m.user_id
           WHERE m.conversation_id = %s AND m.state IN ('active', 'requested')
           ORDER BY m.joined_at, m.user_id""",
        (conversation_id,),
    )
    return Conversation(
        id=mine.conversation_id,
        kind=mine.kind,  # type: ignore[arg-type]  # the table's CHECK allows these two only
        title=mine.title,
        created_by=mine.created_by,
        created_at=mine.created_at,
        last_activity_at=mine.last_activity_at,
        state=mine.state,  # type: ignore[arg-type]
        members=members,
    )


async def accept_request(uow: UnitOfWork, conversation_id: UUID) -> None:
    """The request joins the inbox; accepting an accepted conversation changes nothing."""
    mine = await _membership(uow, conversation_id, lock=True)
    if mine.state == "requested":
        await _change_member(uow, conversation_id, uow.require_user(), "accepted", state="active")


async def decline_request(uow: UnitOfWork, conversation_id: UUID) -> None:
    """The request goes away for the caller (its sender is not told); from then on it is not theirs."""
    mine = await _membership(uow, conversation_id, lock=True)
    if mine.state != "requested":
        raise Conflict("this conversation is not a request: leave it instead")
    await _change_member(uow, conversation_id, uow.require_user(), "declined", state="declined")


async def add_members(
    uow: UnitOfWork, conversation_id: UUID, member_ids: list[UUID], max_members: int
) -> Conversation:
    """The owner and admins add people to a group; those already in it are left as they are. New
    members see the messages sent from now on."""
    me = uow.require_user()
    mine = await _membership(uow, conversation_id, states=("active",), lock=True)
    if mine.kind != "group":
        raise Conflict("a 1:1 conversation has its two people: start a group to talk with more")
    if mine.role not in ("owner", "admin"):
        raise Forbidden("only the group's owner and admins add members")
    cur = await uow.conn.execute(
        """SELECT user_id FROM conversation_members
           WHERE conversation_id = %s AND state IN ('active', 'requested')""",
        (conversation_id,),
    )
    present = {row[0] for row in await cur.fetchall()}
    newcomers = [m for m in member_ids if m not in present]
    if not newcomers:
        return await get_conversation(uow, conversation_id)
    if len(present) + len(newcomers) > max_members:
        raise Invalid(f"a group holds at most {max_members} members, you included", field="memberIds")
    await uow.lock_live_users(me, *newcomers)
    await _refuse_blocked(uow, me, newcomers)
    followers = await _follower_ids(uow, me, newcomers)
    for user_id in newcomers:
        state = "active" if user_id in followers else "requested"
        await _set_member(
            uow,
            conversation_id,
            user_id,
            role="member",
            state=state,
            joined_seq=mine.last_seq,
            change="added",
        )
    await _touch(uow, conversation_id)
    return await get_conversation(uow, conversation_id)


async def remove_member(uow: UnitOfWork, conversation_id: UUID, user_id: UUID) -> None:
    """The caller leaves (their own id), or removes someone: the owner anyone, an admin members."""
    me = uow.require_user()
    if user_id == me:
        await leave(uow, conversation_id)
        return
    mine = await _membership(uow, conversation_id, states=("active",), lock=True)
    if mine.kind != "group":
        raise Conflict("nobody is removed from a 1:1 conversation: leave it instead")
    target = await fetch_one(
        uow.conn,
        _MemberRow,
        """SELECT id, user_id, role, state, version FROM conversation_members
           WHERE conversation_id = %s AND user_id = %s AND state IN ('active', 'requested')""",
        (conversation_id, user_id),
    )
    if target is None:
        raise NotFound("this user is not a member of the conversation")
    allowed = mine.role == "owner" or (mine.role == "admin" and target.role == "member")
    if not allowed:
        raise Forbidden("the owner removes anyone, admins remove members")
    await _change_member(uow, conversation_id, user_id, "removed", state="removed", role="member")
    await _touch(uow, conversation_id)


async def leave(uow: UnitOfWork, conversation_id: UUID) -> None:
    """The caller leaves; an owner leaving a group hands it to its longest-standing admin, else member."""
    me = uow.require_user()
    mine = await _membership(uow, conversation_id, states=("active", "requested"), lock=True)
    await _change_member(uow, conversation_id, me, "left", state="left", role="member")
    if mine.kind == "group" and mine.role == "owner":
        cur = await uow.conn.execute(
            """SELECT user_id FROM conversation_members
               WHERE conversation_id = %s AND state = 'active'
               ORDER BY (role = 'admin') DESC, joined_at, user_id LIMIT 1""",
            (conversation_id,),
        )
        heir = await cur.fetchone()
        if heir is not None:
            await _change_member(uow, conversation_id, heir[0], "role_changed", role="owner")
    await _touch(uow, conversation_id)


async def set_role(uow: UnitOfWork, conversation_id: UUID, user_id: UUID, role: str) -> None:
    """The owner makes an active member an admin, or an admin a member again."""
    mine = await _membership(uow, conversation_id, states=("active",), lock=True)
    if mine.kind != "group":
        raise Conflict("a 1:1 conversation has no roles")
    if mine.role != "owner":
        raise Forbidden("only the group's owner changes roles")
    cur = await uow.conn.execute(
        """SELECT role FROM conversation_members
           WHERE conversation_id = %s AND user_id = %s AND state = 'active'""",
        (conversation_id, user_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound("this user is not an active member of the conversation")
    if row[0] == "owner":
        raise Conflict("the owner's role changes only when they leave")
    if row[0] != role:
        await _change_member(uow, conversation_id, user_id, "role_changed", role=role)


async def _touch(uow: UnitOfWork, conversation_id: UUID) -> None:
    await uow.conn.execute("UPDATE conversations SET version = version + 1 WHERE id = %s", (conversation_id,))


# --- messages ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _MessageRow:
    id: UUID
    conversation_id: UUID
    seq: int
    sender_id: UUID
    text: str | None
    encrypted: bool
    reply_to_id: UUID | None
    created_at: datetime
    updated_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None
    version: int


_MESSAGE_COLUMNS = """m.id, m.conversation_id, m.seq, m.sender_id, m.text, m.encrypted, m.reply_to_id,
                      m.created_at, m.updated_at, m.edited_at, m.deleted_at, m.version"""


async def _message_media(uow: UnitOfWork, message_ids: list[UUID]) -> dict[UUID, list[MediaRef]]:
    media: dict[UUID, list[MediaRef]] = defaultdict(list)
    if not message_ids:
        return media
    cur = await uow.conn.execute(
        """SELECT mm.message_id, a.id, a.content_type, a.blob_path
           FROM message_media mm JOIN media_assets a ON a.id = mm.media_id
           WHERE mm.message_id = ANY(%s) AND a.purged_at IS NULL ORDER BY mm.message_id, mm.position""",
        (message_ids,),
    )
    for message_id, media_id, content_type, blob_path in await cur.fetchall():
        media[message_id].append(MediaRef(media_id=media_id, content_type=content_type, blob_path=blob_path))
    return media


async def _messages_out(uow: UnitOfWork, rows: list[_MessageRow], media_urls: MediaUrls) -> list[Message]:
    """Messages as the caller gets them: with their own devices' ciphertexts (row-level security
    shows a member only the ciphertexts addressed to them)."""
    me = uow.require_user()
    ids = [row.id for row in rows if row.encrypted and row.deleted_at is None]
    ciphertexts: dict[UUID, list[Ciphertext]] = defaultdict(list)
    if ids:
        cur = await uow.conn.execute(
            """SELECT message_id, device_id, ciphertext FROM message_ciphertexts
               WHERE message_id = ANY(%s) AND recipient_id = %s ORDER BY device_id""",
            (ids, me),
        )
        for message_id, device_id, ciphertext in await cur.fetchall():
            ciphertexts[message_id].append(Ciphertext(device_id=device_id, ciphertext=ciphertext))
    media = await _message_media(uow, [row.id for row in rows if row.deleted_at is None])
    return [
        Message(
            id=row.id,
            conversation_id=row.conversation_id,
            sender_id=row.sender_id,
            text=None if row.deleted_at else row.text,
            encrypted=row.encrypted,
            ciphertexts=ciphertexts.get(row.id, []),
            media=[media_view(ref, media_urls) for ref in media.get(row.id, [])],
            reply_to_id=row.reply_to_id,
            created_at=row.created_at,
            edited_at=row.edited_at,
            deleted=row.deleted_at is not None,
        )
        for row in rows
    ]


async def send_message(
    uow: UnitOfWork, conversation_id: UUID, body: SendMessage, media_urls: MediaUrls
) -> Message:
    """A message to the conversation's members. Replying to a request accepts it; in a 1:1
    conversation a block either way forbids it."""
    me = uow.require_user()
    mine = await _membership(uow, conversation_id, lock=True)
    cur = await uow.conn.execute(
        """SELECT user_id, state FROM conversation_members
           WHERE conversation_id = %s AND state IN ('active', 'requested') AND user_id <> %s""",
        (conversation_id, me),
    )
    recipients = [row[0] for row in await cur.fetchall()]
    if mine.kind == "direct":
        other = await _direct_other(uow, conversation_id, me)
        await _refuse_blocked(uow, me, [other])
    if body.reply_to_id is not None:
        await _require_message_in(uow, conversation_id, body.reply_to_id, mine.joined_seq)
    strangers = {c.recipient_id for c in body.ciphertexts} - set(recipients) - {me}
    if strangers:
        raise Invalid(
            "ciphertexts are for the conversation's members' devices only",
            field="ciphertexts",
            recipientIds=sorted(str(s) for s in strangers),
        )
    encrypted = bool(body.ciphertexts)
    row = await fetch_one(
        uow.conn,
        _MessageRow,
        f"""WITH next AS (
                UPDATE conversations SET last_seq = last_seq + 1, last_activity_at = now(), version = version + 1
                WHERE id = %(c)s RETURNING last_seq)
            INSERT INTO messages AS m (conversation_id, seq, sender_id, text, encrypted, reply_to_id)
            SELECT %(c)s, next.last_seq, %(me)s, %(text)s, %(encrypted)s, %(reply)s FROM next
            RETURNING {_MESSAGE_COLUMNS}""",  # noqa: S608 (a constant column list)
        {
            "c": conversation_id,
            "me": me,
            "text": body.text,
            "encrypted": encrypted,
            "reply": body.reply_to_id,
        },
    )
    assert row is not None
    media = await attach_media(uow, me, body.media_ids, media_urls.unattached_ttl, "message", row.id)
    if body.ciphertexts:
        async with uow.conn.cursor() as cursor:
            await cursor.executemany(
                """INSERT INTO message_ciphertexts (message_id, recipient_id, device_id, ciphertext)
                   VALUES (%s, %s, %s, %s)""",
                [(row.id, c.recipient_id, c.device_id, c.ciphertext) for c in body.ciphertexts],
            )
    if mine.state == "requested":
        await _change_member(uow, conversation_id, me, "accepted", state="active")
    # The sender has read what they sent.
    await uow.conn.execute(
        """UPDATE conversation_members SET last_read_seq = GREATEST(last_read_seq, %s)
           WHERE conversation_id = %s AND user_id = %s""",
        (row.seq, conversation_id, me),
    )
    uow.record(
        MessageSent(
            message_id=row.id,
            conversation_id=conversation_id,
            sender_id=me,
            seq=row.seq,
            text=row.text,
            encrypted=encrypted,
            ciphertexts=tuple(
                MessageCiphertext(recipient_id=c.recipient_id, device_id=c.device_id, ciphertext=c.ciphertext)
                for c in body.ciphertexts
            ),
            media=media,
            reply_to_id=row.reply_to_id,
            recipient_ids=tuple(recipients),
            created_at=row.created_at,
        ),
        row.id,
        1,
    )
    return (await _messages_out(uow, [row], media_urls))[0]


async def _direct_other(uow: UnitOfWork, conversation_id: UUID, me: UUID) -> UUID:
    cur = await uow.conn.execute(
        "SELECT CASE WHEN direct_low = %s THEN direct_high ELSE direct_low END FROM conversations WHERE id = %s",
        (me, conversation_id),
    )
    row = await cur.fetchone()
    assert row is not None
    other: UUID = row[0]
    return other


async def _require_message_in(
    uow: UnitOfWork, conversation_id: UUID, message_id: UUID, joined_seq: int
) -> int:
    cur = await uow.conn.execute(
        """SELECT seq FROM messages
           WHERE id = %s AND conversation_id = %s AND seq > %s AND deleted_at IS NULL""",
        (message_id, conversation_id, joined_seq),
    )
    row = await cur.fetchone()
    if row is None:
        raise Invalid("this is not a message of the conversation you can see", field="messageId")
    seq: int = row[0]
    return seq


async def _own_message(uow: UnitOfWork, message_id: UUID) -> _MessageRow:
    """The caller's own live message, locked; 404 when the caller is not (any more) a member who sees
    it, 403 when it is someone else's."""
    me = uow.require_user()
    row = await fetch_one(
        uow.conn,
        _MessageRow,
        f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE m.id = %s AND m.deleted_at IS NULL",  # noqa: S608
        (message_id,),
    )
    if row is None:
        raise NotFound(NO_SUCH_MESSAGE)
    try:
        mine = await _membership(uow, row.conversation_id, lock=True)
    except NotFound:
        raise NotFound(NO_SUCH_MESSAGE) from None
    if row.seq <= mine.joined_seq:
        raise NotFound(NO_SUCH_MESSAGE)
    if row.sender_id != me:
        raise Forbidden("only its sender changes a message")
    return row


async def edit_message(
    uow: UnitOfWork, message_id: UUID, body: EditMessage, window_minutes: float, media_urls: MediaUrls
) -> Message:
    """The sender changes the text of a plain message within MESSAGING_EDIT_WINDOW_MINUTES."""
    me = uow.require_user()
    row = await _own_message(uow, message_id)
    if row.encrypted:
        raise Conflict("an encrypted message cannot be edited as text: send a new one")
    edited = await fetch_one(
        uow.conn,
        _MessageRow,
        f"""UPDATE messages m SET text = %(text)s, edited_at = now(), updated_at = now(), version = version + 1
            WHERE m.id = %(id)s AND m.created_at > now() - %(window)s
            RETURNING {_MESSAGE_COLUMNS}""",  # noqa: S608
        {"text": body.text, "id": message_id, "window": timedelta(minutes=window_minutes)},
    )
    if edited is None:
        raise Conflict(f"a message can be edited for {window_minutes:g} minutes after it was sent")
    assert edited.edited_at is not None
    uow.record(
        MessageEdited(
            message_id=message_id,
            conversation_id=edited.conversation_id,
            sender_id=me,
            seq=edited.seq,
            text=body.text,
            media=tuple((await _message_media(uow, [message_id])).get(message_id, [])),
            reply_to_id=edited.reply_to_id,
            created_at=edited.created_at,
            edited_at=edited.edited_at,
        ),
        message_id,
        edited.version,
    )
    return (await _messages_out(uow, [edited], media_urls))[0]


async def delete_message(uow: UnitOfWork, message_id: UUID) -> None:
    """Deleted for everyone: the text and ciphertexts go; a tombstone keeps its place (`since`)."""
    me = uow.require_user()
    row = await _own_message(uow, message_id)
    await uow.conn.execute("DELETE FROM message_ciphertexts WHERE message_id = %s", (message_id,))
    cur = await uow.conn.execute(
        """UPDATE messages SET text = NULL, deleted_at = now(), updated_at = now(), version = version + 1
           WHERE id = %s RETURNING version, deleted_at""",
        (message_id,),
    )
    done = await cur.fetchone()
    assert done is not None
    uow.record(
        MessageDeleted(
            message_id=message_id,
            conversation_id=row.conversation_id,
            sender_id=me,
            seq=row.seq,
            created_at=row.created_at,
            deleted_at=done[1],
        ),
        message_id,
        done[0],
    )


async def list_messages(
    uow: UnitOfWork,
    cursors: CursorCodec,
    media_urls: MediaUrls,
    conversation_id: UUID,
    limit: int,
    cursor: str | None,
    since: datetime | None,
) -> Page[Message]:
    """Newest first. Without `since`: the live messages, paged by `seq`. With `since`: every message
    sent, edited or deleted after it (deleted ones as tombstones), newest change first, for a device
    catching up."""
    me = uow.require_user()
    mine = await _membership(uow, conversation_id)
    params: dict[str, Any] = {"c": conversation_id, "joined": mine.joined_seq, "limit": limit + 1}
    if since is None:
        scope = messages_scope(conversation_id, me)
        after = ""
        if cursor:
            seq = cursors.decode(scope, cursor).get("seq")
            if not isinstance(seq, int):
                raise BadCursor("the cursor is not one this API issued")
            params["before"] = seq
            after = "AND m.seq < %(before)s"
        rows = await fetch_all(
            uow.conn,
            _MessageRow,
            f"""SELECT {_MESSAGE_COLUMNS} FROM messages m
                WHERE m.conversation_id = %(c)s AND m.seq > %(joined)s AND m.deleted_at IS NULL {after}
                ORDER BY m.seq DESC LIMIT %(limit)s""",  # noqa: S608 (constants; values are parameters)
            params,
        )
        page = rows[:limit]
        next_cursor = cursors.encode(scope, {"seq": page[-1].seq}) if len(rows) > limit else None
    else:
        scope = f"messages-since:{conversation_id}:{me}:{since.isoformat()}"
        params["since"] = since
        after = ""
        changed = cursors.time_position(scope, cursor)
        if changed:
            params["after_time"], params["after_id"] = changed
            after = "AND (m.updated_at, m.id) < (%(after_time)s, %(after_id)s)"
        rows = await fetch_all(
            uow.conn,
            _MessageRow,
            f"""SELECT {_MESSAGE_COLUMNS} FROM messages m
                WHERE m.conversation_id = %(c)s AND m.seq > %(joined)s AND m.updated_at > %(since)s {after}
                ORDER BY m.updated_at DESC, m.id DESC LIMIT %(limit)s""",  # noqa: S608
            params,
        )
        page = rows[:limit]
        next_cursor = (
            cursors.time_cursor(scope, page[-1].updated_at, page[-1].id) if len(rows) > limit else None
        )
    return Page[Message](items=await _messages_out(uow, page, media_urls), next_cursor=next_cursor)


# --- reading -------------------------------------------------------------------------------------

_UNREAD = """(SELECT count(*) FROM messages u
              WHERE u.conversation_id = {c} AND u.seq > GREATEST({read}, {joined})
                AND u.sender_id <> {me} AND u.deleted_at IS NULL)"""


async def mark_read(uow: UnitOfWork, conversation_id: UUID, message_id: UUID) -> ReadState:
    """Read up to `message_id` (a read receipt): never goes back, so receipts in any order end at the
    newest; the unread count is counted in this transaction, exact."""
    me = uow.require_user()
    mine = await _membership(uow, conversation_id)
    seq = await _require_message_in(uow, conversation_id, message_id, mine.joined_seq)
    cur = await uow.conn.execute(
        """UPDATE conversation_members SET last_read_seq = %s, version = version + 1, updated_at = now()
           WHERE id = %s AND last_read_seq < %s RETURNING version""",
        (seq, mine.member_id, seq),
    )
    moved = await cur.fetchone()
    if moved is not None:
        uow.record(
            ConversationRead(
                member_id=mine.member_id,
                conversation_id=conversation_id,
                user_id=me,
                last_read_seq=seq,
                last_read_message_id=message_id,
            ),
            mine.member_id,
            moved[0],
        )
    unread = _UNREAD.format(c="%(c)s", read="m.last_read_seq", joined="m.joined_seq", me="%(me)s")
    cur = await uow.conn.execute(
        f"""SELECT m.last_read_seq, {unread},
                   (SELECT id FROM messages x WHERE x.conversation_id = %(c)s AND x.seq = m.last_read_seq)
            FROM conversation_members m WHERE m.id = %(member)s""",  # noqa: S608
        {"c": conversation_id, "me": me, "member": mine.member_id},
    )
    state = await cur.fetchone()
    assert state is not None
    return ReadState(conversation_id=conversation_id, last_read_message_id=state[2], unread_count=state[1])


@dataclass(frozen=True)
class _InboxRow:
    conversation_id: UUID
    kind: str
    title: str | None
    state: str
    member_ids: list[UUID]
    last_activity_at: datetime
    unread_count: int
    last_message_id: UUID | None


async def inbox(
    uow: UnitOfWork,
    cursors: CursorCodec,
    media_urls: MediaUrls,
    limit: int,
    cursor: str | None,
    requests: bool,
) -> Page[InboxEntry]:
    """The caller's conversations (or, `requests`, the requests waiting for them), newest activity
    first, each with its last message and the caller's exact unread count."""
    me = uow.require_user()
    state = "requested" if requests else "active"
    scope = f"inbox:{me}:{state}"
    params: dict[str, Any] = {"me": me, "state": state, "limit": limit + 1}
    after = ""
    position = cursors.time_position(scope, cursor)
    if position:
        params["after_time"], params["after_id"] = position
        after = "AND (c.last_activity_at, c.id) < (%(after_time)s, %(after_id)s)"
    unread = _UNREAD.format(c="c.id", read="cm.last_read_seq", joined="cm.joined_seq", me="%(me)s")
    rows = await fetch_all(
        uow.conn,
        _InboxRow,
        f"""SELECT c.id AS conversation_id, c.kind, c.title, cm.state, c.last_activity_at,
                   ARRAY(SELECT o.user_id FROM conversation_members o
                         WHERE o.conversation_id = c.id AND o.state IN ('active', 'requested')
                         ORDER BY o.joined_at, o.user_id) AS member_ids,
                   {unread} AS unread_count,
                   (SELECT l.id FROM messages l
                    WHERE l.conversation_id = c.id AND l.seq > cm.joined_seq AND l.deleted_at IS NULL
                    ORDER BY l.seq DESC LIMIT 1) AS last_message_id
            FROM conversation_members cm JOIN conversations c ON c.id = cm.conversation_id
            WHERE cm.user_id = %(me)s AND cm.state = %(state)s {after}
            ORDER BY c.last_activity_at DESC, c.id DESC LIMIT %(limit)s""",  # noqa: S608
        params,
    )
    page = rows[:limit]
    last_ids = [row.last_message_id for row in page if row.last_message_id is not None]
    last_rows = (
        await fetch_all(
            uow.conn,
            _MessageRow,
            f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE m.id = ANY(%s)",  # noqa: S608
            (last_ids,),
        )
        if last_ids
        else []
    )
    last = {message.id: message for message in await _messages_out(uow, last_rows, media_urls)}
    items = [
        InboxEntry(
            conversation_id=row.conversation_id,
            kind=row.kind,  # type: ignore[arg-type]
            title=row.title,
            state=row.state,  # type: ignore[arg-type]
            member_ids=row.member_ids,
            last_activity_at=row.last_activity_at,
            last_message=last.get(row.last_message_id) if row.last_message_id else None,
            unread_count=row.unread_count,
        )
        for row in page
    ]
    tail = page[-1] if page else None
    next_cursor = (
        cursors.time_cursor(scope, tail.last_activity_at, tail.conversation_id)
        if tail and len(rows) > limit
        else None
    )
    return Page[InboxEntry](items=items, next_cursor=next_cursor)


# --- erasure -------------------------------------------------------------------------------------


async def erase_messages_of(uow: UnitOfWork, user_id: UUID, limit: int) -> int:
    """One erasure batch (docs/privacy.md): the account's messages are deleted for everyone as their
    sender would delete them (each with message.deleted), then the ciphertexts addressed to it and its
    device keys go, and it leaves every conversation it was in. The rows that stay keep ids only."""
    cur = await uow.conn.execute(
        """SELECT id, conversation_id, seq, created_at FROM messages WHERE sender_id = %s AND deleted_at IS NULL
           ORDER BY id LIMIT %s FOR UPDATE""",
        (user_id, limit),
    )
    live = await cur.fetchall()
    for message_id, conversation_id, seq, created_at in live:
        await uow.conn.execute("DELETE FROM message_ciphertexts WHERE message_id = %s", (message_id,))
        cur = await uow.conn.execute(
            """UPDATE messages SET text = NULL, deleted_at = now(), updated_at = now(), version = version + 1
               WHERE id = %s RETURNING version, deleted_at""",
            (message_id,),
        )
        done = await cur.fetchone()
        assert done is not None
        uow.record(
            MessageDeleted(
                message_id=message_id,
                conversation_id=conversation_id,
                sender_id=user_id,
                seq=seq,
                created_at=created_at,
                deleted_at=done[1],
            ),
            message_id,
            done[0],
        )
    if live:
        return len(live)
    changed = 0
    for statement in (
        """DELETE FROM message_ciphertexts WHERE ctid = ANY(ARRAY(
               SELECT ctid FROM message_ciphertexts WHERE recipient_id = %(u)s LIMIT %(limit)s))""",
        """DELETE FROM device_keys WHERE (user_id, device_id) IN (
               SELECT user_id, device_id FROM device_keys WHERE user_id = %(u)s LIMIT %(limit)s)""",
    ):
        cur = await uow.conn.execute(statement, {"u": user_id, "limit": limit})
        changed += cur.rowcount
    if changed:
        return changed
    members = await fetch_all(
        uow.conn,
        _MemberRow,
        """UPDATE conversation_members SET state = 'left', role = 'member', version = version + 1, updated_at = now()
           WHERE id IN (SELECT id FROM conversation_members WHERE user_id = %s AND state IN ('active', 'requested')
                        ORDER BY id LIMIT %s)
           RETURNING id, user_id, role, state, version""",
        (user_id, limit),
    )
    for member in members:
        cur = await uow.conn.execute(
            "SELECT conversation_id FROM conversation_members WHERE id = %s", (member.id,)
        )
        row = await cur.fetchone()
        assert row is not None
        _record_member(uow, row[0], member, "account_deleted", user_id)
    return len(members)
