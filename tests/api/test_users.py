"""User lifecycle: GET and PATCH /users/:id (name, role, status), session
revocation on disable, the last-administrator guard, tenant isolation of
both, and POST /users placing a user by its sites."""
import json
import threading
import uuid

import pytest

from conftest import assert_error, uniq

LOGIN = "/api/v1/auth/login"
USER_KEYS = {"id", "email", "name", "role", "partnerId", "orgId", "status", "mfaEnabled",
             "createdAt", "lastLoginAt"}
RANDOM_UUID = "00000000-0000-4000-8000-000000000000"


def user_path(u):
    return f"/api/v1/users/{u if isinstance(u, str) else u.id}"


def audit_for(sql, user_id):
    """(action, actor_id, org_id, details) of every user.* row about USER_ID, oldest first."""
    rows = sql("SELECT action, actor_id, org_id::text, details FROM audit_log"
               " WHERE resource = 'users' AND resource_id = %s AND action LIKE 'user.%%'"
               " ORDER BY id", user_id)
    return [(a, actor, org, json.loads(d)) for a, actor, org, d in rows]


def live_sessions(sql, user_id):
    return sql("SELECT count(*) FROM sessions WHERE user_id = %s AND revoked_at IS NULL",
               user_id)[0][0]


# ------------------------------------------------------------------ GET /users/:id


def test_get_user_is_the_list_object(admin, tenants):
    r = admin.get(user_path(tenants.a_viewer))
    assert r.status_code == 200, r.text
    u = r.json()
    assert set(u) == USER_KEYS
    listed = [x for x in admin.get("/api/v1/users").json()["users"] if x["id"] == u["id"]]
    assert listed == [u]
    assert u["orgId"] == tenants.a.id and u["partnerId"] is None
    assert u["role"] == "org_viewer" and u["status"] == "active"
    assert u["lastLoginAt"] is not None  # make_user logged in


def test_get_user_of_another_tenant_is_404(admin, tenants, bootstrap, make_user):
    a = tenants.a_admin.api
    assert a.get(user_path(tenants.a_viewer)).status_code == 200
    assert_error(a.get(user_path(tenants.b_admin)), 404, "not_found")
    assert_error(a.get(user_path(bootstrap.userId)), 404, "not_found")  # partner staff
    assert_error(admin.get(user_path(RANDOM_UUID)), 404, "not_found")
    assert_error(admin.get(user_path("not-a-uuid")), 404, "not_found")
    # An organization-limited partner user sees partner staff only as itself.
    limited = make_user("partner_admin", orgIds=[tenants.a.id])
    assert_error(limited.api.get(user_path(bootstrap.userId)), 404, "not_found")
    assert_error(limited.api.get(user_path(tenants.b_admin)), 404, "not_found")
    assert limited.api.get(user_path(limited)).status_code == 200
    assert limited.api.get(user_path(tenants.a_admin)).status_code == 200


def test_get_user_needs_users_read(tenants):
    assert_error(tenants.a_viewer.api.get(user_path(tenants.a_viewer)), 403, "forbidden")


# ------------------------------------------------------------------ PATCH: name and role


def test_patch_name(admin, make_user, tenants, bootstrap, sql):
    u = make_user("org_viewer", orgId=tenants.a.id)
    new = uniq("Renamed")
    r = admin.patch(user_path(u), json={"name": new})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == USER_KEYS
    assert body["name"] == new and body["role"] == "org_viewer" and body["status"] == "active"
    assert admin.get(user_path(u)).json() == body
    rows = audit_for(sql, u.id)
    assert [x[0] for x in rows] == ["user.create", "user.update"]
    action, actor, org, details = rows[-1]
    assert actor == bootstrap.userId and org == tenants.a.id
    assert details == {"email": u.email, "changes": {"name": {"from": "User org_viewer",
                                                              "to": new}}}


