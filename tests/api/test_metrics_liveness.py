"""Metrics history and liveness (migration 0019): the device_metrics time
series and its day partitions (created ahead, a DEFAULT partition for the
rest, dropped past METRICS_RETENTION_DAYS), GET /api/v1/devices/:id/metrics,
and the offline sweep / back-online transition with their audit rows."""
import datetime as dt
import subprocess
import threading
import time
import uuid

import pytest

from conftest import SERVER_BIN, SLOW, assert_error, sanitizer_findings, server_env

DAY = 86400
INTERVAL = 5  # HEARTBEAT_INTERVAL_SECONDS of the test servers


def utc_day(offset_days=0):
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=offset_days)).date()


def part_name(day):
    return "device_metrics_p" + day.strftime("%Y%m%d")


def partitions(sql):
    return {r[0] for r in sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'device_metrics'::regclass")}


def maintain(services, **env):
    """`breeze-server maintain` with the test servers' environment (and clock)."""
    e = server_env(services.env, **env)
    p = subprocess.run([str(SERVER_BIN), "maintain"], env=e, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=120 * SLOW)
    found = sanitizer_findings(p.stderr)
    assert not found, "sanitizer report from maintain:\n" + "\n".join(found[:20])
    assert p.returncode == 0, f"maintain failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def audit_count(sql, device_id, action):
    (n,), = sql("SELECT count(*) FROM audit_log WHERE resource = 'devices'"
                " AND resource_id = %s AND action = %s", device_id, action)
    return n


# --------------------------------------------------------------------------- partitions


def test_partitions_exist_ahead_with_device_index(server, sql):
    """serve's worker runs the maintenance at start: today and 3 days ahead."""
    have = partitions(sql)
    for k in range(4):
        assert part_name(utc_day(k)) in have
    assert "device_metrics_default" in have
    idx = sql("SELECT indexdef FROM pg_indexes WHERE tablename = %s", part_name(utc_day()))
    assert any("(device_id, ts)" in i for (i,) in idx), idx


def test_heartbeat_writes_a_metrics_row(agents, sql):
    d = agents.new_device()
    assert agents.heartbeat(d["agentId"], d["authToken"]).status_code == 200
    rows = sql("SELECT org_id::text, cpu_percent, mem_used_bytes, mem_total_bytes, disk_used_bytes,"
               " disk_total_bytes, load1, load5, load15, tableoid::regclass::text"
               " FROM device_metrics WHERE device_id = %s", d["agentId"])
    assert len(rows) == 1
    org, cpu, mu, mt, du, dtot, l1, l5, l15, part = rows[0]
    assert [(org,)] == sql("SELECT org_id::text FROM devices WHERE id = %s", d["agentId"])
    assert (cpu, mu, mt, du, dtot) == (12.5, 2 << 30, 8 << 30, 40 << 30, 100 << 30)
    assert (round(l1, 3), round(l5, 3), round(l15, 3)) == (0.5, 0.4, 0.3)
    assert part == part_name(utc_day())
    # No metrics, no row; odd metrics do not fail the heartbeat.
    assert agents.heartbeat(d["agentId"], d["authToken"], metrics={}).status_code == 200
    assert agents.heartbeat(d["agentId"], d["authToken"],
                            metrics={"cpuPercent": 1e15, "load1": -2}).status_code == 200
    (n,), = sql("SELECT count(*) FROM device_metrics WHERE device_id = %s", d["agentId"])
    assert n == 2


def test_heartbeat_without_partition_lands_in_default_then_moves(agents, sql, services, clock):
    """Ten days ahead there is no partition yet: the heartbeat still
    succeeds (DEFAULT partition), and the next maintenance moves the row into
    its own day's partition."""
    d = agents.new_device()
    clock.advance(10 * DAY)
    day = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=clock.offset)).date()
    if part_name(day) in partitions(sql):
        pytest.skip("a partition ten days ahead already exists (earlier run)")
    assert agents.heartbeat(d["agentId"], d["authToken"]).status_code == 200
    (part,), = sql("SELECT tableoid::regclass::text FROM device_metrics WHERE device_id = %s",
                   d["agentId"])
    assert part == "device_metrics_default"
    out = maintain(services)
    assert "rows moved" in out
    (part,), = sql("SELECT tableoid::regclass::text FROM device_metrics WHERE device_id = %s",
                   d["agentId"])
    assert part == part_name(day)
    assert part_name(day + dt.timedelta(days=3)) in partitions(sql)
    (n,), = sql("SELECT count(*) FROM device_metrics_default WHERE device_id = %s", d["agentId"])
    assert n == 0
    # Idempotent: a second run creates nothing.
    assert "0 created" in maintain(services)


