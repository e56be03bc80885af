"""API keys (issue 8 §4): POST/GET/DELETE /api/v1/api-keys and X-API-Key.
A key acts with at most its creator's permissions at the time of each
request, within the creator's scope and its own orgId; it stops working when
revoked, expired, or when its creator is disabled or loses the permission;
its audit rows say actorType api_key."""
import datetime
import hashlib
import json
import re

import pytest

from conftest import assert_error, uniq
from access_helpers import audit_rows


def make_key(client, perms, **fields):
    r = client.post("/api/v1/api-keys", json={"name": uniq("key"), "permissions": perms, **fields})
    assert r.status_code == 201, r.text
    return r.json()


def with_key(api, key):
    """A client that sends KEY as X-API-Key and no bearer token."""
    c = api.clone(token=None)
    orig = c.request

    def request(method, path, headers=None, **kw):
        h = {"X-API-Key": key, **(headers or {})}
        return orig(method, path, headers=h, **kw)
    c.request = request
    return c


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_lifecycle(admin, api, tenants, sql):
    k = make_key(admin, ["orgs:read", "devices:read"])
    raw = k["key"]
    assert re.fullmatch(r"brz_key_[A-Za-z0-9_-]{43}", raw)
    assert k["prefix"] == raw[:12] and k["lastUsedAt"] is None and k["revokedAt"] is None
    # Stored only as its SHA-256.
    assert sql("SELECT key_hash FROM api_keys WHERE id = %s", k["id"])[0][0] == \
        hashlib.sha256(raw.encode()).hexdigest()
    assert sql("SELECT count(*) FROM api_keys WHERE key_hash = %s OR key_prefix = %s",
               raw, raw)[0][0] == 0
    kc = with_key(api, raw)
    r = kc.get("/api/v1/organizations")
    assert r.status_code == 200
    assert {tenants.a.id, tenants.b.id} <= {o["id"] for o in r.json()["organizations"]}
    assert kc.get("/api/v1/devices").status_code == 200
    # Listed, never with the key.
    listed = admin.get("/api/v1/api-keys")
    assert listed.status_code == 200
    mine = [x for x in listed.json()["apiKeys"] if x["id"] == k["id"]]
    assert len(mine) == 1 and "key" not in mine[0] and raw not in listed.text
    assert mine[0]["lastUsedAt"] is not None
    # Revoked: refused at once; revoking twice is one audit row.
    r = admin.delete(f"/api/v1/api-keys/{k['id']}")
    assert r.status_code == 200 and r.json()["revokedAt"] is not None
    assert_error(kc.get("/api/v1/organizations"), 401, "unauthorized")
    assert admin.delete(f"/api/v1/api-keys/{k['id']}").status_code == 200
    assert [x[0] for x in audit_rows(sql, "api_keys", k["id"])] == ["api_key.create",
                                                                   "api_key.revoke"]


def test_malformed_unknown_and_doubled_credentials(admin, api):
    for bad in ("", "brz_key_short", "brz_key_" + "A" * 43, "Bearer x", "brz_" + "a" * 64):
        assert_error(with_key(api, bad).get("/api/v1/organizations"), 401, "unauthorized")
    k = make_key(admin, ["orgs:read"])
    # A bearer token and an API key at once: neither is picked, both refused.
    r = api.get("/api/v1/organizations", token=admin.token, headers={"X-API-Key": k["key"]})
    assert_error(r, 401, "unauthorized")


def test_key_is_limited_to_its_permissions(admin, api, tenants):
    kc = with_key(api, make_key(admin, ["orgs:read"])["key"])
    assert kc.get(f"/api/v1/organizations/{tenants.a.id}").status_code == 200
    assert_error(kc.get("/api/v1/devices"), 403, "forbidden")
    assert_error(kc.post("/api/v1/organizations", json={"name": uniq("o")}), 403, "forbidden")


def test_key_cannot_exceed_its_creator(tenants, api):
    tech = tenants.tech_a.api
    b = assert_error(tech.post("/api/v1/api-keys", json={"name": uniq("k"),
                                                         "permissions": ["devices:read",
                                                                         "users:write"]}),
                     403, "permission_not_held")
    assert "users:write" in b["error"]["message"]
    assert_error(tech.post("/api/v1/api-keys", json={"name": uniq("k"),
                                                     "permissions": ["devices:nuke"]}),
                 400, "validation_error")
    # Viewers hold no api_keys:write at all.
    assert_error(tenants.a_viewer.api.post("/api/v1/api-keys",
                                           json={"name": uniq("k"), "permissions": ["orgs:read"]}),
                 403, "forbidden")


