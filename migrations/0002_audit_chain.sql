-- 0002_audit_chain: the tamper-evident audit log (checklist L1–L5).
--
-- * Every row is sealed into its organization's hash chain by a BEFORE
--   INSERT trigger: seq, ts, prev_checksum and checksum are computed here,
--   whatever the client sent (docs/audit-chain.md gives the encoding).
-- * Serialization is per chain only: the trigger locks that chain's head row
--   in audit_chain_heads until the transaction ends. Different
--   organizations never wait for each other. Writers put the audit row last
--   in their transaction, so the lock is held for the commit only.
-- * Append-only: UPDATE and DELETE are refused for everyone, superusers
--   included; TRUNCATE always. The one exception is retention pruning
--   (L5): role breeze_audit_admin with breeze.allow_audit_retention = '1',
--   deleting only the oldest run of one chain, after recording an anchor.

-- Length-prefixed field: NULL is "N", a value is "S<bytes>:<value>,".
-- The volatility labels matter: they let the planner inline these SQL
-- functions into the sealing trigger (about 100x faster than calling them).
CREATE FUNCTION audit_field(v text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN v IS NULL THEN 'N' ELSE 'S' || octet_length(v)::text || ':' || v || ',' END;

-- The timestamp as hashed: UTC, microseconds, independent of the session's
-- TimeZone, DateStyle and locale.
CREATE FUNCTION audit_ts_text(t timestamptz) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');

-- The canonical encoding of a row (format breeze-audit-v1) and its checksum.
CREATE FUNCTION audit_canonical(p_id bigint, p_org uuid, p_seq bigint, p_ts timestamptz,
                                p_actor_type text, p_actor_id text, p_action text,
                                p_resource text, p_resource_id text, p_details text,
                                p_ip text, p_result text, p_prev text) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN convert_to(
        audit_field('breeze-audit-v1') || audit_field(p_id::text) || audit_field(p_org::text) ||
        audit_field(p_seq::text) || audit_field(audit_ts_text(p_ts)) ||
        audit_field(p_actor_type) || audit_field(p_actor_id) || audit_field(p_action) ||
        audit_field(p_resource) || audit_field(p_resource_id) || audit_field(p_details) ||
        audit_field(p_ip) || audit_field(p_result) || audit_field(p_prev), 'UTF8');

CREATE FUNCTION audit_row_checksum(r audit_log) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN encode(sha256(audit_canonical(r.id, r.org_id, r.seq, r.ts, r.actor_type, r.actor_id,
                                         r.action, r.resource, r.resource_id, r.details,
                                         r.ip_address, r.result, r.prev_checksum)), 'hex');

-- Head of each chain: the last sealed position and checksum. Only the
-- sealing trigger (SECURITY DEFINER, owned by the schema owner) writes it.
--
-- The two SECURITY DEFINER functions below name every relation and function
-- with its schema instead of pinning search_path with a SET clause: a SET
-- clause saves and restores configuration on every call, which cost ~15 %
-- of append throughput (docs/audit-chain.md). Operators and built-in
-- functions resolve in pg_catalog, which is searched before anything a
-- caller could create (breeze_app cannot create schemas or objects in
-- public, and pg_temp is never searched for functions or operators); the
-- variables' types are schema-qualified too, since pg_temp is searched for
-- types; SQL-standard function bodies are bound at creation time.
CREATE TABLE audit_chain_heads (
    chain_id  uuid PRIMARY KEY,
    seq       bigint NOT NULL,
    checksum  text NOT NULL
);

CREATE FUNCTION audit_seal() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_chain pg_catalog.uuid := coalesce(NEW.org_id, '00000000-0000-0000-0000-000000000000'::pg_catalog.uuid);
    v_seq pg_catalog.int8;
    v_prev pg_catalog.text;
BEGIN
    -- Writers of one chain queue on a transaction-level advisory lock first:
    -- its wait queue hands the lock straight to the next writer at commit,
    -- where waiters on the row lock alone wake and retry (~30 % more
    -- single-organization throughput for BEGIN;INSERT;COMMIT writers,
    -- docs/audit-chain.md). The row lock below is then uncontended and keeps
    -- the head consistent for anyone reading it.
    PERFORM pg_advisory_xact_lock(hashtext('breeze.audit_seal'), hashtext(v_chain::pg_catalog.text));
    SELECT seq, checksum INTO v_seq, v_prev FROM public.audit_chain_heads
     WHERE chain_id = v_chain FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO public.audit_chain_heads (chain_id, seq, checksum)
             VALUES (v_chain, 0, repeat('0', 64)) ON CONFLICT DO NOTHING;
        SELECT seq, checksum INTO v_seq, v_prev FROM public.audit_chain_heads
         WHERE chain_id = v_chain FOR UPDATE;
    END IF;
    -- Every unique key of the row (id; chain_id+seq; chain_id+prev_checksum)
    -- is set here, fresh, so no INSERT … ON CONFLICT can find a conflict
    -- and skip the row after the head has moved.
    NEW.id := pg_catalog.nextval('public.audit_log_id_seq'::pg_catalog.regclass);
    NEW.seq := v_seq + 1;
    NEW.prev_checksum := v_prev;
    NEW.ts := clock_timestamp();
    NEW.checksum := encode(sha256(public.audit_canonical(NEW.id, NEW.org_id, NEW.seq, NEW.ts,
        NEW.actor_type, NEW.actor_id, NEW.action, NEW.resource, NEW.resource_id, NEW.details,
        NEW.ip_address, NEW.result, NEW.prev_checksum)), 'hex');
    UPDATE public.audit_chain_heads SET seq = NEW.seq, checksum = NEW.checksum
     WHERE chain_id = v_chain;
    RETURN NEW;
END $$;

CREATE TRIGGER audit_log_seal BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_seal();

-- Where a chain starts after retention pruning (L5): the first surviving
-- position and the checksum of the last pruned row, so verification after
-- pruning still checks the first surviving link. Append-only.
CREATE TABLE audit_anchors (
    id               bigserial PRIMARY KEY,
    chain_id         uuid NOT NULL,
    first_seq        bigint NOT NULL CHECK (first_seq > 1),
    prev_checksum    text NOT NULL CHECK (prev_checksum ~ '^[0-9a-f]{64}$'),
    pruned_rows      bigint NOT NULL CHECK (pruned_rows > 0),
    pruned_before    timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_txid     bigint NOT NULL DEFAULT txid_current(),
    public_key       text,
    signature        text,
    UNIQUE (chain_id, first_seq)
);

-- Signed chain heads (L4): detect deletion of the newest rows, which a
-- hash chain alone cannot. Append-only.
CREATE TABLE audit_checkpoints (
    id          bigserial PRIMARY KEY,
    chain_id    uuid NOT NULL,
    seq         bigint NOT NULL CHECK (seq >= 1),
    checksum    text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    public_key  text NOT NULL CHECK (public_key ~ '^[0-9a-f]{64}$'),
    signature   text NOT NULL CHECK (signature ~ '^[0-9a-f]{128}$')
);
CREATE INDEX audit_checkpoints_chain_idx ON audit_checkpoints (chain_id, seq DESC);

-- A sealed row must follow its predecessor (or the chain's latest anchor):
-- a constraint, checked per row, on top of what audit_seal computed, so no
-- writer can leave a gap.
CREATE FUNCTION audit_check_link() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF NEW.seq = 1 THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM public.audit_log WHERE chain_id = NEW.chain_id AND seq = NEW.seq - 1
                                         AND checksum = NEW.prev_checksum) THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM public.audit_anchors WHERE chain_id = NEW.chain_id
                  AND first_seq = NEW.seq AND prev_checksum = NEW.prev_checksum) THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit_log: row % of chain % does not link to its predecessor', NEW.seq, NEW.chain_id
        USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE CONSTRAINT TRIGGER audit_log_link AFTER INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_check_link();

