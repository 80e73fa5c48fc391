-- Hybrid fan-out (docs/architecture.md "Home feeds at any audience size"): an author with more
-- followers than FANOUT_MAX_FOLLOWERS is not fanned out; followers' feed reads pull the author's
-- posts from the authorPosts container instead. This row says which of an author's post times may
-- not have been fanned out, so a feed read knows whom to pull and for which span: posts created
-- from pulled_since on while pulling, else those in [pulled_since, pulled_last]. The fan-out (the
-- system) widens the window before it skips a post, and narrows nothing: a window too wide only
-- pulls posts that are also in feeds (shown once), never leaves one out.
CREATE TABLE fanout_pull_windows (
    author_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE RESTRICT,
    pulled_since timestamptz NOT NULL,
    pulled_last  timestamptz NOT NULL,
    pulling      boolean NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT fanout_pull_windows_ordered CHECK (pulled_since <= pulled_last)
);

-- Whose posts are pulled is as public as their follower count (a feed read joins the caller's
-- follows with it); only the system's fan-out and erasure change it.
ALTER TABLE fanout_pull_windows ENABLE ROW LEVEL SECURITY;
CREATE POLICY fanout_pull_windows_read ON fanout_pull_windows FOR SELECT USING (true);
CREATE POLICY fanout_pull_windows_system ON fanout_pull_windows FOR ALL
    USING (chorus_is_system()) WITH CHECK (chorus_is_system());

GRANT SELECT, INSERT, UPDATE, DELETE ON fanout_pull_windows TO chorus_app;
