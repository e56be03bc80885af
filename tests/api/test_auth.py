"""Login, /auth/me, users and roles."""
import base64
import json
import statistics
import time

import pytest

from conftest import assert_error, uniq

LOGIN = "/api/v1/auth/login"
USER_FIELDS = {"id", "email", "name", "role", "partnerId", "orgId"}


def jwt_claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def audit_rows(sql, action, email):
    return sql("SELECT actor_id, org_id, details, host(ip_address::inet), result, resource_id"
               "  FROM audit_log WHERE action = %s AND details::jsonb->>'email' = %s ORDER BY id",
               action, email)


# ------------------------------------------------------------------ login


def test_login_returns_token_and_user(api, bootstrap):
    r = api.post(LOGIN, json={"email": bootstrap.email, "password": bootstrap.password})
    assert r.status_code == 200, r.text
    b = r.json()
    assert set(b) == {"accessToken", "tokenType", "expiresIn", "user"}
    assert b["tokenType"] == "Bearer"
    assert b["expiresIn"] == 900
    assert set(b["user"]) >= USER_FIELDS
    assert b["user"]["id"] == bootstrap.userId
    assert b["user"]["email"] == bootstrap.email
    assert b["user"]["role"] == "partner_admin"
    assert b["user"]["partnerId"] == bootstrap.partnerId
    assert b["user"]["orgId"] is None
    claims = jwt_claims(b["accessToken"])
    assert claims["sub"] == bootstrap.userId
    assert claims["exp"] - claims["iat"] == 900
    assert b["accessToken"].count(".") == 2


@pytest.mark.parametrize("variant", [
    lambda e: e.upper(),
    lambda e: "  " + e + "  ",
    lambda e: "\t" + e.title() + "\n",
])
def test_login_email_is_trimmed_and_case_insensitive(api, bootstrap, variant):
    r = api.post(LOGIN, json={"email": variant(bootstrap.email), "password": bootstrap.password})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["email"] == bootstrap.email


def test_password_is_case_sensitive(api, bootstrap):
    assert_error(api.post(LOGIN, json={"email": bootstrap.email,
                                       "password": bootstrap.password.swapcase()}),
                 401, "invalid_credentials")


def test_unknown_wrong_password_and_disabled_are_indistinguishable(api, make_user, sql):
    disabled = make_user("partner_technician")
    sql("UPDATE users SET status = 'disabled' WHERE id = %s", disabled.id)
    other = make_user("partner_technician")
    cases = {
        "unknown": {"email": f"{uniq('ghost')}@example.test", "password": "whatever-password"},
        "wrong_password": {"email": other.email, "password": other.password + "x"},
        "disabled": {"email": disabled.email, "password": disabled.password},
        "malformed_email": {"email": "not-an-address", "password": "whatever-password"},
        "empty_password": {"email": other.email, "password": ""},
    }
    bodies = {}
    for name, body in cases.items():
        r = api.post(LOGIN, json=body)
        assert_error(r, 401, "invalid_credentials")
        bodies[name] = r.json()
    assert len({json.dumps(b, sort_keys=True) for b in bodies.values()}) == 1, bodies


def test_disabled_user_loses_existing_sessions(make_user, sql):
    u = make_user("partner_technician")
    assert u.api.get("/api/v1/auth/me").status_code == 200
    sql("UPDATE users SET status = 'disabled' WHERE id = %s", u.id)
    assert_error(u.api.get("/api/v1/auth/me"), 401)


def test_login_timing_does_not_reveal_accounts(api, make_user):
    """Unknown e-mail and wrong password both cost one argon2id verification."""
    u = make_user("partner_technician")

    def timed(body):
        t0 = time.perf_counter()
        r = api.post(LOGIN, json=body)
        dt = time.perf_counter() - t0
        assert r.status_code == 401
        return dt

    unknown = lambda: {"email": f"{uniq('nobody')}@example.test", "password": "wrong-password-1"}
    wrong = lambda: {"email": u.email, "password": "wrong-password-1"}
    timed(unknown())  # warm-up
    timed(wrong())
    t_unknown, t_wrong = [], []
    for _ in range(5):
        t_unknown.append(timed(unknown()))
        t_wrong.append(timed(wrong()))
    ratio = statistics.median(t_unknown) / statistics.median(t_wrong)
    assert 0.5 <= ratio <= 2.0, (t_unknown, t_wrong)