-- Append-only enforcement (L3).
CREATE FUNCTION audit_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_log'
       AND current_user = 'breeze_audit_admin'
       AND current_setting('breeze.allow_audit_retention', true) = '1' THEN
        RETURN OLD;   -- retention; audit_check_prune() checks the whole statement
    END IF;
    RAISE EXCEPTION '%: % is not allowed: the audit log is append-only', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Retention pruning runs as breeze_audit_admin with breeze.allow_audit_retention = ''1''.';
END $$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_anchors_append_only BEFORE UPDATE OR DELETE ON audit_anchors
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_anchors_no_truncate BEFORE TRUNCATE ON audit_anchors
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- A retention DELETE may remove only the oldest contiguous run of each
-- chain it touches, never the head, and only after an anchor for the new
-- start was recorded in the same transaction.
CREATE FUNCTION audit_check_prune() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT chain_id, max(seq) AS last_seq, count(*) AS n FROM pruned GROUP BY chain_id LOOP
        IF EXISTS (SELECT 1 FROM public.audit_log WHERE chain_id = c.chain_id AND seq < c.last_seq) THEN
            RAISE EXCEPTION 'audit retention: only the oldest rows of a chain may be pruned'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM public.audit_log WHERE chain_id = c.chain_id AND seq > c.last_seq) THEN
            RAISE EXCEPTION 'audit retention: the head of a chain may not be pruned'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM public.audit_anchors a JOIN pruned p
                         ON p.chain_id = a.chain_id AND p.seq = c.last_seq
                      WHERE a.chain_id = c.chain_id AND a.first_seq = c.last_seq + 1
                        AND a.prev_checksum = p.checksum
                        AND a.created_txid = txid_current()) THEN
            RAISE EXCEPTION 'audit retention: record an anchor for chain % before pruning', c.chain_id
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER audit_log_prune_check AFTER DELETE ON audit_log
    REFERENCING OLD TABLE AS pruned
    FOR EACH STATEMENT EXECUTE FUNCTION audit_check_prune();

