"""Agent heartbeats: token authentication, binding of a token to its own
device, and what a heartbeat records (G1, G7)."""
import secrets
import uuid

import pytest

from conftest import assert_error, heartbeat_body, sha256_hex


def hb_path(agent_id):
    return f"/api/v1/agents/{agent_id}/heartbeat"


def test_heartbeat_ok(agents, sql):
    d = agents.new_device()
    r = agents.heartbeat(d["agentId"], d["authToken"])
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["config"]["heartbeatIntervalSeconds"] == 5
    assert b["commands"] == []
    assert "newToken" not in b
    (seen, ip), = sql("SELECT last_seen_at, host(last_ip) FROM devices WHERE id = %s", d["agentId"])
    assert seen is not None
    assert ip == "127.0.0.1"  # G7


def test_heartbeat_updates_last_seen(agents, sql):
    d = agents.new_device()
    assert agents.heartbeat(d["agentId"], d["authToken"]).status_code == 200
    (t1,), = sql("SELECT last_seen_at FROM devices WHERE id = %s", d["agentId"])
    sql("UPDATE devices SET last_seen_at = now() - interval '1 hour' WHERE id = %s", d["agentId"])
    assert agents.heartbeat(d["agentId"], d["authToken"]).status_code == 200
    (t2,), = sql("SELECT last_seen_at FROM devices WHERE id = %s", d["agentId"])
    assert t2 >= t1


def test_heartbeat_stores_metrics(agents, admin):
    d = agents.new_device()
    body = heartbeat_body()
    body["metrics"]["memoryTotalBytes"] = 12345678901
    body["uptimeSeconds"] = 4242
    r = agents.api.post(hb_path(d["agentId"]), json=body, token=d["authToken"])
    assert r.status_code == 200, r.text
    dev = admin.get(f"/api/v1/devices/{d['agentId']}").json()
    assert dev["metrics"]["memoryTotalBytes"] == 12345678901
    assert dev["metrics"]["cpuCount"] == 2
    assert dev["uptimeSeconds"] == 4242


def test_heartbeat_without_token_is_401(agents):
    d = agents.new_device()
    assert_error(agents.api.post(hb_path(d["agentId"]), json=heartbeat_body(), token=None), 401)


@pytest.mark.parametrize("token", [
    "brz_" + "0" * 64,
    "brz_" + secrets.token_hex(32),
    "garbage",
    "",
])
def test_heartbeat_with_invalid_token_is_401(agents, token):
    d = agents.new_device()
    r = agents.api.post(hb_path(d["agentId"]), json=heartbeat_body(),
                        headers={"Authorization": f"Bearer {token}"}, token=None)
    assert_error(r, 401)


def test_heartbeat_with_token_hash_is_401(agents):
    """The stored SHA-256 is not itself a credential."""
    d = agents.new_device()
    assert_error(agents.heartbeat(d["agentId"], sha256_hex(d["authToken"])), 401)
    assert_error(agents.heartbeat(d["agentId"], "brz_" + sha256_hex(d["authToken"])), 401)


def test_heartbeat_with_user_jwt_is_401(agents, admin):
    d = agents.new_device()
    assert_error(agents.heartbeat(d["agentId"], admin.token), 401)


def test_token_of_another_device_is_403(agents, sql):
    x = agents.new_device()
    y = agents.new_device()
    r = agents.heartbeat(y["agentId"], x["authToken"])
    assert_error(r, 403)
    (seen,), = sql("SELECT last_seen_at FROM devices WHERE id = %s", y["agentId"])
    assert seen is None