def test_failed_logins_are_audited(api, make_user, sql):
    u = make_user("partner_technician")
    ghost = f"{uniq('ghost')}@example.test"
    bad_pw = "definitely-wrong-" + uniq()
    assert_error(api.post(LOGIN, json={"email": u.email, "password": bad_pw}), 401)
    assert_error(api.post(LOGIN, json={"email": ghost, "password": bad_pw}), 401)
    rows = audit_rows(sql, "auth.login.failed", u.email)
    assert len(rows) == 1
    actor_id, org_id, details, ip, result, _ = rows[0]
    assert actor_id == u.id
    assert result == "failure"
    assert ip == "127.0.0.1"
    assert bad_pw not in json.dumps(details)
    rows = audit_rows(sql, "auth.login.failed", ghost)
    assert len(rows) == 1
    assert bad_pw not in json.dumps(rows[0][2])


def test_successful_login_is_audited(api, make_user, sql):
    u = make_user("partner_technician")  # make_user logs in once
    c = api.login(u.email, u.password)
    sid = jwt_claims(c.token)["sid"]
    rows = sql("SELECT actor_id, resource_id, host(ip_address::inet), result FROM audit_log"
               " WHERE action = 'auth.login' AND actor_id = %s ORDER BY id", u.id)
    assert len(rows) == 2
    assert rows[-1] == (u.id, sid, "127.0.0.1", "success")
    assert not sql("SELECT 1 FROM audit_log WHERE action = 'auth.login.failed' AND actor_id = %s", u.id)


# ------------------------------------------------------------------ /auth/me


def test_me_of_partner_admin(admin, bootstrap):
    r = admin.get("/api/v1/auth/me")
    assert r.status_code == 200, r.text
    me = r.json()
    assert set(me) >= {"id", "email", "name", "partnerId", "orgId", "role", "permissions",
                       "mfaEnabled", "sessionId", "organizationIds"}
    assert me["id"] == bootstrap.userId
    assert me["email"] == bootstrap.email
    assert me["partnerId"] == bootstrap.partnerId
    assert me["orgId"] is None
    assert set(me["role"]) == {"id", "name", "forceMfa"}
    assert me["role"]["name"] == "partner_admin"
    assert me["role"]["forceMfa"] is False
    assert {"orgs:write", "users:write", "enrollment_keys:write"} <= set(me["permissions"])
    assert me["mfaEnabled"] is False
    assert me["sessionId"] == jwt_claims(admin.token)["sid"]
    assert bootstrap.orgId in me["organizationIds"]


def test_me_of_org_user(tenants):
    me = tenants.a_viewer.api.get("/api/v1/auth/me").json()
    assert me["partnerId"] is None
    assert me["orgId"] == tenants.a.id
    assert me["organizationIds"] == [tenants.a.id]
    assert me["role"]["name"] == "org_viewer"
    assert not any(p.endswith(":write") for p in me["permissions"])


def test_me_of_limited_technician(tenants):
    me = tenants.tech_a.api.get("/api/v1/auth/me").json()
    assert me["organizationIds"] == [tenants.a.id]
    assert me["partnerId"] == tenants.partner_id


def test_me_without_or_with_garbage_token_is_401(api):
    assert_error(api.get("/api/v1/auth/me"), 401)
    assert_error(api.get("/api/v1/auth/me", token="garbage"), 401)
    assert_error(api.get("/api/v1/auth/me", headers={"Authorization": "Basic YTpi"}), 401)


# ------------------------------------------------------------------ users and roles


def test_roles_list(admin):
    r = admin.get("/api/v1/roles")
    assert r.status_code == 200
    roles = {x["name"]: x for x in r.json()["roles"]}
    assert {"partner_admin", "partner_technician", "org_admin", "org_viewer"} <= set(roles)
    for x in roles.values():
        assert set(x) >= {"id", "name", "scope", "permissions", "forceMfa", "builtin"}
    assert roles["partner_admin"]["scope"] == "partner"
    assert roles["partner_technician"]["scope"] == "partner"
    assert roles["org_admin"]["scope"] == "organization"
    assert roles["org_viewer"]["scope"] == "organization"
    assert "enrollment_keys:write" not in roles["org_viewer"]["permissions"]
    # Built in exactly when it is one of the built-in names (other tests of
    # the session may have created custom roles by then).
    builtin = {"partner_admin", "partner_technician", "partner_viewer", "org_admin",
               "org_technician", "org_viewer"}
    assert builtin <= set(roles)
    assert all(x["builtin"] == (name in builtin) for name, x in roles.items())


