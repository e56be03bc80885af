-- bench/metrics_query.sql — the metrics chart query at 30 days x 1-minute
-- data (docs/performance.md, "Metrics history"). Run on a throwaway
-- database migrated by this build, as its superuser or schema owner:
--
--   scripts/dev-services start /tmp/m && build/breeze-server migrate --env-file /tmp/m/breeze.env
--   psql "postgresql://postgres:...@127.0.0.1:PORT/breeze" -f bench/metrics_query.sql
--
-- Fills 100 devices x 30 days x 1440 samples (4.32 million rows, ~1.2 GB
-- with indexes; about a minute), then runs the statement of
-- agents_metrics_series() (src/server/agents/metrics.c) for one device,
-- EXPLAIN ANALYZE, nine times per range and bucket.
\set ON_ERROR_STOP 1
\timing on
SELECT sum(created) AS partitions FROM generate_series(0, 31) k,
       LATERAL device_metrics_maintain(now() - make_interval(days => k), 3, 3650);
CREATE TEMP TABLE devs AS
  SELECT CASE WHEN i = 1 THEN '00000000-0000-0000-0000-000000000001'::uuid
              ELSE gen_random_uuid() END AS id, gen_random_uuid() AS org
    FROM generate_series(1, 100) i;
INSERT INTO device_metrics (device_id, org_id, ts, cpu_percent, mem_used_bytes, mem_total_bytes,
                            disk_used_bytes, disk_total_bytes, load1, load5, load15)
SELECT d.id, d.org, t, random() * 100, (random() * 8e9)::bigint, 8000000000,
       (random() * 1e11)::bigint, 100000000000, random() * 4, random() * 4, random() * 4
  FROM generate_series(date_trunc('minute', now()) - interval '30 days' + interval '1 minute',
                       date_trunc('minute', now()), interval '1 minute') t, devs d;
VACUUM ANALYZE device_metrics;
\timing off
SELECT count(*) AS rows, count(DISTINCT tableoid) AS partitions FROM device_metrics;

PREPARE series(uuid, bigint, bigint, int) AS
SELECT extract(epoch FROM b)::bigint, count(*), avg(cpu_percent), max(cpu_percent),
       avg(mem), max(mem), avg(disk), max(disk), avg(load1), max(load1),
       avg(load5), max(load5), avg(load15), max(load15)
  FROM (SELECT date_bin(make_interval(secs => $4::int), m.ts, timestamptz 'epoch') AS b,
               m.cpu_percent, m.load1, m.load5, m.load15,
               100.0::float8 * m.mem_used_bytes
                   / CASE WHEN m.mem_total_bytes > 0 THEN m.mem_total_bytes END AS mem,
               100.0::float8 * m.disk_used_bytes
                   / CASE WHEN m.disk_total_bytes > 0 THEN m.disk_total_bytes END AS disk
          FROM device_metrics m
         WHERE m.device_id = $1::uuid
           AND m.ts >= to_timestamp($2::bigint) AND m.ts < to_timestamp($3::bigint)) s
 GROUP BY b ORDER BY b;

SELECT extract(epoch FROM date_trunc('minute', now()))::bigint + 60 AS t_end \gset
SELECT :t_end - 30 * 86400 AS t_30d, :t_end - 7 * 86400 AS t_7d, :t_end - 86400 AS t_1d \gset
\set dev '''00000000-0000-0000-0000-000000000001'''

\echo == one plan in full: 30 days, 1h buckets
EXPLAIN (ANALYZE, BUFFERS) EXECUTE series(:dev, :t_30d, :t_end, 3600);

\echo == 30 days, 1h buckets (720 points)
SELECT format('EXPLAIN (ANALYZE, TIMING OFF) EXECUTE series(%L, %s, %s, 3600)', :dev, :t_30d, :t_end)
  FROM generate_series(1, 9) \gexec
\echo == 30 days, 1d buckets
SELECT format('EXPLAIN (ANALYZE, TIMING OFF) EXECUTE series(%L, %s, %s, 86400)', :dev, :t_30d, :t_end)
  FROM generate_series(1, 9) \gexec
\echo == 7 days, 15m buckets (672 points)
SELECT format('EXPLAIN (ANALYZE, TIMING OFF) EXECUTE series(%L, %s, %s, 900)', :dev, :t_7d, :t_end)
  FROM generate_series(1, 9) \gexec
\echo == 1 day, 1m buckets (1440 points)
SELECT format('EXPLAIN (ANALYZE, TIMING OFF) EXECUTE series(%L, %s, %s, 60)', :dev, :t_1d, :t_end)
  FROM generate_series(1, 9) \gexec
