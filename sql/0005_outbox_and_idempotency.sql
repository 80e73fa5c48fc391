-- The transactional outbox and Idempotency-Key records.

CREATE TABLE outbox (
    -- Claim order; per aggregate it is also commit order, because the writer
    -- takes the aggregate's row lock before it inserts the event.
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- What consumers de-duplicate on.
    event_id          uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    aggregate_type    text NOT NULL,
    aggregate_id      uuid NOT NULL,
    aggregate_version bigint NOT NULL CHECK (aggregate_version > 0),
    event_type        text NOT NULL CHECK (event_type ~ '^[a-z]+(\.[a-z_]+)+$'),
    payload           jsonb NOT NULL,
    -- correlationId, traceparent, actor.
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'published', 'dead')),
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    claimed_until     timestamptz,
    last_error        text,
    published_at      timestamptz,
    CONSTRAINT outbox_one_event_per_version UNIQUE (aggregate_type, aggregate_id, aggregate_version),
    CONSTRAINT outbox_published_has_time CHECK ((status = 'published') = (published_at IS NOT NULL))
);
-- The relay's claim scan walks pending events in id order.
CREATE INDEX outbox_pending ON outbox (id) WHERE status = 'pending';
-- "Is an earlier event of this aggregate unfinished?"
CREATE INDEX outbox_unfinished_by_aggregate ON outbox (aggregate_type, aggregate_id, id) WHERE status <> 'published';
-- Retention deletes old published events in small batches.
CREATE INDEX outbox_published_age ON outbox (published_at) WHERE status = 'published';

-- Wake the relay (LISTEN outbox) when a transaction that wrote events commits.
-- PostgreSQL delivers notifications at commit and folds duplicates in one transaction.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

CREATE TABLE idempotency_keys (
    -- The token subject, so that onboarding (no user yet) can use a key too.
    subject         text NOT NULL,
    key             text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    operation       text NOT NULL,
    request_hash    text NOT NULL,
    response_status integer NOT NULL,
    response_body   jsonb,
    response_headers jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

GRANT SELECT, INSERT, UPDATE ON outbox TO chorus_app;
GRANT DELETE ON outbox TO chorus_app;  -- retention of published events
GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO chorus_app;  -- UPDATE: the response, once known