def test_partitions_past_retention_are_dropped(sql, services, clock):
    """Partitions made 40 days ago are dropped (whole tables) by a run today
    with a 30-day retention; today's and younger ones stay."""
    clock.set_offset(-40 * DAY)
    maintain(services)
    old = [part_name(utc_day(-40 + k)) for k in range(4)]
    assert set(old) <= partitions(sql)
    clock.set_offset(0)
    out = maintain(services, METRICS_RETENTION_DAYS=30)
    assert "retention 30 days" in out
    have = partitions(sql)
    assert not set(old) & have
    assert part_name(utc_day()) in have and part_name(utc_day(3)) in have
    assert "0 dropped" in maintain(services, METRICS_RETENTION_DAYS=30)


def test_maintenance_skips_and_counts_days_it_cannot_partition(sql, services):
    """Rows at ts infinity / -infinity / beyond the year 9999 stay in the
    DEFAULT: each run skips (and counts) their days instead of raising, and
    still creates the partitions ahead (migration 0021)."""
    dev = str(uuid.uuid4())
    sql("INSERT INTO device_metrics (device_id, org_id, ts, cpu_percent) SELECT %s, %s,"
        " t::timestamptz, 1 FROM unnest(ARRAY['infinity', '-infinity',"
        " '12000-01-01 00:00:00+00']) t", dev, str(uuid.uuid4()))
    try:
        [(created, skipped)] = sql("SELECT created, skipped"
                                   " FROM device_metrics_maintain(now(), 3, 3650)")
        assert skipped == 3 and created >= 0
        assert "3 day(s) of the default partition skipped" in maintain(services)
        assert part_name(utc_day(3)) in partitions(sql)
        (n,), = sql("SELECT count(*) FROM device_metrics_default WHERE device_id = %s", dev)
        assert n == 3
    finally:
        sql("DELETE FROM device_metrics_default WHERE device_id = %s", dev)


def test_maintenance_rejected_arguments(sql):
    with pytest.raises(Exception):
        sql("SELECT device_metrics_maintain(now(), 3, 0)")


def test_app_role_cannot_drop_partitions(audit):
    """breeze_app owns nothing of device_metrics: it may only insert, select
    and run the maintenance function."""
    conn = audit.connect("app")
    try:
        with conn.cursor() as cur:
            with pytest.raises(Exception):
                cur.execute("DROP TABLE device_metrics_default")
        with conn.cursor() as cur:
            with pytest.raises(Exception):
                cur.execute("DELETE FROM device_metrics")
    finally:
        conn.close()


# --------------------------------------------------------------------------- the API


@pytest.fixture(scope="module")
def series(agents, tenants, sql):
    """A device of tenant A with known samples two days ago (no partition:
    they sit in the DEFAULT partition, which the query reads too)."""
    d = agents.new_device(org_id=tenants.a.id, site_id=tenants.a.site_id)
    now = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    base = now - dt.timedelta(days=2)
    samples = [  # seconds after base, cpu, mem used of 4, disk used of 10, load1
        (0, 10.0, 1, 2, 1.0),
        (30, 30.0, 3, 4, 3.0),
        (60, 50.0, 2, 6, 5.0),
        (400, 70.0, None, 8, 7.0),
    ]
    for off, cpu, mem, disk, load in samples:
        sql("INSERT INTO device_metrics (device_id, org_id, ts, cpu_percent, mem_used_bytes,"
            " mem_total_bytes, disk_used_bytes, disk_total_bytes, load1, load5, load15)"
            " VALUES (%s, %s, %s, %s, %s, 4, %s, 10, %s, %s, %s)",
            d["agentId"], tenants.a.id, base + dt.timedelta(seconds=off), cpu, mem, disk,
            load, load, load)
    return d["agentId"], base


def metrics(client, dev, **q):
    return client.get(f"/api/v1/devices/{dev}/metrics", params=q)


def test_metrics_one_minute_buckets(admin, series):
    dev, base = series
    r = metrics(admin, dev, bucket="1m", **{"from": iso(base), "to": iso(base + dt.timedelta(hours=1))})
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["deviceId"] == dev and b["bucket"] == "1m" and b["bucketSeconds"] == 60
    assert b["from"] == iso(base)
    pts = b["points"]
    assert [p["t"] for p in pts] == [iso(base), iso(base + dt.timedelta(minutes=1)),
                                    iso(base + dt.timedelta(minutes=6))]
    first = pts[0]
    assert first["samples"] == 2
    assert first["cpuPercent"] == {"avg": pytest.approx(20.0), "max": pytest.approx(30.0)}
    assert first["memoryPercent"] == {"avg": pytest.approx(50.0), "max": pytest.approx(75.0)}
    assert first["diskPercent"] == {"avg": pytest.approx(30.0), "max": pytest.approx(40.0)}
    assert first["load1"]["max"] == pytest.approx(3.0)
    assert first["load15"]["avg"] == pytest.approx(2.0)
    assert pts[2]["memoryPercent"] is None  # no memory sample in that bucket
    assert pts[2]["diskPercent"]["avg"] == pytest.approx(80.0)


