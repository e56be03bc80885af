-- 0012_agent_token_rotation: what token rotation (checklist G2) needs on top
-- of the token rows of 0011.
--
--   rotation_requested_at   an administrator asked for this (current) token
--                           to be rotated (POST /devices/:id/rotate-agent-
--                           token); the heartbeat then answers
--                           "rotateToken": true. The token that replaces it
--                           starts without a request, so nothing has to be
--                           cleared.
--   retired_use_audited_at  when the last agent.token.retired_use audit row
--                           for this token was written: a thief replaying a
--                           retired token gets one row per minute, not one
--                           per request. A guarded UPDATE on it decides, so
--                           every server instance shares the limit.
--
-- Both are judged against the server's clock passed in as a parameter, like
-- expires_at. The table-level grants of 0011 cover the new columns.
ALTER TABLE agent_tokens
    ADD COLUMN rotation_requested_at timestamptz,
    ADD COLUMN retired_use_audited_at timestamptz;
