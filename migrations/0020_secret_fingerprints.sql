-- 0020_secret_fingerprints: when the server first used each value of
-- AGENT_ENROLLMENT_SECRET (checklist S6).
--
-- The checklist asks for the enrolment secret to be rotated after the first
-- enrolment batch. `breeze-server check --live` can only tell whether that
-- happened if the database knows since when the current value is in use:
-- serve records a fingerprint of it at start (an HMAC keyed with the secret
-- itself, so the row reveals nothing about it), and check compares the
-- first time that fingerprint was seen with the first enrolment.
CREATE TABLE secret_fingerprints (
    name          text NOT NULL CHECK (name ~ '^[A-Z][A-Z0-9_]{0,63}$'),
    fingerprint   text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{32}$'),
    first_seen_at timestamptz NOT NULL,
    PRIMARY KEY (name, fingerprint)
);

GRANT SELECT, INSERT ON secret_fingerprints TO breeze_app;
