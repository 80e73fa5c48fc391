-- Direct messages (issue 16; docs/api.md "Conversations and messages"): conversations, their members,
-- messages (plain text, media, or one opaque ciphertext per recipient device), and the device key
-- directory end-to-end encrypting clients use.

CREATE TABLE conversations (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind             text NOT NULL CHECK (kind IN ('direct', 'group')),
    title            text CHECK (char_length(title) BETWEEN 1 AND 100),
    -- A 1:1 conversation's two people, smaller id first: the unique pair makes it one conversation.
    direct_low       uuid REFERENCES users (id) ON DELETE RESTRICT,
    direct_high      uuid REFERENCES users (id) ON DELETE RESTRICT,
    created_by       uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    -- The sequence number of the newest message: a send takes the next one under this row's lock, so
    -- messages of a conversation are totally ordered and unread counts are exact (seq > last read).
    last_seq         bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    version          bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT conversations_direct_pair CHECK (
        (kind = 'direct' AND direct_low IS NOT NULL AND direct_high IS NOT NULL AND direct_low < direct_high
         AND title IS NULL)
        OR (kind = 'group' AND direct_low IS NULL AND direct_high IS NULL)),
    CONSTRAINT conversations_one_per_pair UNIQUE (direct_low, direct_high)
);

-- One row per person ever in a conversation. `state`: active (in the inbox), requested (a message
-- from someone they do not follow, waiting to be accepted or declined), declined, left, removed.
-- A member sees the messages after `joined_seq` only; `last_read_seq` only grows (read receipts).
CREATE TABLE conversation_members (
    id              uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE RESTRICT,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    role            text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
    state           text NOT NULL DEFAULT 'active'
                    CHECK (state IN ('active', 'requested', 'declined', 'left', 'removed')),
    joined_seq      bigint NOT NULL DEFAULT 0 CHECK (joined_seq >= 0),
    last_read_seq   bigint NOT NULL DEFAULT 0 CHECK (last_read_seq >= 0),
    version         bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    joined_at       timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, user_id)
);
-- A user's inbox and requests (and erasure).
CREATE INDEX conversation_members_by_user ON conversation_members (user_id, state);

CREATE TABLE messages (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE RESTRICT,
    seq             bigint NOT NULL CHECK (seq > 0),
    sender_id       uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    -- NULL for an encrypted message (its ciphertexts are in message_ciphertexts), a media-only one, or
    -- once deleted for everyone.
    text            text CHECK (char_length(text) BETWEEN 1 AND 4000),
    encrypted       boolean NOT NULL DEFAULT false,
    reply_to_id     uuid REFERENCES messages (id) ON DELETE RESTRICT,
    version         bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Any change (sent, edited, deleted): what `since` syncs a device from.
    updated_at      timestamptz NOT NULL DEFAULT now(),
    edited_at       timestamptz,
    deleted_at      timestamptz,
    CONSTRAINT messages_in_order UNIQUE (conversation_id, seq)
);
CREATE INDEX messages_changed ON messages (conversation_id, updated_at, id);
CREATE INDEX messages_by_sender ON messages (sender_id, created_at);

-- An end-to-end encrypted message: one opaque ciphertext per recipient device, stored and handed
-- to that recipient as it came. The server never parses it.
CREATE TABLE message_ciphertexts (
    message_id   uuid NOT NULL REFERENCES messages (id) ON DELETE RESTRICT,
    recipient_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    device_id    text NOT NULL CHECK (char_length(device_id) BETWEEN 1 AND 64),
    ciphertext   text NOT NULL CHECK (char_length(ciphertext) BETWEEN 1 AND 65536),
    PRIMARY KEY (message_id, recipient_id, device_id)
);
CREATE INDEX message_ciphertexts_by_recipient ON message_ciphertexts (recipient_id);

