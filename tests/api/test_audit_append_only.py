"""Append-only enforcement of the audit log at the database (checklist L3, L5):
what each role may and may not do to audit_log and its side tables, and that
the sealing trigger, not the client, decides seq, ts, prev_checksum and
checksum."""
import datetime as dt

import psycopg2
import psycopg2.errors
import pytest

from audit_canonical import GENESIS, checksum

NIL = "00000000-0000-0000-0000-000000000000"


def refused(conn, query, *params, match=None):
    """Runs QUERY on CONN expecting an error (whose text contains MATCH when
    given); leaves CONN usable. Returns the exception."""
    try:
        with pytest.raises(psycopg2.Error) as ei:
            with conn.cursor() as cur:
                cur.execute(query, params)
    finally:
        if not conn.autocommit:
            conn.rollback()
    if match:
        assert match in str(ei.value), f"{query!r}: {ei.value}"
    return ei.value


@pytest.fixture
def chain(audit):
    """A fresh organization with a 5-row chain; returns (org_id, rows)."""
    org = audit.new_org()
    audit.insert(org, 5)
    rows = audit.rows(org)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    return org, rows


# ------------------------------------------------------------------ breeze_app


@pytest.mark.parametrize("stmt", [
    "UPDATE audit_log SET details = '{\"x\":1}' WHERE org_id = %s",
    "UPDATE audit_log SET result = 'failure' WHERE org_id = %s AND seq = 3",
    "DELETE FROM audit_log WHERE org_id = %s",
    "DELETE FROM audit_log WHERE org_id = %s AND seq = 5",
])
def test_app_cannot_update_or_delete(audit, chain, stmt):
    org, before = chain
    conn = audit.connect("app")
    refused(conn, stmt, org)
    conn.close()
    assert audit.rows(org) == before


def test_app_cannot_truncate(audit, chain):
    org, before = chain
    conn = audit.connect("app")
    for table in ("audit_log", "audit_anchors", "audit_checkpoints", "audit_chain_heads"):
        refused(conn, f"TRUNCATE {table}")
    conn.close()
    assert audit.rows(org) == before


def test_app_cannot_write_chain_heads_or_anchors(audit, chain):
    org, rows = chain
    conn = audit.connect("app")
    refused(conn, "UPDATE audit_chain_heads SET seq = 1, checksum = %s WHERE chain_id = %s",
            rows[0]["checksum"], org)
    refused(conn, "DELETE FROM audit_chain_heads WHERE chain_id = %s", org)
    refused(conn, "INSERT INTO audit_chain_heads (chain_id, seq, checksum) VALUES (gen_random_uuid(), 7, %s)",
            "a" * 64)
    refused(conn, "INSERT INTO audit_anchors (chain_id, first_seq, prev_checksum, pruned_rows,"
                  " pruned_before) VALUES (%s, 3, %s, 2, now())", org, rows[1]["checksum"])
    refused(conn, "UPDATE audit_checkpoints SET seq = seq")
    refused(conn, "DELETE FROM audit_checkpoints")
    conn.close()
    assert audit.head(org) == (5, rows[-1]["checksum"])


def test_app_role_is_not_privileged(audit):
    """breeze_app is no superuser, owns no audit table, and is not a member of
    breeze_audit_admin (so it can never switch to the retention role)."""
    r = audit.su("SELECT rolsuper, rolbypassrls, pg_has_role('breeze_app', 'breeze_audit_admin', 'MEMBER')"
                 " FROM pg_roles WHERE rolname = 'breeze_app'")
    assert r == [(False, False, False)]
    owners = audit.su("SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relname IN"
                      " ('audit_log', 'audit_chain_heads', 'audit_anchors', 'audit_checkpoints')")
    assert owners and ("breeze_app",) not in owners
    conn = audit.connect("app")
    refused(conn, "SET ROLE breeze_audit_admin")
    refused(conn, "ALTER TABLE audit_log DISABLE TRIGGER USER")
    refused(conn, "SET session_replication_role = replica")
    conn.close()


