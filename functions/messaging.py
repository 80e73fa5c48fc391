"""Direct messages (docs/api.md "Conversations and messages", "End-to-end encryption"): conversations,
their members and messages, read receipts, and the device key directory."""

from __future__ import annotations

import re
from datetime import datetime

import azure.functions as func

from functions.contract import CONVERSATIONS_QUERY, MESSAGES_QUERY, api_route
from functions.http_support import ApiRequest, no_content, ok
from functions.responses import json_response
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.errors import Invalid, NotFound
from shared_code.domain.limits import DEVICE_ID_PATTERN
from shared_code.schemas.common import Page
from shared_code.schemas.messaging import (
    AddMembers,
    ClaimedKeys,
    Conversation,
    CreateConversation,
    DeviceCount,
    EditMessage,
    InboxEntry,
    MarkRead,
    Message,
    PublishDeviceKeys,
    ReadState,
    SendMessage,
    SetMemberRole,
)
from shared_code.services import device_keys, message_reads, messaging
from shared_code.services.idempotency import StoredResponse, respond_once

bp = func.Blueprint()
TAG = "messages"


@api_route(
    bp,
    "POST",
    "conversations",
    summary="Start a conversation: 1:1 (one member; the same one every time) or a group (a title, or more members)",
    request=CreateConversation,
    response=Conversation,
    status=201,
    tag=TAG,
    other_responses=[(200, Conversation, "the 1:1 conversation with this person already exists: here it is")],
)
async def create_conversation(api: ApiRequest) -> func.HttpResponse:
    body = api.body(CreateConversation)
    max_members = api.app.settings.messaging_group_max_members

    async def respond(uow: UnitOfWork) -> StoredResponse:
        async def first_time() -> StoredResponse:
            conversation, created = await messaging.create_conversation(uow, body, max_members)
            return StoredResponse(
                201 if created else 200,
                conversation.to_json(),
                {"Location": f"/api/conversations/{conversation.id}"},
            )

        return await respond_once(
            uow, api.idempotency_key, "create_conversation", body.model_dump(mode="json"), first_time
        )

    stored = await api.run(respond)
    headers = dict(stored.headers)
    if stored.replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(stored.body, status=stored.status, headers=headers)


@api_route(
    bp,
    "GET",
    "conversations",
    summary="The caller's inbox (or message requests), newest activity first, with last message and unread count",
    response=Page[InboxEntry],
    query=CONVERSATIONS_QUERY,
    tag=TAG,
)
async def list_conversations(api: ApiRequest) -> func.HttpResponse:
    limit, cursor = api.page()
    requests = api.req.params.get("requests", "false")
    if requests not in ("true", "false"):
        raise Invalid("requests must be true or false", field="requests")
    return ok(
        await api.run(
            lambda uow: messaging.inbox(
                uow, api.app.cursors, api.app.media_urls, limit, cursor, requests == "true"
            )
        )
    )


@api_route(
    bp,
    "GET",
    "conversations/{conversationId:guid}",
    summary="A conversation and its members (members only)",
    response=Conversation,
    tag=TAG,
)
async def get_conversation(api: ApiRequest) -> func.HttpResponse:
    conversation_id = api.route_id("conversationId")
    return ok(await api.run(lambda uow: messaging.get_conversation(uow, conversation_id)))


@api_route(
    bp,
    "POST",
    "conversations/{conversationId:guid}/accept",
    summary="Accept a message request: the conversation joins the inbox (idempotent)",
    status=204,
    tag=TAG,
)
async def accept_conversation(api: ApiRequest) -> func.HttpResponse:
    conversation_id = api.route_id("conversationId")
    await api.run(lambda uow: messaging.accept_request(uow, conversation_id))
    return no_content()


@api_route(
    bp,
    "POST",
    "conversations/{conversationId:guid}/decline",
    summary="Decline a message request: it goes away for the caller",
    status=204,
    tag=TAG,
)
async def decline_conversation(api: ApiRequest) -> func.HttpResponse:
    conversation_id = api.route_id("conversationId")
    await api.run(lambda uow: messaging.decline_request(uow, conversation_id))
    return no_content()


@api_route(
    bp,
    "POST",
    "conversations/{conversationId:guid}/members",
    summary="Add members to a group (its owner and admins)",
    request=AddMembers,
    response=Conversation,
    tag=TAG,
)
async def add_members(api: ApiRequest) -> func.HttpResponse:
    conversation_id = api.route_id("conversationId")
    body = api.body(AddMembers)
    max_members = api.app.settings.messaging_group_max_members
    return ok(
        await api.run(lambda uow: messaging.add_members(uow, conversation_id, body.member_ids, max_members))
    )


@api_route(
    bp,
    "DELETE",
    "conversations/{conversationId:guid}/members/{userId:guid}",
    summary="Remove a member (the owner anyone, admins members); the caller's own id: leave",
    status=204,
    tag=TAG,
)
async def remove_member(api: ApiRequest) -> func.HttpResponse:
    conversation_id = api.route_id("conversationId")
    user_id = api.route_id("userId")
    await api.run(lambda uow: messaging.remove_member(uow, conversation_id, user_id))
    return no_content()


