"""Custom roles (issue 8 §5): POST/PATCH/DELETE /api/v1/roles. They belong to
the creating partner (another partner's role is 404), never grant more than
the creator holds (403 naming the permission), cannot be deleted while held
(409), and every change is audited. Built-in roles change only in forceMfa,
per partner."""
import json

import pytest

from conftest import assert_error, uniq
from access_helpers import audit_rows, role_id, second_partner


def new_role(client, perms, scope="partner", name=None):
    r = client.post("/api/v1/roles", json={"name": name or uniq("role"), "scope": scope,
                                           "permissions": perms})
    assert r.status_code == 201, r.text
    return r.json()


def roles_of(client):
    r = client.get("/api/v1/roles")
    assert r.status_code == 200
    return {x["name"]: x for x in r.json()["roles"]}


@pytest.fixture
def cleanup(sql):
    made = []
    yield made
    for rid in made:
        sql("UPDATE users SET role_id = (SELECT id FROM roles WHERE builtin AND name = CASE"
            " WHEN users.partner_id IS NULL THEN 'org_viewer' ELSE 'partner_viewer' END),"
            " status = 'disabled' WHERE role_id = %s", rid)
        sql("DELETE FROM roles WHERE id = %s", rid)


def test_create_list_assign_and_audit(admin, tenants, api, sql, cleanup):
    role = new_role(admin, ["devices:read", "orgs:read"], scope="organization")
    cleanup.append(role["id"])
    assert role["builtin"] is False and role["forceMfa"] is False
    assert sorted(role["permissions"]) == ["devices:read", "orgs:read"]
    assert role["name"] in roles_of(admin)
    # The role is given by name like a built-in one.
    email = f"{uniq('c')}@example.test"
    r = admin.post("/api/v1/users", json={"email": email, "name": "Custom", "role": role["name"],
                                          "orgId": tenants.a.id, "password": "Pw-" + uniq("x")})
    assert r.status_code == 201, r.text
    u = api.login(email, r.request.body and json.loads(r.request.body)["password"])
    me = u.get("/api/v1/auth/me").json()
    assert me["role"]["name"] == role["name"]
    assert sorted(me["permissions"]) == ["devices:read", "orgs:read"]
    assert u.get("/api/v1/devices").status_code == 200
    assert_error(u.get(f"/api/v1/organizations/{tenants.a.id}/sites"), 403)
    rows = audit_rows(sql, "roles", role["id"])
    assert [x[0] for x in rows] == ["role.create"]
    assert rows[0][1] == "user" and rows[0][4] == tenants.partner_id  # the partner chain
    assert json.loads(rows[0][5])["permissions"] == role["permissions"]


def test_bad_requests(admin, cleanup):
    assert_error(admin.post("/api/v1/roles", json={"name": uniq("r"), "scope": "partner",
                                                   "permissions": ["devices:delete"]}),
                 400, "validation_error")
    assert_error(admin.post("/api/v1/roles", json={"name": uniq("r"), "scope": "partner",
                                                   "permissions": ["orgs:read", "orgs:read"]}),
                 400, "validation_error")
    assert_error(admin.post("/api/v1/roles", json={"name": uniq("r"), "scope": "galaxy",
                                                   "permissions": ["orgs:read"]}), 400)
    assert_error(admin.post("/api/v1/roles", json={"name": "partner_admin", "scope": "partner",
                                                   "permissions": ["orgs:read"]}), 409, "conflict")
    role = new_role(admin, ["orgs:read"])
    cleanup.append(role["id"])
    assert_error(admin.post("/api/v1/roles", json={"name": role["name"], "scope": "partner",
                                                   "permissions": ["orgs:read"]}), 409, "conflict")
    assert_error(admin.patch(f"/api/v1/roles/{role['id']}", json={}), 400, "validation_error")


def test_custom_roles_cannot_escalate(admin, make_user, sql, cleanup):
    """A role manager whose own role lacks devices:write can neither create
    nor widen a role with it, nor change or delete a role holding it."""
    mgr_role = new_role(admin, ["roles:read", "roles:write", "orgs:read"])
    cleanup.append(mgr_role["id"])
    mgr = make_user("partner_viewer")
    sql("UPDATE users SET role_id = %s WHERE id = %s", mgr_role["id"], mgr.id)
    m = mgr.api
    b = assert_error(m.post("/api/v1/roles", json={"name": uniq("r"), "scope": "partner",
                                                   "permissions": ["orgs:read", "devices:write"]}),
                     403, "permission_not_held")
    assert "devices:write" in b["error"]["message"]
    mine = new_role(m, ["orgs:read"])
    cleanup.append(mine["id"])
    b = assert_error(m.patch(f"/api/v1/roles/{mine['id']}",
                             json={"permissions": ["orgs:read", "users:write"]}),
                     403, "permission_not_held")
    assert "users:write" in b["error"]["message"]
    strong = new_role(admin, ["devices:write"])
    cleanup.append(strong["id"])
    assert_error(m.patch(f"/api/v1/roles/{strong['id']}", json={"name": uniq("x")}), 403)
    assert_error(m.delete(f"/api/v1/roles/{strong['id']}"), 403)
    # Nor can it take permissions away from its own role and then add them back.
    assert m.patch(f"/api/v1/roles/{mine['id']}", json={"permissions": ["orgs:read"]}).status_code == 200
    assert sorted(roles_of(admin)[strong["name"]]["permissions"]) == ["devices:write"]


