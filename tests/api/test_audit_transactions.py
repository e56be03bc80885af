"""The audit row lives and dies with its transaction (M3), and the checksum
does not depend on the writing session's settings (L2): TimeZone, DateStyle,
IntervalStyle, extra_float_digits. Checksums are recomputed here by an
independent implementation of the canonical form (audit_canonical.py)."""
import datetime as dt
import json
import threading
import time

import psycopg2
import pytest

from audit_canonical import GENESIS, canonical, check_chain, checksum, field, ts_text
from conftest import assert_error, uniq


# ------------------------------------------------------------------ rollback


def test_rolled_back_insert_leaves_no_row_and_no_gap(audit):
    org = audit.new_org()
    audit.insert(org, 2)
    head = audit.head(org)
    conn = audit.connect("app", autocommit=False)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO audit_log (org_id, actor_type, action, resource, resource_id)"
                    " VALUES (%s, 'user', 'test.rolled_back', 'tests', 'ghost') RETURNING seq", (org,))
        assert cur.fetchone()[0] == 3
        cur.execute("SELECT count(*) FROM audit_log WHERE org_id = %s", (org,))
        assert cur.fetchone()[0] == 3  # visible inside the transaction
    conn.rollback()
    conn.close()
    assert audit.count(org) == 2
    assert audit.su("SELECT count(*) FROM audit_log WHERE resource_id = 'ghost' AND org_id = %s", org)[0][0] == 0
    assert audit.head(org) == head
    audit.insert(org, 1)
    rows = audit.rows(org)
    check_chain(rows)
    assert [r["seq"] for r in rows] == [1, 2, 3] and rows[2]["action"] == "test.event"
    rc, chain, doc = audit.verify(org)
    assert rc == 0 and chain["rowsChecked"] == 3, doc


def test_rolled_back_mutation_with_its_change(audit):
    """A change and its audit row in one transaction: a rollback removes both."""
    org = audit.new_org()
    conn = audit.connect("app", autocommit=False)
    name = uniq("site")
    with conn.cursor() as cur:
        cur.execute("INSERT INTO sites (org_id, name) VALUES (%s, %s) RETURNING id", (org, name))
        sid = cur.fetchone()[0]
        cur.execute("INSERT INTO audit_log (org_id, actor_type, action, resource, resource_id)"
                    " VALUES (%s, 'user', 'site.create', 'sites', %s)", (org, str(sid)))
    conn.rollback()
    conn.close()
    assert audit.su("SELECT count(*) FROM sites WHERE name = %s", name)[0][0] == 0
    assert audit.count(org) == 0 and audit.head(org) in (None, (0, GENESIS))
    (rid,) = audit.insert(org, 1)
    (row,) = audit.rows(org)
    assert (row["id"], row["seq"], row["prev_checksum"]) == (rid, 1, GENESIS)


def test_waiting_writer_continues_after_rollback(audit):
    """Writer B waits for A's lock on the chain head; A rolls back; B takes
    A's position, linked to the old head."""
    org = audit.new_org()
    audit.insert(org, 1)
    (old_seq, old_sum) = audit.head(org)
    a = audit.connect("app", autocommit=False)
    with a.cursor() as cur:
        cur.execute("INSERT INTO audit_log (org_id, actor_type, action, resource) VALUES (%s, 'user', 'test.a', 'tests')",
                    (org,))
    out = {}

    def b():
        out["ids"] = audit.insert(org, 1, action="test.b")

    t = threading.Thread(target=b)
    t.start()
    time.sleep(0.3)
    a.rollback()
    a.close()
    t.join(timeout=30)
    assert "ids" in out
    rows = audit.rows(org)
    check_chain(rows)
    assert [(r["seq"], r["action"]) for r in rows] == [(1, "test.event"), (2, "test.b")]
    assert rows[1]["prev_checksum"] == old_sum and old_seq == 1


