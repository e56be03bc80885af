"""Renaming and deleting organizations and sites, and reading one site.

PATCH /organizations/:id and /sites/:id rename (a rename to the current name
is a no-op without an audit row); DELETE soft-deletes, refused with 409 while
devices that are not decommissioned, users or usable enrolment keys remain.
A deleted organization or site answers 404 everywhere, its name is free
again, and its audit chain still verifies."""
import json
import threading
import time
import types

import psycopg2
import pytest

from conftest import assert_error, uniq

RANDOM_UUID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


def audit_rows(sql, resource_id, action):
    """details (parsed) of every audit row of ACTION about RESOURCE_ID, oldest first."""
    rows = sql("SELECT details FROM audit_log WHERE resource_id = %s AND action = %s ORDER BY id",
               resource_id, action)
    return [json.loads(r[0]) for r in rows]


def add_site(client, org_id, name=None):
    r = client.post(f"/api/v1/organizations/{org_id}/sites", json={"name": name or uniq("site")})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="module")
def lim_admin(tenants, make_user):
    """A partner_admin (orgs:write) limited to organization A."""
    return make_user("partner_admin", orgIds=[tenants.a.id])


# ------------------------------------------------------------------ organizations: rename


def test_rename_organization(admin, make_org, sql):
    org = make_org()
    new = uniq("Renamed")
    r = admin.patch(f"/api/v1/organizations/{org.id}", json={"name": new})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body == {**org.org, "name": new}
    assert admin.get(f"/api/v1/organizations/{org.id}").json() == body
    assert audit_rows(sql, org.id, "organization.update") == [{"name": new, "previousName": org.name}]
    row = sql("SELECT org_id::text, actor_id, resource FROM audit_log"
              " WHERE resource_id = %s AND action = 'organization.update'", org.id)
    assert row == [(org.id, admin.user["id"], "organizations")]


def test_rename_organization_to_same_name_is_a_noop(admin, make_org, sql):
    org = make_org()
    before = sql("SELECT count(*) FROM audit_log WHERE org_id = %s", org.id)[0][0]
    r = admin.patch(f"/api/v1/organizations/{org.id}", json={"name": org.name})
    assert r.status_code == 200, r.text
    assert r.json() == org.org
    assert sql("SELECT count(*) FROM audit_log WHERE org_id = %s", org.id)[0][0] == before


def test_rename_organization_conflict(admin, make_org, sql):
    a, b = make_org(), make_org()
    body = assert_error(admin.patch(f"/api/v1/organizations/{a.id}", json={"name": b.name}),
                        409, "conflict")
    assert body["error"].get("field") == "name"
    assert admin.get(f"/api/v1/organizations/{a.id}").json()["name"] == a.name
    assert audit_rows(sql, a.id, "organization.update") == []


@pytest.mark.parametrize("body,field", [
    ({}, "name"), ({"name": ""}, "name"), ({"name": None}, "name"), ({"name": 7}, "name"),
    ({"name": "x" * 201}, "name"), ({"name": "a\nb"}, "name"),
    ({"name": "ok", "partnerId": RANDOM_UUID}, "partnerId"),
])
def test_rename_validation(admin, make_org, body, field):
    org = make_org()
    for path in (f"/api/v1/organizations/{org.id}", f"/api/v1/sites/{org.site_id}"):
        r = assert_error(admin.patch(path, json=body), 400)
        assert r["error"].get("field") == field, r


def test_org_users_cannot_rename_their_organization(tenants):
    # org_admin has no orgs:write: refused before the organization is looked at.
    r = tenants.a_admin.api.patch(f"/api/v1/organizations/{tenants.a.id}", json={"name": uniq("x")})
    assert_error(r, 403, "forbidden")
    assert_error(tenants.a_viewer.api.patch(f"/api/v1/organizations/{tenants.a.id}",
                                            json={"name": uniq("x")}), 403, "forbidden")
    assert_error(tenants.a_admin.api.delete(f"/api/v1/organizations/{tenants.a.id}"), 403, "forbidden")


