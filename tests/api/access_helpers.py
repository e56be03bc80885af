"""Helpers of the roles, API key and permission tests (test_roles.py,
test_api_keys.py, test_permissions.py): a second partner with its own
administrator and organization, and users of any built-in role."""
import types

from conftest import uniq


def second_partner(make_user, sql, api):
    """A partner of its own with one organization (made in SQL) and one
    partner_admin (made through the API with a known password, then moved)."""
    pid = sql("INSERT INTO partners (name) VALUES (%s) RETURNING id::text", uniq("P2"))[0][0]
    oid = sql("INSERT INTO organizations (partner_id, name) VALUES (%s, %s) RETURNING id::text",
              pid, uniq("P2 org"))[0][0]
    u = make_user("partner_viewer")
    sql("UPDATE users SET partner_id = %s, role_id = (SELECT id FROM roles WHERE builtin AND"
        " name = 'partner_admin') WHERE id = %s", pid, u.id)
    return types.SimpleNamespace(id=pid, org_id=oid, admin=api.login(u.email, u.password),
                                 admin_id=u.id)


def role_id(sql, name):
    return sql("SELECT id::text FROM roles WHERE builtin AND name = %s", name)[0][0]


def audit_rows(sql, resource, resource_id):
    """(action, actor_type, actor_id, org_id, partner_id, details) of the audit rows about
    RESOURCE_ID, oldest first."""
    return sql("SELECT action, actor_type, actor_id, org_id::text, partner_id::text, details"
               " FROM audit_log WHERE resource = %s AND resource_id = %s ORDER BY id",
               resource, resource_id)
