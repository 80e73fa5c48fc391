-- Rate-limit buckets without the write-ahead log. Every request charges its bucket with one autocommit
-- upsert before its own transaction (shared_code/services/rate_limits.py); as a logged table each of
-- those commits waited for its own WAL flush, a second durable commit on every write and the only one
-- on most reads (on a loaded local disk about 3 ms each at concurrency 1: 160 upserts/s logged, 300
-- unlogged). A bucket is soft state: after a crash, or a failover to a standby (which never holds
-- unlogged rows), the table starts empty, which is every bucket full, so a user may spend at most one
-- period's limit again (a minute for requests, a day for media bytes). Nothing else reads the rows.
ALTER TABLE rate_limit_buckets SET UNLOGGED;
