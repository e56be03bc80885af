"""Retention pruning (checklist L5): `breeze-server audit prune` removes only
the oldest run of a chain older than the cutoff, never the head, records an
anchor, and verification still passes end to end afterwards.

Old rows cannot be made by the sealing trigger (it stamps clock_timestamp()),
so `aged_chain` forges a correctly sealed chain with chosen timestamps as the
superuser, before anything else can see or checkpoint it."""
import datetime as dt
import json

import pytest

from audit_canonical import GENESIS, check_chain, checksum

UTC = dt.timezone.utc


def aged_chain(audit, ages_days):
    """A fresh organization whose chain starts with rows AGES_DAYS old
    (oldest first), sealed exactly as the trigger would; returns (org, rows)."""
    org = audit.new_org()
    now = dt.datetime.now(UTC)
    conn = audit.connect("super", autocommit=False)
    prev = GENESIS
    with conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")
        for seq, age in enumerate(ages_days, 1):
            cur.execute("SELECT nextval('audit_log_id_seq')")
            row = {"id": cur.fetchone()[0], "org_id": org, "seq": seq,
                   "ts": now - dt.timedelta(days=age, seconds=-seq), "actor_type": "system",
                   "actor_id": None, "action": "test.aged", "resource": "tests",
                   "resource_id": f"age-{age}", "details": json.dumps({"age": age}),
                   "ip_address": None, "result": "success", "prev_checksum": prev}
            row["checksum"] = prev = checksum(row)
            cols = list(row)
            cur.execute(f"INSERT INTO audit_log ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})",
                        [row[c] for c in cols])
        cur.execute("INSERT INTO audit_chain_heads (chain_id, seq, checksum) VALUES (%s, %s, %s)",
                    (org, len(ages_days), prev))
    conn.commit()
    conn.close()
    rows = audit.rows(org)
    check_chain(rows)
    return org, rows


def prune(audit, *args):
    p = audit.cli("prune", *args)
    assert p.returncode == 0, f"audit prune {args}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def anchors(audit, org):
    return audit.su("SELECT first_seq, prev_checksum, pruned_rows FROM audit_anchors WHERE chain_id = %s"
                    " ORDER BY first_seq", org)


def assert_verifies(audit, admin, org, n_rows):
    rc, chain, doc = audit.verify(org)
    assert rc == 0 and chain["ok"] is True and chain["breaks"] == [], doc
    assert chain["rowsChecked"] == n_rows, doc
    r = admin.get(f"/api/v1/audit/verify?orgId={org}")
    assert r.status_code == 200 and r.json()["ok"] is True, r.text
    assert r.json()["rowsChecked"] == n_rows


def assert_pruned_row(audit, row, rows, last, first):
    """ROW is the audit.pruned row a prune appended, written in the same
    transaction as the anchor for FIRST."""
    assert (row["action"], row["actor_type"], row["resource"], row["result"]) == (
        "audit.pruned", "system", "audit_log", "success"), row
    d = json.loads(row["details"])
    assert (d["rows"], d["lastPrunedSeq"], d["firstSeq"]) == (rows, last, first), d
    assert isinstance(d["cutoff"], str) and isinstance(d["retentionDays"], int), d
    same_tx = audit.su("SELECT a.created_txid %% 4294967296 = l.xmin::text::bigint FROM audit_anchors a,"
                       " audit_log l WHERE a.chain_id = l.chain_id AND a.first_seq = %s AND l.id = %s",
                       first, row["id"])
    assert same_tx == [(True,)], "the audit.pruned row and the anchor are not one transaction"


def test_prune_all_but_head(audit, admin):
    org = audit.new_org()
    audit.insert(org, 6)
    before = audit.rows(org)
    prune(audit, "--org", org, "--older-than-days", "0")
    after = audit.rows(org)
    assert after[:1] == before[-1:] and len(after) == 2, "all rows but the head must be pruned"
    # The prune appends its own row to the chain it pruned.
    assert after[1]["seq"] == 7 and after[1]["org_id"] == org
    assert_pruned_row(audit, after[1], rows=5, last=5, first=6)
    assert anchors(audit, org) == [(6, before[4]["checksum"], 5)]
    assert_verifies(audit, admin, org, 2)
    # The chain goes on from its head, and a second prune anchors again.
    audit.insert(org, 3)
    assert_verifies(audit, admin, org, 5)
    prune(audit, "--org", org, "--older-than-days", "0")
    rows = audit.rows(org)
    assert [r["seq"] for r in rows] == [10, 11]
    assert_pruned_row(audit, rows[1], rows=4, last=9, first=10)
    assert anchors(audit, org)[-1][0] == 10 and len(anchors(audit, org)) == 2
    assert_verifies(audit, admin, org, 2)
    # A chain of its head alone has nothing to prune: no anchor, no row.
    lone = audit.new_org()
    audit.insert(lone, 1)
    only = audit.rows(lone)
    prune(audit, "--org", lone, "--older-than-days", "0")
    assert audit.rows(lone) == only and anchors(audit, lone) == []


