-- 0004_audit_partner_site: per-partner audit chains, the site a row
-- concerns, and retention's own audit row (docs/audit-chain.md §1, §4, §6).
--
-- * Partner-level events (partner staff logins and failed logins,
--   partner-scoped user changes) have no organization. Until now they went
--   into the system chain, which is operator-only. They get a chain per
--   partner instead: audit_log.partner_id is set (org_id stays NULL) and
--   chain_id = coalesce(org_id, partner_id, nil UUID), so the chain id of a
--   partner chain is the partner id.
-- * audit_log.site_id names the site a row concerns (a device's, an
--   enrolment key's, or the site itself), so that readers limited to some
--   sites see only those sites' rows plus the organization-wide ones.
-- * Both new columns are hashed. A row that has either uses the canonical
--   form breeze-audit-v2 (v1 plus partner_id and site_id after org_id); a
--   row with both NULL — every row written before this migration, and the
--   system and most organization rows after it — keeps breeze-audit-v1
--   byte for byte, so old rows and old exports verify unchanged.
--
-- Nothing here fires audit_log's triggers; re-creating chain_id rewrites
-- the table once (below).

ALTER TABLE audit_log ADD COLUMN partner_id uuid;
ALTER TABLE audit_log ADD COLUMN site_id uuid;

-- chain_id was generated from org_id alone. PostgreSQL 15 cannot change a
-- generation expression in place, so the column is dropped and added again
-- with the partner in it: one rewrite of audit_log (ALTER TABLE rewrites
-- fire no row triggers) and the two per-chain unique indexes rebuilt. It
-- stays a pure function of the row, never something a writer supplies.
ALTER TABLE audit_log
    DROP CONSTRAINT audit_log_chain_seq_key,
    DROP CONSTRAINT audit_log_chain_prev_key,
    DROP COLUMN chain_id;
ALTER TABLE audit_log
    ADD COLUMN chain_id uuid NOT NULL GENERATED ALWAYS AS
        (coalesce(org_id, partner_id, '00000000-0000-0000-0000-000000000000'::uuid)) STORED;
ALTER TABLE audit_log
    ADD CONSTRAINT audit_log_chain_seq_key UNIQUE (chain_id, seq),
    ADD CONSTRAINT audit_log_chain_prev_key UNIQUE (chain_id, prev_checksum),
    -- An organization's row is in the organization's chain, never also a
    -- partner's; a site belongs to an organization.
    ADD CONSTRAINT audit_log_partner_check CHECK (org_id IS NULL OR partner_id IS NULL),
    ADD CONSTRAINT audit_log_site_check CHECK (site_id IS NULL OR org_id IS NOT NULL);

-- The canonical encoding breeze-audit-v2: v1's fields with partner_id and
-- site_id after org_id. Inlineable like audit_canonical (0002).
CREATE FUNCTION audit_canonical_v2(p_id bigint, p_org uuid, p_partner uuid, p_site uuid,
                                   p_seq bigint, p_ts timestamptz, p_actor_type text,
                                   p_actor_id text, p_action text, p_resource text,
                                   p_resource_id text, p_details text, p_ip text, p_result text,
                                   p_prev text) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN convert_to(
        audit_field('breeze-audit-v2') || audit_field(p_id::text) || audit_field(p_org::text) ||
        audit_field(p_partner::text) || audit_field(p_site::text) ||
        audit_field(p_seq::text) || audit_field(audit_ts_text(p_ts)) ||
        audit_field(p_actor_type) || audit_field(p_actor_id) || audit_field(p_action) ||
        audit_field(p_resource) || audit_field(p_resource_id) || audit_field(p_details) ||
        audit_field(p_ip) || audit_field(p_result) || audit_field(p_prev), 'UTF8');

CREATE OR REPLACE FUNCTION audit_row_checksum(r audit_log) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN encode(sha256(CASE WHEN r.partner_id IS NULL AND r.site_id IS NULL
        THEN audit_canonical(r.id, r.org_id, r.seq, r.ts, r.actor_type, r.actor_id, r.action,
                             r.resource, r.resource_id, r.details, r.ip_address, r.result,
                             r.prev_checksum)
        ELSE audit_canonical_v2(r.id, r.org_id, r.partner_id, r.site_id, r.seq, r.ts,
                                r.actor_type, r.actor_id, r.action, r.resource, r.resource_id,
                                r.details, r.ip_address, r.result, r.prev_checksum) END), 'hex');

-- The sealing trigger of 0002, with the chain taken from org_id or
-- partner_id and the v2 form for rows that carry partner_id or site_id.
-- Names are schema-qualified for the reasons given in 0002.
CREATE OR REPLACE FUNCTION audit_seal() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_chain pg_catalog.uuid := coalesce(NEW.org_id, NEW.partner_id,
                                        '00000000-0000-0000-0000-000000000000'::pg_catalog.uuid);
    v_seq pg_catalog.int8;
    v_prev pg_catalog.text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('breeze.audit_seal'), hashtext(v_chain::pg_catalog.text));
    SELECT seq, checksum INTO v_seq, v_prev FROM public.audit_chain_heads
     WHERE chain_id = v_chain FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO public.audit_chain_heads (chain_id, seq, checksum)
             VALUES (v_chain, 0, repeat('0', 64)) ON CONFLICT DO NOTHING;
        SELECT seq, checksum INTO v_seq, v_prev FROM public.audit_chain_heads
         WHERE chain_id = v_chain FOR UPDATE;
    END IF;
    NEW.id := pg_catalog.nextval('public.audit_log_id_seq'::pg_catalog.regclass);
    NEW.seq := v_seq + 1;
    NEW.prev_checksum := v_prev;
    NEW.ts := clock_timestamp();
    IF NEW.partner_id IS NULL AND NEW.site_id IS NULL THEN
        NEW.checksum := encode(sha256(public.audit_canonical(NEW.id, NEW.org_id, NEW.seq, NEW.ts,
            NEW.actor_type, NEW.actor_id, NEW.action, NEW.resource, NEW.resource_id, NEW.details,
            NEW.ip_address, NEW.result, NEW.prev_checksum)), 'hex');
    ELSE
        NEW.checksum := encode(sha256(public.audit_canonical_v2(NEW.id, NEW.org_id,
            NEW.partner_id, NEW.site_id, NEW.seq, NEW.ts, NEW.actor_type, NEW.actor_id,
            NEW.action, NEW.resource, NEW.resource_id, NEW.details, NEW.ip_address, NEW.result,
            NEW.prev_checksum)), 'hex');
    END IF;
    UPDATE public.audit_chain_heads SET seq = NEW.seq, checksum = NEW.checksum
     WHERE chain_id = v_chain;
    RETURN NEW;
