-- bench/audit_deferred_variant.sql — the design NOT chosen, kept so the
-- comparison in docs/audit-chain.md ("Measurements") can be re-run.
--
-- Deferred sealing: rows are inserted unsealed, and a DEFERRABLE INITIALLY
-- DEFERRED constraint trigger seals each one at commit under a per-chain
-- advisory lock (held from the deferred trigger to the end of the commit),
-- writing the row a second time. Created in a scratch table
-- bench_deferred_log with the same columns and canonical form as
-- audit_log; load it into a throwaway database after the migrations:
--   psql "$MIGRATION_DATABASE_URL" -f bench/audit_deferred_variant.sql
-- then run: AUDIT_BENCH_TABLE=bench_deferred_log build/bench_audit_append …

CREATE TABLE bench_deferred_log (
    id bigserial PRIMARY KEY, org_id uuid,
    chain_id uuid GENERATED ALWAYS AS
        (coalesce(org_id, '00000000-0000-0000-0000-000000000000'::uuid)) STORED,
    seq bigint, ts timestamptz, actor_type text NOT NULL, actor_id text, action text NOT NULL,
    resource text NOT NULL, resource_id text, details text NOT NULL DEFAULT '{}',
    ip_address text, result text NOT NULL DEFAULT 'success', checksum text, prev_checksum text,
    UNIQUE (chain_id, seq), UNIQUE (chain_id, prev_checksum));
-- The same secondary indexes and checks as audit_log, so the comparison is
-- of the sealing design only (the per-row link trigger cannot exist here:
-- seq is unknown until commit).
CREATE INDEX ON bench_deferred_log (org_id, ts DESC, id DESC);
CREATE INDEX ON bench_deferred_log (org_id, resource, resource_id, ts DESC, id DESC);
CREATE INDEX ON bench_deferred_log (org_id, action, ts DESC, id DESC);
ALTER TABLE bench_deferred_log ADD CHECK (details::jsonb IS NOT NULL),
    ADD CHECK (ip_address IS NULL OR host(ip_address::inet) = ip_address);
CREATE TABLE bench_deferred_heads (chain_id uuid PRIMARY KEY, seq bigint NOT NULL, checksum text NOT NULL);

CREATE FUNCTION bench_deferred_seal() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_seq bigint; v_prev text; v_ts timestamptz := clock_timestamp(); v_sum text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(NEW.chain_id::text, 7314));
    SELECT seq, checksum INTO v_seq, v_prev FROM bench_deferred_heads WHERE chain_id = NEW.chain_id;
    IF NOT FOUND THEN
        v_seq := 0; v_prev := repeat('0', 64);
        INSERT INTO bench_deferred_heads VALUES (NEW.chain_id, 0, v_prev);
    END IF;
    v_sum := encode(sha256(audit_canonical(NEW.id, NEW.org_id, v_seq + 1, v_ts, NEW.actor_type,
        NEW.actor_id, NEW.action, NEW.resource, NEW.resource_id, NEW.details, NEW.ip_address,
        NEW.result, v_prev)), 'hex');
    UPDATE bench_deferred_log SET seq = v_seq + 1, ts = v_ts, prev_checksum = v_prev, checksum = v_sum
     WHERE id = NEW.id;
    UPDATE bench_deferred_heads SET seq = v_seq + 1, checksum = v_sum WHERE chain_id = NEW.chain_id;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER bench_deferred_seal AFTER INSERT ON bench_deferred_log
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bench_deferred_seal();

GRANT SELECT, INSERT ON bench_deferred_log TO breeze_app;
GRANT USAGE ON SEQUENCE bench_deferred_log_id_seq TO breeze_app;
