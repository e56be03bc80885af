-- 0014_webhooks: webhooks per organization and their durable delivery queue
-- (docs/webhooks.md). Deliveries are queued by a trigger on audit_log, so
-- every event is queued in the transaction that writes its audit row, by
-- every writer; the delivery worker in `serve` sends them through the SSRF
-- guard (src/server/outbound/).

-- secret_enc is the signing secret sealed with AES-256-GCM under
-- APP_ENCRYPTION_KEY (crypto/aead.h "v1:…" form) with associated data
-- "webhooks.secret:<id>": a ciphertext copied to another row does not open.
CREATE TABLE webhooks (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id),
    url         text NOT NULL CHECK (length(url) BETWEEN 8 AND 2048),
    events      text[] NOT NULL CHECK (cardinality(events) BETWEEN 1 AND 64),
    enabled     boolean NOT NULL DEFAULT true,
    secret_enc  text NOT NULL CHECK (secret_enc LIKE 'v1:%'),
    created_by  uuid REFERENCES users(id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
CREATE INDEX webhooks_org_idx ON webhooks (org_id, created_at DESC) WHERE deleted_at IS NULL;

-- One row per event and webhook. audit_id names the audit row (no foreign
-- key: retention may prune the row; the payload keeps its public fields).
-- A claimed row is 'delivering' with next_attempt_at as its lease and
-- lease_id naming the claim: a worker that crashed lets the lease run out
-- and the row is claimed again (at-least-once); a late answer of an
-- expired claim changes nothing.
CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    webhook_id      uuid NOT NULL REFERENCES webhooks(id),
    org_id          uuid NOT NULL REFERENCES organizations(id),
    audit_id        bigint,
    event           text NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivering', 'delivered', 'failed')),
    attempts        int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_id        uuid,
    last_error      text,
    last_status     int,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'delivering');
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, created_at DESC, id DESC);

-- Queues a delivery for every enabled webhook of the row's organization
-- subscribed to its action ("*" = all). outbound.* and webhook.* are never
-- delivered (a refused delivery is audited outbound.blocked: no loops).
-- SECURITY DEFINER so that every writer of audit_log (breeze_app, the
-- retention role) can queue; names are schema-qualified as in audit_seal.
CREATE FUNCTION webhook_enqueue() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    INSERT INTO public.webhook_deliveries (webhook_id, org_id, audit_id, event, payload)
    SELECT w.id, NEW.org_id, NEW.id, NEW.action,
           pg_catalog.jsonb_build_object(
               'auditId', NEW.id, 'action', NEW.action, 'ts',
               pg_catalog.to_char(NEW.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'actorType', NEW.actor_type, 'actorId', NEW.actor_id,
               'resource', NEW.resource, 'resourceId', NEW.resource_id,
               'result', NEW.result, 'siteId', NEW.site_id,
               'details', NEW.details::pg_catalog.jsonb)
      FROM public.webhooks w
     WHERE w.org_id = NEW.org_id AND w.enabled AND w.deleted_at IS NULL
       AND (NEW.action = ANY (w.events) OR '*' = ANY (w.events));
    RETURN NULL;
END $$;

CREATE TRIGGER audit_log_webhooks AFTER INSERT ON audit_log
    FOR EACH ROW
    WHEN (NEW.org_id IS NOT NULL AND NEW.action NOT LIKE 'outbound.%'
          AND NEW.action NOT LIKE 'webhook.%')
    EXECUTE FUNCTION webhook_enqueue();

GRANT SELECT, INSERT, UPDATE ON webhooks, webhook_deliveries TO breeze_app;

-- Who manages webhooks: administrators write, every role that sees an
-- organization's configuration reads.
UPDATE roles SET permissions = permissions || ARRAY['webhooks:read','webhooks:write']
 WHERE name IN ('partner_admin', 'org_admin') AND builtin;
UPDATE roles SET permissions = permissions || ARRAY['webhooks:read']
 WHERE name IN ('partner_technician', 'partner_viewer', 'org_technician', 'org_viewer') AND builtin;
