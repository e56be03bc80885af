"""Organizations, sites, and isolation between tenants.

All bootstrap users live under one partner, so the two tenants are
organizations A and B with an org_admin each, an org_viewer of A, and a
partner_technician limited to A. Another tenant's ids answer 404, never 403,
so existence does not leak."""
import re
import pytest

from conftest import assert_error, uniq

ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$")
RANDOM_UUID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


# ------------------------------------------------------------------ organizations and sites


def test_create_and_get_organization(admin, bootstrap):
    name = uniq("Org")
    r = admin.post("/api/v1/organizations", json={"name": name})
    assert r.status_code == 201, r.text
    org = r.json()
    assert set(org) >= {"id", "partnerId", "name", "createdAt"}
    assert org["name"] == name and org["partnerId"] == bootstrap.partnerId
    assert ISO_RE.match(org["createdAt"])
    r = admin.get(f"/api/v1/organizations/{org['id']}")
    assert r.status_code == 200 and r.json() == org
    listed = admin.get("/api/v1/organizations").json()["organizations"]
    assert org in listed


def test_duplicate_organization_name_is_409(admin):
    name = uniq("Dup")
    assert admin.post("/api/v1/organizations", json={"name": name}).status_code == 201
    assert_error(admin.post("/api/v1/organizations", json={"name": name}), 409)


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": 5}, {"name": None}, {"name": "x" * 201}])
def test_create_organization_validation(admin, body):
    assert_error(admin.post("/api/v1/organizations", json=body), 400)


@pytest.mark.parametrize("org_id", ["not-a-uuid", RANDOM_UUID, "1", "' OR 1=1 --",
                                    RANDOM_UUID.upper() + "0"])
def test_unknown_or_malformed_organization_is_404(admin, org_id):
    assert_error(admin.get(f"/api/v1/organizations/{org_id}"), 404)
    assert_error(admin.get(f"/api/v1/organizations/{org_id}/sites"), 404)
    assert_error(admin.post(f"/api/v1/organizations/{org_id}/sites", json={"name": "x"}), 404)


def test_create_and_list_sites(admin, make_org):
    org = make_org()
    r = admin.post(f"/api/v1/organizations/{org.id}/sites", json={"name": "Branch"})
    assert r.status_code == 201, r.text
    site = r.json()
    assert set(site) >= {"id", "orgId", "name", "createdAt"}
    assert site["orgId"] == org.id and site["name"] == "Branch"
    assert ISO_RE.match(site["createdAt"])
    r = admin.get(f"/api/v1/organizations/{org.id}/sites")
    assert r.status_code == 200
    sites = r.json()["sites"]
    assert {s["id"] for s in sites} == {org.site_id, site["id"]}
    assert_error(admin.post(f"/api/v1/organizations/{org.id}/sites", json={"name": "Branch"}), 409)


def test_org_users_cannot_create_organizations(tenants):
    for who in (tenants.a_admin, tenants.a_viewer, tenants.tech_a):
        assert_error(who.api.post("/api/v1/organizations", json={"name": uniq("x")}), 403)


def test_org_viewer_cannot_create_sites(tenants):
    assert_error(tenants.a_viewer.api.post(f"/api/v1/organizations/{tenants.a.id}/sites",
                                           json={"name": uniq("s")}), 403)


# ------------------------------------------------------------------ isolation


def test_org_admin_sees_only_its_organization(tenants):
    orgs = tenants.a_admin.api.get("/api/v1/organizations").json()["organizations"]
    assert [o["id"] for o in orgs] == [tenants.a.id]
    orgs = tenants.b_admin.api.get("/api/v1/organizations").json()["organizations"]
    assert [o["id"] for o in orgs] == [tenants.b.id]


