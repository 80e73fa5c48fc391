-- Fan-out pages through a followee's followers by follower id.
CREATE INDEX follows_live_fanout ON follows (followee_id, follower_id) WHERE deleted_at IS NULL;

-- Change-feed batches a handler could not process after its retries: kept for an
-- operator to replay (the Functions host moves its checkpoint on regardless).
CREATE TABLE change_feed_failures (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    function    text NOT NULL,
    container   text NOT NULL,
    documents   jsonb NOT NULL CHECK (jsonb_typeof(documents) = 'array'),
    error       text NOT NULL,
    correlation_ids text[] NOT NULL DEFAULT '{}',
    failed_at   timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz
);
CREATE INDEX change_feed_failures_open ON change_feed_failures (failed_at) WHERE replayed_at IS NULL;

GRANT SELECT, INSERT, UPDATE ON change_feed_failures TO chorus_app;

-- Schema drift checks run as the app: they compare applied migrations with sql/.
GRANT SELECT ON schema_migrations TO chorus_app;
