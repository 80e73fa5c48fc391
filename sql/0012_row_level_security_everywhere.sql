-- Row-level security on every table with user data (users, profiles and the
-- moderators' mirror have had it since 0002/0004).
--
-- Who acts is what unit_of_work tells the database at the start of each
-- transaction: chorus.user_id (the caller's account), chorus.subject (the
-- token's subject) and chorus.role ('user', 'moderator' or 'admin', from the
-- token). The relay, its handlers, the change-feed functions, timers, health
-- and the operators' runbook work across users: they act as 'system'
-- (shared_code.db.unit_of_work.system_connection); no token can claim it.
--
-- Not FORCE ROW LEVEL SECURITY: the owner is the migrations' login, never the
-- app's. The app refuses to start if its login owns the tables, is a superuser
-- or has BYPASSRLS (shared_code/db/boundary.py), so every statement the app
-- sends is subject to these policies; FORCE would only put the policies on
-- migrations and operators' owner sessions, which must see everything.
--
-- Every policy is documented in docs/security.md ("The database boundary").

CREATE FUNCTION chorus_is_system() RETURNS boolean
    LANGUAGE sql STABLE AS $$ SELECT chorus_acting_role() = 'system' $$;
CREATE FUNCTION chorus_is_staff() RETURNS boolean
    LANGUAGE sql STABLE AS $$ SELECT chorus_acting_role() IN ('moderator', 'admin', 'system') $$;
-- A transaction that acts for an onboarded account, or for the system: writes
-- need one (a transaction that has said nobody acts changes nothing).
CREATE FUNCTION chorus_is_acting() RETURNS boolean
    LANGUAGE sql STABLE AS $$ SELECT chorus_acting_user() IS NOT NULL OR chorus_is_system() $$;

-- user_counts: public numbers. Any acting account may change them, because a
-- use case changes the other party's counters (a follow bumps the followee's).
ALTER TABLE user_counts ENABLE ROW LEVEL SECURITY;
CREATE POLICY user_counts_read ON user_counts FOR SELECT USING (true);
CREATE POLICY user_counts_create ON user_counts FOR INSERT WITH CHECK (chorus_is_acting());
CREATE POLICY user_counts_change ON user_counts FOR UPDATE USING (chorus_is_acting()) WITH CHECK (chorus_is_acting());

-- Public tables below let any acting account lock a row (SELECT ... FOR UPDATE
-- needs the UPDATE policy's USING: use cases lock a row, then decide whether
-- the caller may change it, and answer 403); the WITH CHECK clause is what
-- refuses a change to someone else's row, with an error rather than silence.

-- follows: the social graph is public (follower and following lists). Only the
-- follower creates a follow; either party may end it (a block ends both ways).
ALTER TABLE follows ENABLE ROW LEVEL SECURITY;
CREATE POLICY follows_read ON follows FOR SELECT USING (true);
CREATE POLICY follows_create_own ON follows FOR INSERT
    WITH CHECK (follower_id = chorus_acting_user() OR chorus_is_system());
CREATE POLICY follows_change_either_party ON follows FOR UPDATE
    USING (chorus_is_acting())
    WITH CHECK (follower_id = chorus_acting_user() OR followee_id = chorus_acting_user() OR chorus_is_system());

-- blocks: private. Only the two parties see a block (each side's use cases
-- must know of it, both ways); only the blocker makes or lifts it.
ALTER TABLE blocks ENABLE ROW LEVEL SECURITY;
CREATE POLICY blocks_parties_read ON blocks FOR SELECT
    USING (blocker_id = chorus_acting_user() OR blocked_id = chorus_acting_user() OR chorus_is_system());
CREATE POLICY blocks_create_own ON blocks FOR INSERT
    WITH CHECK (blocker_id = chorus_acting_user() OR chorus_is_system());
CREATE POLICY blocks_change_own ON blocks FOR UPDATE
    USING (blocker_id = chorus_acting_user() OR blocked_id = chorus_acting_user() OR chorus_is_system())
    WITH CHECK (blocker_id = chorus_acting_user() OR chorus_is_system());

-- mutes: private to the muter (the muted account never learns of it).
ALTER TABLE mutes ENABLE ROW LEVEL SECURITY;
CREATE POLICY mutes_own ON mutes FOR ALL
    USING (muter_id = chorus_acting_user() OR chorus_is_system())
    WITH CHECK (muter_id = chorus_acting_user() OR chorus_is_system());

-- media_assets: an upload is its owner's until a post uses it; then whoever can
-- read the post may read its media row. Staff act on posts' media (moderation).
ALTER TABLE media_assets ENABLE ROW LEVEL SECURITY;
CREATE POLICY media_assets_read ON media_assets FOR SELECT
    USING (owner_id = chorus_acting_user() OR chorus_is_staff()
           OR EXISTS (SELECT 1 FROM post_media pm WHERE pm.media_id = media_assets.id));
CREATE POLICY media_assets_create_own ON media_assets FOR INSERT
    WITH CHECK (owner_id = chorus_acting_user() OR chorus_is_system());
CREATE POLICY media_assets_change ON media_assets FOR UPDATE
    USING (owner_id = chorus_acting_user() OR chorus_is_staff()
           OR EXISTS (SELECT 1 FROM post_media pm WHERE pm.media_id = media_assets.id))
    WITH CHECK (owner_id = chorus_acting_user() OR chorus_is_staff());

-- posts: readable rows (whether a hidden or deleted post shows is the service's
-- answer: 404 to all but its author and moderators); written by their author,
-- by moderators (status) and by the system.
ALTER TABLE posts ENABLE ROW LEVEL SECURITY;
CREATE POLICY posts_read ON posts FOR SELECT USING (true);
CREATE POLICY posts_create_own ON posts FOR INSERT
    WITH CHECK (author_id = chorus_acting_user() OR chorus_is_system());
