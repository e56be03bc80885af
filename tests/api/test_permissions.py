"""Roles and permissions (issue 8 §5): the route table against the permission
table, the built-in roles at both scopes, and a matrix proving each built-in
role can do what it should and is refused one thing it should not."""
import json
import subprocess

import pytest

from conftest import SERVER_BIN, assert_error, base_process_env, uniq
from access_helpers import second_partner


def route_table():
    p = subprocess.run([str(SERVER_BIN), "routes"], env=base_process_env(), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


@pytest.fixture(scope="module")
def permission_table(admin):
    r = admin.get("/api/v1/roles")
    assert r.status_code == 200
    return {p["name"] for p in r.json()["permissions"]}


def test_every_user_route_names_a_known_permission_or_is_self_service(permission_table):
    routes = route_table()
    assert len(routes) > 20
    bad = []
    for r in routes:
        key = f"{r['method']} {r['path']}"
        if not r["user"]:
            if r["permission"] is not None or r["selfService"] or r["apiKey"]:
                bad.append(f"{key}: a public route with user-only markings")
            continue
        if r["selfService"]:
            if r["permission"] is not None or r["apiKey"]:
                bad.append(f"{key}: a self-service route names a permission or admits API keys")
        elif r["permission"] not in permission_table:
            bad.append(f"{key}: permission {r['permission']!r} is not in the table")
    assert not bad, "\n".join(bad)
    # The routes that mint identities or credentials are closed to API keys.
    closed = {f"{r['method']} {r['path']}" for r in routes if r["user"] and not r["apiKey"]}
    assert {"POST /api/v1/api-keys", "GET /api/v1/api-keys", "DELETE /api/v1/api-keys/:id",
            "POST /api/v1/roles", "PATCH /api/v1/roles/:id", "DELETE /api/v1/roles/:id",
            "POST /api/v1/users", "PATCH /api/v1/users/:id", "GET /api/v1/auth/me"} <= closed


def test_every_permission_a_role_names_exists(sql, permission_table):
    named = {p for (p,) in sql("SELECT DISTINCT unnest(permissions) FROM roles")}
    assert named, "no role names a permission"
    assert named <= permission_table, f"unknown permissions in roles: {named - permission_table}"


def test_builtin_roles_at_both_scopes(admin):
    roles = {r["name"]: r for r in admin.get("/api/v1/roles").json()["roles"] if r["builtin"]}
    want = {"partner_admin": "partner", "partner_technician": "partner",
            "partner_viewer": "partner", "org_admin": "organization",
            "org_technician": "organization", "org_viewer": "organization"}
    for name, scope in want.items():
        assert roles[name]["scope"] == scope, name
    for name in ("partner_viewer", "org_viewer"):
        writes = [p for p in roles[name]["permissions"] if p.endswith(":write")]
        assert writes == [], f"read-only role {name} has {writes}"
    for name in ("partner_technician", "org_technician"):
        perms = set(roles[name]["permissions"])
        assert {"devices:write", "enrollment_keys:write"} <= perms, name
        assert not perms & {"users:write", "roles:write", "orgs:write"}, name
    assert "roles:write" in roles["partner_admin"]["permissions"]


@pytest.fixture(scope="module")
def people(tenants, make_user, sql, api):
    """A logged-in user of each built-in role: partner roles of the bootstrap
    partner, organization roles of tenant A."""
    a = tenants.a.id
    return {
        "partner_technician": make_user("partner_technician"),
        "partner_viewer": make_user("partner_viewer"),
        "org_admin": tenants.a_admin,
        "org_technician": make_user("org_technician", orgId=a),
        "org_viewer": tenants.a_viewer,
    }


def key_body(tenants):
    return {"orgId": tenants.a.id, "siteId": tenants.a.site_id, "name": uniq("key")}


def test_builtin_role_matrix(admin, tenants, people, make_user, sql, api):
    """Each built-in role: what it can do (2xx) and one thing it cannot."""
    a, b = tenants.a, tenants.b
    other = second_partner(make_user, sql, api)
    user_body = {"email": f"{uniq('m')}@example.test", "name": "M", "role": "org_viewer",
                 "orgId": a.id, "password": "Pw-" + uniq("x")}
    p = people
    cases = [
        # (who, can: (method, path, body, status), cannot: (method, path, body, status, code))
        (admin, ("POST", "/api/v1/organizations", {"name": uniq("o")}, 201),
         ("GET", f"/api/v1/organizations/{other.org_id}", None, 404, "not_found")),
        (p["partner_technician"].api, ("POST", "/api/v1/enrollment-keys", key_body(tenants), 201),
         ("POST", "/api/v1/users", user_body, 403, "forbidden")),
        (p["partner_viewer"].api, ("GET", "/api/v1/audit?limit=1&orgId=" + a.id, None, 200),
         ("POST", "/api/v1/enrollment-keys", key_body(tenants), 403, "forbidden")),
        (p["org_admin"].api, ("POST", f"/api/v1/organizations/{a.id}/sites",
                              {"name": uniq("s")}, 201),
         ("GET", f"/api/v1/organizations/{b.id}", None, 404, "not_found")),
        (p["org_technician"].api, ("POST", "/api/v1/enrollment-keys", key_body(tenants), 201),
         ("GET", "/api/v1/users", None, 403, "forbidden")),
        (p["org_viewer"].api, ("GET", "/api/v1/devices", None, 200),
         ("POST", "/api/v1/enrollment-keys", key_body(tenants), 403, "forbidden")),
    ]
    for who, can, cannot in cases:
        m, path, body, status = can
        r = who.request(m, path, **({"json": body} if body is not None else {}))
        assert r.status_code == status, f"{who.user['role']} {m} {path}: {r.status_code} {r.text}"
        m, path, body, status, code = cannot
        r = who.request(m, path, **({"json": body} if body is not None else {}))
        assert_error(r, status, code)
    # The technician cannot manage users in any way, nor roles.
    tech = p["partner_technician"].api
    assert_error(tech.patch(f"/api/v1/users/{p['partner_viewer'].id}", json={"name": "x"}), 403)
    assert_error(tech.post("/api/v1/roles", json={"name": uniq("r"), "scope": "partner",
                                                  "permissions": ["orgs:read"]}), 403)
    # Read-only roles read but change nothing.
    viewer = p["partner_viewer"].api
    assert viewer.get(f"/api/v1/organizations/{a.id}/sites").status_code == 200
    assert_error(viewer.patch(f"/api/v1/organizations/{a.id}", json={"name": uniq("x")}), 403)
    assert_error(p["org_viewer"].api.post(f"/api/v1/organizations/{a.id}/sites",
                                          json={"name": uniq("s")}), 403)


def test_self_service_route_needs_no_permission(tenants, make_user, sql, api):
    """auth/me (ROUTE_SELF_SERVICE) answers a user whose role holds no
    permission at all, who is refused everything else."""
    rid = sql("INSERT INTO roles (name, scope, permissions, partner_id) VALUES"
              " (%s, 'organization', '{}', %s) RETURNING id::text",
              uniq("nothing"), tenants.partner_id)[0][0]
    u = make_user("org_viewer", orgId=tenants.a.id)
    sql("UPDATE users SET role_id = %s WHERE id = %s", rid, u.id)
    try:
        r = u.api.get("/api/v1/auth/me")
        assert r.status_code == 200 and r.json()["permissions"] == []
        assert_error(u.api.get("/api/v1/devices"), 403, "forbidden")
    finally:
        sql("UPDATE users SET role_id = (SELECT id FROM roles WHERE builtin AND name = 'org_viewer'),"
            " status = 'disabled' WHERE id = %s", u.id)
        sql("DELETE FROM roles WHERE id = %s", rid)
