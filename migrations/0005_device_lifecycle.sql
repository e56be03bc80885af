-- 0005_device_lifecycle: an operator-chosen display name for devices, and
-- decommissioning (PATCH /api/v1/devices/:id, POST …/decommission).

-- NULL = show the hostname the agent reports.
ALTER TABLE devices
    ADD COLUMN display_name text
        CHECK (display_name IS NULL OR length(display_name) BETWEEN 1 AND 200),
    ADD COLUMN decommissioned_at timestamptz;

-- A decommissioned device keeps its row, heartbeats and audit history, but
-- no credential: its token hashes are cleared in the same UPDATE that sets
-- the status, so nothing can authenticate as it any more (G1).
ALTER TABLE devices ALTER COLUMN auth_token_hash DROP NOT NULL;

UPDATE devices
   SET decommissioned_at = coalesce(decommissioned_at, now()),
       auth_token_hash = NULL, prev_token_hash = NULL, prev_token_expires_at = NULL
 WHERE status = 'decommissioned';

ALTER TABLE devices
    ADD CONSTRAINT devices_decommissioned_at_check
        CHECK ((status = 'decommissioned') = (decommissioned_at IS NOT NULL)),
    ADD CONSTRAINT devices_token_check
        CHECK (CASE WHEN status = 'decommissioned'
                    THEN auth_token_hash IS NULL AND prev_token_hash IS NULL
                    ELSE auth_token_hash IS NOT NULL END);
