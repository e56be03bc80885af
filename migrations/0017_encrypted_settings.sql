-- 0017_encrypted_settings: partner and site settings encrypted at rest
-- (checklist O2; docs/encryption.md), and the count of encryptions per key.
--
-- * partners.settings and sites.settings were bytea columns reserved since
--   0001 and never written by the server. They are replaced by text columns
--   holding only "enc:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>"
--   (AES-256-GCM, associated data "<table>.settings_enc:<id>"), sealed by
--   the server: SQL cannot encrypt with the application's key, so a
--   database that somehow holds a value in the old columns stops this
--   migration instead of losing it silently.
-- * webhooks.secret_enc keeps its values; the server writes new ones as
--   "enc:v1:" and opens the older "v1:" form, and
--   `breeze-server rotate-encryption-key` converts what is left.
-- * user_mfa.secret_enc likewise: TOTP secrets (still under their own
--   MFA_ENCRYPTION_KEY) are written as "enc:v1:" with associated data
--   "user_mfa.secret_enc:<user id>"; older "v1:" ones are re-sealed on use.
-- * encryption_key_usage counts, per key id, the values sealed under it
--   (bumped in the transaction that stores them), so an operator sees a key
--   approach the NIST SP 800-38D limit of 2^32 random-nonce encryptions.

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM partners WHERE settings IS NOT NULL)
       OR EXISTS (SELECT 1 FROM sites WHERE settings IS NOT NULL) THEN
        RAISE EXCEPTION 'partners.settings or sites.settings holds data that migration 0017 '
                        'cannot encrypt; export and clear it, then migrate';
    END IF;
END $$;

ALTER TABLE partners DROP COLUMN settings;
ALTER TABLE sites DROP COLUMN settings;
ALTER TABLE partners ADD COLUMN settings_enc text
    CHECK (settings_enc LIKE 'enc:v1:%');
ALTER TABLE sites ADD COLUMN settings_enc text
    CHECK (settings_enc LIKE 'enc:v1:%');
ALTER TABLE webhooks DROP CONSTRAINT webhooks_secret_enc_check;
ALTER TABLE webhooks ADD CONSTRAINT webhooks_secret_enc_sealed
    CHECK (secret_enc LIKE 'enc:v1:%' OR secret_enc LIKE 'v1:%');

ALTER TABLE user_mfa DROP CONSTRAINT user_mfa_secret_enc_check;
ALTER TABLE user_mfa ADD CONSTRAINT user_mfa_secret_enc_sealed
    CHECK ((secret_enc LIKE 'enc:v1:%' OR secret_enc LIKE 'v1:%') AND length(secret_enc) <= 512);

CREATE TABLE encryption_key_usage (
    key_id        text PRIMARY KEY CHECK (key_id ~ '^[A-Za-z0-9_-]{1,32}$'),
    encryptions   bigint NOT NULL DEFAULT 0 CHECK (encryptions >= 0),
    first_used_at timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, UPDATE ON encryption_key_usage TO breeze_app;
