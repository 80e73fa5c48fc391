-- Hybrid fan-out: a big author's post is pullable as soon as it is in authorPosts. Until now only the
-- change-feed fan-out widened the author's pull window (0015), so the first post after an author
-- crossed FANOUT_MAX_FOLLOWERS showed only after the change feed had run. The post's own transaction
-- now widens the window when the author is above the threshold at commit (services/posts.py); the
-- fan-out still widens it too (an author who crossed between commit and fan-out), and still alone
-- closes it (pulling = false). The author's own transaction may not write the table (only the system
-- does, 0015), so this function does it as the owner, for the acting author only, and only widens:
-- a window too wide pulls posts that are also in feeds (shown once), never leaves one out.
CREATE FUNCTION chorus_widen_pull_window(author uuid, at timestamptz) RETURNS void
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    INSERT INTO fanout_pull_windows AS w (author_id, pulled_since, pulled_last, pulling)
    SELECT author, at, at, true WHERE author = chorus_acting_user()
    ON CONFLICT (author_id) DO UPDATE SET
        pulled_since = LEAST(w.pulled_since, EXCLUDED.pulled_since),
        pulled_last = GREATEST(w.pulled_last, EXCLUDED.pulled_last),
        pulling = true, updated_at = now()
$$;
REVOKE ALL ON FUNCTION chorus_widen_pull_window(uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION chorus_widen_pull_window(uuid, timestamptz) TO chorus_app;
