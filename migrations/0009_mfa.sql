-- 0009_mfa: TOTP multi-factor authentication (checklist A1, A2).
--
--   user_mfa             one TOTP secret per user: pending from
--                        POST /auth/mfa/setup until /auth/mfa/enable
--                        (enabled_at NULL), then live. The secret is stored
--                        only sealed with AES-256-GCM under
--                        MFA_ENCRYPTION_KEY ("v1:<key id>:<nonce>:<ct>",
--                        src/crypto/aead.h) with the user id as associated
--                        data. last_step is the last RFC 6238 time step
--                        accepted: a code of that step or an earlier one is
--                        refused, so each code works once.
--   mfa_recovery_codes   ten one-time codes per user, stored as
--                        HMAC-SHA-256 (hex) with MFA_RECOVERY_CODE_PEPPER
--                        of the normalized code; used_at marks a spent one.
--   mfa_challenges       the second step of a login: the mfaToken (stored
--                        as SHA-256 hex), bound to the user, 5 minutes,
--                        single use, dead after 5 wrong codes.
--
-- users.mfa_enabled (0001) stays the one flag the rest of the server reads.

CREATE TABLE user_mfa (
    user_id     uuid        PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret_enc  text        NOT NULL CHECK (secret_enc LIKE 'v1:%' AND length(secret_enc) <= 512),
    enabled_at  timestamptz,
    last_step   bigint      NOT NULL DEFAULT -1,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mfa_recovery_codes (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid        NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash   text        NOT NULL CHECK (code_hash ~ '^[0-9a-f]{64}$'),
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, code_hash)
);

CREATE TABLE mfa_challenges (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid        NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  text        NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    expires_at  timestamptz NOT NULL,
    failures    integer     NOT NULL DEFAULT 0 CHECK (failures >= 0),
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mfa_challenges_user_idx ON mfa_challenges (user_id);
CREATE INDEX mfa_challenges_expires_idx ON mfa_challenges (expires_at);

-- A2: the built-in administrator roles force MFA enrolment.
UPDATE roles SET force_mfa = true WHERE builtin AND name IN ('partner_admin', 'org_admin');

GRANT SELECT, INSERT, UPDATE, DELETE ON user_mfa, mfa_recovery_codes, mfa_challenges TO breeze_app;