def test_failed_statement_in_transaction_leaves_no_row(audit):
    """An audit row followed by a failing statement: the transaction aborts,
    the row never appears and the next row continues the chain."""
    org = audit.new_org()
    audit.insert(org, 1)
    conn = audit.connect("app", autocommit=False)
    with pytest.raises(psycopg2.Error):
        with conn.cursor() as cur:
            cur.execute("INSERT INTO audit_log (org_id, actor_type, action, resource) VALUES (%s, 'user', 'test.a', 'tests')",
                        (org,))
            cur.execute("INSERT INTO audit_log (org_id, actor_type, action, resource) VALUES (%s, 'robot', 'test.a', 'tests')",
                        (org,))
    conn.rollback()
    conn.close()
    audit.insert(org, 1)
    rows = audit.rows(org)
    check_chain(rows)
    assert len(rows) == 2


def test_api_conflict_writes_no_audit_row(admin, audit, make_org):
    """POST /organizations with a taken name fails after validation (409): no
    organization.create row is written for it; same for a duplicate site."""
    name = uniq("Dup Org")
    r = admin.post("/api/v1/organizations", json={"name": name})
    assert r.status_code == 201, r.text
    org_id = r.json()["id"]
    by_name = ("SELECT count(*) FROM audit_log WHERE action = 'organization.create'"
               " AND details::jsonb ->> 'name' = %s")
    assert audit.su(by_name, name)[0][0] == 1
    total = audit.su("SELECT count(*) FROM audit_log")[0][0]
    assert_error(admin.post("/api/v1/organizations", json={"name": name}), 409)
    assert audit.su(by_name, name)[0][0] == 1
    assert audit.su("SELECT count(*) FROM organizations WHERE name = %s", name)[0][0] == 1
    r = admin.post(f"/api/v1/organizations/{org_id}/sites", json={"name": "Only"})
    assert r.status_code == 201, r.text
    n = audit.count(org_id)
    assert_error(admin.post(f"/api/v1/organizations/{org_id}/sites", json={"name": "Only"}), 409)
    assert audit.count(org_id) == n == 2
    # Nothing else moved either (no row for the conflicts in any chain).
    others = audit.su("SELECT count(*) FROM audit_log WHERE NOT (chain_id = %s AND seq = 2)", org_id)[0][0]
    assert others == total
    rows = audit.rows(org_id)
    check_chain(rows)
    assert [r["action"] for r in rows] == ["organization.create", "site.create"]


# ------------------------------------------------------------------ session settings


SESSIONS = {
    "utc": ["SET TimeZone = 'UTC'"],
    "new_york": ["SET TimeZone = 'America/New_York'", "SET DateStyle = 'SQL, DMY'"],
    "kathmandu": ["SET TimeZone = 'Asia/Kathmandu'", "SET DateStyle = 'German, MDY'",
                  "SET IntervalStyle = 'sql_standard'", "SET extra_float_digits = -15"],
    "posix_offset": ["SET TimeZone = '<+0330>-03:30'", "SET DateStyle = 'Postgres, YMD'"],
}


def test_checksum_independent_of_session_settings(audit, admin):
    org = audit.new_org()
    ids = {}
    for name, stmts in SESSIONS.items():
        conn = audit.connect("app")
        with conn.cursor() as cur:
            for s in stmts:
                cur.execute(s)
        ids[name] = audit.insert(org, 2, conn=conn, actor_id=name, ip_address="2001:db8::1",
                                 details=json.dumps({"session": name, "text": "naïve café"}))
        conn.close()
    rows = audit.rows(org)
    check_chain(rows)  # every stored checksum recomputes in Python from UTC
    for r in rows:
        assert r["checksum"] == checksum(r)
        assert r["ip_address"] == "2001:db8::1"
    # The server's own recomputation agrees in every session setting too.
    for name, stmts in SESSIONS.items():
        conn = audit.connect("super")
        with conn.cursor() as cur:
            for s in stmts:
                cur.execute(s)
            cur.execute("SELECT id, audit_row_checksum(audit_log), audit_ts_text(ts),"
                        " convert_from(audit_canonical(id, org_id, seq, ts, actor_type, actor_id, action,"
                        " resource, resource_id, details, ip_address, result, prev_checksum), 'UTF8')"
                        " FROM audit_log WHERE chain_id = %s ORDER BY seq", (org,))
            got = cur.fetchall()
        conn.close()
        for (rid, cks, tstext, canon), r in zip(got, rows):
            assert rid == r["id"] and cks == r["checksum"], f"{name}: seq {r['seq']}"
            assert tstext == ts_text(r["ts"]), name
            assert canon.encode() == canonical(r), name
    rc, chain, doc = audit.verify(org)
    assert rc == 0 and chain["rowsChecked"] == 2 * len(SESSIONS), doc


