-- citext: case-insensitive usernames and emails. gen_random_uuid() is core since PostgreSQL 13.
CREATE EXTENSION IF NOT EXISTS citext;
