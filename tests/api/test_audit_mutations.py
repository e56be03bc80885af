"""Every mutating API call writes exactly one audit row (M3), in the chain of
the organization it touched (the system chain when there is none), with the
action its route declares, the caller as actor, the client IP, no secrets in
details, and a checksum that recomputes. Refused or failed calls that change
nothing write no row unless they are security events (failed login, failed
enrolment)."""
import json

import pytest

from audit_canonical import checksum
from conftest import assert_error, uniq

NIL = "00000000-0000-0000-0000-000000000000"


class Chains:
    """Snapshot of every chain's length, to find exactly what one call wrote."""

    def __init__(self, audit):
        self.audit = audit
        self.before = self._snap()

    def _snap(self):
        return dict(self.audit.su("SELECT chain_id::text, count(*) FROM audit_log GROUP BY chain_id"))

    def new_rows(self):
        """{chain_id: [new rows]} for the chains that grew since the snapshot."""
        after = self._snap()
        out = {}
        for chain, n in after.items():
            old = self.before.get(chain, 0)
            if n != old:
                rows = self.audit.rows(None if chain == NIL else chain)
                out[chain] = rows[len(rows) - (n - old):] if n > old else []
        return out


def one_row(audit, before, chain):
    """Asserts the only change since BEFORE is exactly one new row in CHAIN; returns it."""
    grown = before.new_rows()
    assert set(grown) == {chain}, f"rows written in chains {sorted(grown)} (want only {chain}): {grown}"
    (row,) = grown[chain]
    assert row["checksum"] == checksum(row)
    if row["seq"] > 1:
        (prev,) = audit.rows(None if chain == NIL else chain, "AND seq = %s", row["seq"] - 1)
        assert row["prev_checksum"] == prev["checksum"]
    return row


def no_rows(before):
    assert before.new_rows() == {}, "a call that changed nothing wrote audit rows"


def assert_actor(row, user_id, action, resource, resource_id):
    assert (row["actor_type"], row["actor_id"]) == ("user", user_id)
    assert (row["action"], row["resource"], row["resource_id"]) == (action, resource, resource_id)
    assert row["result"] == "success"
    assert row["ip_address"] == "127.0.0.1"


def test_create_organization(admin, audit):
    before = Chains(audit)
    name = uniq("MutOrg")
    r = admin.post("/api/v1/organizations", json={"name": name})
    assert r.status_code == 201, r.text
    org = r.json()["id"]
    row = one_row(audit, before, org)
    assert row["seq"] == 1
    assert_actor(row, admin.user["id"], "organization.create", "organizations", org)
    assert json.loads(row["details"]).get("name") == name


def test_create_site(admin, audit):
    org = audit.new_org()
    before = Chains(audit)
    r = admin.post(f"/api/v1/organizations/{org}/sites", json={"name": "Branch"})
    assert r.status_code == 201, r.text
    row = one_row(audit, before, org)
    assert_actor(row, admin.user["id"], "site.create", "sites", r.json()["id"])


@pytest.mark.parametrize("scope", ["org", "partner"])
def test_create_user(admin, audit, scope):
    org = audit.new_org()
    password = "Pw-" + uniq("secret")
    body = {"email": f"{uniq('mut')}@example.test", "name": "Mut User", "password": password}
    body.update({"role": "org_admin", "orgId": org} if scope == "org" else {"role": "partner_technician"})
    before = Chains(audit)
    r = admin.post("/api/v1/users", json=body)
    assert r.status_code == 201, r.text
    # A partner-scoped user change is partner-level history: the partner's chain.
    row = one_row(audit, before, org if scope == "org" else admin.user["partnerId"])
    assert_actor(row, admin.user["id"], "user.create", "users", r.json()["id"])
    assert password not in row["details"]
    assert row["partner_id"] == (None if scope == "org" else admin.user["partnerId"])


def test_create_and_revoke_enrollment_key(admin, audit, make_org):
    o = make_org()
    before = Chains(audit)
    r = admin.post("/api/v1/enrollment-keys", json={"orgId": o.id, "siteId": o.site_id, "name": uniq("k")})
    assert r.status_code == 201, r.text
    key = r.json()
    row = one_row(audit, before, o.id)
    assert_actor(row, admin.user["id"], "enrollment_key.create", "enrollment_keys", key["id"])
    assert key["key"] not in row["details"], "the enrolment key secret leaked into the audit log"

    before = Chains(audit)
    r = admin.delete(f"/api/v1/enrollment-keys/{key['id']}")
    assert r.status_code == 200, r.text
    row = one_row(audit, before, o.id)
    assert_actor(row, admin.user["id"], "enrollment_key.revoke", "enrollment_keys", key["id"])
    # Revoking again answers the same but changes nothing, so it writes no
    # second row (the first revocation time stays).
    before = Chains(audit)
    r = admin.delete(f"/api/v1/enrollment-keys/{key['id']}")
    assert r.status_code == 200, r.text
    no_rows(before)
    # An unknown key changes nothing and writes nothing.
    before = Chains(audit)
    assert_error(admin.delete("/api/v1/enrollment-keys/7c9e6679-7425-40de-944b-e07fc1f90ae7"), 404)
    no_rows(before)