def test_org_user_with_orgs_write_still_cannot_rename(tenants, make_user, sql, api):
    """Even a role that grants orgs:write to an organization user does not let
    it rename or delete its organization (the domain rule, not only the role)."""
    role = uniq("org_writer").replace("-", "_")
    rid = sql("INSERT INTO roles (name, scope, permissions) VALUES (%s, 'organization',"
              " ARRAY['orgs:read','orgs:write']) RETURNING id", role)[0][0]
    u = make_user("org_viewer", orgId=tenants.a.id)
    sql("UPDATE users SET role_id = %s WHERE id = %s", rid, u.id)
    c = api.login(u.email, u.password)
    assert_error(c.patch(f"/api/v1/organizations/{tenants.a.id}", json={"name": uniq("x")}),
                 403, "forbidden")
    assert_error(c.delete(f"/api/v1/organizations/{tenants.a.id}"), 403, "forbidden")
    assert_error(c.patch(f"/api/v1/organizations/{tenants.b.id}", json={"name": uniq("x")}),
                 404, "not_found")
    assert_error(c.delete(f"/api/v1/organizations/{tenants.b.id}"), 404, "not_found")


def test_limited_partner_staff_rename_but_do_not_delete(tenants, lim_admin, admin, sql):
    new = uniq("Tenant A renamed")
    old = admin.get(f"/api/v1/organizations/{tenants.a.id}").json()["name"]
    r = lim_admin.api.patch(f"/api/v1/organizations/{tenants.a.id}", json={"name": new})
    assert r.status_code == 200 and r.json()["name"] == new, r.text
    assert admin.patch(f"/api/v1/organizations/{tenants.a.id}", json={"name": old}).status_code == 200
    # Deleting needs access to every organization, like creating.
    assert_error(lim_admin.api.delete(f"/api/v1/organizations/{tenants.a.id}"), 403, "forbidden")
    assert admin.get(f"/api/v1/organizations/{tenants.a.id}").status_code == 200


def test_other_tenants_organization_is_404(tenants, lim_admin):
    b = tenants.b.id
    for path in (f"/api/v1/organizations/{b}", f"/api/v1/organizations/{RANDOM_UUID}",
                 "/api/v1/organizations/not-a-uuid"):
        assert_error(lim_admin.api.get(path), 404, "not_found")
        assert_error(lim_admin.api.patch(path, json={"name": uniq("x")}), 404, "not_found")
        assert_error(lim_admin.api.delete(path), 404, "not_found")
    assert tenants.b_admin.api.get(f"/api/v1/organizations/{b}").status_code == 200


# ------------------------------------------------------------------ sites: get and rename


def test_get_site(admin, make_org, tenants):
    org = make_org()
    r = admin.get(f"/api/v1/sites/{org.site_id}")
    assert r.status_code == 200, r.text
    assert r.json() == org.site
    assert tenants.a_viewer.api.get(f"/api/v1/sites/{tenants.a.site_id}").status_code == 200


def test_rename_site(admin, make_org, sql):
    org = make_org()
    other = add_site(admin, org.id, "Second")
    new = uniq("Renamed site")
    r = admin.patch(f"/api/v1/sites/{org.site_id}", json={"name": new})
    assert r.status_code == 200, r.text
    assert r.json() == {**org.site, "name": new}
    assert admin.get(f"/api/v1/sites/{org.site_id}").json()["name"] == new
    assert audit_rows(sql, org.site_id, "site.update") == [{"name": new, "previousName": "Main site"}]
    assert sql("SELECT org_id::text FROM audit_log WHERE resource_id = %s AND action = 'site.update'",
               org.site_id) == [(org.id,)]
    # Same name: 200, nothing written.
    r = admin.patch(f"/api/v1/sites/{org.site_id}", json={"name": new})
    assert r.status_code == 200 and r.json()["name"] == new
    assert len(audit_rows(sql, org.site_id, "site.update")) == 1
    # Another site's name in the same organization: 409; in another organization: fine.
    body = assert_error(admin.patch(f"/api/v1/sites/{org.site_id}", json={"name": "Second"}),
                        409, "conflict")
    assert body["error"].get("field") == "name"
    other_org = make_org()
    assert admin.patch(f"/api/v1/sites/{other_org.site_id}", json={"name": new}).status_code == 200
    assert other["name"] == "Second"