def test_builtin_roles_change_only_in_force_mfa(admin, cleanup):
    tech = roles_of(admin)["partner_technician"]
    assert_error(admin.patch(f"/api/v1/roles/{tech['id']}", json={"name": uniq("x")}),
                 403, "builtin_role")
    assert_error(admin.patch(f"/api/v1/roles/{tech['id']}",
                             json={"permissions": ["orgs:read"]}), 403, "builtin_role")
    assert_error(admin.delete(f"/api/v1/roles/{tech['id']}"), 403, "builtin_role")
    assert roles_of(admin)["partner_technician"]["permissions"] == tech["permissions"]


def test_force_mfa_of_a_builtin_role_is_per_partner(admin, make_user, sql, api, tenants):
    """A partner administrator's forceMfa for a built-in role applies to its
    own partner only; another partner still sees the role's default."""
    other = second_partner(make_user, sql, api)
    viewer = roles_of(admin)["org_viewer"]
    base = viewer["forceMfa"]
    try:
        r = admin.patch(f"/api/v1/roles/{viewer['id']}", json={"forceMfa": not base})
        assert r.status_code == 200, r.text
        assert r.json()["forceMfa"] is (not base)
        assert roles_of(admin)["org_viewer"]["forceMfa"] is (not base)
        assert roles_of(other.admin)["org_viewer"]["forceMfa"] is base
        # The principal of this partner's org_viewer carries it.
        assert tenants.a_viewer.api.get("/api/v1/auth/me").json()["role"]["forceMfa"] is (not base)
        rows = audit_rows(sql, "roles", viewer["id"])
        assert rows[-1][0] == "role.update" and rows[-1][4] == tenants.partner_id
        assert json.loads(rows[-1][5])["changes"]["forceMfa"] == {"from": base, "to": not base}
        # Organization users never change roles, not even forceMfa.
        assert_error(tenants.a_admin.api.patch(f"/api/v1/roles/{viewer['id']}",
                                               json={"forceMfa": base}), 403)
    finally:
        sql("DELETE FROM partner_role_settings WHERE role_id = %s", viewer["id"])
    assert roles_of(admin)["org_viewer"]["forceMfa"] is base


def test_another_partners_role_is_not_found(admin, make_user, sql, api, tenants, cleanup):
    other = second_partner(make_user, sql, api)
    mine = new_role(admin, ["orgs:read"])
    cleanup.append(mine["id"])
    assert mine["name"] not in roles_of(other.admin)
    assert_error(other.admin.patch(f"/api/v1/roles/{mine['id']}", json={"name": uniq("x")}),
                 404, "not_found")
    assert_error(other.admin.delete(f"/api/v1/roles/{mine['id']}"), 404, "not_found")
    # Its name means nothing there: no user of the other partner gets it.
    body = {"email": f"{uniq('x')}@example.test", "name": "X", "role": mine["name"],
            "password": "Pw-" + uniq("x")}
    assert_error(other.admin.post("/api/v1/users", json=body), 400, "validation_error")
    # The same name is free in the other partner.
    theirs = new_role(other.admin, ["orgs:read"], name=mine["name"])
    cleanup.append(theirs["id"])
    assert theirs["id"] != mine["id"]


def test_delete_refused_while_held(admin, make_user, sql, cleanup):
    role = new_role(admin, ["orgs:read"])
    cleanup.append(role["id"])
    holder = make_user("partner_viewer")
    sql("UPDATE users SET role_id = %s WHERE id = %s", role["id"], holder.id)
    assert_error(admin.delete(f"/api/v1/roles/{role['id']}"), 409, "role_in_use")
    sql("UPDATE users SET role_id = %s WHERE id = %s", role_id(sql, "partner_viewer"), holder.id)
    r = admin.delete(f"/api/v1/roles/{role['id']}")
    assert r.status_code == 200 and r.json()["id"] == role["id"]
    assert role["name"] not in roles_of(admin)
    assert_error(admin.delete(f"/api/v1/roles/{role['id']}"), 404)
    assert [x[0] for x in audit_rows(sql, "roles", role["id"])] == ["role.create", "role.delete"]


def test_rename_and_change_permissions(admin, sql, cleanup):
    role = new_role(admin, ["orgs:read"])
    cleanup.append(role["id"])
    name = uniq("renamed")
    r = admin.patch(f"/api/v1/roles/{role['id']}",
                    json={"name": name, "permissions": ["orgs:read", "sites:read"]})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == name and sorted(r.json()["permissions"]) == ["orgs:read", "sites:read"]
    # The same values again change nothing and write no row.
    assert admin.patch(f"/api/v1/roles/{role['id']}", json={"name": name}).status_code == 200
    rows = audit_rows(sql, "roles", role["id"])
    assert [x[0] for x in rows] == ["role.create", "role.update"]
    ch = json.loads(rows[1][5])["changes"]
    assert ch["name"]["to"] == name and ch["permissions"]["to"] == ["orgs:read", "sites:read"]


def test_organization_limited_staff_cannot_change_roles(admin, make_user, sql, tenants, cleanup):
    """Roles are partner-wide: staff limited to some organizations may not
    change them even with roles:write."""
    mgr_role = new_role(admin, ["roles:read", "roles:write", "orgs:read"])
    cleanup.append(mgr_role["id"])
    limited = make_user("partner_viewer", orgIds=[tenants.a.id])
    sql("UPDATE users SET role_id = %s WHERE id = %s", mgr_role["id"], limited.id)
    assert_error(limited.api.post("/api/v1/roles", json={"name": uniq("r"), "scope": "partner",
                                                         "permissions": ["orgs:read"]}), 403)
    assert_error(limited.api.patch(f"/api/v1/roles/{mgr_role['id']}", json={"forceMfa": True}), 403)
    assert limited.api.get("/api/v1/roles").status_code == 200
