-- Account erasure, usernames held back after it, and Idempotency-Keys scoped to the account.
--
-- Erasure runs as a chain of outbox events (docs/privacy.md): each handles one batch in its own
-- transaction and records the next. account_erasures is the job's progress: `version` is the version
-- of the chain's next event, so a batch whose event was handled already (a relay retry, a crash after
-- commit) finds a newer version and does nothing.
CREATE TABLE account_erasures (
    user_id      uuid PRIMARY KEY REFERENCES users (id) ON DELETE RESTRICT,
    step         text NOT NULL DEFAULT 'posts',
    version      bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    rows_erased  bigint NOT NULL DEFAULT 0 CHECK (rows_erased >= 0),
    -- The outbox scrub walks the outbox by id from here (one range per batch).
    outbox_after bigint NOT NULL DEFAULT 0,
    requested_at timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);
CREATE INDEX account_erasures_running ON account_erasures (requested_at) WHERE completed_at IS NULL;

-- A username freed by an erasure cannot be claimed until held_until. Only a hash of the lowercased
-- name is kept, so the hold names nobody.
CREATE TABLE username_holds (
    username_sha256 text PRIMARY KEY CHECK (username_sha256 ~ '^[0-9a-f]{64}$'),
    held_until      timestamptz NOT NULL
);
CREATE INDEX username_holds_expiry ON username_holds (held_until);

-- Idempotency-Keys belong to the account (a new account of the same token subject starts afresh);
-- before onboarding there is no account, so the scope is then the subject. user_id lets erasure
-- remove every stored response of the account, the onboarding one included.
ALTER TABLE idempotency_keys ADD COLUMN scope text, ADD COLUMN user_id uuid REFERENCES users (id) ON DELETE RESTRICT;
UPDATE idempotency_keys SET scope = 'subject:' || subject;
ALTER TABLE idempotency_keys ALTER COLUMN scope SET NOT NULL;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (scope, key);
CREATE INDEX idempotency_keys_by_user ON idempotency_keys (user_id) WHERE user_id IS NOT NULL;

GRANT SELECT, INSERT, UPDATE ON account_erasures TO chorus_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON username_holds TO chorus_app;  -- DELETE: expired holds

-- Writes that involve an account hold it live until they commit (UnitOfWork.lock_live_users), so an
-- erasure (FOR UPDATE) and such a write take turns. Locking a row needs its UPDATE policy, which lets a
-- user lock only their own users row; so this function takes the locks as the owner. It locks live
-- accounts among `ids` and returns their ids, nothing more.
CREATE FUNCTION chorus_lock_live_users(ids uuid[]) RETURNS SETOF uuid
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT id FROM users WHERE id = ANY(ids) AND deleted_at IS NULL ORDER BY id FOR KEY SHARE
$$;
REVOKE ALL ON FUNCTION chorus_lock_live_users(uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION chorus_lock_live_users(uuid[]) TO chorus_app;

-- An erasure's progress is the system's (the relay's erasure handler); the account asks for its own
-- erasure, once.
ALTER TABLE account_erasures ENABLE ROW LEVEL SECURITY;
CREATE POLICY account_erasures_request_own ON account_erasures FOR INSERT
    WITH CHECK (user_id = chorus_acting_user() OR chorus_acting_role() = 'system');
CREATE POLICY account_erasures_system ON account_erasures FOR ALL
    USING (chorus_acting_role() = 'system') WITH CHECK (chorus_acting_role() = 'system');

-- A username hold is read by every onboarding (before it has an account), set by an account's own
-- erasure, and deleted, once run out, by the system's expiry timer.
ALTER TABLE username_holds ENABLE ROW LEVEL SECURITY;
CREATE POLICY username_holds_read ON username_holds FOR SELECT USING (true);
CREATE POLICY username_holds_set ON username_holds FOR INSERT
    WITH CHECK (chorus_acting_user() IS NOT NULL OR chorus_acting_role() = 'system');
CREATE POLICY username_holds_extend ON username_holds FOR UPDATE
    USING (chorus_acting_user() IS NOT NULL OR chorus_acting_role() = 'system')
    WITH CHECK (chorus_acting_user() IS NOT NULL OR chorus_acting_role() = 'system');
CREATE POLICY username_holds_expire ON username_holds FOR DELETE USING (chorus_acting_role() = 'system');