def test_prune_touches_only_the_named_organization(audit):
    org, other = audit.new_org(), audit.new_org()
    audit.insert(org, 3)
    audit.insert(other, 3)
    prune(audit, "--org", org, "--older-than-days", "0")
    assert audit.count(org) == 2 and audit.count(org, "audit.pruned") == 1
    assert audit.count(other) == 3 and anchors(audit, other) == []


def test_default_retention_prunes_only_rows_older_than_365_days(audit, admin):
    org, rows = aged_chain(audit, [500, 400, 366, 364, 30, 1])
    audit.insert(org, 2)  # young rows written by the trigger after the aged ones
    cutoff = "now() - interval '365 days' + interval '1 minute'"
    # (The prune's own audit.pruned rows are new, so young rows are compared without them.)
    young_sql = (f"SELECT array_agg(id ORDER BY id) FROM audit_log WHERE ts >= {cutoff}"
                 " AND action <> 'audit.pruned'")
    young = audit.su(young_sql)[0][0]
    old_before = set(audit.su(f"SELECT id FROM audit_log WHERE ts < {cutoff}"))
    prune(audit)  # every chain, default retention (365 days)
    after = audit.rows(org)
    assert [r["seq"] for r in after] == [4, 5, 6, 7, 8, 9]
    assert_pruned_row(audit, after[-1], rows=3, last=3, first=4)
    assert json.loads(after[-1]["details"])["retentionDays"] == 365
    assert anchors(audit, org) == [(4, rows[2]["checksum"], 3)]
    # Rows younger than the cutoff were not touched, in any chain.
    assert audit.su(young_sql)[0][0] == young
    old_after = set(audit.su(f"SELECT id FROM audit_log WHERE ts < {cutoff}"))
    assert old_before - old_after >= {(r["id"],) for r in rows[:3]}
    assert_verifies(audit, admin, org, 6)
    # A second default run finds nothing more to do.
    prune(audit)
    assert audit.rows(org)[0]["seq"] == 4 and len(anchors(audit, org)) == 1


def test_per_organization_retention_days(audit, admin):
    """organizations.audit_retention_days overrides the default for that
    organization only."""
    short, short_rows = aged_chain(audit, [100, 40, 20, 1])
    normal, normal_rows = aged_chain(audit, [100, 40, 20, 1])
    audit.su("UPDATE organizations SET audit_retention_days = 30 WHERE id = %s", short)
    prune(audit, "--org", short)
    prune(audit, "--org", normal)
    assert [r["seq"] for r in audit.rows(short)] == [3, 4, 5]
    assert json.loads(audit.rows(short)[-1]["details"])["retentionDays"] == 30
    assert anchors(audit, short) == [(3, short_rows[1]["checksum"], 2)]
    assert audit.rows(normal) == normal_rows and anchors(audit, normal) == []
    assert_verifies(audit, admin, short, 3)


def test_older_than_days_cutoff(audit, admin):
    org, rows = aged_chain(audit, [100, 50, 20, 10, 2])
    audit.insert(org, 1)
    prune(audit, "--org", org, "--older-than-days", "15")
    assert [r["seq"] for r in audit.rows(org)] == [4, 5, 6, 7]
    assert anchors(audit, org) == [(4, rows[2]["checksum"], 3)]
    prune(audit, "--org", org, "--older-than-days", "15")
    assert [r["seq"] for r in audit.rows(org)] == [4, 5, 6, 7] and len(anchors(audit, org)) == 1
    assert_verifies(audit, admin, org, 4)