def test_limited_technician_sees_only_its_organizations(tenants, admin):
    orgs = tenants.tech_a.api.get("/api/v1/organizations").json()["organizations"]
    assert [o["id"] for o in orgs] == [tenants.a.id]
    # The unrestricted partner admin sees both.
    ids = {o["id"] for o in admin.get("/api/v1/organizations").json()["organizations"]}
    assert {tenants.a.id, tenants.b.id} <= ids


@pytest.mark.parametrize("who", ["a_admin", "a_viewer", "tech_a"])
def test_other_tenants_organization_and_sites_are_404(tenants, who):
    c = getattr(tenants, who).api
    b = tenants.b.id
    assert_error(c.get(f"/api/v1/organizations/{b}"), 404)
    assert_error(c.get(f"/api/v1/organizations/{b}/sites"), 404)
    r = c.post(f"/api/v1/organizations/{b}/sites", json={"name": uniq("s")})
    assert r.status_code in (403, 404), r.text
    # Own organization works.
    assert c.get(f"/api/v1/organizations/{tenants.a.id}").status_code == 200
    sites = c.get(f"/api/v1/organizations/{tenants.a.id}/sites").json()["sites"]
    assert tenants.a.site_id in {s["id"] for s in sites}


def test_org_admin_cannot_create_site_in_other_tenant(tenants):
    assert_error(tenants.a_admin.api.post(f"/api/v1/organizations/{tenants.b.id}/sites",
                                          json={"name": uniq("s")}), 404)


def test_org_admin_lists_only_own_users(tenants):
    r = tenants.a_admin.api.get("/api/v1/users")
    assert r.status_code == 200
    users = r.json()["users"]
    emails = {u["email"] for u in users}
    assert tenants.a_admin.email in emails and tenants.a_viewer.email in emails
    assert tenants.b_admin.email not in emails
    assert all(u["orgId"] == tenants.a.id for u in users if u.get("orgId"))


def test_site_limited_user_sees_only_its_sites(admin, make_org, make_user):
    org = make_org()
    s2 = admin.post(f"/api/v1/organizations/{org.id}/sites", json={"name": "Second"}).json()
    viewer = make_user("org_viewer", orgId=org.id, siteIds=[s2["id"]])
    sites = viewer.api.get(f"/api/v1/organizations/{org.id}/sites").json()["sites"]
    assert [s["id"] for s in sites] == [s2["id"]]


def test_site_ids_of_another_org_are_refused(admin, tenants):
    r = admin.post("/api/v1/users", json={"email": f"{uniq('s')}@example.test", "name": "x",
                                          "role": "org_viewer", "orgId": tenants.a.id,
                                          "siteIds": [tenants.b.site_id]})
    assert_error(r, 404)