def test_other_tenants_site_is_404(tenants):
    b_site = tenants.b.site_id
    for who in (tenants.a_admin, tenants.a_viewer, tenants.tech_a):
        assert_error(who.api.get(f"/api/v1/sites/{b_site}"), 404, "not_found")
    # a_admin has sites:write, so the site itself is what is refused.
    a = tenants.a_admin.api
    assert_error(a.patch(f"/api/v1/sites/{b_site}", json={"name": uniq("x")}), 404, "not_found")
    assert_error(a.delete(f"/api/v1/sites/{b_site}"), 404, "not_found")
    for path in (f"/api/v1/sites/{RANDOM_UUID}", "/api/v1/sites/nope"):
        assert_error(a.get(path), 404, "not_found")
        assert_error(a.patch(path, json={"name": "x"}), 404, "not_found")
        assert_error(a.delete(path), 404, "not_found")
    assert tenants.b_admin.api.get(f"/api/v1/sites/{b_site}").json()["name"] == "Main site"


def test_org_viewer_cannot_change_sites(tenants):
    v = tenants.a_viewer.api
    assert_error(v.patch(f"/api/v1/sites/{tenants.a.site_id}", json={"name": uniq("x")}), 403, "forbidden")
    assert_error(v.delete(f"/api/v1/sites/{tenants.a.site_id}"), 403, "forbidden")


def test_site_limited_user_cannot_change_sites(admin, make_org, make_user):
    org = make_org()
    s2 = add_site(admin, org.id)
    limited = make_user("org_admin", orgId=org.id, siteIds=[s2["id"]])
    c = limited.api
    assert c.get(f"/api/v1/sites/{s2['id']}").status_code == 200
    assert_error(c.get(f"/api/v1/sites/{org.site_id}"), 404, "not_found")
    assert_error(c.patch(f"/api/v1/sites/{s2['id']}", json={"name": uniq("x")}), 403, "forbidden")
    assert_error(c.delete(f"/api/v1/sites/{s2['id']}"), 403, "forbidden")
    # A site outside the limit is not even visible.
    assert_error(c.patch(f"/api/v1/sites/{org.site_id}", json={"name": uniq("x")}), 404, "not_found")
    assert_error(c.delete(f"/api/v1/sites/{org.site_id}"), 404, "not_found")
    assert admin.get(f"/api/v1/sites/{s2['id']}").json()["name"] == s2["name"]


# ------------------------------------------------------------------ deletion refused while not empty


def not_empty(resp, code, *phrases):
    body = assert_error(resp, 409, code)
    for p in phrases:
        assert p in body["error"]["message"], body
    return body


def test_delete_refused_while_devices_remain(admin, make_org, agents, sql):
    org = make_org()
    d = agents.new_device(None, org.id, org.site_id)  # its key (one use) is now exhausted
    b = not_empty(admin.delete(f"/api/v1/sites/{org.site_id}"), "site_not_empty", "devices")
    assert "enrollment keys" not in b["error"]["message"] and "users" not in b["error"]["message"]
    b = not_empty(admin.delete(f"/api/v1/organizations/{org.id}"), "organization_not_empty", "devices")
    assert "enrollment keys" not in b["error"]["message"] and "users" not in b["error"]["message"]
    # A suspended device still counts; a decommissioned one does not.
    sql("UPDATE devices SET status = 'suspended', suspended_at = now(),"
        " suspension_reason = 'cross_tenant_probe', reenrollment_blocked = true WHERE id = %s",
        d["agentId"])
    not_empty(admin.delete(f"/api/v1/sites/{org.site_id}"), "site_not_empty", "devices")
    sql("UPDATE devices SET status = 'active', suspended_at = NULL, suspension_reason = NULL,"
        " reenrollment_blocked = false WHERE id = %s", d["agentId"])
    assert admin.post(f"/api/v1/devices/{d['agentId']}/decommission").status_code == 200
    assert admin.delete(f"/api/v1/sites/{org.site_id}").status_code == 204
    assert admin.delete(f"/api/v1/organizations/{org.id}").status_code == 204
    # The decommissioned device's row and history stay.
    assert sql("SELECT org_id::text, site_id::text FROM devices WHERE id = %s",
               d["agentId"]) == [(org.id, org.site_id)]
    assert sql("SELECT count(*) FROM audit_log WHERE resource_id = %s AND action = 'device.enroll'",
               d["agentId"])[0][0] == 1