-- Media a message carries (the upload flow of posts); an asset belongs to one post or one message.
CREATE TABLE message_media (
    message_id uuid NOT NULL REFERENCES messages (id) ON DELETE RESTRICT,
    media_id   uuid NOT NULL UNIQUE REFERENCES media_assets (id) ON DELETE RESTRICT,
    position   smallint NOT NULL CHECK (position BETWEEN 0 AND 9),
    PRIMARY KEY (message_id, position)
);

-- The device key directory: public keys only (identity key, signed prekey and its signature), as the
-- client encoded them; one-time prekeys are handed out once each, then gone.
CREATE TABLE device_keys (
    user_id                 uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    device_id               text NOT NULL CHECK (char_length(device_id) BETWEEN 1 AND 64),
    identity_key            text NOT NULL CHECK (char_length(identity_key) BETWEEN 1 AND 1024),
    signed_prekey_id        bigint NOT NULL CHECK (signed_prekey_id >= 0),
    signed_prekey           text NOT NULL CHECK (char_length(signed_prekey) BETWEEN 1 AND 1024),
    signed_prekey_signature text NOT NULL CHECK (char_length(signed_prekey_signature) BETWEEN 1 AND 1024),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, device_id)
);
CREATE TABLE one_time_prekeys (
    user_id    uuid NOT NULL,
    device_id  text NOT NULL,
    key_id     bigint NOT NULL CHECK (key_id >= 0),
    public_key text NOT NULL CHECK (char_length(public_key) BETWEEN 1 AND 1024),
    PRIMARY KEY (user_id, device_id, key_id),
    FOREIGN KEY (user_id, device_id) REFERENCES device_keys (user_id, device_id) ON DELETE CASCADE
);

-- Whether the acting user has ever been in a conversation (as the owner: a policy of
-- conversation_members cannot read conversation_members itself without recursing). The services
-- decide what each state may do; row-level security keeps everyone else out.
CREATE FUNCTION chorus_in_conversation(conversation uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM conversation_members
                   WHERE conversation_id = conversation AND user_id = chorus_acting_user())