def test_org_admin_cannot_see_other_tenants_enrollment_keys(tenants, agents):
    kb = agents.create_key(tenants.b_admin.api, tenants.b.id, tenants.b.site_id)
    ka = agents.create_key(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
    a = tenants.a_admin.api
    r = a.get("/api/v1/enrollment-keys")
    assert r.status_code == 200, r.text
    ids = {k["id"] for k in r.json()["enrollmentKeys"]}
    assert ka["id"] in ids and kb["id"] not in ids
    assert all(k["orgId"] == tenants.a.id for k in r.json()["enrollmentKeys"])
    r = a.get(f"/api/v1/enrollment-keys?orgId={tenants.b.id}")
    assert r.status_code == 404 or (r.status_code == 200 and r.json()["enrollmentKeys"] == []), r.text
    assert_error(a.delete(f"/api/v1/enrollment-keys/{kb['id']}"), 404)
    # B's key is still active after A's attempt.
    keys = tenants.b_admin.api.get("/api/v1/enrollment-keys").json()["enrollmentKeys"]
    assert [k["status"] for k in keys if k["id"] == kb["id"]] == ["active"]


def test_limited_technician_cannot_see_other_orgs_enrollment_keys(tenants, agents):
    kb = agents.create_key(None, tenants.b.id, tenants.b.site_id)
    t = tenants.tech_a.api
    ids = {k["id"] for k in t.get("/api/v1/enrollment-keys").json()["enrollmentKeys"]}
    assert kb["id"] not in ids
    assert_error(t.delete(f"/api/v1/enrollment-keys/{kb['id']}"), 404)


@pytest.mark.parametrize("who", ["a_admin", "tech_a"])
def test_cannot_create_enrollment_key_for_other_tenant(tenants, who):
    c = getattr(tenants, who).api
    body = {"orgId": tenants.b.id, "siteId": tenants.b.site_id, "name": uniq("k")}
    assert_error(c.post("/api/v1/enrollment-keys", json=body), 404)
    # Own organization with the other tenant's site.
    body = {"orgId": tenants.a.id, "siteId": tenants.b.site_id, "name": uniq("k")}
    assert_error(c.post("/api/v1/enrollment-keys", json=body), 404)


def test_org_viewer_cannot_create_enrollment_keys(tenants):
    body = {"orgId": tenants.a.id, "siteId": tenants.a.site_id, "name": uniq("k")}
    assert_error(tenants.a_viewer.api.post("/api/v1/enrollment-keys", json=body), 403)


@pytest.mark.parametrize("who", ["a_admin", "a_viewer", "tech_a"])
def test_other_tenants_devices_are_invisible(tenants, agents, who):
    db_ = agents.new_device(tenants.b_admin.api, tenants.b.id, tenants.b.site_id)
    da = agents.new_device(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
    c = getattr(tenants, who).api
    r = c.get("/api/v1/devices?limit=500")
    assert r.status_code == 200, r.text
    ids = set()
    while True:
        body = r.json()
        ids |= {d["id"] for d in body["devices"]}
        assert all(d["orgId"] == tenants.a.id for d in body["devices"])
        if not body.get("nextCursor"):
            break
        r = c.get(f"/api/v1/devices?limit=500&cursor={body['nextCursor']}")
        assert r.status_code == 200
    assert da["agentId"] in ids and db_["agentId"] not in ids
    assert_error(c.get(f"/api/v1/devices/{db_['agentId']}"), 404)
    assert_error(c.get(f"/api/v1/devices?orgId={tenants.b.id}"), 404)
    r = c.get(f"/api/v1/devices?siteId={tenants.b.site_id}")
    assert r.status_code == 404 or (r.status_code == 200 and r.json()["devices"] == []), r.text
    assert c.get(f"/api/v1/devices/{da['agentId']}").status_code == 200


def test_b_admin_cannot_see_a_devices(tenants, agents):
    da = agents.new_device(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
    assert_error(tenants.b_admin.api.get(f"/api/v1/devices/{da['agentId']}"), 404)


def test_site_limited_user_sees_only_devices_of_its_sites(admin, make_org, make_user, agents, sql):
    org = make_org()
    s2 = admin.post(f"/api/v1/organizations/{org.id}/sites", json={"name": "Second"}).json()
    d1 = agents.new_device(None, org.id, org.site_id)
    d2 = agents.new_device(None, org.id, s2["id"])
    viewer = make_user("org_viewer", orgId=org.id)
    # The site limit is written directly, so this test covers device scoping
    # whatever POST /users does with siteIds (test_site_limited_user_sees_only_its_sites).
    sql("INSERT INTO memberships (user_id, site_id) VALUES (%s, %s)", viewer.id, s2["id"])
    ids = {d["id"] for d in viewer.api.get("/api/v1/devices").json()["devices"]}
    assert ids == {d2["agentId"]}
    assert_error(viewer.api.get(f"/api/v1/devices/{d1['agentId']}"), 404)


def test_unknown_ids_are_404(admin):
    assert_error(admin.get(f"/api/v1/organizations/{RANDOM_UUID}"), 404)
    assert_error(admin.get(f"/api/v1/devices/{RANDOM_UUID}"), 404)
    assert_error(admin.delete(f"/api/v1/enrollment-keys/{RANDOM_UUID}"), 404)
