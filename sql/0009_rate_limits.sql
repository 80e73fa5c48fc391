-- Rate limits shared by every instance of the app (docs/api.md "Limits"): one GCRA bucket per
-- (bucket, key), kept as its theoretical arrival time (tat). One upsert both decides and records a
-- request (shared_code/services/rate_limits.py), so concurrent requests on any instance queue on the
-- row lock instead of racing a read-modify-write. A row whose tat has passed is the same as no row
-- (a full bucket), so rows are deleted on the fly (the upsert overwrites a stale tat) and by the
-- outbox retention timer once expired.
--
-- key: "user:<token subject>" or "client:<address>" hashed (sha256, hex), so the table holds no
-- readable address or subject; the rows last no longer than their period.
-- No row-level security: the limiter runs before the caller is known (anonymous routes), and the rows
-- say nothing about anyone without the key.

CREATE TABLE rate_limit_buckets (
    bucket   text NOT NULL CHECK (char_length(bucket) BETWEEN 1 AND 40),
    key_hash text NOT NULL CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    tat      timestamptz NOT NULL,
    allowed  boolean NOT NULL,  -- the outcome of the latest request (what the upsert returns)
    PRIMARY KEY (bucket, key_hash)
);
CREATE INDEX rate_limit_buckets_by_tat ON rate_limit_buckets (tat);

-- Pending uploads per owner (the pending-uploads quota counts them).
CREATE INDEX media_assets_pending_by_owner ON media_assets (owner_id) WHERE status = 'pending' AND deleted_at IS NULL;

GRANT SELECT, INSERT, UPDATE, DELETE ON rate_limit_buckets TO chorus_app;