def test_delete_refused_while_usable_keys_remain(admin, make_org, agents, sql):
    org = make_org()
    k = agents.create_key(None, org.id, org.site_id, maxUsage=5)
    not_empty(admin.delete(f"/api/v1/sites/{org.site_id}"), "site_not_empty", "usable enrollment keys")
    not_empty(admin.delete(f"/api/v1/organizations/{org.id}"), "organization_not_empty",
              "usable enrollment keys")
    # Expired or used up: no longer usable.
    sql("UPDATE enrollment_keys SET expires_at = now() - interval '1 second' WHERE id = %s", k["id"])
    assert admin.delete(f"/api/v1/sites/{org.site_id}").status_code == 204
    org2 = make_org()
    k2 = agents.create_key(None, org2.id, org2.site_id, maxUsage=2)
    not_empty(admin.delete(f"/api/v1/organizations/{org2.id}"), "organization_not_empty", "keys")
    sql("UPDATE enrollment_keys SET usage_count = max_usage WHERE id = %s", k2["id"])
    assert admin.delete(f"/api/v1/organizations/{org2.id}").status_code == 204
    # Revoked: likewise.
    org3 = make_org()
    k3 = agents.create_key(None, org3.id, org3.site_id)
    not_empty(admin.delete(f"/api/v1/organizations/{org3.id}"), "organization_not_empty", "keys")
    assert admin.delete(f"/api/v1/enrollment-keys/{k3['id']}").status_code in (200, 204)
    assert admin.delete(f"/api/v1/organizations/{org3.id}").status_code == 204


def test_delete_refused_while_users_remain(admin, make_org, make_user, sql):
    org = make_org()
    u = make_user("org_viewer", orgId=org.id)
    b = not_empty(admin.delete(f"/api/v1/organizations/{org.id}"), "organization_not_empty", "users")
    assert "devices" not in b["error"]["message"]
    # An organization user is no site's user unless limited to it.
    assert admin.delete(f"/api/v1/sites/{org.site_id}").status_code == 204
    # Users are disabled, never deleted: a disabled one no longer holds it.
    r = admin.patch(f"/api/v1/users/{u.id}", json={"status": "disabled"})
    assert r.status_code == 200, r.text
    assert admin.delete(f"/api/v1/organizations/{org.id}").status_code == 204
    # ... and stays out of reach with it.
    assert admin.patch(f"/api/v1/users/{u.id}", json={"status": "active"}).status_code == 404


def test_delete_refused_while_partner_staff_are_limited_to_it(admin, make_org, make_user, sql):
    org = make_org()
    t = make_user("partner_technician", orgIds=[org.id])
    not_empty(admin.delete(f"/api/v1/organizations/{org.id}"), "organization_not_empty", "users")
    sql("DELETE FROM memberships WHERE user_id = %s", t.id)
    assert admin.delete(f"/api/v1/organizations/{org.id}").status_code == 204


def test_site_delete_refused_while_users_are_limited_to_it(admin, make_org, make_user, sql):
    org = make_org()
    s2 = add_site(admin, org.id)
    u = make_user("org_viewer", orgId=org.id, siteIds=[s2["id"]])
    not_empty(admin.delete(f"/api/v1/sites/{s2['id']}"), "site_not_empty", "users limited to it")
    r = admin.patch(f"/api/v1/users/{u.id}", json={"status": "disabled"})
    assert r.status_code == 200, r.text
    assert admin.delete(f"/api/v1/sites/{s2['id']}").status_code == 204


def test_message_names_everything_left(admin, make_org, make_user, agents):
    org = make_org()
    agents.new_device(None, org.id, org.site_id)
    agents.create_key(None, org.id, org.site_id)
    make_user("org_viewer", orgId=org.id)
    b = not_empty(admin.delete(f"/api/v1/organizations/{org.id}"), "organization_not_empty",
                  "devices that are not decommissioned", "users", "usable enrollment keys")
    assert admin.get(f"/api/v1/organizations/{org.id}").status_code == 200, b


# ------------------------------------------------------------------ after deletion