@api_route(
    bp,
    "PUT",
    "conversations/{conversationId:guid}/members/{userId:guid}/role",
    summary="Make a group member an admin, or an admin a member (the owner)",
    request=SetMemberRole,
    status=204,
    tag=TAG,
)
async def set_member_role(api: ApiRequest) -> func.HttpResponse:
    conversation_id = api.route_id("conversationId")
    user_id = api.route_id("userId")
    body = api.body(SetMemberRole)
    await api.run(lambda uow: messaging.set_role(uow, conversation_id, user_id, body.role))
    return no_content()


@api_route(
    bp,
    "POST",
    "conversations/{conversationId:guid}/leave",
    summary="Leave a conversation (an owner leaving hands the group on)",
    status=204,
    tag=TAG,
)
async def leave_conversation(api: ApiRequest) -> func.HttpResponse:
    conversation_id = api.route_id("conversationId")
    await api.run(lambda uow: messaging.leave(uow, conversation_id))
    return no_content()


@api_route(
    bp,
    "GET",
    "conversations/{conversationId:guid}/messages",
    summary="A conversation's messages, newest first; `since`: every change after a time (device sync)",
    response=Page[Message],
    query=MESSAGES_QUERY,
    tag=TAG,
)
async def list_messages(api: ApiRequest) -> func.HttpResponse:
    conversation_id = api.route_id("conversationId")
    limit, cursor = api.page()
    since = _since(api.req.params.get("since"))
    if since is not None:  # a device catching up: every change, tombstones included, from PostgreSQL
        return ok(
            await api.run(
                lambda uow: messaging.list_messages(
                    uow, api.app.cursors, api.app.media_urls, conversation_id, limit, cursor, since
                )
            )
        )
    read = await message_reads.read_messages(
        api.run,
        api.app.request_cosmos_db,
        api.cosmos_budget(),
        api.app.cursors,
        api.app.media_urls,
        conversation_id,
        limit,
        cursor,
    )
    return ok(read.page)


def _since(raw: str | None) -> datetime | None:
    if raw is None or raw == "":
        return None
    try:
        since = datetime.fromisoformat(raw)
    except ValueError:
        raise Invalid("since must be a date-time with its offset (RFC 3339)", field="since") from None
    if since.tzinfo is None:
        raise Invalid("since must be a date-time with its offset (RFC 3339)", field="since")
    return since


@api_route(
    bp,
    "POST",
    "conversations/{conversationId:guid}/messages",
    summary="Send a message: text, or one ciphertext per recipient device (end-to-end encrypted)",
    request=SendMessage,
    response=Message,
    status=201,
    tag=TAG,
)
async def send_message(api: ApiRequest) -> func.HttpResponse:
    conversation_id = api.route_id("conversationId")
    body = api.body(SendMessage)

    async def create(uow: UnitOfWork) -> tuple[Message, str]:
        message = await messaging.send_message(uow, conversation_id, body, api.app.media_urls)
        return message, f"messages/{message.id}"

    return await api.create(f"send_message:{conversation_id}", body, create)


@api_route(
    bp,
    "PATCH",
    "messages/{messageId:guid}",
    summary="Edit a message's text (its sender, within MESSAGING_EDIT_WINDOW_MINUTES)",
    request=EditMessage,
    response=Message,
    tag=TAG,
)
async def edit_message(api: ApiRequest) -> func.HttpResponse:
    message_id = api.route_id("messageId")
    body = api.body(EditMessage)
    window = api.app.settings.messaging_edit_window_minutes
    return ok(
        await api.run(lambda uow: messaging.edit_message(uow, message_id, body, window, api.app.media_urls))
    )


@api_route(
    bp,
    "DELETE",
    "messages/{messageId:guid}",
    summary="Delete a message for everyone (its sender)",
    status=204,
    tag=TAG,
)
async def delete_message(api: ApiRequest) -> func.HttpResponse:
    message_id = api.route_id("messageId")
    await api.run(lambda uow: messaging.delete_message(uow, message_id))
    return no_content()


@api_route(
    bp,
    "PUT",
    "conversations/{conversationId:guid}/read",
    summary="Mark the conversation read up to a message (a read receipt); answers the exact unread count",
    request=MarkRead,
    response=ReadState,
    tag=TAG,
)
async def mark_read(api: ApiRequest) -> func.HttpResponse:
    conversation_id = api.route_id("conversationId")
    body = api.body(MarkRead)
    return ok(await api.run(lambda uow: messaging.mark_read(uow, conversation_id, body.message_id)))


@api_route(
    bp,
    "PUT",
    "users/me/devices/{deviceId}/keys",
    summary="Publish a device's public keys and add one-time prekeys (end-to-end encryption)",
    request=PublishDeviceKeys,
    response=DeviceCount,
    tag=TAG,
)
async def publish_device_keys(api: ApiRequest) -> func.HttpResponse:
    device_id = api.req.route_params.get("deviceId", "")
    if re.fullmatch(DEVICE_ID_PATTERN, device_id) is None:
        raise NotFound("no such device: a device id is 1 to 64 letters, digits, '_', '.', ':' or '-'")
    body = api.body(PublishDeviceKeys)
    return ok(await api.run(lambda uow: device_keys.publish_keys(uow, device_id, body)))


@api_route(
    bp,
    "POST",
    "users/{userId:guid}/devices/keys/claim",
    summary="Claim a user's devices' key bundles, each with a one-time prekey handed out once",
    response=ClaimedKeys,
    tag=TAG,
)
async def claim_device_keys(api: ApiRequest) -> func.HttpResponse:
    user_id = api.route_id("userId")
    return ok(await api.run(lambda uow: device_keys.claim_keys(uow, user_id)))