def test_create_user_with_generated_password(admin, api, tenants):
    email = f"{uniq('gen')}@example.test"
    r = admin.post("/api/v1/users", json={"email": email, "name": "Generated", "role": "org_admin",
                                          "orgId": tenants.a.id})
    assert r.status_code == 201, r.text
    u = r.json()
    assert set(u) >= {"id", "email", "name", "role", "partnerId", "orgId", "status", "createdAt",
                      "password"}
    assert u["orgId"] == tenants.a.id and u["partnerId"] is None
    assert u["status"] == "active" and u["role"] == "org_admin"
    assert len(u["password"]) >= 12
    api.login(email, u["password"])


def test_create_user_with_password_does_not_echo_it(admin, tenants):
    pw = "Explicit-" + uniq()
    r = admin.post("/api/v1/users", json={"email": f"{uniq('pw')}@example.test", "name": "X",
                                          "role": "org_viewer", "orgId": tenants.a.id,
                                          "password": pw})
    assert r.status_code == 201
    assert "password" not in r.json()
    assert pw not in r.text


def test_create_user_normalises_email_and_rejects_duplicates(admin):
    local = uniq("dup")
    r = admin.post("/api/v1/users", json={"email": f"  {local.upper()}@Example.TEST ", "name": "D",
                                          "role": "partner_technician"})
    assert r.status_code == 201, r.text
    assert r.json()["email"] == f"{local}@example.test"
    r = admin.post("/api/v1/users", json={"email": f"{local}@example.test", "name": "D",
                                          "role": "partner_technician"})
    assert_error(r, 409)


@pytest.mark.parametrize("body,status", [
    ({"name": "x", "role": "org_admin"}, 400),                                    # no email
    ({"email": "x@example.test", "role": "org_admin"}, 400),                      # no name
    ({"email": "x@example.test", "name": "x"}, 400),                              # no role
    ({"email": "x@example.test", "name": "x", "role": "god"}, 400),               # unknown role
    ({"email": "x@example.test", "name": "x", "role": "org_admin"}, 400),         # no orgId
    ({"email": "not-an-email", "name": "x", "role": "partner_technician"}, 400),
    ({"email": "x@example.test", "name": "x", "role": "partner_technician", "password": "short"}, 400),
    ({"email": "x@example.test", "name": "x", "role": "org_admin", "orgId": "nope"}, 400),
    ({"email": "x@example.test", "name": "x", "role": "partner_technician", "orgIds": "nope"}, 400),
    ({"email": "x@example.test", "name": "x", "role": "org_admin",
      "orgId": "00000000-0000-4000-8000-000000000000"}, 404),
])
def test_create_user_validation(admin, body, status):
    assert_error(admin.post("/api/v1/users", json=body), status)


def test_partner_role_rejects_org_id(admin, tenants):
    r = admin.post("/api/v1/users", json={"email": f"{uniq('p')}@example.test", "name": "x",
                                          "role": "partner_technician", "orgId": tenants.a.id})
    assert_error(r, 400)


def test_org_users_cannot_create_users(tenants):
    for who in (tenants.a_admin, tenants.a_viewer):
        r = who.api.post("/api/v1/users", json={"email": f"{uniq('x')}@example.test", "name": "x",
                                                "role": "org_viewer", "orgId": tenants.a.id})
        assert_error(r, 403)


def test_limited_technician_cannot_create_wider_users(tenants):
    tech = tenants.tech_a.api
    r = tech.post("/api/v1/users", json={"email": f"{uniq('x')}@example.test", "name": "x",
                                         "role": "partner_admin"})
    assert r.status_code in (403, 404), r.text
    r = tech.post("/api/v1/users", json={"email": f"{uniq('x')}@example.test", "name": "x",
                                         "role": "partner_technician", "orgIds": [tenants.b.id]})
    assert r.status_code in (403, 404), r.text


def test_users_list(admin, tenants):
    r = admin.get("/api/v1/users")
    assert r.status_code == 200
    users = r.json()["users"]
    emails = {u["email"] for u in users}
    assert {tenants.a_admin.email, tenants.b_admin.email, tenants.tech_a.email} <= emails
    for u in users:
        assert "password" not in u and "passwordHash" not in u and "password_hash" not in u