def test_patch_that_changes_nothing_writes_no_audit_row(admin, make_user, tenants, sql):
    u = make_user("org_viewer", orgId=tenants.a.id)
    before = audit_for(sql, u.id)
    r = admin.patch(user_path(u), json={"name": "User org_viewer", "role": "org_viewer",
                                        "status": "active"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "User org_viewer"
    assert audit_for(sql, u.id) == before


def test_patch_role_within_scope_kind(admin, make_user, tenants, sql):
    u = make_user("org_viewer", orgId=tenants.a.id)
    r = admin.patch(user_path(u), json={"role": "org_admin"})
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "org_admin"
    me = u.api.get("/api/v1/auth/me").json()
    assert me["role"]["name"] == "org_admin" and "users:read" in me["permissions"]
    action, _, _, details = audit_for(sql, u.id)[-1]
    assert action == "user.update"
    assert details["changes"] == {"role": {"from": "org_viewer", "to": "org_admin"}}
    t = make_user("partner_technician")
    r = admin.patch(user_path(t), json={"role": "partner_admin"})
    assert r.status_code == 200 and r.json()["role"] == "partner_admin", r.text


@pytest.mark.parametrize("kind,role", [("org", "partner_technician"), ("org", "partner_admin"),
                                       ("partner", "org_admin"), ("partner", "org_viewer")])
def test_patch_role_of_other_scope_kind_is_400(admin, make_user, tenants, sql, kind, role):
    u = (make_user("org_viewer", orgId=tenants.a.id) if kind == "org"
         else make_user("partner_technician"))
    before = audit_for(sql, u.id)
    body = assert_error(admin.patch(user_path(u), json={"role": role}), 400, "validation_error")
    assert body["error"]["field"] == "role"
    assert admin.get(user_path(u)).json()["role"] == u.body["role"]
    assert audit_for(sql, u.id) == before


@pytest.mark.parametrize("body,field", [
    ({}, None),
    ({"name": None}, None),
    ({"nmae": "typo"}, "nmae"),
    ({"name": "ok", "email": "x@example.test"}, "email"),
    ({"password": "a-new-password-123"}, "password"),
    ({"role": "god"}, "role"),
    ({"role": ""}, "role"),
    ({"role": 5}, "role"),
    ({"status": "deleted"}, "status"),
    ({"status": True}, "status"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "rlo\u202eevil"}, "name"),
    ({"name": "x" * 201}, "name"),
])
def test_patch_validation(admin, tenants, body, field):
    r = admin.patch(user_path(tenants.a_viewer), json=body)
    err = assert_error(r, 400, "validation_error")
    assert err["error"].get("field") == field
    assert admin.get(user_path(tenants.a_viewer)).json()["status"] == "active"


def test_patch_unknown_or_foreign_user_is_404(admin, tenants):
    assert_error(admin.patch(user_path(RANDOM_UUID), json={"name": "x"}), 404, "not_found")
    assert_error(admin.patch(user_path("nope"), json={"name": "x"}), 404, "not_found")


# ------------------------------------------------------------------ PATCH: status


def test_disable_revokes_sessions_and_blocks_login(admin, api, make_user, tenants, bootstrap, sql):
    u = make_user("org_admin", orgId=tenants.a.id)
    second = api.login(u.email, u.password)
    assert u.api.get("/api/v1/auth/me").status_code == 200
    assert live_sessions(sql, u.id) == 2
    r = admin.patch(user_path(u), json={"status": "disabled"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "disabled"
    assert_error(u.api.get("/api/v1/auth/me"), 401)
    assert_error(second.get("/api/v1/auth/me"), 401)
    assert live_sessions(sql, u.id) == 0
    assert {x[0] for x in sql("SELECT revoked_reason FROM sessions WHERE user_id = %s", u.id)} \
        == {"user_disabled"}
    assert_error(api.post(LOGIN, json={"email": u.email, "password": u.password}), 401,
                 "invalid_credentials")
    action, actor, org, details = audit_for(sql, u.id)[-1]
    assert (action, actor, org) == ("user.disable", bootstrap.userId, tenants.a.id)
    assert details == {"email": u.email, "sessionsRevoked": 2,
                       "changes": {"status": {"from": "active", "to": "disabled"}}}
    # Disabled users stay visible, with their status.
    assert admin.get(user_path(u)).json()["status"] == "disabled"

    r = admin.patch(user_path(u), json={"status": "active"})
    assert r.status_code == 200 and r.json()["status"] == "active", r.text
    action, _, _, details = audit_for(sql, u.id)[-1]
    assert action == "user.enable"
    assert details == {"email": u.email,
                       "changes": {"status": {"from": "disabled", "to": "active"}}}
    again = api.login(u.email, u.password)
    assert again.get("/api/v1/auth/me").status_code == 200
    # Enabling does not bring revoked sessions back.
    assert_error(u.api.get("/api/v1/auth/me"), 401)


def test_disable_with_rename_is_one_disable_row(admin, make_user, tenants, sql):
    u = make_user("org_viewer", orgId=tenants.a.id)
    before = len(audit_for(sql, u.id))
    new = uniq("Gone")
    r = admin.patch(user_path(u), json={"name": new, "status": "disabled"})
    assert r.status_code == 200, r.text
    rows = audit_for(sql, u.id)
    assert len(rows) == before + 1
    action, _, _, details = rows[-1]
    assert action == "user.disable"
    assert details["changes"] == {"name": {"from": "User org_viewer", "to": new},
                                  "status": {"from": "active", "to": "disabled"}}
    assert details["sessionsRevoked"] == 1
    # Repeating it changes nothing and writes nothing.
    assert admin.patch(user_path(u), json={"name": new, "status": "disabled"}).status_code == 200
    assert len(audit_for(sql, u.id)) == before + 1


def test_disabled_partner_user_is_refused_too(admin, api, make_user, sql):
    t = make_user("partner_technician")
    r = admin.patch(user_path(t), json={"status": "disabled"})
    assert r.status_code == 200, r.text
    assert_error(t.api.get("/api/v1/auth/me"), 401)
    assert_error(api.post(LOGIN, json={"email": t.email, "password": t.password}), 401)
    action, _, org, _ = audit_for(sql, t.id)[-1]
    assert action == "user.disable" and org is None


# ------------------------------------------------------------------ PATCH: who may


def test_cannot_disable_or_change_role_of_own_account(make_user, sql):
    me = make_user("partner_admin")
    before = audit_for(sql, me.id)
    assert_error(me.api.patch(user_path(me), json={"status": "disabled"}), 403, "forbidden")
    assert_error(me.api.patch(user_path(me), json={"role": "partner_technician"}), 403,
                 "forbidden")
    assert_error(me.api.patch(user_path(me), json={"name": "Me", "status": "disabled"}), 403,
                 "forbidden")
    assert audit_for(sql, me.id) == before
    assert me.api.get("/api/v1/auth/me").status_code == 200
    # Renaming oneself, or restating one's own role and status, is fine.
    r = me.api.patch(user_path(me), json={"name": "Me Myself", "role": "partner_admin",
                                          "status": "active"})
    assert r.status_code == 200 and r.json()["name"] == "Me Myself", r.text


def test_without_users_write_is_403(tenants):
    for who in (tenants.a_viewer, tenants.a_admin, tenants.tech_a):
        r = who.api.patch(user_path(tenants.a_viewer), json={"name": "x"})
        assert_error(r, 403, "forbidden")


def test_org_limited_partner_user_cannot_patch_unrestricted_staff(admin, make_user, tenants,
                                                                  bootstrap, sql):
    """Like GET /users, an organization-limited partner user sees partner
    staff only as itself: other staff answer 404, as unknown users do."""
    limited = make_user("partner_admin", orgIds=[tenants.a.id])
    tech = make_user("partner_technician")
    for target in (bootstrap.userId, tech.id, tenants.tech_a.id):
        before = audit_for(sql, target)
        assert_error(limited.api.patch(user_path(target), json={"status": "disabled"}), 404,
                     "not_found")
        assert_error(limited.api.patch(user_path(target), json={"name": "x"}), 404, "not_found")
        assert audit_for(sql, target) == before
    assert tech.api.get("/api/v1/auth/me").status_code == 200
    assert_error(limited.api.patch(user_path(tenants.b_admin), json={"name": "x"}), 404)
    # Users of its own organizations it manages.
    v = make_user("org_viewer", orgId=tenants.a.id)
    r = limited.api.patch(user_path(v), json={"name": "By the limited admin"})
    assert r.status_code == 200, r.text
    # The partner_technician limited to A has no users:write at all.
    assert_error(tenants.tech_a.api.patch(user_path(bootstrap.userId), json={"name": "x"}), 403)


# ------------------------------------------------------------------ last administrator


@pytest.fixture
def second_partner(make_user, sql):
    """A partner of its own with one organization, one partner_admin and one
    user of a custom role with partner_admin's permissions under another name.
    Users are created through the API (known passwords) and then moved."""
    pid = sql("INSERT INTO partners (name) VALUES (%s) RETURNING id::text", uniq("P2"))[0][0]
    sql("INSERT INTO organizations (partner_id, name) VALUES (%s, %s)", pid, uniq("P2 org"))
    role = uniq("user_manager").replace("-", "_")
    # Every permission of partner_admin (nobody grants or changes what they
    # do not hold), under another name: so the last partner_admin can be
    # someone else than the caller.
    rid = sql("INSERT INTO roles (name, scope, permissions) SELECT %s, 'partner', permissions"
              " FROM roles WHERE name = 'partner_admin' RETURNING id::text", role)[0][0]

    def member(role_name=None, role_id=None):
        u = make_user("partner_technician")
        if role_id is None:
            role_id = sql("SELECT id::text FROM roles WHERE name = %s", role_name)[0][0]
        sql("UPDATE users SET partner_id = %s, role_id = %s WHERE id = %s", pid, role_id, u.id)
        return u

    ns = type("P2", (), {})()
    ns.id = pid
    ns.member = member
    ns.admin = member("partner_admin")
    ns.manager = member(role_id=rid)
    yield ns
    # Keep the role table as other tests expect it (built-in roles only).
    sql("UPDATE users SET role_id = (SELECT id FROM roles WHERE name = 'partner_technician'),"
        " status = 'disabled' WHERE role_id = %s", rid)
    sql("DELETE FROM roles WHERE id = %s", rid)


def test_last_administrator_cannot_be_disabled_or_demoted(second_partner, sql):
    p2 = second_partner
    m = p2.manager.api
    assert m.get(user_path(p2.admin)).status_code == 200
    before = audit_for(sql, p2.admin.id)
    assert_error(m.patch(user_path(p2.admin), json={"status": "disabled"}), 409,
                 "last_administrator")
    assert_error(m.patch(user_path(p2.admin), json={"role": "partner_technician"}), 409,
                 "last_administrator")
    assert audit_for(sql, p2.admin.id) == before
    assert p2.admin.api.get("/api/v1/auth/me").status_code == 200
    # Renaming is no threat.
    assert m.patch(user_path(p2.admin), json={"name": "Still admin"}).status_code == 200
    # An administrator of another partner does not count.
    assert sql("SELECT count(*) FROM users u JOIN roles r ON r.id = u.role_id"
               " WHERE r.name = 'partner_admin' AND u.status = 'active' AND u.partner_id <> %s",
               p2.id)[0][0] > 0
    # With a second active administrator, the first may go.
    other = p2.member("partner_admin")
    r = m.patch(user_path(p2.admin), json={"status": "disabled"})
    assert r.status_code == 200, r.text
    # ... and now the second is the last one.
    assert_error(m.patch(user_path(other), json={"status": "disabled"}), 409,
                 "last_administrator")
    assert m.patch(user_path(p2.admin), json={"status": "active"}).status_code == 200
    assert m.patch(user_path(other), json={"role": "partner_technician"}).status_code == 200


def test_an_organization_limited_administrator_does_not_count_as_the_last(second_partner, sql):
    """A partner_admin limited to some organizations cannot see partner staff,
    create unrestricted users or read the partner chain, so the partner's last
    unrestricted administrator may not be disabled or demoted on its account."""
    p2 = second_partner
    m = p2.manager.api
    org = sql("SELECT id::text FROM organizations WHERE partner_id = %s", p2.id)[0][0]
    limited = p2.member("partner_admin")
    sql("INSERT INTO memberships (user_id, org_id) VALUES (%s, %s)", limited.id, org)
    before = audit_for(sql, p2.admin.id)
    assert_error(m.patch(user_path(p2.admin), json={"status": "disabled"}), 409,
                 "last_administrator")
    assert_error(m.patch(user_path(p2.admin), json={"role": "partner_technician"}), 409,
                 "last_administrator")
    assert audit_for(sql, p2.admin.id) == before
    # The limited one may still go while the unrestricted one stays.
    r = m.patch(user_path(limited), json={"status": "disabled"})
    assert r.status_code == 200, r.text
    # A second unrestricted administrator lets the first go.
    other = p2.member("partner_admin")
    r = m.patch(user_path(p2.admin), json={"status": "disabled"})
    assert r.status_code == 200, r.text
    assert_error(m.patch(user_path(other), json={"status": "disabled"}), 409,
                 "last_administrator")


def test_two_administrators_disabling_each_other_keep_one(second_partner, sql):
    """Changes within a partner are serialized: whatever the interleaving,
    one active administrator remains."""
    p2 = second_partner
    for _ in range(5):
        x, y = p2.admin, p2.member("partner_admin")
        barrier = threading.Barrier(2)
        results = {}

        def go(me, target):
            c = me.api.clone()
            barrier.wait()
            results[me.id] = c.patch(user_path(target), json={"status": "disabled"}).status_code

        ts = [threading.Thread(target=go, args=(x, y)), threading.Thread(target=go, args=(y, x))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert sorted(results.values()) in ([200, 401], [200, 409]), results
        active = sql("SELECT count(*) FROM users u JOIN roles r ON r.id = u.role_id"
                     " WHERE u.partner_id = %s AND u.status = 'active'"
                     "   AND r.name = 'partner_admin'", p2.id)[0][0]
        assert active == 1
        # Back to one known administrator for the next round.
        survivor = x if results[x.id] == 200 else y
        p2.admin = survivor


# ------------------------------------------------------------------ POST /users by sites


def test_create_with_site_ids_derives_the_organization(admin, api, make_org, sql):
    org = make_org()
    s2 = admin.post(f"/api/v1/organizations/{org.id}/sites", json={"name": "Second"}).json()
    email = f"{uniq('bysite')}@example.test"
    pw = "Pw-" + uuid.uuid4().hex
    r = admin.post("/api/v1/users", json={"email": email, "name": "By site", "role": "org_viewer",
                                          "siteIds": [s2["id"]], "password": pw})
    assert r.status_code == 201, r.text
    u = r.json()
    assert u["orgId"] == org.id and u["partnerId"] is None
    assert sql("SELECT org_id::text, site_id::text FROM memberships WHERE user_id = %s",
               u["id"]) == [(None, s2["id"])]
    c = api.login(email, pw)
    assert c.get("/api/v1/auth/me").json()["organizationIds"] == [org.id]
    sites = c.get(f"/api/v1/organizations/{org.id}/sites").json()["sites"]
    assert [s["id"] for s in sites] == [s2["id"]]
    assert sql("SELECT org_id::text FROM audit_log WHERE action = 'user.create'"
               " AND resource_id = %s", u["id"]) == [(org.id,)]


def test_create_with_sites_of_two_organizations_is_400(admin, tenants, sql):
    email = f"{uniq('two')}@example.test"
    body = assert_error(admin.post("/api/v1/users", json={
        "email": email, "name": "Two", "role": "org_viewer",
        "siteIds": [tenants.a.site_id, tenants.b.site_id]}), 400, "validation_error")
    assert body["error"]["field"] == "siteIds"
    assert sql("SELECT count(*) FROM users WHERE email = %s", email)[0][0] == 0


def test_create_with_invisible_sites_is_404(tenants, make_user):
    limited = make_user("partner_admin", orgIds=[tenants.a.id])
    for sites in ([tenants.b.site_id], [tenants.a.site_id, tenants.b.site_id], [RANDOM_UUID]):
        r = limited.api.post("/api/v1/users", json={"email": f"{uniq('x')}@example.test",
                                                    "name": "x", "role": "org_viewer",
                                                    "siteIds": sites})
        assert_error(r, 404, "not_found")
    r = limited.api.post("/api/v1/users", json={"email": f"{uniq('x')}@example.test",
                                                "name": "x", "role": "org_viewer",
                                                "siteIds": [tenants.a.site_id]})
    assert r.status_code == 201 and r.json()["orgId"] == tenants.a.id, r.text


def test_create_needs_org_or_sites_for_organization_roles(admin):
    body = assert_error(admin.post("/api/v1/users", json={
        "email": f"{uniq('x')}@example.test", "name": "x", "role": "org_viewer",
        "siteIds": []}), 400, "validation_error")
    assert body["error"]["field"] == "orgId"


@pytest.mark.parametrize("extra", [{"nmae": "typo"}, {"status": "active"}, {"partnerId": RANDOM_UUID}])
def test_create_refuses_unknown_fields(admin, tenants, sql, extra):
    email = f"{uniq('strict')}@example.test"
    body = assert_error(admin.post("/api/v1/users", json={
        "email": email, "name": "x", "role": "org_viewer", "orgId": tenants.a.id, **extra}),
        400, "validation_error")
    assert body["error"]["field"] == next(iter(extra))
    assert sql("SELECT count(*) FROM users WHERE email = %s", email)[0][0] == 0


def test_login_refuses_unknown_fields(api, bootstrap):
    body = assert_error(api.post(LOGIN, json={"email": bootstrap.email,
                                              "password": bootstrap.password, "otp": "1"}),
                        400, "validation_error")
    assert body["error"]["field"] == "otp"


def test_users_write_alone_grants_nothing_it_does_not_hold(second_partner, sql):
    """A custom role with only users:read and users:write can neither mint a
    partner_admin, promote anyone to it, nor change an administrator."""
    p2 = second_partner
    role = uniq("clerk").replace("-", "_")
    rid = sql("INSERT INTO roles (name, scope, permissions) VALUES"
              " (%s, 'partner', ARRAY['users:read','users:write']) RETURNING id::text", role)[0][0]
    try:
        clerk = p2.member(role_id=rid)
        peer = p2.member(role_id=rid)
        body = {"email": f"{uniq('minted')}@example.test", "name": "Minted", "role": "partner_admin",
                "password": "Pw-" + uniq("x")}
        b = assert_error(clerk.api.post("/api/v1/users", json=body), 403, "forbidden")
        assert b["error"]["field"] == "role"
        assert sql("SELECT count(*) FROM users WHERE email = %s", body["email"])[0][0] == 0
        assert_error(clerk.api.patch(user_path(peer), json={"role": "partner_admin"}), 403)
        assert_error(clerk.api.patch(user_path(p2.admin), json={"status": "disabled"}), 403)
        assert_error(clerk.api.patch(user_path(p2.admin), json={"name": "Renamed"}), 403)
        # Within its own powers it still works: a peer of the same role.
        assert clerk.api.patch(user_path(peer), json={"name": "Peer"}).status_code == 200
    finally:
        sql("UPDATE users SET role_id = (SELECT id FROM roles WHERE name = 'partner_technician'),"
            " status = 'disabled' WHERE role_id = %s", rid)
        sql("DELETE FROM roles WHERE id = %s", rid)
