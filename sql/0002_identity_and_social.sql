-- Users, profiles and the social graph.
--
-- Every user-owned row is soft-deleted (deleted_at); hot reads filter on
-- deleted_at IS NULL through partial indexes. Foreign keys never cascade.
-- Each row that events are emitted for carries a version that increases by one
-- with every change: projections apply an event only if its version is newer.

-- The application's database role. The app logs in as a member of it and is
-- subject to row-level security; migrations run as the owner.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'chorus_app') THEN
        CREATE ROLE chorus_app NOLOGIN NOINHERIT NOBYPASSRLS;
    END IF;
END
$$;

-- The acting user and role of the current transaction, set by the app with
-- set_config(..., true) (the parameterised form of SET LOCAL).
CREATE FUNCTION chorus_acting_user() RETURNS uuid
    LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('chorus.user_id', true), '')::uuid $$;
CREATE FUNCTION chorus_acting_subject() RETURNS text
    LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('chorus.subject', true), '') $$;
CREATE FUNCTION chorus_acting_role() RETURNS text
    LANGUAGE sql STABLE AS $$ SELECT coalesce(nullif(current_setting('chorus.role', true), ''), 'user') $$;

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    auth_subject  text NOT NULL CHECK (char_length(auth_subject) BETWEEN 1 AND 255),
    auth_provider text NOT NULL CHECK (auth_provider IN ('google', 'apple', 'github', 'email')),
    email         citext CHECK (email IS NULL OR char_length(email) <= 254),
    username      citext NOT NULL CHECK (username ~ '^[A-Za-z0-9_]{3,30}$'),
    version       bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz
);
-- A subject and a username belong to one live account; a deleted account frees both.
CREATE UNIQUE INDEX users_live_subject ON users (auth_subject) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX users_live_username ON users (username) WHERE deleted_at IS NULL;

CREATE TABLE profiles (
    user_id      uuid PRIMARY KEY REFERENCES users (id) ON DELETE RESTRICT,
    display_name text NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 50),
    bio          text NOT NULL DEFAULT '' CHECK (char_length(bio) <= 500),
    avatar_url   text CHECK (avatar_url IS NULL OR (char_length(avatar_url) <= 2048 AND avatar_url ~ '^https://')),
    visibility   text NOT NULL DEFAULT 'public' CHECK (visibility IN ('public', 'followers', 'private')),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz
);

-- Follower, following and post counts: one row per user, changed in the same
-- transaction as the fact it counts, versioned for the projections.
CREATE TABLE user_counts (
    user_id   uuid PRIMARY KEY REFERENCES users (id) ON DELETE RESTRICT,
    followers integer NOT NULL DEFAULT 0 CHECK (followers >= 0),
    following integer NOT NULL DEFAULT 0 CHECK (following >= 0),
    posts     integer NOT NULL DEFAULT 0 CHECK (posts >= 0),
    version   bigint NOT NULL DEFAULT 1 CHECK (version > 0)
);

CREATE TABLE follows (
    id          uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    follower_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    followee_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    version     bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,
    PRIMARY KEY (follower_id, followee_id),
    CONSTRAINT follows_not_self CHECK (follower_id <> followee_id)
);
-- Fan-out reads a followee's followers in pages; profile lists read both ways.
CREATE INDEX follows_live_by_followee ON follows (followee_id, created_at DESC, follower_id) WHERE deleted_at IS NULL;
CREATE INDEX follows_live_by_follower ON follows (follower_id, created_at DESC, followee_id) WHERE deleted_at IS NULL;

CREATE TABLE blocks (
    id         uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    blocker_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    blocked_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    version    bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    PRIMARY KEY (blocker_id, blocked_id),
    CONSTRAINT blocks_not_self CHECK (blocker_id <> blocked_id)
);
CREATE INDEX blocks_live_by_blocked ON blocks (blocked_id, blocker_id) WHERE deleted_at IS NULL;

CREATE TABLE mutes (
    id         uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    muter_id   uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    muted_id   uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    version    bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    PRIMARY KEY (muter_id, muted_id),
    CONSTRAINT mutes_not_self CHECK (muter_id <> muted_id)
);

-- Row-level security: anyone may read, only the acting user may change their
-- own account and profile; onboarding may create only the acting subject's
-- account. The relay and operators act as 'system'.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE profiles ENABLE ROW LEVEL SECURITY;

CREATE POLICY users_read ON users FOR SELECT USING (true);
CREATE POLICY users_onboard ON users FOR INSERT
    WITH CHECK (auth_subject = chorus_acting_subject() OR chorus_acting_role() = 'system');
CREATE POLICY users_change_own ON users FOR UPDATE
    USING (id = chorus_acting_user() OR chorus_acting_role() = 'system')
    WITH CHECK (id = chorus_acting_user() OR chorus_acting_role() = 'system');

CREATE POLICY profiles_read ON profiles FOR SELECT USING (true);
CREATE POLICY profiles_create_own ON profiles FOR INSERT
    WITH CHECK (user_id = chorus_acting_user() OR chorus_acting_role() = 'system');
CREATE POLICY profiles_change_own ON profiles FOR UPDATE
    USING (user_id = chorus_acting_user() OR chorus_acting_role() = 'system')
    WITH CHECK (user_id = chorus_acting_user() OR chorus_acting_role() = 'system');

GRANT SELECT, INSERT, UPDATE ON users, profiles, user_counts, follows, blocks, mutes TO chorus_app;
