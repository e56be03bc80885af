"""Tampering behind the triggers' back (checklist L4): a superuser with
session_replication_role = replica changes, deletes, inserts or re-links rows;
`breeze-server audit verify` (exit 1, JSON) and GET /api/v1/audit/verify
(ok: false) must name each break by kind and position. Every test builds its
own organization's chain and leaves it broken (nothing is restored)."""
import datetime as dt
import json
import secrets

import pytest

from audit_canonical import checksum

N_ROWS = 6


def make_chain(audit, n=N_ROWS):
    """A fresh organization with N varied rows; returns (org_id, rows)."""
    org = audit.new_org()
    audit.insert(org, n,
                 actor_type=lambda i: ("user", "agent", "api_key", "system")[i % 4],
                 actor_id=lambda i: None if i % 3 == 0 else f"actor-{i}",
                 action=lambda i: f"test.event_{i}",
                 resource=lambda i: f"res{i % 2}",
                 resource_id=lambda i: None if i % 2 else f"rid-{i}",
                 details=lambda i: json.dumps({"i": i, "note": "ünïcode, \"quoted\" : N"}),
                 ip_address=lambda i: None if i == 1 else f"10.0.0.{i}",
                 result=lambda i: ("success", "failure", "denied")[i % 3])
    rows = audit.rows(org)
    assert [r["seq"] for r in rows] == list(range(1, n + 1))
    return org, rows


def tamper(audit, *statements):
    """Runs (sql, params) pairs as the superuser with triggers off, in one transaction."""
    conn = audit.connect("super", autocommit=False)
    with conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")
        for sql, params in statements:
            cur.execute(sql, params)
    conn.commit()
    conn.close()


def update_row(audit, row, **changes):
    """Rewrites ROW's columns (by id) as in tamper()."""
    sets = ", ".join(f"{k} = %s" for k in changes)
    tamper(audit, (f"UPDATE audit_log SET {sets} WHERE id = %s", (*changes.values(), row["id"])))


def insert_raw(row):
    cols = ["id", "org_id", "seq", "ts", "actor_type", "actor_id", "action", "resource",
            "resource_id", "details", "ip_address", "result", "prev_checksum", "checksum"]
    return (f"INSERT INTO audit_log ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})",
            [row[c] for c in cols])


def forged(audit, org, seq, prev, **fields):
    """A self-consistent forged row (its checksum is correct for its fields)."""
    rid = audit.su("SELECT nextval('audit_log_id_seq')")[0][0]
    row = {"id": rid, "org_id": org, "seq": seq,
           "ts": dt.datetime.now(dt.timezone.utc), "actor_type": "user", "actor_id": "mallory",
           "action": "device.delete", "resource": "devices", "resource_id": "forged",
           "details": "{}", "ip_address": "192.0.2.66", "result": "success",
           "prev_checksum": prev}
    row.update(fields)
    row["checksum"] = checksum(row)
    return row


def verify_both(audit, admin, org, rc_want, *extra, query=""):
    """Runs the CLI and the API verification of ORG; checks they agree on the
    outcome and returns the breaks as [(kind, seq, id)] (CLI's), sorted by seq."""
    rc, chain, doc = audit.verify(org, *extra)
    assert rc == rc_want, f"verify --org {org}: exit {rc}, want {rc_want}: {doc}"
    assert doc["ok"] is (rc_want == 0) and chain["ok"] is (rc_want == 0), doc
    r = admin.get(f"/api/v1/audit/verify?orgId={org}{query}")
    assert r.status_code == 200, r.text
    api = r.json()
    assert api["ok"] is (rc_want == 0) and api["orgId"] == org, api
    cli_breaks = [(b["kind"], b["seq"], b.get("id")) for b in chain["breaks"]]
    api_breaks = [(b["kind"], b["seq"], b.get("id")) for b in api["breaks"]]
    assert cli_breaks == api_breaks, f"CLI and API disagree:\n{chain}\n{api}"
    assert api["rowsChecked"] == chain["rowsChecked"]
    for b in chain["breaks"]:
        assert isinstance(b.get("detail"), str) and b["detail"], b
    return sorted(cli_breaks, key=lambda b: (b[1] is None, b[1] or 0)), chain


def same_id(a, b):
    return a is not None and str(a) == str(b)


# ------------------------------------------------------------------ the untouched chain


def test_intact_chain_verifies(audit, admin):
    org, rows = make_chain(audit)
    breaks, chain = verify_both(audit, admin, org, 0)
    assert breaks == [] and chain["rowsChecked"] == N_ROWS


# ------------------------------------------------------------------ altered rows


