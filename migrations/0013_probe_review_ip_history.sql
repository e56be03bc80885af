-- 0013_probe_review_ip_history: cross-tenant probe suspension and its
-- review (checklist G6), and the source addresses of a device (G7).
-- docs/probes-and-addresses.md explains both.
--
-- A device whose agent token was used on another organization's device is
-- suspended: every live token of it becomes 'suspended' (agent_tokens,
-- 0011) and the device row records when and why. Until an administrator
-- reviews it (POST /api/v1/devices/:id/review) the device blocks the
-- re-enrolment of the same hostname or hardware fingerprint in its
-- organization (reenrollment_blocked). Both review decisions end the device
-- (status decommissioned); "allow_reenrollment" lifts the block,
-- "decommission" keeps it until a later "allow_reenrollment".
ALTER TABLE devices
    ADD COLUMN suspended_at timestamptz,
    ADD COLUMN suspension_reason text
        CHECK (suspension_reason IS NULL OR length(suspension_reason) <= 64),
    ADD COLUMN reenrollment_blocked boolean NOT NULL DEFAULT false,
    ADD COLUMN reviewed_at timestamptz,
    ADD COLUMN review_decision text
        CHECK (review_decision IS NULL OR review_decision IN ('allow_reenrollment', 'decommission')),
    ADD COLUMN review_note text
        CHECK (review_note IS NULL OR length(review_note) BETWEEN 1 AND 1000);

-- A device suspended before this migration (none is, by the server) gets a
-- time and a reason so the constraint below holds.
UPDATE devices SET suspended_at = coalesce(last_seen_at, enrolled_at),
                   suspension_reason = 'unknown', reenrollment_blocked = true
 WHERE status = 'suspended';

ALTER TABLE devices
    ADD CONSTRAINT devices_suspension_check
        CHECK (status <> 'suspended'
               OR (suspended_at IS NOT NULL AND suspension_reason IS NOT NULL
                   AND reenrollment_blocked)),
    ADD CONSTRAINT devices_review_check
        CHECK ((reviewed_at IS NULL) = (review_decision IS NULL));

-- The re-enrolment check reads only blocked devices: tiny partial indexes.
-- The hardware fingerprint is the agent-reported hardware.machineId
-- (compared case-insensitively).
CREATE INDEX devices_blocked_host_idx ON devices (org_id, lower(hostname))
    WHERE reenrollment_blocked;
CREATE INDEX devices_blocked_machine_idx ON devices (org_id, lower(hardware ->> 'machineId'))
    WHERE reenrollment_blocked AND hardware ? 'machineId';

-- A same-organization token mismatch (or an unknown path device) is audited
-- at most once per token per minute: the time of the last such row.
ALTER TABLE agent_tokens ADD COLUMN mismatch_audited_at timestamptz;

-- The last 20 source addresses of each device (pruned on insert). The
-- current address's last sighting is devices.last_seen_at (a heartbeat from
-- an unchanged address writes nothing here); last_seen_at of a row is
-- brought up to date when the device moves to another address.
-- last_event_at is when agent.source.ip.changed was last written for a move
-- TO this address: at most one such row per device and address per
-- AGENT_IP_CHANGE_DEDUP_SECONDS.
CREATE TABLE device_ip_history (
    device_id     uuid        NOT NULL REFERENCES devices(id),
    org_id        uuid        NOT NULL REFERENCES organizations(id),
    ip            inet        NOT NULL,
    first_seen_at timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    last_event_at timestamptz,
    PRIMARY KEY (device_id, ip)
);

INSERT INTO device_ip_history (device_id, org_id, ip, first_seen_at, last_seen_at)
SELECT id, org_id, last_ip, coalesce(last_seen_at, enrolled_at), coalesce(last_seen_at, enrolled_at)
  FROM devices WHERE last_ip IS NOT NULL;

GRANT SELECT, INSERT, UPDATE, DELETE ON device_ip_history TO breeze_app;
