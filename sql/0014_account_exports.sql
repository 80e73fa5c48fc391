-- Account exports too large to answer inline (docs/privacy.md "Exporting an account"): a job per
-- request, written to a blob by the relay's export handler. Erasure deletes an account's exports
-- and their blobs.
CREATE TABLE account_exports (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready')),
    blob_path    text,
    items        integer CHECK (items IS NULL OR items >= 0),
    requested_at timestamptz NOT NULL DEFAULT now(),
    ready_at     timestamptz,
    CONSTRAINT account_exports_ready CHECK ((status = 'ready') = (blob_path IS NOT NULL AND ready_at IS NOT NULL))
);
CREATE INDEX account_exports_by_user ON account_exports (user_id, requested_at);

-- The account asks for and reads its own exports; the system writes them and erases them.
ALTER TABLE account_exports ENABLE ROW LEVEL SECURITY;
CREATE POLICY account_exports_own ON account_exports FOR SELECT
    USING (user_id = chorus_acting_user() OR chorus_is_system());
CREATE POLICY account_exports_request_own ON account_exports FOR INSERT
    WITH CHECK (user_id = chorus_acting_user() OR chorus_is_system());
CREATE POLICY account_exports_system ON account_exports FOR ALL
    USING (chorus_is_system()) WITH CHECK (chorus_is_system());

GRANT SELECT, INSERT, UPDATE, DELETE ON account_exports TO chorus_app;