ALTERATIONS = {
    "details": lambda r: r["details"].replace("\"i\": 2", "\"i\": 20"),
    "action": lambda r: "test.event_99",
    "actor_type": lambda r: "system" if r["actor_type"] != "system" else "user",
    "actor_id": lambda r: "someone-else",
    "resource": lambda r: "other",
    "resource_id": lambda r: None,
    "ip_address": lambda r: "203.0.113.9",
    "result": lambda r: "success" if r["result"] != "success" else "failure",
    "ts": lambda r: r["ts"] + dt.timedelta(microseconds=1),
    "id": lambda r: r["id"] + 10 ** 12,
}


@pytest.mark.parametrize("field", list(ALTERATIONS))
def test_altered_middle_row(audit, admin, field):
    org, rows = make_chain(audit)
    victim = rows[2]
    new = ALTERATIONS[field](victim)
    assert new != victim[field]
    update_row(audit, victim, **{field: new})
    breaks, _ = verify_both(audit, admin, org, 1)
    assert [(k, s) for k, s, _ in breaks] == [("altered_row", 3)], breaks
    assert same_id(breaks[0][2], new if field == "id" else victim["id"]), breaks


def test_altered_checksum_is_altered_row_not_a_fork(audit, admin):
    """Rewriting only a stored checksum breaks that row and its successor's link."""
    org, rows = make_chain(audit)
    update_row(audit, rows[2], checksum=secrets.token_hex(32))
    breaks, _ = verify_both(audit, admin, org, 1)
    assert breaks[0][:2] == ("altered_row", 3), breaks
    assert {s for _, s, _ in breaks} <= {3, 4}, breaks


# ------------------------------------------------------------------ deleted rows


@pytest.mark.parametrize("deleted", [[3], [3, 4]])
def test_deleted_middle_rows(audit, admin, deleted):
    org, rows = make_chain(audit)
    tamper(audit, ("DELETE FROM audit_log WHERE chain_id = %s AND seq = ANY(%s)", (org, deleted)))
    breaks, chain = verify_both(audit, admin, org, 1)
    assert breaks[0][0] == "missing_row", breaks
    assert all(k == "missing_row" for k, _, _ in breaks), breaks
    assert breaks[0][1] in (deleted[0], deleted[-1] + 1), breaks
    assert chain["rowsChecked"] == N_ROWS - len(deleted)


def test_deleted_oldest_rows_without_anchor(audit, admin):
    """Deleting the start of a chain outside retention (no anchor) is a break."""
    org, rows = make_chain(audit)
    tamper(audit, ("DELETE FROM audit_log WHERE chain_id = %s AND seq <= 2", (org,)))
    breaks, _ = verify_both(audit, admin, org, 1)
    assert breaks and breaks[0][0] in ("missing_row", "bad_anchor") and breaks[0][1] in (1, 3), breaks


def test_deleted_newest_rows_after_checkpoint(audit, admin):
    """A thorough attacker deletes the newest rows and rewinds the recorded
    head too: the hash chain is intact, only the signed checkpoint tells."""
    org, rows = make_chain(audit)
    p = audit.cli("checkpoint")
    assert p.returncode == 0, p.stderr
    n = audit.su("SELECT count(*) FROM audit_checkpoints WHERE chain_id = %s AND seq = %s AND checksum = %s",
                 org, N_ROWS, rows[-1]["checksum"])[0][0]
    assert n == 1, "audit checkpoint did not sign this chain's head"
    verify_both(audit, admin, org, 0)
    tamper(audit,
           ("DELETE FROM audit_log WHERE chain_id = %s AND seq > 4", (org,)),
           ("UPDATE audit_chain_heads SET seq = 4, checksum = %s WHERE chain_id = %s",
            (rows[3]["checksum"], org)))
    breaks, _ = verify_both(audit, admin, org, 1)
    assert breaks and {k for k, _, _ in breaks} == {"checkpoint_mismatch"}, breaks
    assert breaks[0][1] in (5, N_ROWS), breaks


def test_deleted_newest_rows_without_rewinding_the_head(audit, admin):
    org, rows = make_chain(audit)
    tamper(audit, ("DELETE FROM audit_log WHERE chain_id = %s AND seq > 4", (org,)))
    breaks, _ = verify_both(audit, admin, org, 1)
    assert breaks and breaks[0][0] == "missing_row" and breaks[0][1] in (5, N_ROWS), breaks


# ------------------------------------------------------------------ inserted rows


def test_forged_row_beyond_the_head(audit, admin):
    """A perfectly linked and checksummed row appended behind the sealing
    trigger's back: the chain head it recorded does not know it."""
    org, rows = make_chain(audit)
    row = forged(audit, org, N_ROWS + 1, rows[-1]["checksum"])
    tamper(audit, insert_raw(row))
    breaks, _ = verify_both(audit, admin, org, 1)
    assert [(k, s) for k, s, _ in breaks] == [("inserted_row", N_ROWS + 1)], breaks
    assert same_id(breaks[0][2], row["id"]), breaks