def test_routes_closed_to_keys(admin, api, tenants):
    kc = with_key(api, make_key(admin, ["orgs:read", "users:read", "users:write", "roles:read",
                                        "roles:write", "api_keys:read", "api_keys:write"])["key"])
    for method, path, body in [
            ("POST", "/api/v1/api-keys", {"name": "x", "permissions": ["orgs:read"]}),
            ("GET", "/api/v1/api-keys", None),
            ("POST", "/api/v1/roles", {"name": "x", "scope": "partner", "permissions": ["orgs:read"]}),
            ("POST", "/api/v1/users", {"email": f"{uniq('k')}@example.test", "name": "K",
                                       "role": "partner_viewer"}),
            ("PATCH", f"/api/v1/users/{tenants.tech_a.id}", {"name": "renamed"}),
            ("GET", "/api/v1/auth/me", None)]:
        r = kc.request(method, path, **({"json": body} if body is not None else {}))
        assert_error(r, 403, "api_key_not_allowed")
    # What stays open to it works.
    assert kc.get("/api/v1/users").status_code == 200
    assert kc.get("/api/v1/roles").status_code == 200


def test_expiry_follows_the_clock(admin, api, clock):
    now = datetime.datetime.now(datetime.timezone.utc)
    assert_error(admin.post("/api/v1/api-keys", json={
        "name": uniq("k"), "permissions": ["orgs:read"],
        "expiresAt": iso(now - datetime.timedelta(seconds=60))}), 400, "validation_error")
    assert_error(admin.post("/api/v1/api-keys", json={
        "name": uniq("k"), "permissions": ["orgs:read"], "expiresAt": "tomorrow"}),
        400, "validation_error")
    soon = now + datetime.timedelta(hours=1)
    k = make_key(admin, ["orgs:read"], expiresAt=iso(soon))
    assert k["expiresAt"] == iso(soon)
    forever = with_key(api, make_key(admin, ["orgs:read"])["key"])
    kc = with_key(api, k["key"])
    assert kc.get("/api/v1/organizations").status_code == 200
    clock.advance(3600 - 60)
    assert kc.get("/api/v1/organizations").status_code == 200
    clock.advance(60 + 5)
    assert_error(kc.get("/api/v1/organizations"), 401, "unauthorized")
    # A key without expiresAt outlives any access token.
    assert forever.get("/api/v1/organizations").status_code == 200


def test_creator_disabled_stops_the_key(admin, api, make_user):
    tech = make_user("partner_technician")
    kc = with_key(api, make_key(tech.api, ["devices:read"])["key"])
    assert kc.get("/api/v1/devices").status_code == 200
    assert admin.patch(f"/api/v1/users/{tech.id}", json={"status": "disabled"}).status_code == 200
    assert_error(kc.get("/api/v1/devices"), 401, "unauthorized")
    assert admin.patch(f"/api/v1/users/{tech.id}", json={"status": "active"}).status_code == 200
    assert kc.get("/api/v1/devices").status_code == 200


def test_creator_demoted_loses_write_at_once(admin, api, tenants, make_user, sql):
    """An org_admin's key with sites:write stops writing the moment its
    creator becomes an org_viewer, and keeps reading."""
    u = make_user("org_admin", orgId=tenants.a.id)
    k = make_key(u.api, ["sites:read", "sites:write"])
    kc = with_key(api, k["key"])
    path = f"/api/v1/organizations/{tenants.a.id}/sites"
    r = kc.post(path, json={"name": uniq("by-key")})
    assert r.status_code == 201, r.text
    site_id = r.json()["id"]
    # The audit row is the key's act.
    rows = audit_rows(sql, "sites", site_id)
    assert rows[0][0] == "site.create" and rows[0][1] == "api_key" and rows[0][2] == k["id"]
    assert rows[0][3] == tenants.a.id
    assert admin.patch(f"/api/v1/users/{u.id}", json={"role": "org_viewer"}).status_code == 200
    assert_error(kc.post(path, json={"name": uniq("by-key")}), 403, "forbidden")
    assert kc.get(path).status_code == 200
    # Its listing keeps what it was made with; the request decides what it may.
    assert admin.patch(f"/api/v1/users/{u.id}", json={"role": "org_admin"}).status_code == 200
    assert kc.post(path, json={"name": uniq("by-key")}).status_code == 201


