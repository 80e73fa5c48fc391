-- Flags, moderator decisions, appeals and the moderators' mirror of every post.

CREATE TABLE moderation_flags (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    post_id     uuid NOT NULL REFERENCES posts (id) ON DELETE RESTRICT,
    reporter_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    reason      text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 500),
    severity    text NOT NULL DEFAULT 'low' CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    -- One open report per reporter per post.
    CONSTRAINT moderation_flags_once UNIQUE (post_id, reporter_id)
);
CREATE INDEX moderation_flags_open ON moderation_flags (created_at, post_id) WHERE status = 'open';

CREATE TABLE moderation_actions (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    post_id      uuid NOT NULL REFERENCES posts (id) ON DELETE RESTRICT,
    moderator_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    action       text NOT NULL CHECK (action IN ('hide', 'remove', 'restore', 'appeal_upheld', 'appeal_overturned')),
    reason       text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 1000),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX moderation_actions_by_post ON moderation_actions (post_id, created_at);

CREATE TABLE appeals (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    post_id         uuid NOT NULL REFERENCES posts (id) ON DELETE RESTRICT,
    author_id       uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    statement       text NOT NULL CHECK (char_length(statement) BETWEEN 1 AND 2000),
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    decided_by      uuid REFERENCES users (id) ON DELETE RESTRICT,
    decision_reason text CHECK (decision_reason IS NULL OR char_length(decision_reason) <= 1000),
    created_at      timestamptz NOT NULL DEFAULT now(),
    decided_at      timestamptz,
    CONSTRAINT appeals_decided CHECK ((status = 'pending') = (decided_at IS NULL))
);
-- One pending appeal per post.
CREATE UNIQUE INDEX appeals_one_pending ON appeals (post_id) WHERE status = 'pending';

-- What moderators see of every post: kept current by the outbox relay.
CREATE TABLE posts_admin_mirror (
    post_id     uuid PRIMARY KEY REFERENCES posts (id) ON DELETE RESTRICT,
    author_id   uuid NOT NULL,
    content     text NOT NULL,
    status      text NOT NULL,
    open_flags  integer NOT NULL DEFAULT 0 CHECK (open_flags >= 0),
    last_action text,
    deleted     boolean NOT NULL DEFAULT false,
    version     bigint NOT NULL CHECK (version > 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE posts_admin_mirror ENABLE ROW LEVEL SECURITY;
CREATE POLICY posts_admin_mirror_staff ON posts_admin_mirror FOR ALL
    USING (chorus_acting_role() IN ('moderator', 'admin', 'system'))
    WITH CHECK (chorus_acting_role() = 'system');

GRANT SELECT, INSERT, UPDATE ON moderation_flags, moderation_actions, appeals, posts_admin_mirror TO chorus_app;