def test_api_entries_recompute(audit, admin):
    """The query API returns every hashed field exactly: recomputing the
    checksum from an API entry alone gives its checksum."""
    org = audit.new_org()
    audit.insert(org, 3, actor_id="api-check", ip_address=lambda i: ("198.51.100.7", None, "::1")[i],
                 resource_id=lambda i: None if i == 1 else f"r{i}",
                 details=lambda i: json.dumps({"k": i, "u": "ümlaut", "nested": {"b": [1, 2.5, None]}},
                                              separators=(",", ":")))
    r = admin.get("/api/v1/audit", params={"orgId": org})
    assert r.status_code == 200, r.text
    entries = r.json()["entries"]
    assert len(entries) == 3
    stored = {x["id"]: x for x in audit.rows(org)}
    for e in entries:
        row = stored[int(e["id"])]
        d = e["details"]
        d_text = d if isinstance(d, str) else row["details"]
        if not isinstance(d, str):
            assert d == json.loads(row["details"])
        mapped = {"id": e["id"], "org_id": e["orgId"], "seq": e["seq"], "ts": e["timestamp"],
                  "actor_type": e["actorType"], "actor_id": e["actorId"], "action": e["action"],
                  "resource": e["resource"], "resource_id": e["resourceId"], "details": d_text,
                  "ip_address": e["ipAddress"], "result": e["result"],
                  "prev_checksum": e["prevChecksum"]}
        assert checksum(mapped) == e["checksum"] == row["checksum"], e


def test_canonical_vectors_match_database(audit):
    """The Python encoder and the database agree byte for byte on edge cases:
    NULLs, empty strings, multi-byte UTF-8 (octet lengths), delimiters inside
    values, and a microsecond-zero timestamp."""
    cases = [
        (1, None, 1, "2024-01-01T00:00:00Z", "system", None, "a.b", "r", None, "{}", None, "success", GENESIS),
        (2, "5f0e7a4e-1d2c-4b7a-9c51-0123456789ab", 9007199254740993, "2024-02-29T23:59:59.999999Z",
         "user", "", "x.y_z", "S3:abc,", "N", '{"a":"N,S1:x"}', "::ffff:1.2.3.4", "denied", "f" * 64),
        (3, "5f0e7a4e-1d2c-4b7a-9c51-0123456789ab", 2, "1999-12-31T23:00:00.000001-05:00", "agent", "Ω≈ç√",
         "d.e", "ресурс", "ид", '{"emoji":"😀"}', "10.0.0.1", "failure", "a" * 64),
    ]
    for c in cases:
        got = audit.su("SELECT convert_from(audit_canonical(%s, %s::uuid, %s, %s::timestamptz, %s, %s, %s, %s,"
                       " %s, %s, %s, %s, %s), 'UTF8'), encode(sha256(audit_canonical(%s, %s::uuid, %s,"
                       " %s::timestamptz, %s, %s, %s, %s, %s, %s, %s, %s, %s)), 'hex')", *c, *c)[0]
        ts = dt.datetime.fromisoformat(c[3].replace("Z", "+00:00"))
        row = dict(zip(["id", "org_id", "seq", "ts", "actor_type", "actor_id", "action", "resource",
                        "resource_id", "details", "ip_address", "result", "prev_checksum"], c))
        row["ts"] = ts
        assert got[0].encode() == canonical(row)
        assert got[1] == checksum(row)
    # Length prefixes count octets, and NULL differs from the empty string.
    assert field("é") == "S2:é,".encode() and field(None) == b"N" and field("") == b"S0:,"
    a = dict(row, actor_id=None)
    b = dict(row, actor_id="")
    assert checksum(a) != checksum(b)
