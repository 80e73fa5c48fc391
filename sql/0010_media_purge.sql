-- Media that disappears: an asset nothing visible uses any more (its post deleted, hidden or
-- removed, its owner's account deleted, or never attached within MEDIA_UNATTACHED_TTL_HOURS) has its
-- blob deleted by the media sweep (functions/media.py) and is marked purged; no read signs a URL
-- for it again.
ALTER TABLE media_assets ADD COLUMN purged_at timestamptz;
ALTER TABLE media_assets ADD CONSTRAINT media_purged_was_ready CHECK (purged_at IS NULL OR status = 'ready');

-- The sweep's candidates: ready assets not purged yet, oldest first.
CREATE INDEX media_assets_ready_unpurged ON media_assets (ready_at)
    WHERE status = 'ready' AND purged_at IS NULL AND deleted_at IS NULL;