$$;
REVOKE ALL ON FUNCTION chorus_in_conversation(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION chorus_in_conversation(uuid) TO chorus_app;

-- conversations: seen and changed by their members (its creator, while adding the first members).
ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
CREATE POLICY conversations_members_read ON conversations FOR SELECT
    USING (created_by = chorus_acting_user() OR chorus_in_conversation(id) OR chorus_is_system());
CREATE POLICY conversations_create_own ON conversations FOR INSERT
    WITH CHECK (created_by = chorus_acting_user() OR chorus_is_system());
CREATE POLICY conversations_members_change ON conversations FOR UPDATE
    USING (chorus_in_conversation(id) OR chorus_is_system())
    WITH CHECK (chorus_in_conversation(id) OR chorus_is_system());

-- conversation_members: the members of a conversation see each other; members add and change them
-- (the services check roles), the creator adds the first ones.
ALTER TABLE conversation_members ENABLE ROW LEVEL SECURITY;
CREATE POLICY conversation_members_read ON conversation_members FOR SELECT
    USING (user_id = chorus_acting_user() OR chorus_in_conversation(conversation_id) OR chorus_is_system());
CREATE POLICY conversation_members_add ON conversation_members FOR INSERT
    WITH CHECK (chorus_in_conversation(conversation_id) OR chorus_is_system()
                OR (user_id = chorus_acting_user() AND EXISTS (
                        SELECT 1 FROM conversations c
                        WHERE c.id = conversation_id AND c.created_by = chorus_acting_user())));
CREATE POLICY conversation_members_change ON conversation_members FOR UPDATE
    USING (chorus_in_conversation(conversation_id) OR chorus_is_system())
    WITH CHECK (chorus_in_conversation(conversation_id) OR chorus_is_system());

-- messages: read by the conversation's members; written, edited and deleted by their sender.
ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
CREATE POLICY messages_members_read ON messages FOR SELECT
    USING (chorus_in_conversation(conversation_id) OR chorus_is_system());
CREATE POLICY messages_send_own ON messages FOR INSERT
    WITH CHECK ((sender_id = chorus_acting_user() AND chorus_in_conversation(conversation_id))
                OR chorus_is_system());
CREATE POLICY messages_change_own ON messages FOR UPDATE
    USING (sender_id = chorus_acting_user() OR chorus_is_system())
    WITH CHECK (sender_id = chorus_acting_user() OR chorus_is_system());

-- message_ciphertexts: each read by its recipient only; written and deleted with the sender's message.
ALTER TABLE message_ciphertexts ENABLE ROW LEVEL SECURITY;
CREATE POLICY message_ciphertexts_recipient_read ON message_ciphertexts FOR SELECT
    USING (recipient_id = chorus_acting_user() OR chorus_is_system());
CREATE POLICY message_ciphertexts_sender_write ON message_ciphertexts FOR INSERT
    WITH CHECK (EXISTS (SELECT 1 FROM messages m WHERE m.id = message_id AND m.sender_id = chorus_acting_user())
                OR chorus_is_system());
CREATE POLICY message_ciphertexts_sender_delete ON message_ciphertexts FOR DELETE
    USING (EXISTS (SELECT 1 FROM messages m WHERE m.id = message_id AND m.sender_id = chorus_acting_user())
           OR chorus_is_system());

-- message_media: read with the message; attached by its sender.
ALTER TABLE message_media ENABLE ROW LEVEL SECURITY;
CREATE POLICY message_media_members_read ON message_media FOR SELECT
    USING (EXISTS (SELECT 1 FROM messages m WHERE m.id = message_id) OR chorus_is_system());
CREATE POLICY message_media_sender_attach ON message_media FOR INSERT
    WITH CHECK (EXISTS (SELECT 1 FROM messages m WHERE m.id = message_id AND m.sender_id = chorus_acting_user())
                OR chorus_is_system());
CREATE POLICY message_media_erase ON message_media FOR DELETE
    USING (EXISTS (SELECT 1 FROM messages m WHERE m.id = message_id AND m.sender_id = chorus_acting_user())
           OR chorus_is_system());

-- A message's media are read by whoever may read the message (message_media's policy says who).
CREATE POLICY media_assets_read_in_message ON media_assets FOR SELECT
    USING (EXISTS (SELECT 1 FROM message_media mm WHERE mm.media_id = media_assets.id));

-- The key directory is public (anyone who may message a user fetches their devices' public keys);
-- each user publishes their own devices' keys; claiming a one-time prekey deletes it, by anyone.
ALTER TABLE device_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY device_keys_read ON device_keys FOR SELECT USING (true);
CREATE POLICY device_keys_own ON device_keys FOR ALL
    USING (user_id = chorus_acting_user() OR chorus_is_system())
    WITH CHECK (user_id = chorus_acting_user() OR chorus_is_system());
ALTER TABLE one_time_prekeys ENABLE ROW LEVEL SECURITY;
CREATE POLICY one_time_prekeys_read ON one_time_prekeys FOR SELECT USING (chorus_is_acting());
CREATE POLICY one_time_prekeys_publish_own ON one_time_prekeys FOR INSERT
    WITH CHECK (user_id = chorus_acting_user() OR chorus_is_system());
-- A claim locks the key it takes (FOR UPDATE SKIP LOCKED, so concurrent claims take different ones):
-- locking needs the UPDATE policy; nobody changes a key.
CREATE POLICY one_time_prekeys_lock ON one_time_prekeys FOR UPDATE USING (chorus_is_acting()) WITH CHECK (false);
CREATE POLICY one_time_prekeys_claim ON one_time_prekeys FOR DELETE USING (chorus_is_acting());

GRANT SELECT, INSERT, UPDATE ON conversations, conversation_members, messages TO chorus_app;
GRANT SELECT, INSERT, DELETE ON message_ciphertexts, message_media TO chorus_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON one_time_prekeys TO chorus_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON device_keys TO chorus_app;
