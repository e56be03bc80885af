"""Enrolment keys (G5) and agent enrolment (G1): creation, validation, the
stored HMAC, status reporting, refusal reasons, and the use limit under a
burst of parallel enrolments."""
import hashlib
import hmac
import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from conftest import assert_error, enroll_body, sha256_hex, uniq

KEYS = "/api/v1/enrollment-keys"
ENROLL = "/api/v1/agents/enroll"
KEY_FIELDS = {"id", "orgId", "siteId", "name", "key", "keyPrefix", "maxUsage", "usageCount",
              "expiresAt", "createdAt"}
LIST_FIELDS = {"id", "orgId", "siteId", "name", "keyPrefix", "maxUsage", "usageCount", "expiresAt",
               "revokedAt", "createdAt", "status"}
TOKEN_RE = re.compile(r"^brz_[0-9a-f]{64}$")


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def now():
    return datetime.now(timezone.utc)


def listed(client, key_id, query=""):
    r = client.get(KEYS + query)
    assert r.status_code == 200, r.text
    for k in r.json()["enrollmentKeys"]:
        if k["id"] == key_id:
            return k
    return None


# ------------------------------------------------------------------ keys


def test_create_key_defaults(admin, bootstrap):
    body = {"orgId": bootstrap.orgId, "siteId": bootstrap.siteId, "name": uniq("key")}
    t0 = now()
    r = admin.post(KEYS, json=body)
    assert r.status_code == 201, r.text
    k = r.json()
    assert set(k) >= KEY_FIELDS
    assert k["orgId"] == bootstrap.orgId and k["siteId"] == bootstrap.siteId
    assert k["name"] == body["name"]
    assert k["maxUsage"] == 1 and k["usageCount"] == 0
    assert isinstance(k["key"], str) and len(k["key"]) >= 32
    assert k["keyPrefix"] and k["key"].startswith(k["keyPrefix"]) and k["keyPrefix"] != k["key"]
    exp = ts(k["expiresAt"])
    assert t0 + timedelta(minutes=59) <= exp <= now() + timedelta(minutes=61)


def test_keys_are_unique(agents):
    a, b = agents.create_key(), agents.create_key()
    assert a["key"] != b["key"] and a["id"] != b["id"]


def test_create_key_with_ttl_and_max_usage(agents):
    k = agents.create_key(maxUsage=100000, ttlMinutes=525600)
    assert k["maxUsage"] == 100000
    exp = ts(k["expiresAt"])
    assert now() + timedelta(days=364) < exp <= now() + timedelta(days=365, minutes=1)
    k = agents.create_key(ttlMinutes=1)
    assert now() < ts(k["expiresAt"]) <= now() + timedelta(minutes=1, seconds=5)


