-- 0018_webhook_fairness_retention: per-organization fairness of the
-- delivery queue, and audit retention over delivery payloads
-- (docs/webhooks.md, "Fairness" and "Retention").

-- The claim picks the oldest due delivery of each organization that is
-- under its in-flight cap (DISTINCT ON org_id ORDER BY org_id,
-- next_attempt_at) and counts each organization's live leases: both walk
-- this index instead of the whole queue.
CREATE INDEX webhook_deliveries_org_due_idx ON webhook_deliveries (org_id, next_attempt_at)
    WHERE status IN ('pending', 'delivering');

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