def test_forged_row_spliced_into_the_middle(audit, admin):
    """The forger shifts rows 4.. up by one and puts a fabricated row at seq 4.
    (Its predecessor link cannot be row 3's checksum: the chain's unique
    predecessor constraint holds even in replica mode.)"""
    org, rows = make_chain(audit)
    shift = [("UPDATE audit_log SET seq = seq + 1 WHERE id = %s", (r["id"],)) for r in reversed(rows[3:])]
    row = forged(audit, org, 4, secrets.token_hex(32))
    tamper(audit, *shift, insert_raw(row),
           ("UPDATE audit_chain_heads SET seq = seq + 1 WHERE chain_id = %s", (org,)))
    breaks, _ = verify_both(audit, admin, org, 1)
    assert breaks[0][:2] == ("inserted_row", 4), breaks
    assert same_id(breaks[0][2], row["id"]), breaks
    assert ("inserted_row", 4) not in [(k, s) for k, s, _ in breaks[1:]]


def test_middle_row_replaced_by_forgery(audit, admin):
    """Row 3 is deleted and a self-consistent forgery linked to row 2 takes its
    place: row 4 still links to the original row 3."""
    org, rows = make_chain(audit)
    row = forged(audit, org, 3, rows[1]["checksum"])
    tamper(audit, ("DELETE FROM audit_log WHERE id = %s", (rows[2]["id"],)), insert_raw(row))
    breaks, _ = verify_both(audit, admin, org, 1)
    assert breaks and breaks[0][1] in (3, 4), breaks
    assert {k for k, _, _ in breaks} <= {"broken_link", "inserted_row", "altered_row"}, breaks


def test_resealed_forgery_is_caught_by_checkpoint(audit, admin):
    """A forger who knows the algorithm rewrites a row and re-seals every later
    row: the chain is self-consistent again; the signed checkpoint is not."""
    org, rows = make_chain(audit)
    assert audit.cli("checkpoint").returncode == 0
    new = [dict(r) for r in rows]
    new[2]["details"] = '{"i": 2, "note": "nothing happened here"}'
    prev = new[1]["checksum"]
    stmts = []
    for r in new[2:]:
        r["prev_checksum"] = prev
        r["checksum"] = prev = checksum(r)
        stmts.append(("UPDATE audit_log SET details = %s, prev_checksum = %s, checksum = %s WHERE id = %s",
                      (r["details"], r["prev_checksum"], r["checksum"], r["id"])))
    stmts.append(("UPDATE audit_chain_heads SET checksum = %s WHERE chain_id = %s", (prev, org)))
    tamper(audit, *stmts)
    breaks, _ = verify_both(audit, admin, org, 1)
    assert {k for k, _, _ in breaks} == {"checkpoint_mismatch"}, breaks
    assert breaks[0][1] == N_ROWS, breaks


# ------------------------------------------------------------------ re-linked rows


def test_relinked_row_only_link_wrong(audit, admin):
    """Only the link is wrong: row 4's prev_checksum points elsewhere and its
    checksum is recomputed, so the row itself is consistent."""
    org, rows = make_chain(audit)
    r = dict(rows[3])
    r["prev_checksum"] = secrets.token_hex(32)
    r["checksum"] = checksum(r)
    # Row 5 keeps linking to the old checksum of row 4, so re-point it too
    # (and re-seal it) to isolate the single broken link at seq 4.
    r5 = dict(rows[4])
    r5["prev_checksum"] = r["checksum"]
    r5["checksum"] = checksum(r5)
    r6 = dict(rows[5])
    r6["prev_checksum"] = r5["checksum"]
    r6["checksum"] = checksum(r6)
    stmts = [("UPDATE audit_log SET prev_checksum = %s, checksum = %s WHERE id = %s",
              (x["prev_checksum"], x["checksum"], x["id"])) for x in (r, r5, r6)]
    stmts.append(("UPDATE audit_chain_heads SET checksum = %s WHERE chain_id = %s", (r6["checksum"], org)))
    tamper(audit, *stmts)
    breaks, _ = verify_both(audit, admin, org, 1)
    assert [(k, s) for k, s, _ in breaks] == [("broken_link", 4)], breaks
    assert same_id(breaks[0][2], rows[3]["id"])


def test_relinked_row_without_recomputing(audit, admin):
    org, rows = make_chain(audit)
    update_row(audit, rows[3], prev_checksum=secrets.token_hex(32))
    breaks, _ = verify_both(audit, admin, org, 1)
    assert breaks and {s for _, s, _ in breaks} == {4}, breaks
    assert {k for k, _, _ in breaks} <= {"altered_row", "broken_link"}, breaks