def test_create_key_with_expires_at(agents, sql):
    """The key expires at the instant asked for, not at now() plus a rounded delta."""
    want = (now() + timedelta(days=2)).replace(microsecond=0)
    k = agents.create_key(expiresAt=want.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert sql("SELECT expires_at FROM enrollment_keys WHERE id = %s", k["id"]) == [(want,)]
    assert ts(k["expiresAt"]) == want
    want = (now() + timedelta(hours=5)).replace(microsecond=0)
    k = agents.create_key(expiresAt=want.isoformat())  # with +00:00 offset
    assert sql("SELECT expires_at FROM enrollment_keys WHERE id = %s", k["id"]) == [(want,)]
    assert ts(k["expiresAt"]) == want


@pytest.mark.parametrize("fields,named", [
    ({"maxUsage": 0}, "maxUsage"),
    ({"maxUsage": 100001}, "maxUsage"),
    ({"maxUsage": -1}, "maxUsage"),
    ({"maxUsage": "3"}, "maxUsage"),
    ({"maxUsage": 1.5}, "maxUsage"),
    ({"ttlMinutes": 0}, "ttlMinutes"),
    ({"ttlMinutes": 525601}, "ttlMinutes"),
    ({"ttlMinutes": "60"}, "ttlMinutes"),
    ({"expiresAt": "tomorrow"}, "expiresAt"),
    ({"expiresAt": 1700000000}, "expiresAt"),
    ({"expiresAt": "2001-01-01T00:00:00Z"}, "expiresAt"),
    ({"expiresAt": (datetime.now(timezone.utc) + timedelta(days=367)).strftime("%Y-%m-%dT%H:%M:%SZ")},
     "expiresAt"),
    ({"ttlMinutes": 10,
      "expiresAt": (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")},
     None),
    ({"name": ""}, "name"),
    ({"name": 5}, "name"),
    ({"orgId": "not-a-uuid"}, "orgId"),
    ({"siteId": "not-a-uuid"}, "siteId"),
    ({"orgId": None}, "orgId"),
    ({"siteId": None}, "siteId"),
])
def test_create_key_validation(admin, bootstrap, fields, named):
    body = {"orgId": bootstrap.orgId, "siteId": bootstrap.siteId, "name": uniq("key"), **fields}
    b = assert_error(admin.post(KEYS, json=body), 400)
    if named:
        assert named in b["error"]["message"], b


def test_create_key_for_site_of_another_org_is_404(admin, make_org, bootstrap):
    other = make_org()
    body = {"orgId": bootstrap.orgId, "siteId": other.site_id, "name": uniq("key")}
    assert_error(admin.post(KEYS, json=body), 404)
    body = {"orgId": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "siteId": bootstrap.siteId,
            "name": uniq("key")}
    assert_error(admin.post(KEYS, json=body), 404)


def test_key_is_stored_as_hmac_with_pepper(agents, sql, env):
    """G5: only HMAC-SHA-256(ENROLLMENT_KEY_PEPPER, key) is stored."""
    k = agents.create_key()
    (h, prefix, row), = sql("SELECT key_hash, key_prefix, row_to_json(e)::text FROM enrollment_keys e"
                            " WHERE id = %s", k["id"])
    assert h != k["key"]
    assert h != sha256_hex(k["key"])
    assert h == hmac.new(env["ENROLLMENT_KEY_PEPPER"].encode(), k["key"].encode(),
                         hashlib.sha256).hexdigest()
    assert prefix == k["keyPrefix"]
    assert k["key"] not in row


def test_key_creation_is_audited_without_the_key(agents, sql):
    """M3: the mutation is audited; the raw key is not in the audit row."""
    k = agents.create_key()
    rows = sql("SELECT details::text, actor_type, org_id::text FROM audit_log WHERE resource_id = %s",
               k["id"])
    assert rows, "no audit row for the enrolment key"
    for details, actor_type, org_id in rows:
        assert k["key"] not in details
        assert actor_type == "user" and org_id == k["orgId"]


def test_list_never_shows_the_key(admin, agents):
    k = agents.create_key()
    r = admin.get(KEYS)
    assert r.status_code == 200
    assert k["key"] not in r.text
    keys = r.json()["enrollmentKeys"]
    assert keys
    for x in keys:
        assert "key" not in x and "keyHash" not in x and "key_hash" not in x
        assert set(x) >= LIST_FIELDS
        assert x["status"] in ("active", "expired", "exhausted", "revoked")
    mine = listed(admin, k["id"])
    assert mine["status"] == "active" and mine["revokedAt"] is None
    assert mine["keyPrefix"] == k["keyPrefix"]


def test_list_filters_by_org(admin, agents, make_org):
    org = make_org()
    k = agents.create_key(None, org.id, org.site_id)
    other = agents.create_key()
    r = admin.get(f"{KEYS}?orgId={org.id}")
    assert r.status_code == 200
    keys = r.json()["enrollmentKeys"]
    assert [x["id"] for x in keys] == [k["id"]]
    assert other["id"] not in {x["id"] for x in keys}
    assert_error(admin.get(f"{KEYS}?orgId=not-a-uuid"), 400)


def test_revoke_key(admin, agents):
    k = agents.create_key(maxUsage=5)
    r = admin.delete(f"{KEYS}/{k['id']}")
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["id"] == k["id"]
    assert now() - timedelta(minutes=1) <= ts(b["revokedAt"]) <= now() + timedelta(minutes=1)
    x = listed(admin, k["id"])
    assert x["status"] == "revoked" and x["revokedAt"]
    r = agents.enroll(k["key"])
    assert_error(r, 401)
    assert r.json()["reason"] == "revoked"


@pytest.mark.parametrize("key_id", ["not-a-uuid", "7c9e6679-7425-40de-944b-e07fc1f90ae7"])
def test_revoke_unknown_key_is_404(admin, key_id):
    assert_error(admin.delete(f"{KEYS}/{key_id}"), 404)


# ------------------------------------------------------------------ enrolment


def test_enroll_success(agents, sql, env):
    k = agents.create_key(maxUsage=2)
    r = agents.enroll(k["key"], hostname="web-01")
    assert r.status_code == 201, r.text
    b = r.json()
    assert set(b) >= {"agentId", "authToken", "orgId", "siteId", "config"}
    assert TOKEN_RE.match(b["authToken"]), b["authToken"][:8]
    assert b["orgId"] == k["orgId"] and b["siteId"] == k["siteId"]
    assert b["config"]["heartbeatIntervalSeconds"] == 5
    (ek_id, hostname, row), = sql(
        "SELECT enrollment_key_id::text, hostname, row_to_json(d)::text"
        "  FROM devices d WHERE id = %s", b["agentId"])
    # G1: only the SHA-256 of the token is stored, the token itself nowhere.
    (token_hash, state, trow), = sql(
        "SELECT token_hash, state, row_to_json(t)::text FROM agent_tokens t"
        " WHERE device_id = %s", b["agentId"])
    assert token_hash == sha256_hex(b["authToken"]) and state == "current"
    for text in (row, trow):
        assert b["authToken"] not in text and b["authToken"][4:] not in text
    assert ek_id == k["id"] and hostname == "web-01"
    assert sql("SELECT usage_count FROM enrollment_keys WHERE id = %s", k["id"]) == [(1,)]
    assert listed(agents.admin, k["id"])["usageCount"] == 1


def test_enroll_stores_hardware(agents, admin):
    d = agents.new_device()
    r = admin.get(f"/api/v1/devices/{d['agentId']}")
    assert r.status_code == 200, r.text
    dev = r.json()
    assert dev["hardware"]["memoryTotalBytes"] == 8 << 30
    assert dev["architecture"] == "x86_64" and dev["agentVersion"] == "0.1.0"


def test_two_enrolments_get_distinct_identities(agents):
    k = agents.create_key(maxUsage=2)
    a = agents.enroll(k["key"]).json()
    b = agents.enroll(k["key"]).json()
    assert a["agentId"] != b["agentId"] and a["authToken"] != b["authToken"]


def _altered(s):
    return s[:-1] + ("0" if s[-1] != "0" else "1")


@pytest.mark.parametrize("mangle", [lambda s: "wrong", _altered, lambda s: s + "x",
                                    lambda s: s[:-1], lambda s: s.upper()],
                         ids=["other", "last-char", "suffix", "truncated", "upper"])
def test_wrong_enrollment_secret_is_403_and_does_not_use_the_key(agents, sql, mangle):
    k = agents.create_key()
    wrong = mangle(agents.secret)
    assert wrong != agents.secret
    r = agents.enroll(k["key"], secret=wrong)
    assert_error(r, 403, "invalid_enrollment_secret")
    assert sql("SELECT usage_count FROM enrollment_keys WHERE id = %s", k["id"]) == [(0,)]
    assert not sql("SELECT 1 FROM devices WHERE enrollment_key_id = %s", k["id"])
    assert agents.enroll(k["key"]).status_code == 201


@pytest.mark.parametrize("secret", [None, ""], ids=["absent", "empty"])
def test_missing_enrollment_secret_is_refused(agents, sql, secret):
    k = agents.create_key()
    body = enroll_body(k["key"], secret)
    if secret is None:
        del body["enrollmentSecret"]
    r = agents.api.post(ENROLL, json=body)
    assert r.status_code in (400, 403), r.text
    assert sql("SELECT usage_count FROM enrollment_keys WHERE id = %s", k["id"]) == [(0,)]


def test_unknown_key_is_401_unknown(agents):
    for key in ("brz_ek_" + "0" * 40, "x", uniq("nokey")):
        r = agents.enroll(key)
        assert_error(r, 401)
        assert r.json()["reason"] == "unknown"


def test_expired_key_is_401_expired(agents, sql):
    k = agents.create_key(maxUsage=5)
    sql("UPDATE enrollment_keys SET expires_at = now() - interval '1 second' WHERE id = %s", k["id"])
    r = agents.enroll(k["key"])
    assert_error(r, 401)
    assert r.json()["reason"] == "expired"
    assert listed(agents.admin, k["id"])["status"] == "expired"
    assert not sql("SELECT 1 FROM devices WHERE enrollment_key_id = %s", k["id"])


def test_exhausted_key_is_401_exhausted(agents):
    k = agents.create_key(maxUsage=1)
    assert agents.enroll(k["key"]).status_code == 201
    r = agents.enroll(k["key"])
    assert_error(r, 401)
    assert r.json()["reason"] == "exhausted"
    x = listed(agents.admin, k["id"])
    assert x["status"] == "exhausted" and x["usageCount"] == 1


def test_refusal_bodies_are_error_shaped(agents, sql):
    k = agents.create_key()
    sql("UPDATE enrollment_keys SET expires_at = now() - interval '1 second' WHERE id = %s", k["id"])
    r = agents.enroll(k["key"])
    b = r.json()
    assert set(b) == {"error", "reason"}
    assert k["key"] not in r.text


@pytest.mark.parametrize("field,value", [
    ("hostname", None), ("hostname", ""), ("hostname", 5), ("hostname", "h" * 256),
    ("osType", None), ("hardware", "big"), ("enrollmentKey", None), ("enrollmentKey", 5),
])
def test_enroll_validation(agents, sql, field, value):
    k = agents.create_key()
    body = enroll_body(k["key"], agents.secret)
    if value is None:
        del body[field]
    else:
        body[field] = value
    b = assert_error(agents.api.post(ENROLL, json=body), 400)
    assert field in b["error"]["message"], b
    assert sql("SELECT usage_count FROM enrollment_keys WHERE id = %s", k["id"]) == [(0,)]


def test_parallel_enrolments_respect_max_usage(agents, api, sql):
    """G5 race: 30 simultaneous enrolments with a key of maxUsage 3 give exactly
    3 devices; the other 27 are told the key is exhausted."""
    k = agents.create_key(maxUsage=3)
    bodies = [enroll_body(k["key"], agents.secret, hostname=f"race-{i}") for i in range(30)]

    def go(body):
        r = api.clone(token=None).post(ENROLL, json=body)
        return r.status_code, r.json()

    with ThreadPoolExecutor(max_workers=30) as ex:
        results = list(ex.map(go, bodies))
    ok = [b for s, b in results if s == 201]
    refused = [b for s, b in results if s == 401]
    assert len(ok) == 3, [s for s, _ in results]
    assert len(refused) == 27, [s for s, _ in results]
    assert all(b.get("reason") == "exhausted" for b in refused), refused[:3]
    assert len({b["agentId"] for b in ok}) == 3
    rows = sql("SELECT id::text FROM devices WHERE enrollment_key_id = %s", k["id"])
    assert sorted(r[0] for r in rows) == sorted(b["agentId"] for b in ok)
    assert sql("SELECT usage_count FROM enrollment_keys WHERE id = %s", k["id"]) == [(3,)]


def test_secrets_never_reach_the_server_log(api, admin, agents, bootstrap, server, env):
    """The log file holds no admin password, enrolment key, agent token or
    configured secret, although the requests that carried them are logged."""
    bad_pw = "Wrong-" + uniq()
    assert api.post("/api/v1/auth/login",
                    json={"email": bootstrap.email, "password": bad_pw}).status_code == 401
    api.login(bootstrap.email, bootstrap.password)
    d = agents.new_device()
    assert agents.heartbeat(d["agentId"], d["authToken"]).status_code == 200
    wrong_secret = agents.enroll(d["enrollmentKey"]["key"], secret="not-the-secret-" + uniq())
    assert wrong_secret.status_code in (401, 403)
    log = server.log_text()
    assert "/api/v1/agents/enroll" in log and "/api/v1/auth/login" in log
    lines = [json.loads(ln) for ln in log.splitlines() if ln.startswith("{")]
    assert lines, "server log has no JSON lines"
    for secret in (bootstrap.password, bad_pw, d["enrollmentKey"]["key"], d["authToken"],
                   d["authToken"][4:], admin.token, env["JWT_SECRET"], env["AGENT_ENROLLMENT_SECRET"],
                   env["ENROLLMENT_KEY_PEPPER"], env["REDIS_PASSWORD"]):
        assert secret not in log, f"a secret ({secret[:6]}...) appears in the server log"


# ------------------------------------------------------------------ key by id, orgId-less, revoke


def test_get_key_by_id(admin, agents):
    k = agents.create_key(maxUsage=3)
    r = admin.get(f"{KEYS}/{k['id']}")
    assert r.status_code == 200, r.text
    got = r.json()
    assert got == listed(admin, k["id"])
    assert set(got) == LIST_FIELDS | {"status"}
    assert got["maxUsage"] == 3 and got["status"] == "active" and got["revokedAt"] is None
    assert k["key"] not in r.text and k["key"][4:] not in r.text
    assert "key" not in got and "keyHash" not in got


def test_get_key_never_shows_the_hash(admin, agents, sql):
    k = agents.create_key()
    (h,), = sql("SELECT key_hash FROM enrollment_keys WHERE id = %s", k["id"])
    assert h not in admin.get(f"{KEYS}/{k['id']}").text


def test_get_key_of_another_tenant_is_404(tenants, agents):
    k = agents.create_key(tenants.b_admin.api, tenants.b.id, tenants.b.site_id)
    assert tenants.b_admin.api.get(f"{KEYS}/{k['id']}").status_code == 200
    assert_error(tenants.a_admin.api.get(f"{KEYS}/{k['id']}"), 404, "not_found")
    assert_error(tenants.tech_a.api.get(f"{KEYS}/{k['id']}"), 404, "not_found")


@pytest.mark.parametrize("key_id", ["not-a-uuid", "7c9e6679-7425-40de-944b-e07fc1f90ae7"])
def test_get_unknown_key_is_404(admin, key_id):
    assert_error(admin.get(f"{KEYS}/{key_id}"), 404, "not_found")


def test_get_key_needs_read_permission(tenants, agents):
    k = agents.create_key(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
    assert_error(tenants.a_viewer.api.get(f"{KEYS}/{k['id']}"), 403)


def test_site_limited_user_sees_only_keys_of_its_sites(admin, make_org, make_user, agents):
    org = make_org()
    s2 = admin.post(f"/api/v1/organizations/{org.id}/sites", json={"name": "Two"}).json()["id"]
    mine = agents.create_key(None, org.id, s2)
    other = agents.create_key(None, org.id, org.site_id)
    limited = make_user("org_admin", orgId=org.id, siteIds=[s2]).api
    assert limited.get(f"{KEYS}/{mine['id']}").status_code == 200
    assert_error(limited.get(f"{KEYS}/{other['id']}"), 404, "not_found")
    assert {k["id"] for k in limited.get(KEYS).json()["enrollmentKeys"]} == {mine["id"]}


def test_create_key_without_org_id_takes_the_site_org(admin, make_org, sql):
    org = make_org()
    r = admin.post(KEYS, json={"siteId": org.site_id, "name": uniq("key")})
    assert r.status_code == 201, r.text
    k = r.json()
    assert k["orgId"] == org.id and k["siteId"] == org.site_id
    assert sql("SELECT org_id::text FROM enrollment_keys WHERE id = %s", k["id"]) == [(org.id,)]
    (n,), = sql("SELECT count(*) FROM audit_log WHERE resource_id = %s AND org_id = %s"
                " AND action = 'enrollment_key.create'", k["id"], org.id)
    assert n == 1


def test_create_key_org_and_site_must_agree(admin, make_org, bootstrap):
    other = make_org()
    b = assert_error(admin.post(KEYS, json={"orgId": bootstrap.orgId, "siteId": other.site_id,
                                            "name": uniq("key")}), 404, "not_found")
    assert "site" in b["error"]["message"]


def test_create_key_for_invisible_site_without_org_is_404(tenants):
    b = assert_error(tenants.a_admin.api.post(KEYS, json={"siteId": tenants.b.site_id,
                                                          "name": uniq("key")}), 404, "not_found")
    assert "site" in b["error"]["message"]


def test_create_key_needs_a_site(admin, bootstrap):
    b = assert_error(admin.post(KEYS, json={"orgId": bootstrap.orgId, "name": uniq("key")}), 400,
                     "validation_error")
    assert b["error"]["field"] == "siteId"


def test_second_revoke_answers_the_same_and_writes_no_audit_row(admin, agents, sql):
    k = agents.create_key()
    first = admin.delete(f"{KEYS}/{k['id']}")
    assert first.status_code == 200, first.text
    second = admin.delete(f"{KEYS}/{k['id']}")
    assert second.status_code == 200, second.text
    assert second.json() == first.json()
    (n,), = sql("SELECT count(*) FROM audit_log WHERE resource_id = %s"
                " AND action = 'enrollment_key.revoke'", k["id"])
    assert n == 1


def test_revoke_of_another_tenant_is_404(tenants, agents, sql):
    k = agents.create_key(tenants.b_admin.api, tenants.b.id, tenants.b.site_id)
    assert_error(tenants.a_admin.api.delete(f"{KEYS}/{k['id']}"), 404, "not_found")
    assert sql("SELECT revoked_at FROM enrollment_keys WHERE id = %s", k["id"]) == [(None,)]


# ------------------------------------------------------------------ strict bodies


def test_key_create_unknown_field_is_named(admin, bootstrap, sql):
    name = uniq("key")
    b = assert_error(admin.post(KEYS, json={"orgId": bootstrap.orgId, "siteId": bootstrap.siteId,
                                            "name": name, "maxUseage": 5}), 400, "validation_error")
    assert b["error"]["field"] == "maxUseage" and "maxUseage" in b["error"]["message"]
    assert sql("SELECT count(*) FROM enrollment_keys WHERE name = %s", name) == [(0,)]


BAD_TEXT = ["", "   ", "tab\there", "line\nbreak", "esc\x1b[31m", "c1\u009b", "rlo\u202eevil",
            "isolate\u2066x", "bom\ufeff"]


@pytest.mark.parametrize("name", BAD_TEXT)
def test_key_name_must_be_display_text(admin, bootstrap, name):
    b = assert_error(admin.post(KEYS, json={"orgId": bootstrap.orgId, "siteId": bootstrap.siteId,
                                            "name": name}), 400, "validation_error")
    assert b["error"]["field"] == "name"


def test_enroll_unknown_field_is_named_and_uses_nothing(agents, sql):
    k = agents.create_key()
    body = enroll_body(k["key"], agents.secret, serialNumber="X1")
    b = assert_error(agents.api.post(ENROLL, json=body), 400, "validation_error")
    assert b["error"]["field"] == "serialNumber" and "serialNumber" in b["error"]["message"]
    assert sql("SELECT usage_count FROM enrollment_keys WHERE id = %s", k["id"]) == [(0,)]


@pytest.mark.parametrize("field", ["hostname", "osType", "osVersion", "architecture", "agentVersion"])
@pytest.mark.parametrize("value", BAD_TEXT)
def test_enroll_strings_must_be_display_text(agents, sql, field, value):
    k = agents.create_key()
    body = enroll_body(k["key"], agents.secret, **{field: value})
    b = assert_error(agents.api.post(ENROLL, json=body), 400, "validation_error")
    assert b["error"]["field"] == field, b
    assert sql("SELECT usage_count FROM enrollment_keys WHERE id = %s", k["id"]) == [(0,)]


@pytest.mark.parametrize("hardware,named", [
    ({"cpuModel": "evil\x1b[2J"}, "cpuModel"),
    ({"kernel": "6.1\u202e"}, "kernel"),
    ({"memoryTotalBytes": 2 ** 60}, "memoryTotalBytes"),
    ({"nested": {"x": "a\nb"}}, "nested"),
])
def test_enroll_hardware_is_checked(agents, sql, hardware, named):
    k = agents.create_key()
    body = enroll_body(k["key"], agents.secret, hardware=hardware)
    b = assert_error(agents.api.post(ENROLL, json=body), 400, "validation_error")
    assert b["error"]["field"] == "hardware" and named in b["error"]["message"], b
    assert sql("SELECT usage_count FROM enrollment_keys WHERE id = %s", k["id"]) == [(0,)]


def test_enroll_hardware_may_have_an_unknown_cpu_model(agents):
    """The agent sends cpuModel "" when /proc/cpuinfo has none."""
    k = agents.create_key()
    body = enroll_body(k["key"], agents.secret)
    body["hardware"]["cpuModel"] = ""
    r = agents.api.post(ENROLL, json=body)
    assert r.status_code == 201, r.text


def test_enroll_unicode_hostname_is_kept(agents, admin):
    d = agents.new_device(hostname=uniq("büro-π"))
    assert admin.get(f"/api/v1/devices/{d['agentId']}").json()["hostname"] == d["hostname"]