def test_deleted_organization_is_gone(admin, make_org, audit, sql, tenants):
    org = make_org()
    s2 = add_site(admin, org.id)
    r = admin.delete(f"/api/v1/organizations/{org.id}")
    assert r.status_code == 204 and r.content == b"", r.text
    assert_error(admin.get(f"/api/v1/organizations/{org.id}"), 404, "not_found")
    assert_error(admin.get(f"/api/v1/organizations/{org.id}/sites"), 404, "not_found")
    assert_error(admin.post(f"/api/v1/organizations/{org.id}/sites", json={"name": "x"}), 404)
    assert_error(admin.patch(f"/api/v1/organizations/{org.id}", json={"name": "x"}), 404, "not_found")
    assert_error(admin.delete(f"/api/v1/organizations/{org.id}"), 404, "not_found")
    for sid in (org.site_id, s2["id"]):
        assert_error(admin.get(f"/api/v1/sites/{sid}"), 404, "not_found")
        assert_error(admin.patch(f"/api/v1/sites/{sid}", json={"name": "x"}), 404, "not_found")
        assert_error(admin.delete(f"/api/v1/sites/{sid}"), 404, "not_found")
    ids = {o["id"] for o in admin.get("/api/v1/organizations").json()["organizations"]}
    assert org.id not in ids
    me = admin.get("/api/v1/auth/me").json()
    assert org.id not in json.dumps(me)
    # Other modules' lookups go through the scope too.
    body = {"orgId": org.id, "siteId": org.site_id, "name": uniq("k")}
    assert_error(admin.post("/api/v1/enrollment-keys", json=body), 404)
    assert_error(admin.get(f"/api/v1/devices?orgId={org.id}"), 404)
    r = admin.post("/api/v1/users", json={"email": f"{uniq('u')}@example.test", "name": "x",
                                          "role": "org_viewer", "orgId": org.id})
    assert_error(r, 404)
    # Soft delete: the rows stay, marked.
    assert sql("SELECT deleted_at IS NOT NULL FROM organizations WHERE id = %s", org.id) == [(True,)]
    assert sql("SELECT count(*) FROM sites WHERE org_id = %s AND deleted_at IS NULL", org.id) == [(0,)]
    # The audit row, in the organization's own chain, which still verifies.
    assert audit_rows(sql, org.id, "organization.delete") == [
        {"name": org.name, "siteIds": sorted([org.site_id, s2["id"]])}]
    assert sql("SELECT org_id::text, actor_id FROM audit_log WHERE resource_id = %s"
               " AND action = 'organization.delete'", org.id) == [(org.id, admin.user["id"])]
    rc, chain, _ = audit.verify(org.id)
    assert rc == 0, chain
    # The name is free again.
    r = admin.post("/api/v1/organizations", json={"name": org.name})
    assert r.status_code == 201, r.text
    assert r.json()["id"] != org.id
    # Rename into a deleted organization's name is fine as well.
    other = make_org()
    assert admin.delete(f"/api/v1/organizations/{r.json()['id']}").status_code == 204
    assert admin.patch(f"/api/v1/organizations/{other.id}", json={"name": org.name}).status_code == 200


def test_deleted_site_is_gone(admin, make_org, sql, audit, agents):
    org = make_org()
    s2 = add_site(admin, org.id, "Branch")
    r = admin.delete(f"/api/v1/sites/{s2['id']}")
    assert r.status_code == 204 and r.content == b"", r.text
    assert_error(admin.get(f"/api/v1/sites/{s2['id']}"), 404, "not_found")
    assert_error(admin.patch(f"/api/v1/sites/{s2['id']}", json={"name": "x"}), 404, "not_found")
    assert_error(admin.delete(f"/api/v1/sites/{s2['id']}"), 404, "not_found")
    sites = admin.get(f"/api/v1/organizations/{org.id}/sites").json()["sites"]
    assert [s["id"] for s in sites] == [org.site_id]
    body = {"orgId": org.id, "siteId": s2["id"], "name": uniq("k")}
    assert_error(admin.post("/api/v1/enrollment-keys", json=body), 404)
    assert audit_rows(sql, s2["id"], "site.delete") == [{"name": "Branch"}]
    assert sql("SELECT org_id::text FROM audit_log WHERE resource_id = %s AND action = 'site.delete'",
               s2["id"]) == [(org.id,)]
    # The name is free again, for a new site and for a rename.
    s3 = add_site(admin, org.id, "Branch")
    assert s3["id"] != s2["id"]
    assert admin.delete(f"/api/v1/sites/{s3['id']}").status_code == 204
    assert admin.patch(f"/api/v1/sites/{org.site_id}", json={"name": "Branch"}).status_code == 200
    # The organization's last site may go; the organization stays.
    assert admin.delete(f"/api/v1/sites/{org.site_id}").status_code == 204
    assert admin.get(f"/api/v1/organizations/{org.id}/sites").json()["sites"] == []
    assert admin.get(f"/api/v1/organizations/{org.id}").status_code == 200
    rc, chain, _ = audit.verify(org.id)
    assert rc == 0, chain


