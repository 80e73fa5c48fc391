-- Events and RSVPs (issue 16; docs/api.md "Events and RSVPs").

-- An event a user hosts. Who may see it: the host's content rule (shared_code/domain/privacy.py) and
-- its own visibility ('followers': only the host's followers). Cancelling keeps the row (attendees
-- and posts that link it see it cancelled); erasing the host cancels it and blanks its words.
-- The counts are kept here, moved under this row's lock by every RSVP, so they are exact and the
-- CHECK below makes "more going than seats" impossible whatever a use case does.
CREATE TABLE events (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    host_id        uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    title          text NOT NULL CHECK (char_length(title) >= 1 AND char_length(title) <= 200),
    description    text NOT NULL DEFAULT '' CHECK (char_length(description) <= 5000),
    place          text NOT NULL DEFAULT '' CHECK (char_length(place) <= 300),
    category       text CHECK (char_length(category) >= 1 AND char_length(category) <= 50),
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz NOT NULL,
    capacity       integer CHECK (capacity > 0),
    visibility     text NOT NULL CHECK (visibility = ANY (ARRAY['public'::text, 'followers'::text])),
    going          integer NOT NULL DEFAULT 0 CHECK (going >= 0),
    interested     integer NOT NULL DEFAULT 0 CHECK (interested >= 0),
    waitlisted     integer NOT NULL DEFAULT 0 CHECK (waitlisted >= 0),
    version        bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    -- Moves with every change of the counts (RSVPs), apart from the details' version.
    counts_version bigint NOT NULL DEFAULT 1 CHECK (counts_version > 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    cancelled_at   timestamptz,
    CONSTRAINT events_end_after_start CHECK (ends_at > starts_at),
    CONSTRAINT events_within_capacity CHECK (capacity IS NULL OR going <= capacity)
);
-- A host's events by start (GET /api/events: the caller's and followees' upcoming events).
CREATE INDEX events_by_host_start ON events (host_id, starts_at, id) WHERE cancelled_at IS NULL;

-- One answer per (event, user). 'waitlisted': asked to go when the event was full; the waiting order
-- is `waitlist_position` (from a sequence, taken under the event's lock: the order the requests got
-- the lock in). Withdrawing deletes the row.
CREATE SEQUENCE event_waitlist_order;
CREATE TABLE event_rsvps (
    id                uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    event_id          uuid NOT NULL REFERENCES events (id) ON DELETE RESTRICT,
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    status            text NOT NULL
        CHECK (status = ANY (ARRAY['going'::text, 'interested'::text, 'not_going'::text, 'waitlisted'::text])),
    waitlist_position bigint,
    version           bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, user_id),
    CONSTRAINT event_rsvps_waitlist_position CHECK ((status = 'waitlisted') = (waitlist_position IS NOT NULL))
);
-- The waiting list in order (promotion takes the first).
CREATE INDEX event_rsvps_waitlist ON event_rsvps (event_id, waitlist_position) WHERE status = 'waitlisted';
-- An account's answers (its upcoming events, erasure, export).
CREATE INDEX event_rsvps_by_user ON event_rsvps (user_id, event_id);

-- A post may link an event; the post shows it as its reader may see it now (or unavailable).
ALTER TABLE posts ADD COLUMN event_id uuid REFERENCES events (id) ON DELETE RESTRICT;

-- events: readable rows (whether one shows is the service's answer: the privacy rule and the event's
-- visibility); created by their host. Any acting account may lock and change a row, because an RSVP
-- moves its counts (as post_counts); that only the host edits or cancels it is the service's check.
ALTER TABLE events ENABLE ROW LEVEL SECURITY;
CREATE POLICY events_read ON events FOR SELECT USING (true);
CREATE POLICY events_create_own ON events FOR INSERT
    WITH CHECK (host_id = chorus_acting_user() OR chorus_is_system());
CREATE POLICY events_change ON events FOR UPDATE USING (chorus_is_acting()) WITH CHECK (chorus_is_acting());

-- event_rsvps: readable like reactions (who shows is the service's answer); each account writes its
-- own answer, the system erases an account's. Promotion from the waiting list changes someone
-- else's row: only through chorus_promote_waitlisted below, which does nothing else.
ALTER TABLE event_rsvps ENABLE ROW LEVEL SECURITY;
CREATE POLICY event_rsvps_read ON event_rsvps FOR SELECT USING (true);
CREATE POLICY event_rsvps_create_own ON event_rsvps FOR INSERT
    WITH CHECK (user_id = chorus_acting_user() OR chorus_is_system());
CREATE POLICY event_rsvps_change_own ON event_rsvps FOR UPDATE
    USING (user_id = chorus_acting_user() OR chorus_is_system())
    WITH CHECK (user_id = chorus_acting_user() OR chorus_is_system());
CREATE POLICY event_rsvps_delete_own ON event_rsvps FOR DELETE
    USING (user_id = chorus_acting_user() OR chorus_is_system());

-- Moves the first `seats` waiting answers of an event to 'going', in waiting order, and returns them.
-- The caller holds the event's row lock and has worked out `seats` (shared_code/domain/event_rules.py);
-- events_within_capacity refuses the count should it ever be wrong.
CREATE FUNCTION chorus_promote_waitlisted(event uuid, seats integer)
    RETURNS TABLE (rsvp_id uuid, user_id uuid, version bigint)
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH first AS (
        SELECT r.event_id, r.user_id FROM event_rsvps r
        WHERE r.event_id = event AND r.status = 'waitlisted'
        ORDER BY r.waitlist_position LIMIT greatest(seats, 0) FOR UPDATE
    )
    UPDATE event_rsvps r SET status = 'going', waitlist_position = NULL, version = r.version + 1,
                             updated_at = now()
    FROM first WHERE r.event_id = first.event_id AND r.user_id = first.user_id
    RETURNING r.id, r.user_id, r.version
$$;
REVOKE ALL ON FUNCTION chorus_promote_waitlisted(uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION chorus_promote_waitlisted(uuid, integer) TO chorus_app;

GRANT SELECT, INSERT, UPDATE ON events TO chorus_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON event_rsvps TO chorus_app;
GRANT USAGE ON SEQUENCE event_waitlist_order TO chorus_app;
