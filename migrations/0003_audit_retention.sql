-- 0003_audit_retention: per-organization retention (L5) and indexes for the
-- audit query API (L6).

-- Days an organization's audit rows are kept; NULL = the server's
-- AUDIT_RETENTION_DAYS (default 365). breeze_audit_admin already reads
-- organizations (0002), so the retention worker sees this column.
ALTER TABLE organizations
    ADD COLUMN audit_retention_days integer
        CHECK (audit_retention_days BETWEEN 1 AND 36500);

-- GET /api/v1/audit walks each visible organization newest first and stops
-- after `limit` matches (a LATERAL top-N per organization). Without a filter
-- audit_log_org_ts_idx (0001) serves it. A selective filter on that index
-- alone means reading an organization's whole history to find a few rows
-- (measured: ~40 ms per 20,000 rows for an action that never matches), so
-- the two filters auditors use most — "this object's history" and "every
-- event of this kind" (e.g. auth.login.failed) — get an index each, ordered
-- like the answer so keyset pagination stays an index range. Measured cost
-- on inserts: about 5 % for both together (4,000/s vs 3,800/s, single-row
-- transactions, 4 writers), within run-to-run noise. actorId, actorType and
-- result stay unindexed: they are filtered while walking one of these.
CREATE INDEX audit_log_org_resource_idx
    ON audit_log (org_id, resource, resource_id, ts DESC, id DESC);
CREATE INDEX audit_log_org_action_idx
    ON audit_log (org_id, action, ts DESC, id DESC);
