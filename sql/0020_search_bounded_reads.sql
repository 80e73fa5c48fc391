-- Search reads whose cost is bounded by the page, not by the number of matches (docs/api.md
-- "Search", docs/read-costs.md).

-- User search by display name reads live profiles only: an erased account keeps its profile row
-- (deleted_at set, display name replaced), and a prefix matching many of those would otherwise be
-- walked, entry by entry, on every search. The partial index leaves them out of the range scan.
CREATE INDEX profiles_live_by_search_key ON profiles (search_key, user_id) WHERE deleted_at IS NULL;
DROP INDEX profiles_by_search_key;

-- Post search ranks at most the newest SEARCH_POSTS_CANDIDATES live matches of a query. For a word
-- in many posts PostgreSQL walks this index newest first and stops at that many matches; for a
-- rare word it keeps to the GIN index (posts_search_vector) and sorts the few matches by time.
CREATE INDEX posts_live_newest ON posts (created_at DESC, id DESC) WHERE deleted_at IS NULL;
