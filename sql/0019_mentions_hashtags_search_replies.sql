-- Mentions and hashtags, search, comment replies (docs/api.md "Discovery", docs/read-costs.md).

-- unaccent: user search compares names without accents (Azure allow-lists it next to citext,
-- infra/app/postgres.bicep).
CREATE EXTENSION IF NOT EXISTS unaccent;

-- The form user search compares: trimmed, accents removed, lower case by Unicode's rules (the
-- builtin pg_c_utf8 collation, whatever the database's locale). unaccent() is only STABLE (its
-- dictionary could change); naming the dictionary makes the result depend on the argument alone,
-- so it may back a generated column and an index.
CREATE FUNCTION chorus_search_key(value text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN lower(public.unaccent('public.unaccent'::regdictionary, btrim(value)) COLLATE pg_c_utf8);

-- Prefix search on usernames and display names: in the "C" collation a btree orders by code point,
-- so a prefix is one range scan (key >= q AND key < q's successor) that also yields the order.
ALTER TABLE users ADD COLUMN search_key text COLLATE "C"
    GENERATED ALWAYS AS (chorus_search_key(username::text)) STORED;
CREATE INDEX users_live_by_search_key ON users (search_key, id) WHERE deleted_at IS NULL;
ALTER TABLE profiles ADD COLUMN search_key text COLLATE "C"
    GENERATED ALWAYS AS (chorus_search_key(display_name)) STORED;
CREATE INDEX profiles_by_search_key ON profiles (search_key, user_id);

-- Full-text search on posts. The configuration is a setting (SEARCH_TEXT_CONFIG): each post keeps
-- the one it was written (or last edited) under, so the vector matches the queries of that setting;
-- after changing the setting, existing posts are re-indexed by updating this column (docs/api.md).
ALTER TABLE posts ADD COLUMN search_config regconfig NOT NULL DEFAULT 'simple';
ALTER TABLE posts ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector(search_config, content)) STORED;
CREATE INDEX posts_search_vector ON posts USING gin (search_vector) WHERE deleted_at IS NULL;

-- Who a post's or a comment's text mentions (resolved to live accounts when written). Rows go with
-- the text: an edit rewrites them, a deletion removes them, an erasure removes both sides.
CREATE TABLE mentions (
    source_id         uuid NOT NULL,
    source_kind       text NOT NULL CHECK (source_kind IN ('post', 'comment')),
    post_id           uuid NOT NULL REFERENCES posts (id) ON DELETE RESTRICT,
    author_id         uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    mentioned_user_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, mentioned_user_id)
);
CREATE INDEX mentions_by_author ON mentions (author_id);
CREATE INDEX mentions_of_user ON mentions (mentioned_user_id);
CREATE INDEX mentions_by_post ON mentions (post_id);

-- Which canonical tags a post's or a comment's text uses. used_at is when the text first used the
-- tag: its trending hour. post_created_at orders a tag's posts (GET /api/hashtags/{tag}/posts).
CREATE TABLE hashtag_uses (
    source_id       uuid NOT NULL,
    source_kind     text NOT NULL CHECK (source_kind IN ('post', 'comment')),
    post_id         uuid NOT NULL REFERENCES posts (id) ON DELETE RESTRICT,
    author_id       uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    tag             text COLLATE "C" NOT NULL CHECK (char_length(tag) BETWEEN 1 AND 64),
    used_at         timestamptz NOT NULL DEFAULT now(),
    post_created_at timestamptz NOT NULL,
    PRIMARY KEY (source_id, tag)
);
CREATE INDEX hashtag_uses_posts_by_tag ON hashtag_uses (tag, post_created_at DESC, post_id DESC)
    WHERE source_kind = 'post';
CREATE INDEX hashtag_uses_by_author ON hashtag_uses (author_id);
CREATE INDEX hashtag_uses_by_post ON hashtag_uses (post_id);

-- Trending: uses per tag per UTC hour, kept by the trigger below in the transaction that adds or
-- removes a use, so at every commit each bucket equals the live uses of that tag in that hour (no
-- read ever scans posts). A bucket that falls to zero is deleted: no tag outlives its last use here.
CREATE TABLE hashtag_hourly_uses (
    hour timestamptz NOT NULL,
    tag  text COLLATE "C" NOT NULL,
    uses integer NOT NULL CHECK (uses > 0),
    PRIMARY KEY (hour, tag)
);