def test_trigger_overwrites_forged_chain_fields(audit, chain):
    """Whatever the client sends for seq, ts, prev_checksum and checksum, the
    sealing trigger replaces it: the row lands at head+1, linked to the head."""
    org, rows = chain
    head = rows[-1]
    conn = audit.connect("app")
    with conn.cursor() as cur:
        cur.execute("SELECT now()")
        t0 = cur.fetchone()[0]
        cur.execute("INSERT INTO audit_log (org_id, seq, ts, actor_type, action, resource, details,"
                    " prev_checksum, checksum) VALUES (%s, 999, '2001-02-03T04:05:06Z', 'user',"
                    " 'test.forged', 'tests', '{}', %s, %s) RETURNING id, seq, ts, prev_checksum, checksum",
                    (org, "b" * 64, "a" * 64))
        rid, seq, ts, prev, cks = cur.fetchone()
        # A forged predecessor equal to an older row's checksum is ignored too.
        cur.execute("INSERT INTO audit_log (org_id, seq, actor_type, action, resource, prev_checksum,"
                    " checksum) VALUES (%s, 2, 'user', 'test.forged', 'tests', %s, %s) RETURNING seq, prev_checksum",
                    (org, rows[0]["checksum"], rows[0]["checksum"]))
        seq2, prev2 = cur.fetchone()
    conn.close()
    assert (seq, prev) == (6, head["checksum"])
    assert cks != "a" * 64
    assert abs(ts - t0) < dt.timedelta(minutes=5), "ts must be the server's clock, not the client's"
    stored = audit.rows(org)
    assert [r["seq"] for r in stored] == [1, 2, 3, 4, 5, 6, 7]
    assert stored[5]["id"] == rid and stored[5]["checksum"] == cks == checksum(stored[5])
    assert (seq2, prev2) == (7, cks)
    assert audit.head(org) == (7, stored[6]["checksum"])


def test_first_row_links_to_genesis_and_null_org_goes_to_system_chain(audit):
    org = audit.new_org()
    audit.insert(org, 1)
    (row,) = audit.rows(org)
    assert (row["seq"], row["prev_checksum"]) == (1, GENESIS) and row["checksum"] == checksum(row)
    before = audit.head(None)
    (rid,) = audit.insert(None, 1, action="test.system_event")
    after = audit.head(None)
    sys_row = audit.rows(None, "AND id = %s", rid)[0]
    assert sys_row["org_id"] is None
    assert sys_row["seq"] == (before[0] if before else 0) + 1
    assert sys_row["prev_checksum"] == (before[1] if before else GENESIS)
    assert after == (sys_row["seq"], sys_row["checksum"]) and sys_row["checksum"] == checksum(sys_row)


# ------------------------------------------------------------------ breeze_audit_admin


def test_audit_admin_without_setting_cannot_delete(audit, chain):
    org, before = chain
    conn = audit.connect("admin")
    refused(conn, "DELETE FROM audit_log WHERE org_id = %s AND seq = 1", org, match="append-only")
    refused(conn, "DELETE FROM audit_log WHERE org_id = %s", org, match="append-only")
    refused(conn, "SET breeze.allow_audit_retention = '0'; DELETE FROM audit_log WHERE org_id = %s AND seq = 1",
            org, match="append-only")
    refused(conn, "UPDATE audit_log SET details = '{}' WHERE org_id = %s", org)
    refused(conn, "TRUNCATE audit_log")
    conn.close()
    assert audit.rows(org) == before


def _retention_conn(audit):
    conn = audit.connect("admin", autocommit=False)
    with conn.cursor() as cur:
        cur.execute("SET breeze.allow_audit_retention = '1'")
    conn.commit()
    return conn


def _anchor(cur, org, first_seq, prev, pruned):
    cur.execute("INSERT INTO audit_anchors (chain_id, first_seq, prev_checksum, pruned_rows, pruned_before)"
                " VALUES (%s, %s, %s, %s, now())", (org, first_seq, prev, pruned))


def test_retention_refuses_head(audit, chain):
    org, before = chain
    conn = _retention_conn(audit)
    refused(conn, "DELETE FROM audit_log WHERE org_id = %s AND seq = 5", org)
    # The whole chain, with an anchor that would make the rest consistent.
    with conn.cursor() as cur:
        _anchor(cur, org, 6, before[4]["checksum"], 5)
    refused(conn, "DELETE FROM audit_log WHERE org_id = %s", org, match="head")
    conn.close()
    assert audit.rows(org) == before


def test_retention_refuses_middle_row(audit, chain):
    org, before = chain
    conn = _retention_conn(audit)
    refused(conn, "DELETE FROM audit_log WHERE org_id = %s AND seq = 3", org, match="oldest")
    with conn.cursor() as cur:  # even with an anchor that names the gap
        _anchor(cur, org, 4, before[2]["checksum"], 1)
    refused(conn, "DELETE FROM audit_log WHERE org_id = %s AND seq = 3", org)
    refused(conn, "DELETE FROM audit_log WHERE org_id = %s AND seq IN (1, 3)", org)
    conn.close()
    assert audit.rows(org) == before


