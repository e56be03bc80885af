"""GET /api/v1/audit (checklist L6): every filter, cursor pagination (newest
first, no duplicates or gaps), tenant isolation, the audit:read permission,
and 400s naming the bad parameter."""
import datetime as dt
import json
import re
import uuid

import pytest

from conftest import assert_error, uniq

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
ENTRY_KEYS = {"id", "orgId", "partnerId", "siteId", "seq", "timestamp", "actorType", "actorId",
              "action", "resource", "resourceId", "details", "ipAddress", "result", "checksum",
              "prevChecksum"}


def iso(t):
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture(scope="module")
def seeded(audit, tenants):
    """Rows with a resource unique to this run in tenant A (8) and tenant B (3),
    varied in every filterable field."""
    res = uniq("qres").replace("-", "_")
    a_rows = audit.insert(
        tenants.a.id, 8, resource=res,
        action=lambda i: f"qtest.{('create', 'delete')[i % 2]}",
        actor_type=lambda i: ("user", "agent", "api_key", "system")[i % 4],
        actor_id=lambda i: f"actor-{i % 3}",
        resource_id=lambda i: f"rid-{i // 2}",
        result=lambda i: ("success", "failure", "denied")[i % 3],
        ip_address="198.51.100.20",
        details=lambda i: json.dumps({"i": i}))
    b_rows = audit.insert(tenants.b.id, 3, resource=res, action="qtest.create", actor_id="actor-0",
                          resource_id="rid-0", actor_type="user")
    rows = {r["id"]: r for org in (tenants.a.id, tenants.b.id) for r in audit.rows(org, "AND resource = %s", res)}
    return {"res": res, "a": [rows[i] for i in a_rows], "b": [rows[i] for i in b_rows]}


def get_all(client, **params):
    """Follows nextCursor to the end; returns (entries, pages)."""
    out, pages, cursor = [], 0, None
    while True:
        q = dict(params)
        if cursor:
            q["cursor"] = cursor
        r = client.get("/api/v1/audit", params=q)
        assert r.status_code == 200, r.text
        body = r.json()
        out += body["entries"]
        pages += 1
        cursor = body.get("nextCursor")
        if not cursor:
            return out, pages
        assert pages < 100, "pagination does not end"


def ids(entries):
    return [int(e["id"]) for e in entries]


def newest_first(rows):
    return sorted(rows, key=lambda r: (r["ts"], r["id"]), reverse=True)


def test_entry_shape(admin, seeded, tenants):
    r = admin.get("/api/v1/audit", params={"resource": seeded["res"], "orgId": tenants.a.id})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"entries", "nextCursor"} and body["nextCursor"] is None
    assert len(body["entries"]) == 8
    stored = {r["id"]: r for r in seeded["a"]}
    for e in body["entries"]:
        assert set(e) == ENTRY_KEYS, set(e) ^ ENTRY_KEYS
        assert TS_RE.match(e["timestamp"]), e["timestamp"]
        row = stored[int(e["id"])]
        assert e["orgId"] == tenants.a.id and int(e["seq"]) == row["seq"]
        assert e["partnerId"] is None and e["siteId"] == row["site_id"]
        assert e["timestamp"] == iso(row["ts"])
        assert (e["actorType"], e["actorId"], e["action"], e["resource"], e["resourceId"], e["ipAddress"],
                e["result"], e["checksum"], e["prevChecksum"]) == (
            row["actor_type"], row["actor_id"], row["action"], row["resource"], row["resource_id"],
            row["ip_address"], row["result"], row["checksum"], row["prev_checksum"])
        d = e["details"]
        assert (json.loads(d) if isinstance(d, str) else d) == json.loads(row["details"])


FILTERS = [
    ("action", "qtest.delete", lambda r: r["action"] == "qtest.delete"),
    ("actorType", "agent", lambda r: r["actor_type"] == "agent"),
    ("actorId", "actor-1", lambda r: r["actor_id"] == "actor-1"),
    ("resourceId", "rid-2", lambda r: r["resource_id"] == "rid-2"),
    ("result", "failure", lambda r: r["result"] == "failure"),
    ("result", "denied", lambda r: r["result"] == "denied"),
]


@pytest.mark.parametrize("name,value,pred", FILTERS, ids=[f"{n}={v}" for n, v, _ in FILTERS])
def test_filter(admin, seeded, tenants, name, value, pred):
    want = [r for r in seeded["a"] if pred(r)]
    assert 0 < len(want) < 8
    got, _ = get_all(admin, resource=seeded["res"], orgId=tenants.a.id, **{name: value})
    assert ids(got) == [r["id"] for r in newest_first(want)]
    # The same filter without orgId spans both tenants for the partner admin.
    got_all, _ = get_all(admin, resource=seeded["res"], **{name: value})
    want_all = [r for r in seeded["a"] + seeded["b"] if pred(r)]
    assert sorted(ids(got_all)) == sorted(r["id"] for r in want_all)