END $$;

-- What the server's writer (src/server/audit/audit.c) derives for a row, so
-- that no caller has to pass it and no caller can forget it:
--
-- audit_try_uuid: TEXT as a uuid when it is spelled as one, else NULL (a
-- resource_id or actor_id need not be a uuid).
CREATE FUNCTION audit_try_uuid(t text) RETURNS uuid
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN t ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                THEN t::uuid END;

-- The partner chain of an event without an organization: the acting
-- user's partner when the actor is partner staff. Everything a partner
-- user does outside an organization concerns their partner; events of
-- organization users, agents, the system and unknown actors (a failed
-- login for an unknown e-mail) stay where org_id puts them.
CREATE FUNCTION audit_event_partner(p_org uuid, p_actor_type text, p_actor_id text) RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN CASE WHEN p_org IS NULL AND p_actor_type = 'user' THEN
        (SELECT u.partner_id FROM public.users u WHERE u.id = public.audit_try_uuid(p_actor_id))
    END;

-- The site an organization's event concerns: the site itself (resource
-- 'sites'), a device's or an enrolment key's site, else a "siteId" in the
-- details — only ever a site of that organization. NULL: the event
-- concerns no one site (organization-wide).
CREATE FUNCTION audit_event_site(p_org uuid, p_resource text, p_resource_id text,
                                 p_details text) RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN CASE WHEN p_org IS NOT NULL THEN
        (SELECT s.id FROM public.sites s
          WHERE s.org_id = p_org
            AND s.id = coalesce(
                CASE p_resource
                    WHEN 'sites' THEN public.audit_try_uuid(p_resource_id)
                    WHEN 'devices' THEN (SELECT d.site_id FROM public.devices d
                                          WHERE d.id = public.audit_try_uuid(p_resource_id))
                    WHEN 'enrollment_keys' THEN (SELECT k.site_id FROM public.enrollment_keys k
                                                  WHERE k.id = public.audit_try_uuid(p_resource_id))
                END,
                public.audit_try_uuid(p_details::jsonb ->> 'siteId')))
    END;

-- GET /api/v1/audit?partnerId= walks one partner chain newest first.
CREATE INDEX audit_log_partner_ts_idx ON audit_log (partner_id, ts DESC, id DESC)
    WHERE partner_id IS NOT NULL;

-- Retention appends an audit.pruned row to the chain it pruned, in the
-- same transaction (src/server/audit/retention.c). The sealing trigger
-- still computes everything; the role only gains INSERT (and the id
-- sequence, which the column default draws from before the trigger runs).
GRANT INSERT ON audit_log TO breeze_audit_admin;
GRANT USAGE ON SEQUENCE audit_log_id_seq TO breeze_audit_admin;
