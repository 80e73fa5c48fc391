-- Posts, media, comments, reactions and their counts.

CREATE TABLE media_assets (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id     uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    content_type text NOT NULL CHECK (char_length(content_type) BETWEEN 3 AND 100),
    size_bytes   bigint NOT NULL CHECK (size_bytes > 0),
    blob_path    text NOT NULL UNIQUE,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    ready_at     timestamptz,
    deleted_at   timestamptz,
    CONSTRAINT media_ready_has_time CHECK ((status = 'ready') = (ready_at IS NOT NULL))
);
CREATE INDEX media_assets_pending_age ON media_assets (created_at) WHERE status = 'pending' AND deleted_at IS NULL;

CREATE TABLE posts (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    author_id  uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    content    text NOT NULL CHECK (char_length(content) BETWEEN 1 AND 2000),
    -- Moderation state: hidden and removed posts leave every feed.
    status     text NOT NULL DEFAULT 'visible' CHECK (status IN ('visible', 'hidden', 'removed')),
    version    bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    edited_at  timestamptz,
    deleted_at timestamptz
);
-- An author's posts, newest first (keyset pagination on created_at, id); fan-out back-fill.
CREATE INDEX posts_live_by_author ON posts (author_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE post_media (
    post_id  uuid NOT NULL REFERENCES posts (id) ON DELETE RESTRICT,
    media_id uuid NOT NULL UNIQUE REFERENCES media_assets (id) ON DELETE RESTRICT,
    position smallint NOT NULL CHECK (position BETWEEN 0 AND 9),
    PRIMARY KEY (post_id, position)
);

-- Reaction and comment counts of a post: the single source of truth, changed in
-- the same transaction as the reaction or comment, versioned for the counters
-- projection. `reactions` maps a reaction type to its count.
CREATE TABLE post_counts (
    post_id   uuid PRIMARY KEY REFERENCES posts (id) ON DELETE RESTRICT,
    reactions jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(reactions) = 'object'),
    comments  integer NOT NULL DEFAULT 0 CHECK (comments >= 0),
    version   bigint NOT NULL DEFAULT 1 CHECK (version > 0)
);

CREATE TABLE comments (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    post_id    uuid NOT NULL REFERENCES posts (id) ON DELETE RESTRICT,
    author_id  uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    parent_id  uuid REFERENCES comments (id) ON DELETE RESTRICT,
    content    text NOT NULL CHECK (char_length(content) BETWEEN 1 AND 1000),
    version    bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    CONSTRAINT comments_not_own_parent CHECK (parent_id IS NULL OR parent_id <> id)
);
-- A post's comments, oldest first.
CREATE INDEX comments_live_by_post ON comments (post_id, created_at, id) WHERE deleted_at IS NULL;

CREATE TABLE reactions (
    id         uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    post_id    uuid NOT NULL REFERENCES posts (id) ON DELETE RESTRICT,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    type       text NOT NULL CHECK (type IN ('like', 'love', 'laugh', 'wow', 'sad', 'angry')),
    version    bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    -- One reaction per user per post; removing it soft-deletes the row.
    PRIMARY KEY (post_id, user_id)
);
CREATE INDEX reactions_live_by_post_type ON reactions (post_id, type, created_at DESC) WHERE deleted_at IS NULL;

GRANT SELECT, INSERT, UPDATE ON media_assets, posts, post_media, post_counts, comments, reactions TO chorus_app;
