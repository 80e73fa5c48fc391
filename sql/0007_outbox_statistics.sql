-- The outbox's contents swing between empty and a burst of thousands of events; with the default
-- scale factor autovacuum re-analyses a large table only after 10 % of it changed, so the planner
-- would plan the relay's claim on statistics from before the burst. Analyse after every 1,000
-- changed rows instead, and vacuum published-and-pruned space promptly.
ALTER TABLE outbox SET (
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 1000,
    autovacuum_vacuum_scale_factor = 0.02
);
