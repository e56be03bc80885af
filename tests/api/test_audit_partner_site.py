"""Per-partner audit chains, site-scoped audit reads, and the checkpoint
rules that came with them (migration 0004, docs/audit-chain.md §4, §7, §10).

- Partner-level events (partner staff logins, failed logins, partner-scoped
  user changes) go into the partner's own chain (chain id = partner id),
  readable and verifiable through the API only by that partner's unlimited
  staff with audit:read; the system chain stays operator-only.
- A reader limited to some sites sees those sites' rows and the
  organization-wide ones, never another site's.
- Only checkpoints signed by a trusted key count; others are warnings.
- A chain's first row is checkpointed in the transaction that writes it.
- An organization with no history at all is a break.
"""
import json
import time
import types
import uuid

import pytest

from audit_canonical import check_chain, checksum
from conftest import Api, assert_error, uniq

NIL = "00000000-0000-0000-0000-000000000000"


# ------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def donor(make_user, tenants):
    """A user the server created: its password and argon2id hash are given to
    users of partners made in SQL (no API creates a second partner)."""
    return make_user("org_viewer", orgId=tenants.a.id)


@pytest.fixture
def new_partner(audit, api, donor):
    """new_partner() -> another partner with an organization, a partner_admin
    and that organization's org_admin, both logged in (the admin's login is
    the first row of the partner's chain)."""
    password = donor.password

    def make():
        h = audit.su("SELECT password_hash FROM users WHERE id = %s", donor.id)[0][0]
        pid = audit.su("INSERT INTO partners (name) VALUES (%s) RETURNING id::text", uniq("partner"))[0][0]
        org = audit.su("INSERT INTO organizations (partner_id, name) VALUES (%s, %s) RETURNING id::text",
                       pid, uniq("p-org"))[0][0]
        admin_email = f"{uniq('padmin')}@example.test"
        org_email = f"{uniq('poadmin')}@example.test"
        audit.su("INSERT INTO users (partner_id, role_id, email, name, password_hash)"
                 " SELECT %s, id, %s, 'Partner Admin', %s FROM roles WHERE name = 'partner_admin'",
                 pid, admin_email, h)
        audit.su("INSERT INTO users (org_id, role_id, email, name, password_hash)"
                 " SELECT %s, id, %s, 'Org Admin', %s FROM roles WHERE name = 'org_admin'",
                 org, org_email, h)
        return types.SimpleNamespace(id=pid, org=org, admin_email=admin_email, password=password,
                                     admin=api.login(admin_email, password),
                                     org_admin=api.login(org_email, password))
    return make


def all_entries(client, **params):
    """Every entry of GET /api/v1/audit with PARAMS, following the cursor."""
    out, cursor = [], None
    for _ in range(100):
        q = dict(params, limit=500)
        if cursor:
            q["cursor"] = cursor
        r = client.get("/api/v1/audit", params=q)
        assert r.status_code == 200, r.text
        body = r.json()
        out += body["entries"]
        cursor = body.get("nextCursor")
        if not cursor:
            return out
    pytest.fail("too many pages")


def tamper(audit, stmt, *params):
    """Runs STMT as the superuser with the append-only triggers off."""
    conn = audit.connect("super", autocommit=False)
    with conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")
        cur.execute(stmt, params)
    conn.commit()
    conn.close()


# ------------------------------------------------------------------ partner chains


def test_partner_login_and_failed_login_land_in_the_partner_chain(audit, api, new_partner):
    p = new_partner()
    r = api.post("/api/v1/auth/login", json={"email": p.admin_email, "password": "Wrong-" + uniq("pw")},
                 token=None)
    assert_error(r, 401)
    rows = audit.rows(p.id)
    assert [r["action"] for r in rows] == ["auth.login", "auth.login.failed"]
    for row in rows:
        assert row["org_id"] is None and row["partner_id"] == p.id, row
        assert row["actor_id"] == p.admin.user["id"]
    check_chain(rows)  # v2 rows recompute in the independent Python encoder
    # None of it went to the operator-only system chain.
    assert audit.su("SELECT count(*) FROM audit_log WHERE chain_id = %s AND actor_id = %s",
                    NIL, p.admin.user["id"])[0][0] == 0
    # The org admin's login is in the organization's chain, as before.
    assert [r["action"] for r in audit.rows(p.org)] == ["auth.login"]


