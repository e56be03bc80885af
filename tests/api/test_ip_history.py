"""Source-address tracking (G7): behind a trusted proxy the forwarded address
is the one recorded; agent.source.ip.changed at most once per device and new
address per AGENT_IP_CHANGE_DEDUP_SECONDS; the last 20 addresses with first
and last seen in GET /api/v1/devices/:id. docs/probes-and-addresses.md."""
import json

import pytest

from conftest import Api, heartbeat_body

DEVICES = "/api/v1/devices"


@pytest.fixture
def proxied(spawn_server):
    """A server behind a trusted proxy on 127.0.0.1."""
    return Api(spawn_server(TRUSTED_PROXY_CIDRS="127.0.0.1/32").url)


def hb_from(api, d, ip):
    r = api.post(f"/api/v1/agents/{d['agentId']}/heartbeat", json=heartbeat_body(),
                 token=d["authToken"], headers={"X-Forwarded-For": ip})
    assert r.status_code == 200, r.text
    return r


def events(sql, device_id):
    rows = sql("SELECT details FROM audit_log WHERE resource_id = %s"
               " AND action = 'agent.source.ip.changed' ORDER BY seq", device_id)
    return [(json.loads(d)["previousIp"], json.loads(d)["newIp"]) for (d,) in rows]


def history(admin, device_id):
    return admin.get(f"{DEVICES}/{device_id}").json()["ipHistory"]


def test_forwarded_address_recorded_behind_a_trusted_proxy(agents, admin, api, sql, proxied):
    d = agents.new_device()
    hb_from(proxied, d, "198.51.100.7")
    dev = admin.get(f"{DEVICES}/{d['agentId']}").json()
    assert dev["lastIp"] == "198.51.100.7"
    assert events(sql, d["agentId"]) == [("127.0.0.1", "198.51.100.7")]
    assert [h["ip"] for h in dev["ipHistory"]] == ["198.51.100.7", "127.0.0.1"]
    # A server without a trusted proxy ignores the header: the peer is recorded.
    hb_from(api, d, "203.0.113.50")
    assert admin.get(f"{DEVICES}/{d['agentId']}").json()["lastIp"] == "127.0.0.1"
    assert events(sql, d["agentId"])[-1] == ("198.51.100.7", "127.0.0.1")
    assert "203.0.113.50" not in json.dumps(history(admin, d["agentId"]))


def test_flapping_is_deduplicated(agents, sql, proxied, clock):
    d = agents.new_device()
    a, b = "192.0.2.10", "192.0.2.20"
    for ip in (b, a, b, a, b, a, b):
        hb_from(proxied, d, ip)
    # One event for B and one for A, however often it flaps in the window.
    assert events(sql, d["agentId"]) == [("127.0.0.1", b), (b, a)]
    # Still inside the window for both: nothing new.
    clock.advance(86400 - 60)
    hb_from(proxied, d, a)
    hb_from(proxied, d, b)
    assert len(events(sql, d["agentId"])) == 2
    # After the window: a move to A is an event again, and a move to B too.
    clock.advance(120)
    hb_from(proxied, d, a)
    assert events(sql, d["agentId"])[2:] == [(b, a)]
    hb_from(proxied, d, a)  # unchanged: no event
    hb_from(proxied, d, b)
    assert events(sql, d["agentId"])[2:] == [(b, a), (a, b)]


def test_dedup_window_is_configurable(agents, sql, spawn_server, clock):
    srv = Api(spawn_server(TRUSTED_PROXY_CIDRS="127.0.0.1/32",
                           AGENT_IP_CHANGE_DEDUP_SECONDS="0").url)
    d = agents.new_device()
    for ip in ("192.0.2.30", "192.0.2.31", "192.0.2.30"):
        hb_from(srv, d, ip)
    assert len(events(sql, d["agentId"])) == 3


@pytest.mark.parametrize("value", ["-1", "2592001", "day"])
def test_dedup_window_is_validated(run_server, value):
    r = run_server(AGENT_IP_CHANGE_DEDUP_SECONDS=value)
    assert r.returncode != 0
    assert "AGENT_IP_CHANGE_DEDUP_SECONDS" in r.stdout + r.stderr


def test_history_keeps_the_last_20_with_first_and_last_seen(agents, admin, sql, proxied):
    d = agents.new_device()
    ips = [f"198.51.100.{i}" for i in range(1, 26)]
    for ip in ips:
        hb_from(proxied, d, ip)
    h = history(admin, d["agentId"])
    assert len(h) == 20
    assert sql("SELECT count(*) FROM device_ip_history WHERE device_id = %s", d["agentId"]) == [(20,)]
    # The most recently seen first: the 20 newest, newest first.
    assert [e["ip"] for e in h] == list(reversed(ips))[:20]
    # Revisiting an old address keeps its first sighting and moves its last.
    sql("UPDATE device_ip_history SET first_seen_at = '2026-01-02T03:04:05Z',"
        " last_seen_at = '2026-01-03T00:00:00Z' WHERE device_id = %s AND ip = %s",
        d["agentId"], ips[10])
    hb_from(proxied, d, ips[10])
    h = history(admin, d["agentId"])
    assert h[0]["ip"] == ips[10] and h[0]["firstSeenAt"] == "2026-01-02T03:04:05Z"
    assert h[0]["lastSeenAt"] > "2026-01-03T00:00:00Z"
    assert len(h) == 20


def test_unchanged_address_writes_no_history(agents, admin, sql, proxied):
    """The hot path: the current address's last sighting is the device's
    lastSeenAt; its row is not written by a heartbeat from it."""
    d = agents.new_device()
    hb_from(proxied, d, "192.0.2.77")
    (xmin,), = sql("SELECT xmin::text FROM device_ip_history WHERE device_id = %s AND ip = %s",
                   d["agentId"], "192.0.2.77")
    sql("UPDATE devices SET last_seen_at = now() - interval '1 hour' WHERE id = %s", d["agentId"])
    hb_from(proxied, d, "192.0.2.77")
    assert sql("SELECT xmin::text FROM device_ip_history WHERE device_id = %s AND ip = %s",
               d["agentId"], "192.0.2.77") == [(xmin,)]
    dev = admin.get(f"{DEVICES}/{d['agentId']}").json()
    assert dev["ipHistory"][0]["ip"] == "192.0.2.77"
    assert dev["ipHistory"][0]["lastSeenAt"] == dev["lastSeenAt"]
    # Moving on brings the old address's row up to the device's last sighting.
    hb_from(proxied, d, "192.0.2.78")
    dev2 = admin.get(f"{DEVICES}/{d['agentId']}").json()
    old = [e for e in dev2["ipHistory"] if e["ip"] == "192.0.2.77"][0]
    assert old["lastSeenAt"] == dev["lastSeenAt"]


def test_history_is_tenant_scoped(agents, tenants):
    d = agents.new_device(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
    assert [e["ip"] for e in history(tenants.a_admin.api, d["agentId"])] == ["127.0.0.1"]
    assert tenants.b_admin.api.get(f"{DEVICES}/{d['agentId']}").status_code == 404
