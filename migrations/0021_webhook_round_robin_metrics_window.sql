-- 0021_webhook_round_robin_metrics_window: round-robin of the webhook claim
-- over organizations (docs/webhooks.md, "Fairness"), and partition
-- maintenance of device_metrics that no single row can break
-- (docs/architecture.md, "Metrics history and liveness").

-- When the claim last served each organization (clock_timestamp() of the
-- claim that took one of its deliveries). The claim takes the eligible
-- organization served longest ago first (never served: first of all), so a
-- tenant with a fresh delivery waits for one attempt per organization
-- ahead of it, not for another tenant's whole backlog. One row per
-- organization that ever had a delivery claimed; it goes with the
-- organization.
CREATE TABLE webhook_org_claims (
    org_id          uuid PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
    last_claimed_at timestamptz NOT NULL
);
GRANT SELECT, INSERT, UPDATE ON webhook_org_claims TO breeze_app;

-- device_metrics_maintain skips (and counts) the days it cannot give a
-- partition: the DEFAULT partition may hold a row at ts 'infinity',
-- '-infinity' or beyond the year 9999 (breeze_app may INSERT any ts), whose
-- day has no YYYYMMDD name or no next day. Before, one such row made every
-- later run raise: no partition ahead, no retention. Such rows stay in the
-- DEFAULT (an owner may delete them); each run says how many days it
-- skipped (the skipped column and a NOTICE). Only days from 2000-01-01 to
-- 9999-12-30 are partitioned: the heartbeat stamps ts with the server's
-- clock, so a real row is never outside them.
--
-- No CHECK on device_metrics.ts: an INSERT of such a row by breeze_app
-- keeps succeeding (tests/api/test_attack_hbm.py inserts one and expects
-- maintenance to go on), and once maintenance skips their days the rows a
-- CHECK would refuse are harmless.
DROP FUNCTION device_metrics_maintain(timestamptz, integer, integer);
CREATE FUNCTION device_metrics_maintain(p_now timestamptz, p_ahead integer,
                                        p_retention_days integer,
                                        OUT created integer, OUT dropped integer,
                                        OUT moved bigint, OUT skipped integer)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    SET lock_timeout = '10s' AS $$
DECLARE
    today date;
    day   date;
    name  text;
    n     bigint;
    r     record;
BEGIN
    created := 0; dropped := 0; moved := 0; skipped := 0;
    IF p_now IS NULL OR NOT isfinite(p_now) OR p_ahead IS NULL OR p_ahead NOT BETWEEN 0 AND 31
       OR p_retention_days IS NULL OR p_retention_days NOT BETWEEN 1 AND 3650
       OR p_now < timestamptz '2000-01-01 00:00:00+00'
       OR p_now >= timestamptz '9999-12-01 00:00:00+00' THEN
        RAISE EXCEPTION 'device_metrics_maintain: bad arguments' USING ERRCODE = '22023';
    END IF;
    today := (p_now AT TIME ZONE 'UTC')::date;
    PERFORM pg_advisory_xact_lock(hashtext('breeze.device_metrics_maintain'));
    -- The days to have: ahead of today, and every day the DEFAULT holds.
    FOR day IN
        SELECT g::date FROM generate_series(today, today + p_ahead, interval '1 day') g
        UNION
        SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date FROM public.device_metrics_default
        ORDER BY 1
    LOOP
        IF day IS NULL OR NOT isfinite(day) OR day < date '2000-01-01'
           OR day > date '9999-12-30' THEN
            skipped := skipped + 1;
            CONTINUE;
        END IF;
        name := 'device_metrics_p' || to_char(day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass('public.' || name) IS NOT NULL;
        -- A partition whose range the DEFAULT holds rows of cannot be
        -- created in place: build it beside, move the rows, attach it.
        EXECUTE format('CREATE TABLE public.%I (LIKE public.device_metrics)', name);
        EXECUTE format('WITH m AS (DELETE FROM public.device_metrics_default'
                       ' WHERE ts >= $1 AND ts < $2 RETURNING *)'
                       ' INSERT INTO public.%I SELECT * FROM m', name)
            USING (day::timestamp AT TIME ZONE 'UTC'), ((day + 1)::timestamp AT TIME ZONE 'UTC');
        GET DIAGNOSTICS n = ROW_COUNT;
        moved := moved + n;
        EXECUTE format('ALTER TABLE public.device_metrics ATTACH PARTITION public.%I'
                       ' FOR VALUES FROM (%L) TO (%L)', name,
                       (day::timestamp AT TIME ZONE 'UTC'),
                       ((day + 1)::timestamp AT TIME ZONE 'UTC'));
        created := created + 1;
    END LOOP;
    IF skipped > 0 THEN
        RAISE NOTICE 'device_metrics_maintain: % day(s) of the DEFAULT partition skipped'
                     ' (outside 2000-01-01..9999-12-30)', skipped;
    END IF;
    FOR r IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'public.device_metrics'::regclass
           AND c.relname ~ '^device_metrics_p[0-9]{8}$'
           AND to_date(substr(c.relname, 17), 'YYYYMMDD') < today - p_retention_days
         ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE public.%I', r.relname);
        dropped := dropped + 1;
    END LOOP;
END $$;

REVOKE ALL ON FUNCTION device_metrics_maintain(timestamptz, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION device_metrics_maintain(timestamptz, integer, integer) TO breeze_app;
