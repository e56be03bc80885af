-- 0018_webhook_fairness_retention: per-organization fairness of the
-- delivery queue, and audit retention over delivery payloads
-- (docs/webhooks.md, "Fairness" and "Retention").

-- The claim walks the organizations that have queued deliveries (one probe
-- each, a loose index scan), takes the oldest due delivery of each one
-- under its in-flight cap, and counts the deliveries being sent: one index
-- for the walk and the per-organization pick, a small one for the count.
CREATE INDEX webhook_deliveries_org_due_idx ON webhook_deliveries (org_id, next_attempt_at)
    WHERE status IN ('pending', 'delivering');
CREATE INDEX webhook_deliveries_inflight_idx ON webhook_deliveries (org_id)
    WHERE status = 'delivering';
-- The queue-wide index of 0014 is no longer the claim's: with it the
-- planner may pick an organization's oldest due row by walking every
-- organization's due rows in time order (measured with a 50,000-row
-- backlog of one organization: 49 ms per claim with it, 0.8 ms without).
-- What it served (the expiry of run-out leases) now walks
-- webhook_deliveries_inflight_idx.
DROP INDEX webhook_deliveries_due_idx;

-- Retention removes an organization's deliveries with the audit rows it
-- prunes (by audit_id) and its finished ones older than the cutoff.
CREATE INDEX webhook_deliveries_audit_idx ON webhook_deliveries (audit_id)
    WHERE audit_id IS NOT NULL;
CREATE INDEX webhook_deliveries_org_created_idx ON webhook_deliveries (org_id, created_at);

-- The retention run (breeze_audit_admin) deletes them in the transaction
-- that prunes the audit rows.
GRANT SELECT, DELETE ON webhook_deliveries TO breeze_audit_admin;

-- Copies of audit rows that retention pruned before this migration: a
-- payload never outlives its audit row.
DELETE FROM webhook_deliveries d
 WHERE d.audit_id IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.id = d.audit_id);