CREATE FUNCTION chorus_count_hashtag_use() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO hashtag_hourly_uses (hour, tag, uses)
        VALUES (date_trunc('hour', NEW.used_at, 'UTC'), NEW.tag, 1)
        ON CONFLICT (hour, tag) DO UPDATE SET uses = hashtag_hourly_uses.uses + 1;
        RETURN NEW;
    END IF;
    DELETE FROM hashtag_hourly_uses
        WHERE hour = date_trunc('hour', OLD.used_at, 'UTC') AND tag = OLD.tag AND uses = 1;
    IF NOT FOUND THEN
        UPDATE hashtag_hourly_uses SET uses = uses - 1
            WHERE hour = date_trunc('hour', OLD.used_at, 'UTC') AND tag = OLD.tag;
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER hashtag_uses_counted AFTER INSERT OR DELETE ON hashtag_uses
    FOR EACH ROW EXECUTE FUNCTION chorus_count_hashtag_use();

-- Replies: a comment's live direct replies, counted in the transaction that adds or removes one
-- (as post_counts counts comments). A row exists once a comment has had a reply.
CREATE TABLE comment_reply_counts (
    comment_id uuid PRIMARY KEY REFERENCES comments (id) ON DELETE RESTRICT,
    replies    integer NOT NULL DEFAULT 0 CHECK (replies >= 0)
);
CREATE INDEX comments_live_replies ON comments (parent_id, created_at, id)
    WHERE deleted_at IS NULL AND parent_id IS NOT NULL;

-- Row-level security (sql/0012's pattern, docs/security.md): mentions and tags are as public as
-- the text they come from (each read applies the post's own visibility); only the text's author
-- writes them, and staff or the system (moderation, deletion, erasure) remove them.
ALTER TABLE mentions ENABLE ROW LEVEL SECURITY;
CREATE POLICY mentions_read ON mentions FOR SELECT USING (true);
CREATE POLICY mentions_write_own ON mentions FOR INSERT
    WITH CHECK (author_id = chorus_acting_user() OR chorus_is_system());
CREATE POLICY mentions_remove ON mentions FOR DELETE
    USING (author_id = chorus_acting_user() OR chorus_is_staff()
           OR EXISTS (SELECT 1 FROM posts p WHERE p.id = post_id AND p.author_id = chorus_acting_user()));

ALTER TABLE hashtag_uses ENABLE ROW LEVEL SECURITY;
CREATE POLICY hashtag_uses_read ON hashtag_uses FOR SELECT USING (true);
-- Staff: a post a moderator restores uses its tags again (services/moderation.py).
CREATE POLICY hashtag_uses_write_own ON hashtag_uses FOR INSERT
    WITH CHECK (author_id = chorus_acting_user() OR chorus_is_staff());
CREATE POLICY hashtag_uses_remove ON hashtag_uses FOR DELETE
    USING (author_id = chorus_acting_user() OR chorus_is_staff()
           OR EXISTS (SELECT 1 FROM posts p WHERE p.id = post_id AND p.author_id = chorus_acting_user()));

-- Public numbers, moved by whoever's write moves them (as post_counts).
ALTER TABLE hashtag_hourly_uses ENABLE ROW LEVEL SECURITY;
CREATE POLICY hashtag_hourly_uses_read ON hashtag_hourly_uses FOR SELECT USING (true);
CREATE POLICY hashtag_hourly_uses_count ON hashtag_hourly_uses FOR ALL
    USING (chorus_is_acting() OR chorus_is_staff()) WITH CHECK (chorus_is_acting() OR chorus_is_staff());

ALTER TABLE comment_reply_counts ENABLE ROW LEVEL SECURITY;
CREATE POLICY comment_reply_counts_read ON comment_reply_counts FOR SELECT USING (true);
CREATE POLICY comment_reply_counts_create ON comment_reply_counts FOR INSERT WITH CHECK (chorus_is_acting());
CREATE POLICY comment_reply_counts_change ON comment_reply_counts FOR UPDATE
    USING (chorus_is_acting()) WITH CHECK (chorus_is_acting());

GRANT SELECT, INSERT, DELETE ON mentions, hashtag_uses TO chorus_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON hashtag_hourly_uses TO chorus_app;
GRANT SELECT, INSERT, UPDATE ON comment_reply_counts TO chorus_app;
