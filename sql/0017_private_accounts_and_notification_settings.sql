-- Private accounts: follow requests, and who may create a follow on approval; per-user
-- notification settings (docs/privacy.md "Private accounts", docs/api.md).
--
-- profiles.visibility has existed since 0002 ('public', 'followers', 'private'); the API sets only
-- 'public' and 'private' (the rule in shared_code/domain/privacy.py counts anything but 'public' as
-- private).

-- A request to follow a private account: one row per (requester, target) pair, kept and revived like
-- a follow, so its id and version carry on. Pending while resolved_at is NULL; `resolution` says how
-- it ended. The follow itself is a `follows` row, created when the target approves.
CREATE TABLE follow_requests (
    id           uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    requester_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    target_id    uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    version      bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    resolution   text CHECK (resolution IN ('approved', 'declined', 'cancelled')),
    PRIMARY KEY (requester_id, target_id),
    CONSTRAINT follow_requests_not_self CHECK (requester_id <> target_id),
    CONSTRAINT follow_requests_resolved CHECK ((resolved_at IS NULL) = (resolution IS NULL))
);
-- The target's pending requests, newest first (GET /users/me/follow-requests, and turning public).
CREATE INDEX follow_requests_pending_by_target ON follow_requests (target_id, created_at DESC, requester_id)
    WHERE resolved_at IS NULL;

-- Only the two parties see a request; the requester makes (and cancels) it, the target approves
-- or declines it.
ALTER TABLE follow_requests ENABLE ROW LEVEL SECURITY;
CREATE POLICY follow_requests_parties_read ON follow_requests FOR SELECT
    USING (requester_id = chorus_acting_user() OR target_id = chorus_acting_user() OR chorus_is_system());
CREATE POLICY follow_requests_create_own ON follow_requests FOR INSERT
    WITH CHECK (requester_id = chorus_acting_user() OR chorus_is_system());
CREATE POLICY follow_requests_change_either_party ON follow_requests FOR UPDATE
    USING (requester_id = chorus_acting_user() OR target_id = chorus_acting_user() OR chorus_is_system())
    WITH CHECK (requester_id = chorus_acting_user() OR target_id = chorus_acting_user() OR chorus_is_system());
CREATE POLICY follow_requests_erase ON follow_requests FOR DELETE USING (chorus_is_system());
GRANT SELECT, INSERT, UPDATE, DELETE ON follow_requests TO chorus_app;

-- Approving creates the follow as the target (the followee), not as the follower: allowed only for
-- a request still pending from that follower to the acting user.
CREATE POLICY follows_create_approved ON follows FOR INSERT
    WITH CHECK (followee_id = chorus_acting_user()
                AND EXISTS (SELECT 1 FROM follow_requests r
                            WHERE r.requester_id = follows.follower_id AND r.target_id = follows.followee_id
                              AND r.resolved_at IS NULL));

-- Which notification types a user turned off (every type is on until turned off, so a new type
-- starts on). Read where notifications are written: a turned-off type is not written at all.
CREATE TABLE notification_settings (
    user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE RESTRICT,
    turned_off text[] NOT NULL DEFAULT '{}' CHECK (cardinality(turned_off) <= 50),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Private to the user; the system (the relay and the change feed, which write notifications) reads
-- every row, and erases an account's.
ALTER TABLE notification_settings ENABLE ROW LEVEL SECURITY;
CREATE POLICY notification_settings_own ON notification_settings FOR ALL
    USING (user_id = chorus_acting_user() OR chorus_is_system())
    WITH CHECK (user_id = chorus_acting_user() OR chorus_is_system());
GRANT SELECT, INSERT, UPDATE, DELETE ON notification_settings TO chorus_app;