def test_partner_admin_lists_the_partner_chain(new_partner):
    p = new_partner()
    p.admin.post("/api/v1/users", json={"email": f"{uniq('staff')}@example.test", "name": "Staff",
                                        "role": "partner_technician", "password": "Pw-" + uniq("x")})
    entries = all_entries(p.admin, partnerId=p.id)
    assert [e["action"] for e in entries] == ["user.create", "auth.login"]  # newest first
    for e in entries:
        assert e["partnerId"] == p.id and e["orgId"] is None and e["siteId"] is None, e
    # Filters and the cursor work on a partner chain like on an organization's.
    only = all_entries(p.admin, partnerId=p.id.upper(), action="auth.login")
    assert [e["action"] for e in only] == ["auth.login"]
    r = p.admin.get("/api/v1/audit", params={"partnerId": p.id, "limit": 1})
    assert r.status_code == 200 and len(r.json()["entries"]) == 1 and r.json()["nextCursor"], r.text
    r2 = p.admin.get("/api/v1/audit", params={"partnerId": p.id, "limit": 1,
                                              "cursor": r.json()["nextCursor"]})
    assert [e["action"] for e in r2.json()["entries"]] == ["auth.login"], r2.text
    # Without partnerId the listing is of organizations only.
    assert all(e["orgId"] is not None for e in all_entries(p.admin))


def test_partner_chain_is_404_for_everyone_else(new_partner, admin, tenants, make_user, bootstrap):
    p = new_partner()
    other = new_partner()
    limited = make_user("partner_admin", orgIds=[tenants.a.id])
    for who in (p.org_admin, other.admin, other.org_admin, admin, tenants.a_admin.api, limited.api):
        for path in ("/api/v1/audit", "/api/v1/audit/verify"):
            assert_error(who.get(path, params={"partnerId": p.id}), 404)
    # audit:read is still required first.
    assert_error(tenants.a_viewer.api.get("/api/v1/audit", params={"partnerId": p.id}), 403)
    # A limited partner admin cannot read even its own partner's chain.
    assert_error(limited.api.get("/api/v1/audit", params={"partnerId": bootstrap.partnerId}), 404)
    # An unknown id is the same 404.
    assert_error(p.admin.get("/api/v1/audit", params={"partnerId": str(uuid.uuid4())}), 404)
    # The bootstrap partner's own admin does read its chain.
    r = admin.get("/api/v1/audit", params={"partnerId": bootstrap.partnerId, "limit": 5})
    assert r.status_code == 200 and r.json()["entries"], r.text
    assert all(e["partnerId"] == bootstrap.partnerId for e in r.json()["entries"])


def test_system_chain_is_not_readable_through_the_api(admin, audit):
    audit.insert(None, 1, action="test.system_only")
    for params in ({"partnerId": NIL}, {"orgId": NIL}):
        for path in ("/api/v1/audit", "/api/v1/audit/verify"):
            assert_error(admin.get(path, params=params), 404)
    assert_error(admin.get("/api/v1/audit", params={"orgId": NIL, "partnerId": NIL}), 400)
    assert_error(admin.get("/api/v1/audit/verify", params={"orgId": NIL, "partnerId": NIL}), 400)
    assert all(e["action"] != "test.system_only" for e in all_entries(admin))


def test_partner_admin_verifies_the_partner_chain(audit, new_partner):
    p = new_partner()
    r = p.admin.get("/api/v1/audit/verify", params={"partnerId": p.id})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["partnerId"] == p.id and body["orgId"] is None, body
    assert body["rowsChecked"] == audit.count(p.id) and body["breaks"] == [] and body["warnings"] == []
    p_cli, doc = audit.cli_json("verify", "--partner", p.id)
    assert p_cli.returncode == 0 and doc["ok"] is True, doc
    assert [c["partnerId"] for c in doc["chains"]] == [p.id]


def test_partner_chain_tampering_is_detected(audit, api, new_partner):
    p = new_partner()
    api.login(p.admin_email, p.password)
    rows = audit.rows(p.id)
    assert len(rows) == 2
    tamper(audit, "UPDATE audit_log SET details = '{\"forged\":true}' WHERE id = %s", rows[0]["id"])
    r = p.admin.get("/api/v1/audit/verify", params={"partnerId": p.id})
    assert r.status_code == 200 and r.json()["ok"] is False, r.text
    assert [(b["kind"], b["seq"]) for b in r.json()["breaks"]][:1] == [("altered_row", 1)]
    p_cli, doc = audit.cli_json("verify", "--partner", p.id)
    assert p_cli.returncode == 1 and doc["chains"][0]["breaks"][0]["kind"] == "altered_row", doc


