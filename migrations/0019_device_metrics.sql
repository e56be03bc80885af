-- 0019_device_metrics: the metrics of every heartbeat as a time series
-- (device_metrics, range-partitioned by UTC day) and the announced liveness
-- of a device (devices.online) that the offline sweep flips.
-- docs/architecture.md ("Metrics history and liveness") explains both.

-- The last liveness announced by a device.offline / device.online audit
-- row: NULL = no heartbeat yet, true = online, false = offline. The
-- heartbeat sets NULL → true silently and false → true with a
-- device.online row; the sweep sets true → false with a device.offline row.
-- The devices list keeps computing its status from last_seen_at; this
-- column only makes each transition be announced exactly once.
ALTER TABLE devices ADD COLUMN online boolean;
UPDATE devices SET online = (last_seen_at > now() - make_interval(secs => 3 * heartbeat_interval_s))
 WHERE last_seen_at IS NOT NULL;

-- One row per heartbeat that carried metrics. ts is the server's receive
-- time (never the agent's claim), so no row lands far from today. Values
-- are what the agent reported (src/agent/client.c): CPU percent, memory and
-- disk bytes, load averages; NULL when a heartbeat left one out.
CREATE TABLE device_metrics (
    device_id        uuid NOT NULL,
    org_id           uuid NOT NULL,
    ts               timestamptz NOT NULL,
    cpu_percent      real,
    mem_used_bytes   bigint,
    mem_total_bytes  bigint,
    disk_used_bytes  bigint,
    disk_total_bytes bigint,
    load1            real,
    load5            real,
    load15           real
) PARTITION BY RANGE (ts);

-- Each partition gets its own (device_id, ts) index: a chart query reads one
-- device's rows of the days it asks for and nothing else. The metric columns
-- are INCLUDEd so that read is an index-only scan: a device's rows are
-- spread over the whole day's heap (every device writes every minute), one
-- heap page per row otherwise — 8x slower for 30 days x 1440 rows
-- (docs/performance.md). The price is an index about half the heap's size.
CREATE INDEX device_metrics_device_ts_idx ON device_metrics (device_id, ts)
    INCLUDE (cpu_percent, mem_used_bytes, mem_total_bytes, disk_used_bytes, disk_total_bytes,
             load1, load5, load15);

-- A heartbeat whose day has no partition yet (the maintenance did not run)
-- lands here instead of failing; the next maintenance run moves those rows
-- into their day's partition. Normally it stays empty: partitions are
-- created three days ahead (agents_metrics_maintain, src/server/agents/metrics.c).
CREATE TABLE device_metrics_default PARTITION OF device_metrics DEFAULT;

-- Partition maintenance: creates the partitions of the UTC days from
-- p_now's day to p_ahead days later, moves rows that the DEFAULT partition
-- holds into partitions of their own days, and drops the partitions of days
-- before p_now's day minus p_retention_days (DROP TABLE, never DELETE).
-- Returns (created, dropped, moved rows). Two concurrent calls (two serve
-- instances, serve and the CLI) are serialized by a transaction advisory
-- lock; the second one finds nothing to do. Idempotent.
--
-- SECURITY DEFINER, owned by the schema owner: breeze_app may only EXECUTE
-- this function and INSERT/SELECT device_metrics — it owns no table and
-- cannot create or drop anything else. The worst a stolen breeze_app
-- credential can do through it is to drop metrics history early (with a
-- p_now in the future); it can never touch another table. p_now comes from
-- the server's clock (bz_now(), so tests can move it), hence a parameter.
CREATE FUNCTION device_metrics_maintain(p_now timestamptz, p_ahead integer,
                                        p_retention_days integer,
                                        OUT created integer, OUT dropped integer,
                                        OUT moved bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    SET lock_timeout = '10s' AS $$
DECLARE
    today date := (p_now AT TIME ZONE 'UTC')::date;
    day   date;
    name  text;
    n     bigint;
    r     record;
BEGIN
    created := 0; dropped := 0; moved := 0;
    IF p_now IS NULL OR p_ahead IS NULL OR p_ahead NOT BETWEEN 0 AND 31
       OR p_retention_days IS NULL OR p_retention_days NOT BETWEEN 1 AND 3650 THEN
        RAISE EXCEPTION 'device_metrics_maintain: bad arguments' USING ERRCODE = '22023';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('breeze.device_metrics_maintain'));
    -- The days to have: ahead of today, and every day the DEFAULT holds.
    FOR day IN
        SELECT g::date FROM generate_series(today, today + p_ahead, interval '1 day') g
        UNION
        SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date FROM public.device_metrics_default
        ORDER BY 1
    LOOP
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

-- Today's partitions and a few days ahead exist from the start.
SELECT device_metrics_maintain(now(), 3, 3650);

REVOKE ALL ON FUNCTION device_metrics_maintain(timestamptz, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION device_metrics_maintain(timestamptz, integer, integer) TO breeze_app;
GRANT SELECT, INSERT ON device_metrics TO breeze_app;