def test_retention_refuses_prefix_without_anchor(audit, chain):
    org, before = chain
    conn = _retention_conn(audit)
    refused(conn, "DELETE FROM audit_log WHERE org_id = %s AND seq <= 2", org, match="anchor")
    conn.close()
    assert audit.rows(org) == before


@pytest.mark.parametrize("case", ["wrong_prev", "wrong_first_seq", "earlier_transaction"])
def test_retention_refuses_prefix_with_wrong_anchor(audit, chain, case):
    org, before = chain
    conn = _retention_conn(audit)
    with conn.cursor() as cur:
        if case == "wrong_prev":
            _anchor(cur, org, 3, before[0]["checksum"], 2)
        elif case == "wrong_first_seq":
            _anchor(cur, org, 4, before[1]["checksum"], 2)
        else:  # a correct anchor, but committed by an earlier transaction
            _anchor(cur, org, 3, before[1]["checksum"], 2)
            try:
                conn.commit()
            except psycopg2.Error:
                conn.rollback()  # refused outright: an anchor must come with its prune
    refused(conn, "DELETE FROM audit_log WHERE org_id = %s AND seq <= 2", org, match="anchor")
    conn.close()
    assert audit.rows(org) == before


def test_retention_prunes_prefix_with_anchor(audit, chain):
    org, before = chain
    conn = _retention_conn(audit)
    with conn.cursor() as cur:
        _anchor(cur, org, 3, before[1]["checksum"], 2)
        cur.execute("DELETE FROM audit_log WHERE org_id = %s AND seq <= 2", (org,))
        assert cur.rowcount == 2
    conn.commit()
    conn.close()
    assert audit.rows(org) == before[2:]
    # The chain goes on from its head; anchors are append-only like the log.
    audit.insert(org, 1)
    after = audit.rows(org)
    assert [r["seq"] for r in after] == [3, 4, 5, 6] and after[-1]["prev_checksum"] == before[-1]["checksum"]
    conn = _retention_conn(audit)
    refused(conn, "DELETE FROM audit_anchors WHERE chain_id = %s", org)
    refused(conn, "UPDATE audit_anchors SET first_seq = 2 WHERE chain_id = %s", org)
    conn.close()


def test_retention_setting_does_not_help_other_roles(audit, chain):
    org, before = chain
    for who in ("app", "super", "owner"):
        conn = audit.connect(who)
        refused(conn, "SET breeze.allow_audit_retention = '1'; DELETE FROM audit_log WHERE org_id = %s AND seq = 1",
                org)
        conn.close()
    assert audit.rows(org) == before


# ------------------------------------------------------------------ superuser (normal mode)


@pytest.mark.parametrize("stmt", [
    "UPDATE audit_log SET details = '{\"x\":1}' WHERE org_id = %(org)s AND seq = 2",
    "UPDATE audit_log SET seq = seq + 100 WHERE org_id = %(org)s",
    "DELETE FROM audit_log WHERE org_id = %(org)s AND seq = 5",
    "DELETE FROM audit_log WHERE org_id = %(org)s",
    "TRUNCATE audit_log",
    "TRUNCATE audit_log CASCADE",
    "UPDATE audit_anchors SET first_seq = first_seq",
    "DELETE FROM audit_anchors",
    "TRUNCATE audit_anchors",
    "UPDATE audit_checkpoints SET seq = seq",
    "DELETE FROM audit_checkpoints",
    "TRUNCATE audit_checkpoints",
])
@pytest.mark.parametrize("who", ["super", "owner"])
def test_superuser_and_owner_cannot_change_audit_tables(audit, chain, stmt, who):
    org, before = chain
    # The side tables hold a row of this chain, so their row triggers fire
    # (written with triggers off: these rows only need to exist).
    setup = audit.connect("super")
    with setup.cursor() as cur:
        cur.execute("SET session_replication_role = replica")
        cur.execute("INSERT INTO audit_checkpoints (chain_id, seq, checksum, public_key, signature)"
                    " VALUES (%s, 5, %s, %s, %s)", (org, before[-1]["checksum"], "c" * 64, "d" * 128))
        cur.execute("INSERT INTO audit_anchors (chain_id, first_seq, prev_checksum, pruned_rows, pruned_before)"
                    " VALUES (%s, 99, %s, 1, now())", (org, "e" * 64))
    setup.close()
    conn = audit.connect(who)
    with pytest.raises(psycopg2.Error) as ei:
        with conn.cursor() as cur:
            cur.execute(stmt, {"org": org})
    conn.close()
    assert "append-only" in str(ei.value), ei.value
    assert audit.rows(org) == before