def test_metrics_larger_buckets(admin, series):
    dev, base = series
    rng = {"from": iso(base - dt.timedelta(hours=1)), "to": iso(base + dt.timedelta(hours=1))}
    pts = metrics(admin, dev, bucket="5m", **rng).json()["points"]
    assert [p["samples"] for p in pts] == [3, 1]
    assert pts[0]["cpuPercent"] == {"avg": pytest.approx(30.0), "max": pytest.approx(50.0)}
    for bucket in ("15m", "1h"):
        pts = metrics(admin, dev, bucket=bucket, **rng).json()["points"]
        assert len(pts) == 1 and pts[0]["samples"] == 4
        assert pts[0]["cpuPercent"] == {"avg": pytest.approx(40.0), "max": pytest.approx(70.0)}
        assert pts[0]["t"] == iso(base)
    day = metrics(admin, dev, bucket="1d", **{"from": iso(base - dt.timedelta(days=3)),
                                                "to": iso(base + dt.timedelta(days=1))})
    assert sum(p["samples"] for p in day.json()["points"]) == 4
    # Bounds: from inclusive, to exclusive.
    pts = metrics(admin, dev, bucket="1m", **{"from": iso(base + dt.timedelta(seconds=30)),
                                               "to": iso(base + dt.timedelta(seconds=60))})
    assert [p["samples"] for p in pts.json()["points"]] == [1]


def test_metrics_default_range_has_the_heartbeat(agents, admin):
    d = agents.new_device()
    assert agents.heartbeat(d["agentId"], d["authToken"]).status_code == 200
    b = metrics(admin, d["agentId"]).json()
    assert b["bucket"] == "5m"
    assert len(b["points"]) == 1
    p = b["points"][0]
    assert p["cpuPercent"]["avg"] == pytest.approx(12.5)
    assert p["memoryPercent"]["max"] == pytest.approx(25.0)
    assert p["diskPercent"]["avg"] == pytest.approx(40.0)


@pytest.mark.parametrize("q,code", [
    ({"bucket": "2m"}, "validation_error"),
    ({"bucket": ""}, "validation_error"),
    ({"from": "yesterday"}, "validation_error"),
    ({"to": "2026-02-30T00:00:00Z"}, "validation_error"),
    ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-02T00:00:00Z"}, "validation_error"),
    ({"from": "2026-01-03T00:00:00Z", "to": "2026-01-02T00:00:00Z"}, "validation_error"),
    ({"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z", "bucket": "1d"},
     "validation_error"),
    ({"from": "2026-01-01T00:00:00Z", "to": "2026-01-03T00:00:00Z", "bucket": "1m"},
     "too_many_points"),
    ({"limit": "5"}, None),
])
def test_metrics_bad_query_is_400(admin, series, q, code):
    assert_error(metrics(admin, series[0], **q), 400, code)


def test_metrics_most_points_is_accepted(admin, series):
    """1,440 one-minute buckets (a day) are within the cap."""
    dev, base = series
    r = metrics(admin, dev, bucket="1m", **{"from": iso(base), "to": iso(base + dt.timedelta(days=1))})
    assert r.status_code == 200, r.text


def test_metrics_other_tenant_is_404(tenants, series):
    dev, base = series
    rng = {"from": iso(base), "to": iso(base + dt.timedelta(hours=1))}
    assert_error(metrics(tenants.b_admin.api, dev, **rng), 404, "not_found")
    assert metrics(tenants.a_viewer.api, dev, **rng).status_code == 200
    assert_error(metrics(tenants.a_admin.api, str(uuid.uuid4())), 404, "not_found")
    assert_error(metrics(tenants.a_admin.api, "not-a-uuid"), 404)


def test_metrics_needs_a_user(api, series):
    assert_error(api.get(f"/api/v1/devices/{series[0]}/metrics", token=None), 401)


# --------------------------------------------------------------------------- liveness


