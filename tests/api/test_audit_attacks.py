"""Attacks on the audit log found by review, each pinned: INSERT … ON
CONFLICT cannot desynchronise a chain's head, an anchor cannot be recorded
without its prune, the audit roles get no temporary tables to shadow the
tables that caller-rights triggers read, and a role-level client_encoding
cannot change what verification hashes."""
import psycopg2
import pytest


def test_on_conflict_do_nothing_cannot_skip_a_sealed_row(audit):
    org = audit.new_org()
    [first] = audit.insert(org, 1)
    conn = audit.connect("app")
    with conn.cursor() as cur:
        cur.execute("INSERT INTO audit_log (id, org_id, actor_type, action, resource)"
                    " VALUES (%s, %s, 'user', 'a.b', 'r') ON CONFLICT DO NOTHING RETURNING id",
                    (first, org))
        got = cur.fetchall()
    # The client's id is replaced, so nothing conflicts and the row is stored.
    assert len(got) == 1 and got[0][0] != first
    audit.insert(org, 2)
    rows = audit.rows(org)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert audit.head(org)[0] == 4
    rc, chain, _ = audit.verify(org)
    assert rc == 0 and chain["ok"], chain


def test_anchor_without_a_prune_is_refused(audit):
    org = audit.new_org()
    audit.insert(org, 5)
    row4 = audit.rows(org)[3]
    conn = audit.connect("admin")
    with pytest.raises(psycopg2.Error) as e:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO audit_anchors (chain_id, first_seq, prev_checksum, pruned_rows,"
                        " pruned_before) VALUES (%s, 5, %s, 4, now())", (org, row4["checksum"]))
    assert "does not match a prune" in str(e.value)
    assert audit.su("SELECT count(*) FROM audit_anchors WHERE chain_id = %s", org)[0][0] == 0
    rc, chain, _ = audit.verify(org)
    assert rc == 0 and chain["ok"], chain


@pytest.mark.parametrize("who", ["app", "admin"])
def test_audit_roles_get_no_temporary_tables(audit, who):
    conn = audit.connect(who)
    with pytest.raises(psycopg2.Error) as e:
        with conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE audit_log (chain_id uuid, seq bigint)")
    assert e.value.pgcode == "42501", e.value  # insufficient_privilege


def test_role_client_encoding_does_not_change_verification(audit):
    org = audit.new_org()
    audit.insert(org, 3, details=lambda i: '{"emoji": "\U0001F512", "latin": "\u00e9"}')
    audit.su("ALTER ROLE breeze_app SET client_encoding = 'LATIN1'")
    try:
        rc, chain, _ = audit.verify(org)
    finally:
        audit.su("ALTER ROLE breeze_app RESET client_encoding")
    assert rc == 0 and chain["ok"] and chain["rowsChecked"] == 3, chain
