-- Hardening (issue 11): a flag keeps the text it flagged, so what a reporter saw is still there for
-- the moderator after the author edits or deletes the post. NULL only for flags made before this.
ALTER TABLE moderation_flags
    ADD COLUMN flagged_text text CONSTRAINT moderation_flags_flagged_text_check
        CHECK (flagged_text IS NULL OR char_length(flagged_text) BETWEEN 1 AND 2000);

-- A moderator's delete of someone else's comment is recorded like a decision on a post (with its
-- reason, in moderation_actions) and can be appealed by the comment's author: both rows then name
-- the comment as well as its post. One pending appeal per post, and one per comment.
ALTER TABLE moderation_actions ADD COLUMN comment_id uuid REFERENCES comments (id) ON DELETE RESTRICT;
ALTER TABLE appeals ADD COLUMN comment_id uuid REFERENCES comments (id) ON DELETE RESTRICT;
DROP INDEX appeals_one_pending;
CREATE UNIQUE INDEX appeals_one_pending ON appeals (post_id) WHERE status = 'pending' AND comment_id IS NULL;
CREATE UNIQUE INDEX appeals_one_pending_per_comment ON appeals (comment_id)
    WHERE status = 'pending' AND comment_id IS NOT NULL;
-- The author of a comment may read the decisions on it (what their appeal answers), as a post's
-- author reads those on the post (row-level security, 0012).
CREATE POLICY moderation_actions_read_own_comment ON moderation_actions FOR SELECT
    USING (comment_id IS NOT NULL
           AND EXISTS (SELECT 1 FROM comments c WHERE c.id = comment_id AND c.author_id = chorus_acting_user()));