def test_offline_then_online_one_audit_row_each(agents, admin, sql, services, clock):
    d = agents.new_device()
    dev = d["agentId"]
    assert agents.heartbeat(dev, d["authToken"]).status_code == 200
    (online,), = sql("SELECT online FROM devices WHERE id = %s", dev)
    assert online is True
    assert audit_count(sql, dev, "device.online") == 0  # never → online is not announced
    # Two missed intervals: still online.
    clock.advance(2 * INTERVAL + 1)
    maintain(services)
    assert audit_count(sql, dev, "device.offline") == 0
    # Three missed: offline, once.
    clock.advance(INTERVAL + 1)
    maintain(services)
    maintain(services)
    assert audit_count(sql, dev, "device.offline") == 1
    row, = sql("SELECT actor_type, details::jsonb FROM audit_log WHERE resource_id = %s"
               " AND action = 'device.offline'", dev)
    assert row[0] == "system"
    assert row[1]["heartbeatIntervalSeconds"] == INTERVAL and row[1]["missedIntervals"] == 3
    (online,), = sql("SELECT online FROM devices WHERE id = %s", dev)
    assert online is False
    # Back: the heartbeat itself announces it, once.
    assert agents.heartbeat(dev, d["authToken"]).status_code == 200
    assert agents.heartbeat(dev, d["authToken"]).status_code == 200
    assert audit_count(sql, dev, "device.online") == 1
    row, = sql("SELECT actor_type, actor_id FROM audit_log WHERE resource_id = %s"
               " AND action = 'device.online'", dev)
    assert row == ("agent", dev)
    maintain(services)
    assert audit_count(sql, dev, "device.offline") == 1
    assert admin.get(f"/api/v1/devices/{dev}").status_code == 200


def test_suspended_device_is_not_swept(agents, sql, services, clock):
    d = agents.new_device()
    dev = d["agentId"]
    assert agents.heartbeat(dev, d["authToken"]).status_code == 200
    sql("UPDATE devices SET status = 'suspended', suspended_at = now(),"
        " suspension_reason = 'test', reenrollment_blocked = true WHERE id = %s", dev)
    clock.advance(4 * INTERVAL)
    maintain(services)
    assert audit_count(sql, dev, "device.offline") == 0


def test_two_instances_sweeping_write_one_row(agents, sql, spawn_server, services, clock):
    """Two serve instances sweeping every second, plus two CLI runs at once:
    one device.offline row per device."""
    devs = []
    for _ in range(6):
        d = agents.new_device()
        assert agents.heartbeat(d["agentId"], d["authToken"]).status_code == 200
        devs.append(d["agentId"])
    spawn_server(DEVICE_SWEEP_INTERVAL_SECONDS=1)
    spawn_server(DEVICE_SWEEP_INTERVAL_SECONDS=1)
    clock.advance(4 * INTERVAL)
    threads = [threading.Thread(target=maintain, args=(services,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 20 * SLOW
    while time.monotonic() < deadline:
        if all(audit_count(sql, dev, "device.offline") >= 1 for dev in devs):
            break
        time.sleep(0.2)
    time.sleep(2.5)  # more sweeps of both instances
    for dev in devs:
        assert audit_count(sql, dev, "device.offline") == 1, dev


def test_sweep_worker_marks_offline(agents, sql, spawn_server, clock):
    d = agents.new_device()
    assert agents.heartbeat(d["agentId"], d["authToken"]).status_code == 200
    spawn_server(DEVICE_SWEEP_INTERVAL_SECONDS=1)
    clock.advance(4 * INTERVAL)
    deadline = time.monotonic() + 15 * SLOW
    while time.monotonic() < deadline and audit_count(sql, d["agentId"], "device.offline") == 0:
        time.sleep(0.2)
    assert audit_count(sql, d["agentId"], "device.offline") == 1


def test_transitions_queue_webhook_deliveries(agents, admin, make_org, sql, services, clock):
    """device.offline / device.online are audit rows of the device's
    organization, so a webhook subscribed to them gets a delivery each."""
    org = make_org()
    r = admin.post("/api/v1/webhooks", json={"orgId": org.id, "url": "https://hooks.example.com/x",
                                             "events": ["device.offline", "device.online"]})
    assert r.status_code == 201, r.text
    hook = r.json()["id"]
    d = agents.new_device(org_id=org.id, site_id=org.site_id)
    assert agents.heartbeat(d["agentId"], d["authToken"]).status_code == 200
    clock.advance(4 * INTERVAL)
    maintain(services)
    assert agents.heartbeat(d["agentId"], d["authToken"]).status_code == 200
    rows = sql("SELECT event, payload->>'resourceId' FROM webhook_deliveries"
               " WHERE webhook_id = %s ORDER BY created_at, event", hook)
    assert rows == [("device.offline", d["agentId"]), ("device.online", d["agentId"])]