def test_enroll_agent(agents, audit, make_org, env):
    o = make_org()
    key = agents.create_key(org_id=o.id, site_id=o.site_id)
    before = Chains(audit)
    r = agents.enroll(key["key"])
    assert r.status_code == 201, r.text
    dev = r.json()
    row = one_row(audit, before, o.id)
    assert (row["actor_type"], row["actor_id"]) == ("agent", dev["agentId"])
    assert (row["action"], row["resource"], row["resource_id"]) == ("device.enroll", "devices", dev["agentId"])
    assert row["ip_address"] == "127.0.0.1" and row["result"] == "success"
    for secret in (key["key"], env["AGENT_ENROLLMENT_SECRET"], dev["authToken"]):
        assert secret not in row["details"]


def test_failed_enrollment_is_audited_once(agents, audit, admin, make_org):
    """A refused key (here: revoked) is a security event: one failure row in
    the key's organization; an unknown key, one in the system chain."""
    o = make_org()
    key = agents.create_key(org_id=o.id, site_id=o.site_id)
    assert admin.delete(f"/api/v1/enrollment-keys/{key['id']}").status_code == 200
    before = Chains(audit)
    r = agents.enroll(key["key"])
    assert_error(r, 401)
    row = one_row(audit, before, o.id)
    assert (row["action"], row["result"], row["actor_type"]) == ("agent.enroll.failed", "failure", "agent")
    assert row["resource_id"] == key["id"] and key["key"] not in row["details"]
    before = Chains(audit)
    bogus = "ek_" + uniq("bogus")
    assert_error(agents.enroll(bogus), 401)
    row = one_row(audit, before, NIL)
    assert (row["action"], row["result"]) == ("agent.enroll.failed", "failure")
    assert bogus not in row["details"]


def test_login_success(api, audit, make_user, tenants):
    u = make_user("org_admin", orgId=tenants.a.id)
    before = Chains(audit)
    c = api.login(u.email, u.password)
    row = one_row(audit, before, tenants.a.id)
    assert (row["actor_type"], row["actor_id"], row["action"], row["resource"]) == (
        "user", u.id, "auth.login", "sessions")
    assert row["result"] == "success" and row["ip_address"] == "127.0.0.1"
    assert u.password not in row["details"] and c.token not in row["details"]


def test_login_success_partner_user_goes_to_partner_chain(api, audit, bootstrap):
    """Partner staff have no organization: their logins are in their
    partner's chain (chain id = partner id), not the operator-only system chain."""
    before = Chains(audit)
    api.login(bootstrap.email, bootstrap.password)
    row = one_row(audit, before, bootstrap.partnerId)
    assert (row["action"], row["org_id"], row["partner_id"]) == ("auth.login", None, bootstrap.partnerId)


@pytest.mark.parametrize("case", ["bad_password", "unknown_user"])
def test_login_failure(api, audit, make_user, tenants, case):
    u = make_user("org_viewer", orgId=tenants.a.id)
    email = u.email if case == "bad_password" else f"{uniq('nobody')}@example.test"
    wrong = "Wrong-" + uniq("pw")
    before = Chains(audit)
    r = api.post("/api/v1/auth/login", json={"email": email, "password": wrong}, token=None)
    assert_error(r, 401)
    row = one_row(audit, before, tenants.a.id if case == "bad_password" else NIL)
    assert (row["action"], row["resource"], row["result"]) == ("auth.login.failed", "sessions", "failure")
    assert row["actor_id"] == (u.id if case == "bad_password" else None)
    assert row["ip_address"] == "127.0.0.1"
    assert wrong not in row["details"]


@pytest.mark.parametrize("call", [
    ("post", "/api/v1/organizations", {"name": ""}),
    ("post", "/api/v1/organizations", {}),
    ("post", "/api/v1/users", {"email": "x"}),
    ("post", "/api/v1/enrollment-keys", {"orgId": "nope"}),
    ("post", "/api/v1/organizations/7c9e6679-7425-40de-944b-e07fc1f90ae7/sites", {"name": "x"}),
])
def test_rejected_mutations_write_nothing(admin, audit, call):
    method, path, body = call
    before = Chains(audit)
    r = getattr(admin, method)(path, json=body)
    assert 400 <= r.status_code < 500, r.text
    no_rows(before)


def test_forbidden_mutation_by_viewer_writes_nothing_in_the_tenant(audit, tenants):
    before = Chains(audit)
    r = tenants.a_viewer.api.post("/api/v1/enrollment-keys",
                                  json={"orgId": tenants.a.id, "siteId": tenants.a.site_id, "name": "x"})
    assert r.status_code == 403, r.text
    grown = before.new_rows()
    # A denial may be audited as a security event, but never as the change.
    for rows in grown.values():
        for row in rows:
            assert row["action"] != "enrollment_key.create" and row["result"] in ("denied", "failure"), row