def test_cli_covers_partner_chains(audit, api, new_partner, tmp_path):
    p = new_partner()
    api.login(p.admin_email, p.password)
    api.login(p.admin_email, p.password)
    # verify --all lists the partner chain.
    _, doc = audit.cli_json("verify", "--all")
    mine = [c for c in doc["chains"] if c.get("partnerId") == p.id]
    assert len(mine) == 1 and mine[0]["ok"] is True and mine[0]["orgId"] is None, mine
    # checkpoint signs its head.
    assert audit.cli("checkpoint").returncode == 0
    head = audit.head(p.id)
    assert audit.su("SELECT count(*) FROM audit_checkpoints WHERE chain_id = %s AND seq = %s"
                    " AND checksum = %s", p.id, head[0], head[1])[0][0] == 1
    # export --partner and offline verification.
    e = audit.cli("export", "--partner", p.id)
    assert e.returncode == 0, e.stderr
    lines = [json.loads(x) for x in e.stdout.splitlines()]
    header, rows = lines[0], lines[1:-1]
    assert header["format"] == "breeze-audit-export-v2" and header["partnerId"] == p.id
    assert header["orgId"] is None and header["chainId"] == p.id
    assert len(rows) == 3 and all(r["partnerId"] == p.id and r["siteId"] is None for r in rows)
    f = tmp_path / "partner.jsonl"
    f.write_text(e.stdout)
    pub = audit.cli("public-key").stdout.strip()
    v = audit.cli("verify", "--file", f, "--public-key", pub, env_file=None)
    assert v.returncode == 0, v.stdout + v.stderr
    assert v.stdout.startswith(f"partner {p.id}: ok"), v.stdout
    # prune --partner: the oldest rows go, the prune is recorded in that chain.
    pr = audit.cli("prune", "--partner", p.id, "--older-than-days", "0")
    assert pr.returncode == 0, pr.stdout + pr.stderr
    after = audit.rows(p.id)
    assert [r["action"] for r in after] == ["auth.login", "audit.pruned"]
    assert after[1]["partner_id"] == p.id and after[1]["org_id"] is None
    assert json.loads(after[1]["details"])["rows"] == 2
    r = p.admin.get("/api/v1/audit/verify", params={"partnerId": p.id})
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["rowsChecked"] == 2, r.text


# ------------------------------------------------------------------ site scope


@pytest.fixture(scope="module")
def two_sites(make_org, admin, agents, make_user):
    """An organization with sites S1 and S2, an enrolment key and a device in
    each (the S2 device renamed by a heartbeat), a reader limited to S1 and an
    unlimited org admin."""
    org = make_org()
    r = admin.post(f"/api/v1/organizations/{org.id}/sites", json={"name": "Second site"})
    assert r.status_code == 201, r.text
    s1, s2 = org.site_id, r.json()["id"]
    d1 = agents.new_device(org_id=org.id, site_id=s1)
    d2 = agents.new_device(org_id=org.id, site_id=s2)
    r = agents.heartbeat(d2["agentId"], d2["authToken"], hostname=uniq("renamed"))
    assert r.status_code == 200, r.text
    return types.SimpleNamespace(org=org, s1=s1, s2=s2, d1=d1, d2=d2,
                                 limited=make_user("org_admin", orgId=org.id, siteIds=[s1]),
                                 full=make_user("org_admin", orgId=org.id))


def test_rows_carry_the_site_they_concern(audit, two_sites):
    t = two_sites
    by = {(r["action"], r["resource_id"]): r for r in audit.rows(t.org.id)}
    assert by[("device.enroll", t.d2["agentId"])]["site_id"] == t.s2
    assert by[("device.renamed", t.d2["agentId"])]["site_id"] == t.s2
    assert by[("device.enroll", t.d1["agentId"])]["site_id"] == t.s1
    assert by[("enrollment_key.create", t.d2["enrollmentKey"]["id"])]["site_id"] == t.s2
    assert by[("site.create", t.s2)]["site_id"] == t.s2
    assert by[("organization.create", t.org.id)]["site_id"] is None
    check_chain(audit.rows(t.org.id))


