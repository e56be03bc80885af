-- 0008_refresh_tokens: refresh-token families (checklist A5, A6, A7).
--
-- A session has exactly one refresh-token family; the family's id is the
-- session's id (sessions.refresh_family_id is set to it, and
-- sessions.refresh_generation is the generation of the family's current
-- token). Every token of the family is one row here, kept after it is
-- rotated so that a replay of a rotated token is recognised as reuse:
-- the session (and with it the family and every access token naming it)
-- is then revoked. Only the SHA-256 of a token is stored; the token
-- itself lives only in the client's HttpOnly cookie.
-- sessions.refresh_token_hash (0001) stays NULL: the hashes are here.
--
--   generation  0 for the token issued at login, +1 per refresh
--   created_at  when it was issued (the server's clock)
--   rotated_at  when a refresh consumed it; NULL for the live token.
--               At most one token per session has it NULL.

CREATE TABLE refresh_tokens (
    token_hash  text        PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    session_id  uuid        NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    generation  integer     NOT NULL CHECK (generation >= 0),
    created_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    CONSTRAINT refresh_tokens_generation_key UNIQUE (session_id, generation)
);

CREATE UNIQUE INDEX refresh_tokens_live_idx ON refresh_tokens (session_id)
    WHERE rotated_at IS NULL;

-- Lists of a user's live sessions (GET /api/v1/auth/sessions).
CREATE INDEX sessions_user_live_idx ON sessions (user_id, created_at)
    WHERE revoked_at IS NULL;

-- No DELETE: tokens go with their session.
GRANT SELECT, INSERT, UPDATE ON refresh_tokens TO breeze_app;
