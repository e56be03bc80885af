-- 0011_agent_tokens: agent credentials as rows of their own (checklist G1,
-- G2, G6).
--
-- Until now a device row held its current token hash and one previous hash
-- with an expiry. A token that was replaced left no trace, so a stolen token
-- showing up after its grace period looked like any random string, and the
-- lookup (current OR previous) could not use an index. Here every token a
-- device was ever given is one row, kept for good (only its SHA-256):
--
--   pending    issued by a rotation, not yet confirmed by the agent;
--              usable until expires_at (1 hour), then dead
--   current    the device's token; at most one per device
--   previous   the token a confirmed rotation replaced; accepted until
--              expires_at (the 5-minute grace period), then retired
--   retired    never accepted again; seeing it is a theft signal
--   suspended  taken out of service by a security event (cross-tenant
--              probe); never accepted again
--
-- A lookup is one primary-key probe; the state and expires_at decide.
-- Expiry is judged against the server's clock passed in as a parameter, so
-- tests can move it.
CREATE TABLE agent_tokens (
    token_hash      text        PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    device_id       uuid        NOT NULL REFERENCES devices(id),
    org_id          uuid        NOT NULL REFERENCES organizations(id),
    state           text        NOT NULL
                    CHECK (state IN ('pending', 'current', 'previous', 'retired', 'suspended')),
    created_at      timestamptz NOT NULL,
    -- When the token became current (enrolment, or a confirmed rotation):
    -- its age is what AGENT_TOKEN_MAX_AGE_DAYS measures.
    activated_at    timestamptz,
    expires_at      timestamptz,
    retired_at      timestamptz,
    -- Why a token left service: rotated, expired, reset, decommissioned,
    -- suspended, re-enrolled, ... (free text chosen by the server).
    retired_reason  text CHECK (retired_reason IS NULL OR length(retired_reason) <= 64),
    CONSTRAINT agent_tokens_expiry_check
        CHECK ((state IN ('pending', 'previous')) = (expires_at IS NOT NULL)),
    CONSTRAINT agent_tokens_retired_check
        CHECK ((state IN ('retired', 'suspended')) = (retired_at IS NOT NULL))
);
CREATE UNIQUE INDEX agent_tokens_current_idx ON agent_tokens (device_id) WHERE state = 'current';
CREATE UNIQUE INDEX agent_tokens_pending_idx ON agent_tokens (device_id) WHERE state = 'pending';
CREATE UNIQUE INDEX agent_tokens_previous_idx ON agent_tokens (device_id) WHERE state = 'previous';
CREATE INDEX agent_tokens_device_idx ON agent_tokens (device_id, created_at);

INSERT INTO agent_tokens (token_hash, device_id, org_id, state, created_at, activated_at)
SELECT auth_token_hash, id, org_id, 'current', enrolled_at, enrolled_at
  FROM devices WHERE auth_token_hash IS NOT NULL;

INSERT INTO agent_tokens (token_hash, device_id, org_id, state, created_at, expires_at)
SELECT prev_token_hash, id, org_id, 'previous', enrolled_at, prev_token_expires_at
  FROM devices
 WHERE prev_token_hash IS NOT NULL AND prev_token_expires_at IS NOT NULL
   AND status <> 'decommissioned'
ON CONFLICT (token_hash) DO NOTHING;

ALTER TABLE devices
    DROP CONSTRAINT devices_token_check,
    DROP COLUMN auth_token_hash,
    DROP COLUMN prev_token_hash,
    DROP COLUMN prev_token_expires_at;

-- No DELETE: a retired token is kept so that its reuse is recognised.
GRANT SELECT, INSERT, UPDATE ON agent_tokens TO breeze_app;
