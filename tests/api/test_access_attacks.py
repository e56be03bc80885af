"""Attacks on roles, API keys and registration (issue 8 §3-§5): what a
hostile tenant or a careless operator tries, and the answer each must get."""
import pytest

from conftest import Api, assert_error, uniq
from access_helpers import role_id
from test_roles import cleanup, new_role  # noqa: F401 (cleanup is a fixture)


def test_role_manager_cannot_lower_force_mfa_of_a_stronger_builtin_role(admin, make_user, sql,
                                                                         api, cleanup):
    """roles:write on a custom role is not a way to switch forced MFA off for
    the partner's administrators: a built-in role's forceMfa follows the same
    rule as a custom role's, the caller must hold every permission it has."""
    role = new_role(admin, ["roles:read", "roles:write", "users:read"])
    cleanup.append(role["id"])
    u = make_user("partner_viewer")
    sql("UPDATE users SET role_id = %s WHERE id = %s", role["id"], u.id)
    mgr = api.login(u.email, u.password)
    pa = role_id(sql, "partner_admin")
    partner = sql("SELECT partner_id::text FROM users WHERE id = %s", u.id)[0][0]
    # The partner forces MFA on its administrators; the role manager tries
    # to switch that off (and, for a role it does not hold, on).
    sql("INSERT INTO partner_role_settings (partner_id, role_id, force_mfa)"
        " VALUES (%s, %s, true)", partner, pa)
    try:
        assert_error(mgr.patch(f"/api/v1/roles/{pa}", json={"forceMfa": False}), 403)
        assert sql("SELECT force_mfa FROM partner_role_settings WHERE partner_id = %s"
                   " AND role_id = %s", partner, pa) == [(True,)]
    finally:
        sql("DELETE FROM partner_role_settings WHERE partner_id = %s AND role_id = %s",
            partner, pa)
    oa = role_id(sql, "org_admin")
    assert_error(mgr.patch(f"/api/v1/roles/{oa}", json={"forceMfa": True}), 403)
    assert sql("SELECT count(*) FROM partner_role_settings WHERE role_id = %s", oa)[0][0] == 0


@pytest.mark.parametrize("email", [
    "\u200b{0}", "{0}\u200d", "ad\u00admin-{0}", "{0}\u202emoc", "\u2066{0}",
])
def test_no_lookalike_addresses(spawn_server, admin, email):
    """An address with invisible or bidirectional characters would pass for
    another one in every list and audit row: registration and user creation
    refuse it like any malformed address."""
    addr = email.format(f"{uniq('look')}@example.test")
    reg = Api(spawn_server(ENABLE_REGISTRATION="true").url)
    assert_error(reg.post("/api/v1/auth/register",
                          json={"email": addr, "name": "N", "password": "vX7-" + uniq("pw"),
                                "partnerName": uniq("MSP")}), 400, "validation_error")
    assert_error(admin.post("/api/v1/users", json={"email": addr, "name": "N",
                                                   "role": "partner_viewer",
                                                   "password": "Pw-" + uniq("pw")}),
                 400, "validation_error")