def test_token_of_device_in_another_tenant_is_refused(agents, tenants, sql):
    x = agents.new_device(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
    y = agents.new_device(tenants.b_admin.api, tenants.b.id, tenants.b.site_id)
    r = agents.heartbeat(y["agentId"], x["authToken"])
    # A cross-tenant probe: the opaque 401 of a bad token, and the token is
    # suspended (G6; test_probe.py).
    assert_error(r, 401)
    (seen,), = sql("SELECT last_seen_at FROM devices WHERE id = %s", y["agentId"])
    assert seen is None


@pytest.mark.parametrize("agent_id", ["not-a-uuid", "1", "..%2F..%2Fauth%2Fme"])
def test_malformed_agent_id(agents, agent_id):
    d = agents.new_device()
    r = agents.heartbeat(agent_id, d["authToken"])
    assert r.status_code in (401, 404), r.text
    assert_error(r, r.status_code)


def test_unknown_agent_id_is_refused(agents):
    d = agents.new_device()
    r = agents.heartbeat(str(uuid.uuid4()), d["authToken"])
    assert r.status_code in (401, 403, 404), r.text


@pytest.mark.parametrize("field,value", [
    ("metrics", "lots"),
    ("uptimeSeconds", "long"),
    ("status", 5),
])
def test_heartbeat_validation(agents, field, value):
    d = agents.new_device()
    body = heartbeat_body(**{field: value})
    r = agents.api.post(hb_path(d["agentId"]), json=body, token=d["authToken"])
    b = assert_error(r, 400)
    assert field in b["error"]["message"]


def test_heartbeat_requires_json(agents):
    d = agents.new_device()
    r = agents.api.request("POST", hb_path(d["agentId"]), data=b"status=online",
                           headers={"Content-Type": "application/x-www-form-urlencoded"},
                           token=d["authToken"])
    assert_error(r, 415)


# ------------------------------------------------------------------ strict bodies


def test_heartbeat_unknown_field_is_named(agents, sql):
    d = agents.new_device()
    r = agents.heartbeat(d["agentId"], d["authToken"], batteryLevel=80)
    b = assert_error(r, 400, "validation_error")
    assert b["error"]["field"] == "batteryLevel" and "batteryLevel" in b["error"]["message"]
    (seen,), = sql("SELECT last_seen_at FROM devices WHERE id = %s", d["agentId"])
    assert seen is None


def test_heartbeat_body_checked_only_after_the_token(agents):
    """An unauthenticated caller learns nothing about the body's shape."""
    d = agents.new_device()
    r = agents.heartbeat(d["agentId"], "brz_" + "0" * 64, batteryLevel=80)
    assert_error(r, 401)


def test_heartbeat_with_every_field_the_agent_sends_is_accepted(agents, admin):
    """The members src/agent/client.c sends, plus cpuModel/cpuCount, which
    are accepted explicitly."""
    d = agents.new_device()
    body = heartbeat_body(cpuModel="Test CPU", cpuCount=4)
    r = agents.api.post(hb_path(d["agentId"]), json=body, token=d["authToken"])
    assert r.status_code == 200, r.text
    inv = admin.get(f"/api/v1/devices/{d['agentId']}").json()["inventory"]
    assert inv == {"hostname": body["hostname"], "osType": "linux", "osVersion": body["osVersion"],
                   "kernel": body["kernel"], "architecture": "x86_64", "cpuModel": "Test CPU",
                   "cpuCount": 4}


BAD_TEXT = ["", "   ", "tab\there", "line\nbreak", "esc\x1b[31m", "c1\u009b", "rlo\u202eevil",
            "isolate\u2066x", "bom\ufeff"]


@pytest.mark.parametrize("field", ["status", "agentVersion", "hostname", "osType", "osVersion",
                                   "kernel", "architecture", "cpuModel"])
@pytest.mark.parametrize("value", BAD_TEXT)
def test_heartbeat_strings_must_be_display_text(agents, sql, field, value):
    d = agents.new_device(hostname=uniq_host())
    r = agents.heartbeat(d["agentId"], d["authToken"], **{field: value})
    b = assert_error(r, 400, "validation_error")
    assert b["error"]["field"] == field, b
    (seen, host), = sql("SELECT last_seen_at, hostname FROM devices WHERE id = %s", d["agentId"])
    assert seen is None and host == d["hostname"]


@pytest.mark.parametrize("metrics,named", [
    ({"cpuPercent": "high"}, "cpuPercent"),
    ({"memoryUsedBytes": 2 ** 60}, "memoryUsedBytes"),
    ({"load1": {"x": 1}}, "load1"),
])
def test_heartbeat_metrics_are_bounded_numbers(agents, metrics, named):
    d = agents.new_device()
    b = assert_error(agents.heartbeat(d["agentId"], d["authToken"], metrics=metrics), 400,
                     "validation_error")
    assert b["error"]["field"] == "metrics" and f"metrics.{named}" in b["error"]["message"], b


def uniq_host():
    return "hb-" + secrets.token_hex(5)


def test_reported_decimals_read_back_as_sent(agents, admin, sql):
    """0.51 is stored and returned as 0.51, not as the round-trip form
    0.51000000000000001 (15 significant digits are kept)."""
    d = agents.new_device()
    body = heartbeat_body()
    body["metrics"]["load1"] = 0.51
    r = agents.api.post(hb_path(d["agentId"]), json=body, token=d["authToken"])
    assert r.status_code == 200, r.text
    stored = sql("SELECT metrics->>'load1' FROM device_heartbeats WHERE device_id = %s",
                 d["agentId"])[0][0]
    assert stored == "0.51", stored
    assert admin.get(f"/api/v1/devices/{d['agentId']}").json()["metrics"]["load1"] == 0.51