def test_site_limited_user_whose_sites_are_all_deleted_sees_no_site(admin, make_org, make_user, sql):
    """A site limit whose sites are gone must not widen into 'every site'.
    (Deletion refuses while users are limited to a site; the row is marked
    directly here to cover the scope on its own.)"""
    org = make_org()
    s2 = add_site(admin, org.id)
    u = make_user("org_viewer", orgId=org.id, siteIds=[s2["id"]])
    sql("UPDATE sites SET deleted_at = now() WHERE id = %s", s2["id"])
    c = u.api
    assert c.get(f"/api/v1/organizations/{org.id}/sites").json()["sites"] == []
    assert_error(c.get(f"/api/v1/sites/{org.site_id}"), 404)
    assert_error(c.get(f"/api/v1/sites/{s2['id']}"), 404)


def test_users_of_a_deleted_organization_see_nothing(admin, make_org, make_user, sql):
    org = make_org()
    u = make_user("org_admin", orgId=org.id)
    sql("UPDATE organizations SET deleted_at = now() WHERE id = %s", org.id)
    c = u.api
    assert c.get("/api/v1/organizations").json()["organizations"] == []
    assert_error(c.get(f"/api/v1/organizations/{org.id}"), 404)
    assert_error(c.get(f"/api/v1/sites/{org.site_id}"), 404)


def test_partner_without_organizations_can_still_create_one(api, sql, make_user):
    """Deleting a partner's last organization leaves its unrestricted admin
    unrestricted (an empty scope is not an organization limit)."""
    donor = make_user("org_viewer", orgId=sql("SELECT id::text FROM organizations"
                                              " WHERE deleted_at IS NULL LIMIT 1")[0][0])
    pid = sql("INSERT INTO partners (name) VALUES (%s) RETURNING id::text", uniq("Partner"))[0][0]
    oid = sql("INSERT INTO organizations (partner_id, name) VALUES (%s, 'Only') RETURNING id::text",
              pid)[0][0]
    email = f"{uniq('padmin')}@example.test"
    sql("INSERT INTO users (partner_id, role_id, email, name, password_hash)"
        " SELECT %s, (SELECT id FROM roles WHERE name = 'partner_admin'), %s, 'P admin',"
        "        password_hash FROM users WHERE id = %s", pid, email, donor.id)
    c = api.login(email, donor.password)
    assert [o["id"] for o in c.get("/api/v1/organizations").json()["organizations"]] == [oid]
    assert c.delete(f"/api/v1/organizations/{oid}").status_code == 204
    c = api.login(email, donor.password)
    assert c.get("/api/v1/organizations").json()["organizations"] == []
    r = c.post("/api/v1/organizations", json={"name": "Only"})
    assert r.status_code == 201, r.text


# ------------------------------------------------------------------ integrity under concurrency


def app_conn(env):
    conn = psycopg2.connect(env["DATABASE_URL"],
                            options="-c lock_timeout=15000 -c statement_timeout=60000")
    return conn


