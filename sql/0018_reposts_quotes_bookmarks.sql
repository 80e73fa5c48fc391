-- Reposts, quotes and bookmarks (issue 15; docs/api.md "Reposts, quotes and bookmarks").

-- A quote is a post that embeds another: the quoted post's id, read with its current state (a
-- quote of a deleted, hidden or no longer visible post shows it as unavailable).
ALTER TABLE posts ADD COLUMN quote_post_id uuid REFERENCES posts (id) ON DELETE RESTRICT;

-- The repost count lives with the other counts of a post, under the same version, so every
-- counts snapshot an event carries is the whole row (the counters projection never counts).
ALTER TABLE post_counts ADD COLUMN reposts integer NOT NULL DEFAULT 0 CHECK (reposts >= 0);

-- One repost per user and post; undoing it soft-deletes the row, reposting again revives it (with
-- a new time: it shows as new in feeds). `version` counts every repost and undo of the pair.
CREATE TABLE reposts (
    id         uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    post_id    uuid NOT NULL REFERENCES posts (id) ON DELETE RESTRICT,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    version    bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    PRIMARY KEY (post_id, user_id)
);
-- An account's reposts (erasure); a post's live reposts are read by the primary key's prefix.
CREATE INDEX reposts_live_by_user ON reposts (user_id, created_at DESC) WHERE deleted_at IS NULL;

-- A user's saved posts, newest first (keyset on created_at, post_id); private to that user.
CREATE TABLE bookmarks (
    id         uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    post_id    uuid NOT NULL REFERENCES posts (id) ON DELETE RESTRICT,
    version    bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    PRIMARY KEY (user_id, post_id)
);
CREATE INDEX bookmarks_live_by_user ON bookmarks (user_id, created_at DESC, post_id DESC) WHERE deleted_at IS NULL;

-- reposts: public under their post (a repost is shown to the reposter's followers); only the
-- reposting account (or the system: erasure, the relay) changes its own.
ALTER TABLE reposts ENABLE ROW LEVEL SECURITY;
CREATE POLICY reposts_read ON reposts FOR SELECT USING (true);
CREATE POLICY reposts_create_own ON reposts FOR INSERT
    WITH CHECK (user_id = chorus_acting_user() OR chorus_is_system());
CREATE POLICY reposts_change_own ON reposts FOR UPDATE
    USING (user_id = chorus_acting_user() OR chorus_is_system())
    WITH CHECK (user_id = chorus_acting_user() OR chorus_is_system());

-- bookmarks: private to the account that saved them; the system erases an account's.
ALTER TABLE bookmarks ENABLE ROW LEVEL SECURITY;
CREATE POLICY bookmarks_own ON bookmarks FOR ALL
    USING (user_id = chorus_acting_user() OR chorus_is_system())
    WITH CHECK (user_id = chorus_acting_user() OR chorus_is_system());

GRANT SELECT, INSERT, UPDATE ON reposts TO chorus_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON bookmarks TO chorus_app;
