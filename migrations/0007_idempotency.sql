-- 0007_idempotency: remembered answers of create requests sent with an
-- Idempotency-Key header (docs/openapi.yaml, src/server/http/idempotency.c).
--
-- A row is inserted in the same transaction as the change it answers, so a
-- request that crashed or rolled back leaves none and may simply be retried.
-- Rows live 24 hours; the server deletes older ones a few at a time as it
-- inserts new ones, and never replays one.
--
--   caller       who may replay the row: 'user:<uuid>' or, for agent
--                enrolment, 'enroll:' || a keyed hash of the enrolment key
--   route        'POST /api/v1/users' etc. (the route template)
--   key_hash     SHA-256 hex of the Idempotency-Key value
--   fingerprint  HMAC-SHA-256 hex of the method, path and request body
--                (keyed, so a body holding a password is no offline oracle)
--   status       the HTTP status of the first answer
--   response     its JSON body with every secret member removed
--   withheld     true when a secret was removed: the answer is not replayed

CREATE TABLE idempotency_keys (
    caller      text        NOT NULL CHECK (length(caller) <= 200),
    route       text        NOT NULL CHECK (length(route) <= 200),
    key_hash    text        NOT NULL CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    fingerprint text        NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    status      integer     NOT NULL CHECK (status BETWEEN 200 AND 599),
    response    jsonb,
    withheld    boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, route, key_hash)
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- UPDATE: an expired row is replaced in place (INSERT ... ON CONFLICT).
GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO breeze_app;