def test_database_refuses_rows_in_deleted_sites_and_organizations(admin, make_org, env):
    org = make_org()
    s2 = add_site(admin, org.id)
    assert admin.delete(f"/api/v1/sites/{s2['id']}").status_code == 204
    conn = app_conn(env)
    try:
        key_sql = ("INSERT INTO enrollment_keys (org_id, site_id, name, key_hash, key_prefix,"
                   " max_usage, expires_at) VALUES (%s, %s, 'k', %s, 'brz_', 1, now() + interval '1 hour')")
        with pytest.raises(psycopg2.errors.ForeignKeyViolation):
            with conn, conn.cursor() as cur:
                cur.execute(key_sql, (org.id, s2["id"], "a" * 64))
        assert admin.delete(f"/api/v1/sites/{org.site_id}").status_code == 204
        assert admin.delete(f"/api/v1/organizations/{org.id}").status_code == 204
        with pytest.raises(psycopg2.errors.ForeignKeyViolation):
            with conn, conn.cursor() as cur:
                cur.execute("INSERT INTO sites (org_id, name) VALUES (%s, 'late')", (org.id,))
    finally:
        conn.close()


def test_insert_in_flight_blocks_deletion_then_refuses_it(admin, make_org, env):
    """A key being created for a site (uncommitted) holds the site: the
    deletion waits for it, then counts it and refuses."""
    org = make_org()
    conn = app_conn(env)
    try:
        cur = conn.cursor()
        cur.execute("INSERT INTO enrollment_keys (org_id, site_id, name, key_hash, key_prefix,"
                    " max_usage, expires_at) VALUES (%s, %s, 'k', %s, 'brz_', 1,"
                    " now() + interval '1 hour')", (org.id, org.site_id, "b" * 64))
        out = {}
        t = threading.Thread(target=lambda: out.setdefault(
            "r", admin.clone().delete(f"/api/v1/sites/{org.site_id}")))
        t.start()
        time.sleep(1.0)
        assert t.is_alive(), "the deletion did not wait for the insert in flight"
        conn.commit()
        t.join(30)
        not_empty(out["r"], "site_not_empty", "usable enrollment keys")
    finally:
        conn.close()


def test_deletion_in_flight_makes_a_late_insert_fail(admin, make_org, env):
    """An insert that comes while a deletion holds the row waits for it and
    then fails on the deleted row (what DELETE does, replayed by hand)."""
    org = make_org()
    deleter, inserter = app_conn(env), app_conn(env)
    try:
        d = deleter.cursor()
        d.execute("SELECT id FROM sites WHERE id = %s FOR UPDATE", (org.site_id,))
        d.execute("UPDATE sites SET deleted_at = now() WHERE id = %s", (org.site_id,))
        err = {}

        def insert():
            try:
                with inserter, inserter.cursor() as cur:
                    cur.execute("INSERT INTO enrollment_keys (org_id, site_id, name, key_hash,"
                                " key_prefix, max_usage, expires_at) VALUES (%s, %s, 'k', %s,"
                                " 'brz_', 1, now() + interval '1 hour')",
                                (org.id, org.site_id, "c" * 64))
            except psycopg2.Error as e:
                err["e"] = e
        t = threading.Thread(target=insert)
        t.start()
        time.sleep(1.0)
        assert t.is_alive(), "the insert did not wait for the deletion"
        deleter.commit()
        t.join(30)
        assert isinstance(err.get("e"), psycopg2.errors.ForeignKeyViolation), err
    finally:
        deleter.close()
        inserter.close()


def test_site_created_while_its_organization_is_deleted_is_404(admin, make_org, env):
    """POST /organizations/:id/sites racing a deletion of the organization:
    the scope still shows the organization, the insert waits for the
    deletion and then answers 404, not 500."""
    org = make_org()
    deleter = app_conn(env)
    try:
        d = deleter.cursor()
        d.execute("SELECT id FROM organizations WHERE id = %s FOR UPDATE", (org.id,))
        d.execute("UPDATE sites SET deleted_at = now() WHERE org_id = %s", (org.id,))
        d.execute("UPDATE organizations SET deleted_at = now() WHERE id = %s", (org.id,))
        out = {}
        t = threading.Thread(target=lambda: out.setdefault(
            "r", admin.clone().post(f"/api/v1/organizations/{org.id}/sites", json={"name": "late"})))
        t.start()
        time.sleep(1.0)
        assert t.is_alive(), "the site insert did not wait for the deletion"
        deleter.commit()
        t.join(30)
        assert_error(out["r"], 404, "not_found")
    finally:
        deleter.close()
