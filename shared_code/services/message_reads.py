"""GET /api/conversations/{id}/messages from the `messages` projection (one partition per conversation),
with PostgreSQL behind it (docs/cost-model.md "A message to N members").

Who may read is PostgreSQL's, always (one primary-key read of the caller's membership in a short
transaction of its own): a member removed a moment ago must not read on from a projection. That read
also gives the conversation's newest sequence number, and messages are numbered without gaps, so a
page from Cosmos DB is known complete when its sequence numbers run on without a hole from where the
page starts. A hole (a message not projected yet: the relay lags) or Cosmos DB not answering serves the
page from PostgreSQL instead, with the same cursor. Edits and deletions show once projected (the
relay's lag, milliseconds when it keeps up). Conversation lists, read positions and unread counts stay
in PostgreSQL: an unread count must be exact when asked, which a projection updated after the fact
cannot promise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from azure.cosmos.aio import DatabaseProxy

from shared_code.adapters.availability import CosmosUnavailable, RequestBudget
from shared_code.adapters.media_signing import MediaUrls
from shared_code.cursors import CursorCodec
from shared_code.db.unit_of_work import Transactions, UnitOfWork
from shared_code.domain.errors import BadCursor
from shared_code.domain.events import MediaRef
from shared_code.metrics import record_degraded_read
from shared_code.projections.writes import MESSAGES
from shared_code.schemas.common import Page
from shared_code.schemas.messaging import Ciphertext, Message
from shared_code.services import messaging
from shared_code.services.post_rows import media_view

log = logging.getLogger("chorus.reads")
# A page reads at most this many chunks of documents (tombstones skipped) before PostgreSQL serves it.
MAX_CHUNKS = 3


@dataclass(frozen=True)
class MessagesRead:
    page: Page[Message]
    from_postgres: bool


@dataclass(frozen=True)
class _Reader:
    user_id: UUID
    joined_seq: int
    last_seq: int


async def _reader(uow: UnitOfWork, conversation_id: UUID) -> _Reader:
    mine = await messaging.membership(uow, conversation_id)
    return _Reader(uow.require_user(), mine.joined_seq, mine.last_seq)


async def read_messages(
    run: Transactions,
    db: DatabaseProxy,
    budget: RequestBudget,
    cursors: CursorCodec,
    media_urls: MediaUrls,
    conversation_id: UUID,
    limit: int,
    cursor: str | None,
) -> MessagesRead:
    reader = await run(lambda uow: _reader(uow, conversation_id))
    scope = messaging.messages_scope(conversation_id, reader.user_id)
    before = reader.last_seq + 1
    if cursor:
        seq = cursors.decode(scope, cursor).get("seq")
        if not isinstance(seq, int):
            raise BadCursor("the cursor is not one this API issued")
        before = seq
    try:
        async with budget.guard():
            live = await _live_messages(db, conversation_id, reader.joined_seq, before, limit + 1)
    except CosmosUnavailable as exc:
        record_degraded_read("messages")
        log.warning("messages served from PostgreSQL: Cosmos DB %s", exc.reason)
        live = None
    if live is None:
        page = await run(
            lambda uow: messaging.list_messages(
                uow, cursors, media_urls, conversation_id, limit, cursor, None
            )
        )
        return MessagesRead(page, from_postgres=True)
    items = live[:limit]
    next_cursor = cursors.encode(scope, {"seq": items[-1]["seq"]}) if len(live) > limit else None
    return MessagesRead(
        Page[Message](
            items=[_message(doc, reader.user_id, media_urls) for doc in items], next_cursor=next_cursor
        ),
        from_postgres=False,
    )


async def _live_messages(
    db: DatabaseProxy, conversation_id: UUID, joined_seq: int, before: int, wanted: int
) -> list[dict[str, Any]] | None:
    """Up to `wanted` live messages below `before`, newest first; None when the projection has a hole
    there (not all projected yet) or too many tombstones to skip."""
    container = db.get_container_client(MESSAGES)
    live: list[dict[str, Any]] = []
    expected = before - 1
    for _ in range(MAX_CHUNKS):
        if expected <= joined_seq or len(live) >= wanted:
            return live
        chunk = wanted - len(live)
        documents = [
            doc
            async for doc in container.query_items(
                "SELECT TOP @n * FROM c WHERE c.conversationId = @c AND c.seq > @joined AND c.seq <= @top "
                "ORDER BY c.seq DESC",
                parameters=[
                    {"name": "@n", "value": chunk},
                    {"name": "@c", "value": str(conversation_id)},
                    {"name": "@joined", "value": joined_seq},
                    {"name": "@top", "value": expected},
                ],
                partition_key=str(conversation_id),
            )
        ]
        for doc in documents:
            if doc["seq"] != expected:
                return None  # a message below the top is not there yet
            expected -= 1
            if not doc.get("deleted"):
                live.append(doc)
        if len(documents) < chunk and expected > joined_seq:
            return None  # fewer than there are: some not projected yet
    return live if len(live) >= wanted or expected <= joined_seq else None


def _message(doc: dict[str, Any], reader: UUID, media_urls: MediaUrls) -> Message:
    mine = str(reader)
    return Message(
        id=UUID(doc["messageId"]),
        conversation_id=UUID(doc["conversationId"]),
        sender_id=UUID(doc["senderId"]),
        text=doc.get("text"),
        encrypted=bool(doc.get("encrypted")),
        ciphertexts=[
            Ciphertext(device_id=c["deviceId"], ciphertext=c["ciphertext"])
            for c in sorted(doc.get("ciphertexts", []), key=lambda c: str(c["deviceId"]))
            if c.get("recipientId") == mine
        ],
        media=[media_view(MediaRef.model_validate(ref), media_urls) for ref in doc.get("media", [])],
        reply_to_id=UUID(doc["replyToId"]) if doc.get("replyToId") else None,
        created_at=datetime.fromisoformat(doc["createdAt"]),
        edited_at=datetime.fromisoformat(doc["editedAt"]) if doc.get("editedAt") else None,
        deleted=False,
    )