-- An anchor must describe a prune that happened: at commit, the chain's
-- first surviving row is at first_seq and links to the anchor. (An anchor
-- on its own would make verification report a permanent false break.)
CREATE FUNCTION audit_check_anchor() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM public.audit_log WHERE chain_id = NEW.chain_id
                  AND seq = NEW.first_seq AND prev_checksum = NEW.prev_checksum)
       AND NOT EXISTS (SELECT 1 FROM public.audit_log WHERE chain_id = NEW.chain_id
                          AND seq < NEW.first_seq) THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit_anchors: anchor at % of chain % does not match a prune of that chain',
        NEW.first_seq, NEW.chain_id USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE CONSTRAINT TRIGGER audit_anchors_match_prune AFTER INSERT ON audit_anchors
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_check_anchor();

-- Functions running with the caller's rights resolve unqualified names in
-- the caller's search path, where pg_temp comes first; the roles that touch
-- the audit tables get no temporary tables at all. (REVOKE needs the
-- database owner; elsewhere it is a warning, and `breeze-server check`
-- reports the privilege.)
DO $$
BEGIN
    EXECUTE pg_catalog.format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', pg_catalog.current_database());
END $$;

-- Privileges (L3): the application inserts and reads; it cannot touch heads.
REVOKE ALL ON audit_log, audit_chain_heads, audit_anchors, audit_checkpoints FROM PUBLIC;
GRANT SELECT, INSERT ON audit_log TO breeze_app;
GRANT USAGE ON SEQUENCE audit_log_id_seq TO breeze_app;
GRANT SELECT ON audit_anchors TO breeze_app;
GRANT SELECT, INSERT ON audit_checkpoints TO breeze_app;
GRANT USAGE ON SEQUENCE audit_checkpoints_id_seq TO breeze_app;
GRANT SELECT ON audit_chain_heads TO breeze_app;
-- Retention: breeze_audit_admin reads, deletes (as the triggers allow) and
-- records anchors. breeze_app is never granted this role.
GRANT SELECT, DELETE ON audit_log TO breeze_audit_admin;
GRANT SELECT, INSERT ON audit_anchors TO breeze_audit_admin;
GRANT USAGE ON SEQUENCE audit_anchors_id_seq TO breeze_audit_admin;
GRANT SELECT ON audit_checkpoints, audit_chain_heads TO breeze_audit_admin;
GRANT SELECT ON organizations TO breeze_audit_admin;