def test_key_audit_rows(admin, api, sql, tenants):
    """A key's act is audited as the key's (actorType api_key, actorId the key
    id) in the chain it concerns; one outside any organization would go to the
    creator's partner chain (audit_event_partner, migration 0010)."""
    k = make_key(admin, ["orgs:read", "orgs:write"])
    r = with_key(api, k["key"]).post("/api/v1/organizations", json={"name": uniq("by-key")})
    assert r.status_code == 201, r.text
    org = r.json()["id"]
    rows = sql("SELECT actor_type, actor_id, org_id::text FROM audit_log"
               " WHERE action = 'organization.create' AND resource_id = %s", org)
    assert rows == [("api_key", k["id"], org)]
    q = admin.get(f"/api/v1/audit?orgId={org}&actorType=api_key")
    assert q.status_code == 200, q.text
    assert [e["actorId"] for e in q.json()["entries"]] == [k["id"]]
    assert sql("SELECT audit_event_partner(NULL, 'api_key', %s)::text", k["id"]) == \
        [(tenants.partner_id,)]


def test_key_of_one_org_cannot_see_another(admin, api, tenants):
    kc = with_key(api, make_key(admin, ["orgs:read", "sites:read", "devices:read"],
                                orgId=tenants.a.id)["key"])
    assert kc.get(f"/api/v1/organizations/{tenants.a.id}").status_code == 200
    assert_error(kc.get(f"/api/v1/organizations/{tenants.b.id}"), 404, "not_found")
    assert_error(kc.get(f"/api/v1/organizations/{tenants.b.id}/sites"), 404, "not_found")
    assert [o["id"] for o in kc.get("/api/v1/organizations").json()["organizations"]] == [tenants.a.id]
    assert_error(kc.get(f"/api/v1/devices?orgId={tenants.b.id}"), 404)
    # An organization user's key never sees another organization either.
    bk = with_key(api, make_key(tenants.b_admin.api, ["orgs:read"])["key"])
    assert_error(bk.get(f"/api/v1/organizations/{tenants.a.id}"), 404, "not_found")
    # A key cannot be limited to an organization its creator does not see.
    assert_error(tenants.b_admin.api.post("/api/v1/api-keys", json={
        "name": uniq("k"), "permissions": ["orgs:read"], "orgId": tenants.a.id}), 404)


def test_who_sees_and_revokes_which_keys(admin, tenants, api):
    tech_key = make_key(tenants.tech_a.api, ["devices:read"])
    admin_key = make_key(admin, ["devices:read"])
    tech_list = {x["id"] for x in tenants.tech_a.api.get("/api/v1/api-keys").json()["apiKeys"]}
    assert tech_key["id"] in tech_list and admin_key["id"] not in tech_list
    assert_error(tenants.tech_a.api.delete(f"/api/v1/api-keys/{admin_key['id']}"), 404)
    admin_list = {x["id"] for x in admin.get("/api/v1/api-keys").json()["apiKeys"]}
    assert {tech_key["id"], admin_key["id"]} <= admin_list
    # Another organization's administrator sees neither.
    assert not {tech_key["id"], admin_key["id"]} & {
        x["id"] for x in tenants.b_admin.api.get("/api/v1/api-keys").json()["apiKeys"]}
    assert_error(tenants.b_admin.api.delete(f"/api/v1/api-keys/{tech_key['id']}"), 404)
    assert admin.delete(f"/api/v1/api-keys/{tech_key['id']}").status_code == 200
    assert_error(with_key(api, tech_key["key"]).get("/api/v1/devices"), 401)


def test_last_used_is_written_at_most_once_a_minute(admin, api, sql, clock):
    k = make_key(admin, ["orgs:read"])
    kc = with_key(api, k["key"])

    def last_used():
        return sql("SELECT last_used_at FROM api_keys WHERE id = %s", k["id"])[0][0]
    assert last_used() is None
    assert kc.get("/api/v1/organizations").status_code == 200
    first = last_used()
    assert first is not None
    for _ in range(3):
        assert kc.get("/api/v1/organizations").status_code == 200
    assert last_used() == first
    clock.advance(61)
    assert kc.get("/api/v1/organizations").status_code == 200
    assert last_used() > first