def test_filter_resource_and_org(admin, seeded, tenants):
    got, _ = get_all(admin, resource=seeded["res"])
    assert sorted(ids(got)) == sorted(r["id"] for r in seeded["a"] + seeded["b"])
    got, _ = get_all(admin, resource=seeded["res"], orgId=tenants.b.id)
    assert ids(got) == [r["id"] for r in newest_first(seeded["b"])]
    got, _ = get_all(admin, resource=seeded["res"] + "_none")
    assert got == []


def test_filter_from_to(admin, seeded, tenants):
    rows = sorted(seeded["a"], key=lambda r: r["seq"])
    lo, hi = rows[2]["ts"], rows[5]["ts"]
    got, _ = get_all(admin, resource=seeded["res"], orgId=tenants.a.id, **{"from": iso(lo), "to": iso(hi)})
    # from is inclusive; to excludes its own instant or includes it, but
    # nothing outside [from, to] may appear and everything strictly inside must.
    assert set(ids(got)) >= {r["id"] for r in rows[2:5]}
    assert set(ids(got)) <= {r["id"] for r in rows[2:6]}
    got, _ = get_all(admin, resource=seeded["res"], orgId=tenants.a.id, **{"from": iso(rows[-1]["ts"] + dt.timedelta(seconds=1))})
    assert got == []
    got, _ = get_all(admin, resource=seeded["res"], orgId=tenants.a.id, to=iso(rows[0]["ts"]))
    assert got == []
    # Date-only and offset forms are ISO 8601 too.
    day = rows[0]["ts"].astimezone(dt.timezone.utc).date()
    got, _ = get_all(admin, resource=seeded["res"], orgId=tenants.a.id, **{"from": day.isoformat()})
    assert len(got) == 8


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_pagination(admin, seeded, tenants, limit):
    got, pages = get_all(admin, resource=seeded["res"], orgId=tenants.a.id, limit=limit)
    want = [r["id"] for r in newest_first(seeded["a"])]
    assert ids(got) == want, "pages must be newest first, with no duplicate or missing row"
    assert pages == -(-8 // limit) or pages == -(-8 // limit) + 1  # a last empty page is tolerated
    stamps = [(e["timestamp"], int(e["id"])) for e in got]
    assert stamps == sorted(stamps, reverse=True)


def test_pagination_is_stable_while_rows_arrive(admin, audit, tenants):
    """Rows appended between pages do not shift the cursor (no duplicates)."""
    res = uniq("qpage").replace("-", "_")
    audit.insert(tenants.a.id, 5, resource=res)
    r = admin.get("/api/v1/audit", params={"resource": res, "limit": 2})
    first = r.json()
    audit.insert(tenants.a.id, 3, resource=res)
    rest, _ = get_all(admin, resource=res, limit=2, cursor=first["nextCursor"])
    seen = ids(first["entries"]) + ids(rest)
    assert len(seen) == len(set(seen)) == 5


def test_default_and_max_limit(admin, audit, tenants):
    res = uniq("qlim").replace("-", "_")
    audit.insert(tenants.a.id, 55, resource=res)
    r = admin.get("/api/v1/audit", params={"resource": res})
    assert r.status_code == 200 and len(r.json()["entries"]) == 50 and r.json()["nextCursor"]
    r = admin.get("/api/v1/audit", params={"resource": res, "limit": 500})
    assert r.status_code == 200 and len(r.json()["entries"]) == 55 and r.json()["nextCursor"] is None


def test_newest_first_across_organizations(admin, seeded):
    got, _ = get_all(admin, resource=seeded["res"], limit=4)
    stamps = [(e["timestamp"], int(e["id"])) for e in got]
    assert len(got) == 11 and stamps == sorted(stamps, reverse=True)


# ------------------------------------------------------------------ tenancy


def test_org_admin_sees_only_own_tenant(seeded, tenants):
    a = tenants.a_admin.api
    got, _ = get_all(a, resource=seeded["res"])
    assert sorted(ids(got)) == sorted(r["id"] for r in seeded["a"])
    got, _ = get_all(a, limit=500)  # no filter at all
    assert got and {e["orgId"] for e in got} == {tenants.a.id}
    got, _ = get_all(tenants.b_admin.api, resource=seeded["res"])
    assert sorted(ids(got)) == sorted(r["id"] for r in seeded["b"])


@pytest.mark.parametrize("who", ["a_admin"])
def test_inaccessible_org_is_404(seeded, tenants, who, audit):
    c = getattr(tenants, who).api
    for org in (tenants.b.id, str(uuid.uuid4()), audit.new_org()):
        assert_error(c.get("/api/v1/audit", params={"orgId": org}), 404)
        assert_error(c.get("/api/v1/audit", params={"orgId": org, "resource": seeded["res"]}), 404)


def test_cursor_does_not_cross_tenants(seeded, tenants, admin):
    """A cursor taken by A's admin (or the partner admin) never shows B's rows
    to A, nor A's rows to B."""
    r = tenants.a_admin.api.get("/api/v1/audit", params={"resource": seeded["res"], "limit": 2})
    cur = r.json()["nextCursor"]
    assert cur
    r = tenants.b_admin.api.get("/api/v1/audit", params={"cursor": cur, "resource": seeded["res"]})
    assert r.status_code in (200, 400), r.text
    if r.status_code == 200:
        assert {e["orgId"] for e in r.json()["entries"]} <= {tenants.b.id}
    r = admin.get("/api/v1/audit", params={"resource": seeded["res"], "limit": 2, "orgId": tenants.b.id})
    cur = r.json()["nextCursor"]
    r = tenants.a_admin.api.get("/api/v1/audit", params={"cursor": cur, "resource": seeded["res"]})
    assert r.status_code in (200, 400), r.text
    if r.status_code == 200:
        assert {e["orgId"] for e in r.json()["entries"]} <= {tenants.a.id}


def test_permission_audit_read(api, tenants, seeded):
    assert_error(tenants.a_viewer.api.get("/api/v1/audit"), 403)
    assert_error(tenants.tech_a.api.get("/api/v1/audit", params={"orgId": tenants.a.id}), 403)
    assert_error(api.get("/api/v1/audit"), 401)
    assert_error(api.get("/api/v1/audit/verify", params={"orgId": tenants.a.id}), 401)


# ------------------------------------------------------------------ bad parameters


BAD = [
    ("limit", "0"), ("limit", "501"), ("limit", "-1"), ("limit", "abc"), ("limit", "10x"),
    ("limit", "99999999999999999999"),
    ("actorType", "robot"), ("result", "maybe"),
    ("from", "garbage"), ("to", "garbage"), ("from", "2024-13-01T00:00:00Z"),
    ("cursor", "garbage"), ("cursor", "%%%"), ("cursor", "eyJ4IjoxfQ"),
    ("orgId", "not-a-uuid"), ("limit", ""),
    ("resource", ""), ("resource", b"\xff\xfe"), ("resource", "r" * 1001), ("action", b"a.\xc3"),
]


@pytest.mark.parametrize("name,value", BAD, ids=[f"{n}={v!r:.20}" for n, v in BAD])
def test_bad_parameter_is_400_naming_it(admin, name, value):
    r = admin.get("/api/v1/audit", params={name: value})
    body = assert_error(r, 400)
    assert name in body["error"]["message"] or name in json.dumps(body), body


def test_from_after_to_is_400(admin):
    body = assert_error(admin.get("/api/v1/audit", params={"from": "2025-01-02T00:00:00Z",
                                                           "to": "2025-01-01T00:00:00Z"}), 400)
    assert "from" in json.dumps(body) or "to" in json.dumps(body)


def test_verify_api_bad_parameters(admin, tenants):
    for params, name in (({}, "orgId"), ({"orgId": ""}, "orgId"),
                         ({"orgId": tenants.a.id, "from": "garbage"}, "from"),
                         ({"orgId": tenants.a.id, "from": "2025-01-02", "to": "2025-01-01"}, "from"),
                         ({"orgId": tenants.a.id, "to": "nope"}, "to"),
                         ({"orgId": "not-a-uuid"}, "orgId")):
        body = assert_error(admin.get("/api/v1/audit/verify", params=params), 400)
        assert name in json.dumps(body), body


def test_org_id_is_case_insensitive(admin, seeded, tenants):
    """An upper-case spelling of a visible organization's id is that
    organization (UUIDs are case-insensitive), not a 404 or another scope."""
    got, _ = get_all(admin, resource=seeded["res"], orgId=tenants.a.id.upper())
    assert sorted(ids(got)) == sorted(r["id"] for r in seeded["a"])
    r = admin.get("/api/v1/audit/verify", params={"orgId": tenants.a.id.upper()})
    assert r.status_code == 200 and r.json()["orgId"] == tenants.a.id, r.text
    assert_error(tenants.a_admin.api.get("/api/v1/audit", params={"orgId": tenants.b.id.upper()}), 404)