# ------------------------------------------------------------------ anchors


def _prune_all_but_head(audit, org):
    p = audit.cli("prune", "--org", org, "--older-than-days", "0")
    assert p.returncode == 0, p.stdout + p.stderr


def test_forged_anchor_hides_deleted_prefix(audit, admin):
    """The forger deletes the oldest rows and records an anchor himself: right
    link, but not signed with the audit signing key."""
    org, rows = make_chain(audit)
    tamper(audit,
           ("DELETE FROM audit_log WHERE chain_id = %s AND seq <= 2", (org,)),
           ("INSERT INTO audit_anchors (chain_id, first_seq, prev_checksum, pruned_rows, pruned_before,"
            " public_key, signature) VALUES (%s, 3, %s, 2, now(), %s, %s)",
            (org, rows[1]["checksum"], audit.cli("public-key").stdout.strip(), "0" * 128)))
    breaks, _ = verify_both(audit, admin, org, 1)
    assert breaks and breaks[0][0] == "bad_anchor", breaks


def test_rows_deleted_after_a_legitimate_prune(audit, admin):
    org, rows = make_chain(audit)
    _prune_all_but_head(audit, org)
    audit.insert(org, 3)
    verify_both(audit, admin, org, 0)
    # The first surviving row (the anchor's first_seq) is then removed.
    tamper(audit, ("DELETE FROM audit_log WHERE chain_id = %s AND seq = %s", (org, N_ROWS)))
    breaks, _ = verify_both(audit, admin, org, 1)
    assert breaks and breaks[0][0] in ("bad_anchor", "missing_row"), breaks


def test_anchor_with_wrong_prev_checksum(audit, admin):
    org, rows = make_chain(audit)
    _prune_all_but_head(audit, org)
    verify_both(audit, admin, org, 0)
    # The forger swaps the anchor for one with another predecessor.
    tamper(audit, ("DELETE FROM audit_anchors WHERE chain_id = %s", (org,)),
           ("INSERT INTO audit_anchors (chain_id, first_seq, prev_checksum, pruned_rows, pruned_before)"
            " VALUES (%s, %s, %s, %s, now())", (org, N_ROWS, secrets.token_hex(32), N_ROWS - 1)))
    breaks, _ = verify_both(audit, admin, org, 1)
    assert breaks and breaks[0][0] == "bad_anchor", breaks


# ------------------------------------------------------------------ scope of verification


def test_verify_all_reports_each_chain(audit):
    good, _ = make_chain(audit)
    bad, rows = make_chain(audit)
    update_row(audit, rows[1], details='{"x": 1}')
    p, doc = audit.cli_json("verify", "--all")
    assert p.returncode == 1 and doc["ok"] is False
    by_org = {c["orgId"]: c for c in doc["chains"]}
    assert by_org[good]["ok"] is True and by_org[good]["breaks"] == []
    assert by_org[good]["rowsChecked"] == N_ROWS
    assert by_org[bad]["ok"] is False
    assert [(b["kind"], b["seq"]) for b in by_org[bad]["breaks"]] == [("altered_row", 2)]


def test_verify_time_window(audit, admin):
    """--from/--to (from <= ts < to) check only the rows in the window (plus
    the link into it): a break outside the window is not reported."""
    org, rows = make_chain(audit)
    update_row(audit, rows[4], details='{"x": 1}')
    iso = lambda t: t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    early = ["--from", iso(rows[0]["ts"]), "--to", iso(rows[3]["ts"])]
    rc, chain, doc = audit.verify(org, *early)
    assert rc == 0 and chain["ok"] is True and chain["rowsChecked"] == 3, doc
    r = admin.get(f"/api/v1/audit/verify", params={"orgId": org, "from": iso(rows[0]["ts"]),
                                                   "to": iso(rows[3]["ts"])})
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["rowsChecked"] == 3, r.text
    late = ["--from", iso(rows[3]["ts"])]
    rc, chain, doc = audit.verify(org, *late)
    assert rc == 1 and [(b["kind"], b["seq"]) for b in chain["breaks"]] == [("altered_row", 5)], doc


def test_verify_api_is_tenant_scoped(audit, tenants):
    org, _ = make_chain(audit)
    r = tenants.a_admin.api.get(f"/api/v1/audit/verify?orgId={tenants.a.id}")
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["orgId"] == tenants.a.id, r.text
    for other in (tenants.b.id, org):
        assert tenants.a_admin.api.get(f"/api/v1/audit/verify?orgId={other}").status_code == 404
    assert tenants.a_viewer.api.get(f"/api/v1/audit/verify?orgId={tenants.a.id}").status_code == 403
    assert tenants.tech_a.api.get(f"/api/v1/audit/verify?orgId={tenants.a.id}").status_code == 403
