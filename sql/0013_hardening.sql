-- Hardening (issue 11): a flag keeps the text it flagged, so what a reporter saw is still there for
-- the moderator after the author edits or deletes the post. NULL only for flags made before this.
ALTER TABLE moderation_flags
    ADD COLUMN flagged_text text CONSTRAINT moderation_flags_flagged_text_check
        CHECK (flagged_text IS NULL OR char_length(flagged_text) BETWEEN 1 AND 2000);