def test_only_the_oldest_contiguous_run_is_pruned(audit, admin):
    """A young row before old ones (clock step) ends the prunable run there."""
    org, rows = aged_chain(audit, [400, 1, 400, 400])
    audit.insert(org, 1)
    prune(audit, "--org", org)
    assert [r["seq"] for r in audit.rows(org)] == [2, 3, 4, 5, 6]
    assert_verifies(audit, admin, org, 5)


def test_dry_run_deletes_nothing(audit, admin):
    org, rows = aged_chain(audit, [900, 800, 700])
    audit.insert(org, 1)
    total = audit.su("SELECT count(*) FROM audit_log")[0][0]
    n_anchors = audit.su("SELECT count(*) FROM audit_anchors")[0][0]
    for args in (["--org", org, "--dry-run"], ["--dry-run"], ["--org", org, "--dry-run", "--older-than-days", "0"],
                 ["--dry-run", "--older-than-days", "0"]):
        p = prune(audit, *args)
        assert audit.su("SELECT count(*) FROM audit_log")[0][0] == total, args
        assert audit.su("SELECT count(*) FROM audit_anchors")[0][0] == n_anchors, args
    assert audit.rows(org) == rows + audit.rows(org, "AND seq = 4")
    prune(audit, "--org", org)
    assert [r["seq"] for r in audit.rows(org)] == [4, 5]
    assert_verifies(audit, admin, org, 2)


def test_prune_rejects_bad_arguments(audit):
    org = audit.new_org()
    audit.insert(org, 2)
    for args in (["--org", "not-a-uuid"], ["--older-than-days", "-1"], ["--older-than-days", "abc"],
                 ["--org", org, "--older-than-days", ""]):
        p = audit.cli("prune", *args)
        assert p.returncode != 0, args
    assert audit.count(org) == 2


def test_prune_needs_the_audit_admin_role(audit, tmp_path, env):
    """With AUDIT_ADMIN_DATABASE_URL pointing at breeze_app, pruning fails
    (the app role has no DELETE) and nothing is removed."""
    org = audit.new_org()
    audit.insert(org, 3)
    text = audit.env_file.read_text().replace(f"AUDIT_ADMIN_DATABASE_URL={env['AUDIT_ADMIN_DATABASE_URL']}",
                                              f"AUDIT_ADMIN_DATABASE_URL={env['DATABASE_URL']}")
    ef = tmp_path / "app-as-admin.env"
    ef.write_text(text)
    ef.chmod(0o600)
    p = audit.cli("prune", "--org", org, "--older-than-days", "0", env_file=ef)
    assert p.returncode != 0, p.stdout + p.stderr
    assert audit.count(org) == 3 and anchors(audit, org) == []


def test_zero_days_refused_in_production(audit, tmp_path, env):
    org = audit.new_org()
    audit.insert(org, 3)
    text = audit.env_file.read_text().replace("BREEZE_ENV=development", "BREEZE_ENV=production")
    assert "BREEZE_ENV=production" in text
    ef = tmp_path / "prod.env"
    ef.write_text(text)
    ef.chmod(0o600)
    p = audit.cli("prune", "--org", org, "--older-than-days", "0", env_file=ef)
    assert p.returncode != 0 and "production" in p.stderr, p.stdout + p.stderr
    assert audit.count(org) == 3


def test_retention_worker_in_serve(audit, admin, spawn_server):
    """serve's own retention worker (AUDIT_RETENTION_INTERVAL_SECONDS, first run
    within a minute of start, here after 1 s) prunes as `audit prune` does."""
    import time
    from conftest import SLOW
    org, rows = aged_chain(audit, [500, 400, 30])
    audit.insert(org, 1)
    srv = spawn_server(AUDIT_RETENTION_INTERVAL_SECONDS="1")
    deadline = time.monotonic() + 20 * SLOW
    while audit.rows(org)[0]["seq"] != 3:
        assert time.monotonic() < deadline, srv.log_text()[-2000:]
        time.sleep(0.2)
    after = audit.rows(org)
    assert [r["seq"] for r in after] == [3, 4, 5]
    assert_pruned_row(audit, after[-1], rows=2, last=2, first=3)
    assert anchors(audit, org) == [(3, rows[1]["checksum"], 2)]
    assert "audit.retention.pruned" in srv.log_text()
    assert_verifies(audit, admin, org, 3)