def test_site_limited_reader_sees_only_its_sites_and_org_wide_rows(two_sites):
    t = two_sites
    seen = all_entries(t.limited.api, orgId=t.org.id)
    assert seen, "the site-limited reader sees nothing"
    assert {e["siteId"] for e in seen} <= {None, t.s1}, {e["siteId"] for e in seen}
    acts = {(e["action"], e["resourceId"]) for e in seen}
    assert ("device.enroll", t.d1["agentId"]) in acts and ("organization.create", t.org.id) in acts
    assert not any(e["resourceId"] in (t.d2["agentId"], t.s2, t.d2["enrollmentKey"]["id"]) for e in seen)
    # Asking for the other site's device by id finds nothing, as the devices API says 404.
    assert all_entries(t.limited.api, orgId=t.org.id, resourceId=t.d2["agentId"]) == []
    assert_error(t.limited.api.get(f"/api/v1/devices/{t.d2['agentId']}"), 404)
    # The unlimited reader sees the other site's history.
    full = {(e["action"], e["resourceId"]) for e in all_entries(t.full.api, orgId=t.org.id)}
    assert {("device.enroll", t.d2["agentId"]), ("device.renamed", t.d2["agentId"])} <= full
    # Verifying the whole chain needs the whole chain: not for a site-limited reader.
    assert_error(t.limited.api.get("/api/v1/audit/verify", params={"orgId": t.org.id}), 403)
    r = t.full.api.get("/api/v1/audit/verify", params={"orgId": t.org.id})
    assert r.status_code == 200 and r.json()["ok"] is True, r.text


def test_site_id_is_hashed(audit, admin, make_org, agents):
    """Clearing a row's site_id (to show another site's event to everyone)
    breaks its checksum: v2 covers site_id, and a row without one is v1."""
    o = make_org()
    key = agents.create_key(org_id=o.id, site_id=o.site_id)
    row = [r for r in audit.rows(o.id) if r["resource_id"] == key["id"]][0]
    assert row["site_id"] == o.site_id
    tamper(audit, "UPDATE audit_log SET site_id = NULL WHERE id = %s", row["id"])
    r = admin.get("/api/v1/audit/verify", params={"orgId": o.id})
    assert r.status_code == 200 and r.json()["ok"] is False, r.text
    assert [(b["kind"], b["id"]) for b in r.json()["breaks"]][:1] == [("altered_row", row["id"])]


def test_site_derivation_in_the_database(audit, two_sites):
    """audit_event_site() never names a site of another organization."""
    t = two_sites
    other = audit.new_org()
    got = audit.su("SELECT audit_event_site(%s, 'devices', %s, '{}'),"
                   "       audit_event_site(%s, 'devices', %s, '{}'),"
                   "       audit_event_site(%s, 'x', 'y', %s),"
                   "       audit_event_site(NULL, 'sites', %s, '{}'),"
                   "       audit_event_site(%s, 'devices', 'not-a-uuid', '{}')",
                   t.org.id, t.d2["agentId"], other, t.d2["agentId"], t.org.id,
                   json.dumps({"siteId": t.s1}), t.s1, t.org.id)[0]
    assert tuple(str(x) if x else None for x in got) == (t.s2, None, t.s1, None, None)


# ------------------------------------------------------------------ checkpoints


def _insert_checkpoint(audit, chain, seq, checksum_, pub, sig):
    conn = audit.connect("app")
    with conn.cursor() as cur:
        cur.execute("INSERT INTO audit_checkpoints (chain_id, seq, checksum, public_key, signature)"
                    " VALUES (%s, %s, %s, %s, %s)", (chain, seq, checksum_, pub, sig))
    conn.close()


@pytest.mark.parametrize("signer", ["unknown_key", "server_key_bad_signature"])
def test_checkpoint_by_an_unknown_key_is_a_warning_not_a_break(audit, admin, signer):
    """breeze_app can insert checkpoints; one no trusted key signed must not
    mark the chain broken for good."""
    org = audit.new_org()
    audit.insert(org, 3)
    pub = "ab" * 32 if signer == "unknown_key" else audit.cli("public-key").stdout.strip()
    _insert_checkpoint(audit, org, 3, "cd" * 32, pub, "ef" * 64)
    rc, chain, doc = audit.verify(org)
    assert rc == 0 and chain["ok"] is True and chain["breaks"] == [], doc
    assert [(w["kind"], w["seq"]) for w in chain["warnings"]] == [("untrusted_checkpoint", 3)], doc
    r = admin.get("/api/v1/audit/verify", params={"orgId": org})
    assert r.status_code == 200 and r.json()["ok"] is True, r.text
    assert [w["kind"] for w in r.json()["warnings"]] == ["untrusted_checkpoint"]
    p = audit.cli("verify", "--org", org)
    assert p.returncode == 0 and "warning untrusted_checkpoint" in p.stdout, p.stdout


