-- The relay's two stages, its claim fencing, and operator skips.
--
-- projected_at: the projections (Cosmos DB, feed maintenance, the moderators' mirror) took the event;
--   publishing to Event Hubs is the second stage. An event is 'published' when both are done. So an
--   Event Hubs outage holds back only publishing, never the projections of later events.
-- claim_token: written by every claim; the relay records an outcome (and publishes) only while the
--   token is still its own, so a relay that outlived its lease cannot act after another took the event.
-- 'skipped': a dead event an operator gave up on, with the reason recorded; it no longer blocks its
--   aggregate.

ALTER TABLE outbox
    ADD COLUMN projected_at timestamptz,
    ADD COLUMN claim_token uuid,
    ADD COLUMN skipped_at timestamptz,
    ADD COLUMN skipped_by text,
    ADD COLUMN skip_reason text;

UPDATE outbox SET projected_at = published_at WHERE status = 'published';

ALTER TABLE outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_status_check
    CHECK (status IN ('pending', 'published', 'dead', 'skipped'));
ALTER TABLE outbox ADD CONSTRAINT outbox_published_was_projected
    CHECK (status <> 'published' OR projected_at IS NOT NULL);
ALTER TABLE outbox ADD CONSTRAINT outbox_skip_has_reason
    CHECK ((status = 'skipped') = (skipped_at IS NOT NULL AND skip_reason IS NOT NULL));

-- "Is an earlier event of this aggregate unfinished?" Skipped events are finished too.
DROP INDEX outbox_unfinished_by_aggregate;
CREATE INDEX outbox_unfinished_by_aggregate ON outbox (aggregate_type, aggregate_id, id)
    WHERE status IN ('pending', 'dead');

-- Who replayed a recorded change-feed failure (replayed_at says when).
ALTER TABLE change_feed_failures ADD COLUMN replayed_by text;