CREATE POLICY posts_change ON posts FOR UPDATE
    USING (chorus_is_acting() OR chorus_is_staff())
    WITH CHECK (author_id = chorus_acting_user() OR chorus_is_staff());

-- post_media: which media a post shows; attached only by the post's author.
ALTER TABLE post_media ENABLE ROW LEVEL SECURITY;
CREATE POLICY post_media_read ON post_media FOR SELECT USING (true);
CREATE POLICY post_media_attach_own ON post_media FOR INSERT
    WITH CHECK (chorus_is_system()
                OR EXISTS (SELECT 1 FROM posts p WHERE p.id = post_id AND p.author_id = chorus_acting_user()));
CREATE POLICY post_media_change ON post_media FOR UPDATE USING (chorus_is_system()) WITH CHECK (chorus_is_system());

-- post_counts: public numbers, changed by whoever reacts or comments.
ALTER TABLE post_counts ENABLE ROW LEVEL SECURITY;
CREATE POLICY post_counts_read ON post_counts FOR SELECT USING (true);
CREATE POLICY post_counts_create ON post_counts FOR INSERT WITH CHECK (chorus_is_acting());
CREATE POLICY post_counts_change ON post_counts FOR UPDATE USING (chorus_is_acting()) WITH CHECK (chorus_is_acting());

-- comments: public under their post; written by their author; the post's author
-- and staff may delete one.
ALTER TABLE comments ENABLE ROW LEVEL SECURITY;
CREATE POLICY comments_read ON comments FOR SELECT USING (true);
CREATE POLICY comments_create_own ON comments FOR INSERT
    WITH CHECK (author_id = chorus_acting_user() OR chorus_is_system());
CREATE POLICY comments_change ON comments FOR UPDATE
    USING (chorus_is_acting() OR chorus_is_staff())
    WITH CHECK (author_id = chorus_acting_user() OR chorus_is_staff()
                OR EXISTS (SELECT 1 FROM posts p WHERE p.id = post_id AND p.author_id = chorus_acting_user()));

-- reactions: public under their post; only the reacting account changes its own.
ALTER TABLE reactions ENABLE ROW LEVEL SECURITY;
CREATE POLICY reactions_read ON reactions FOR SELECT USING (true);
CREATE POLICY reactions_create_own ON reactions FOR INSERT
    WITH CHECK (user_id = chorus_acting_user() OR chorus_is_system());
CREATE POLICY reactions_change_own ON reactions FOR UPDATE
    USING (chorus_is_acting())
    WITH CHECK (user_id = chorus_acting_user() OR chorus_is_system());

-- moderation_flags: private to the reporter and to staff (a flagged author does
-- not learn who flagged them); resolved by staff.
ALTER TABLE moderation_flags ENABLE ROW LEVEL SECURITY;
CREATE POLICY moderation_flags_read ON moderation_flags FOR SELECT
    USING (reporter_id = chorus_acting_user() OR chorus_is_staff());
CREATE POLICY moderation_flags_create_own ON moderation_flags FOR INSERT
    WITH CHECK (reporter_id = chorus_acting_user() OR chorus_is_system());
CREATE POLICY moderation_flags_resolve ON moderation_flags FOR UPDATE
    USING (chorus_is_staff()) WITH CHECK (chorus_is_staff());

-- moderation_actions: staff's record; the post's author may read the decisions
-- on their own post (what an appeal answers).
ALTER TABLE moderation_actions ENABLE ROW LEVEL SECURITY;
CREATE POLICY moderation_actions_read ON moderation_actions FOR SELECT
    USING (chorus_is_staff()
           OR EXISTS (SELECT 1 FROM posts p WHERE p.id = post_id AND p.author_id = chorus_acting_user()));
CREATE POLICY moderation_actions_record ON moderation_actions FOR INSERT WITH CHECK (chorus_is_staff());
CREATE POLICY moderation_actions_change ON moderation_actions FOR UPDATE
    USING (chorus_is_system()) WITH CHECK (chorus_is_system());

-- appeals: the appealing author's and staff's; decided by staff.
ALTER TABLE appeals ENABLE ROW LEVEL SECURITY;
CREATE POLICY appeals_read ON appeals FOR SELECT USING (author_id = chorus_acting_user() OR chorus_is_staff());
CREATE POLICY appeals_create_own ON appeals FOR INSERT
    WITH CHECK (author_id = chorus_acting_user() OR chorus_is_system());
CREATE POLICY appeals_decide ON appeals FOR UPDATE USING (chorus_is_staff()) WITH CHECK (chorus_is_staff());

-- outbox: every use case appends events (the account is not onboarded yet while
-- onboarding starts, so the token's subject is enough); their payloads carry
-- private facts (blocks, mutes), so only the system reads, claims or deletes.
ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
CREATE POLICY outbox_append ON outbox FOR INSERT
    WITH CHECK (chorus_acting_subject() IS NOT NULL OR chorus_is_system());
CREATE POLICY outbox_system ON outbox FOR ALL USING (chorus_is_system()) WITH CHECK (chorus_is_system());

-- idempotency_keys: a stored response is its caller's (the token's subject);
-- the system expires old ones.
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY idempotency_keys_own ON idempotency_keys FOR ALL
    USING (subject = chorus_acting_subject() OR chorus_is_system())
    WITH CHECK (subject = chorus_acting_subject() OR chorus_is_system());

-- change_feed_failures: documents of many users, for operators to replay.
ALTER TABLE change_feed_failures ENABLE ROW LEVEL SECURITY;
CREATE POLICY change_feed_failures_system ON change_feed_failures FOR ALL
    USING (chorus_is_system()) WITH CHECK (chorus_is_system());