def test_server_key_counts_next_to_public_key_options(audit):
    """--public-key adds trusted keys; AUDIT_SIGNING_KEY's stays trusted."""
    org = audit.new_org()
    audit.insert(org, 2)
    assert audit.cli("checkpoint").returncode == 0
    rc, chain, doc = audit.verify(org, "--public-key", "12" * 32)
    assert rc == 0 and chain["ok"] is True and chain["warnings"] == [], doc
    # ...and still catches the newest row deleted behind the trigger's back.
    tamper(audit, "DELETE FROM audit_log WHERE chain_id = %s AND seq = 2", org)
    tamper(audit, "UPDATE audit_chain_heads SET seq = 1, checksum = %s WHERE chain_id = %s",
           audit.rows(org)[0]["checksum"], org)
    rc, chain, doc = audit.verify(org, "--public-key", "12" * 32)
    assert rc == 1 and [b["kind"] for b in chain["breaks"]] == ["checkpoint_mismatch"], doc


def _wait_worker(srv):
    deadline = time.monotonic() + 20
    while "audit.worker.started" not in srv.log_text():
        assert time.monotonic() < deadline, srv.log_text()[-2000:]
        time.sleep(0.05)


def test_first_row_of_a_chain_is_checkpointed_at_once(spawn_server, bootstrap, audit, new_partner):
    """With an hour between checkpoint passes, a new organization's first row
    (organization.create) and a partner's first login are signed at once, in
    the transaction that writes them."""
    srv = spawn_server(AUDIT_CHECKPOINT_INTERVAL_SECONDS=3600)
    _wait_worker(srv)
    client = Api(srv.url).login(bootstrap.email, bootstrap.password)
    r = client.post("/api/v1/organizations", json={"name": uniq("first-row")})
    assert r.status_code == 201, r.text
    org = r.json()["id"]
    pub = audit.cli("public-key").stdout.strip()
    row = audit.rows(org)[0]
    cps = audit.su("SELECT seq, checksum, public_key FROM audit_checkpoints WHERE chain_id = %s", org)
    assert cps == [(1, row["checksum"], pub)], cps
    assert row["checksum"] == checksum(row)
    rc, chain, doc = audit.verify(org)
    assert rc == 0 and chain["ok"] is True and chain["warnings"] == [], doc
    # A partner chain's first row (its admin's first login) too.
    p = new_partner()  # logs in through the main server, which checkpoints as well
    assert audit.su("SELECT count(*) FROM audit_checkpoints WHERE chain_id = %s AND seq = 1", p.id)[0][0] == 1


def test_no_first_row_checkpoint_without_checkpointing(spawn_server, bootstrap, audit):
    srv = spawn_server(AUDIT_CHECKPOINT_INTERVAL_SECONDS=0)
    client = Api(srv.url).login(bootstrap.email, bootstrap.password)
    r = client.post("/api/v1/organizations", json={"name": uniq("no-cp")})
    assert r.status_code == 201, r.text
    assert audit.su("SELECT count(*) FROM audit_checkpoints WHERE chain_id = %s", r.json()["id"])[0][0] == 0


def test_organization_without_any_history_is_a_break(audit, admin):
    """Every organization's chain starts with its organization.create row;
    one with no rows, no head and no anchor lost its whole history."""
    org = audit.new_org()  # created in SQL: no row, as if its history were wiped
    rc, chain, doc = audit.verify(org)
    assert rc == 1 and chain["ok"] is False and chain["rowsChecked"] == 0, doc
    assert [b["kind"] for b in chain["breaks"]] == ["missing_row"], doc
    assert "whole history" in chain["breaks"][0]["detail"]
    r = admin.get("/api/v1/audit/verify", params={"orgId": org})
    assert r.status_code == 200 and r.json()["ok"] is False, r.text
    _, doc = audit.cli_json("verify", "--all")
    assert any(c["orgId"] == org and c["ok"] is False for c in doc["chains"])
    # Once it has a row it is an ordinary chain again.
    audit.insert(org, 1)
    rc, chain, doc = audit.verify(org)
    assert rc == 0 and chain["ok"] is True, doc


def test_bootstrap_rows_concern_what_they_name(bootstrap, sql):
    """The bootstrap organization's chain starts with organization.create (no
    site: every reader of the organization sees it) and site.create (the
    site's row)."""
    rows = sql("SELECT action, site_id::text FROM audit_log WHERE org_id = %s ORDER BY seq LIMIT 2",
               bootstrap.orgId)
    assert rows == [("organization.create", None), ("site.create", bootstrap.siteId)], rows


def test_verify_of_an_unknown_id_is_an_error_not_an_intact_chain(audit):
    """A mistyped --org must not print "ok, 0 rows checked" and exit 0."""
    p = audit.cli("verify", "--org", "00000000-0000-0000-0000-0000000000a1")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "is no organization, partner or audit chain" in p.stderr
