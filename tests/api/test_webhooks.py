"""Webhooks (issue 12 §2; docs/webhooks.md): CRUD, tenancy, permissions, the
secret shown once and sealed at rest, URLs checked when saved, and deliveries
queued in the transaction of the event's audit row. Delivery end to end is in
test_webhook_delivery.py."""
import json

import pytest

from conftest import assert_error, uniq

URL = "https://hooks.example.com/breeze"


def create(client, org_id, url=URL, events=("device.enroll",), **extra):
    body = {"orgId": org_id, "url": url, "events": list(events), **extra}
    return client.post("/api/v1/webhooks", json=body)


def created(client, org_id, **kw):
    r = create(client, org_id, **kw)
    assert r.status_code == 201, r.text
    return r.json()


def test_create_get_list_patch_delete(admin, tenants, sql):
    w = created(admin, tenants.a.id, events=["device.enroll", "agent.token.suspended"])
    assert w["orgId"] == tenants.a.id and w["url"] == URL and w["enabled"] is True
    assert w["events"] == ["device.enroll", "agent.token.suspended"]
    assert w["secret"].startswith("whsec_") and len(w["secret"]) == 70

    got = admin.get(f"/api/v1/webhooks/{w['id']}")
    assert got.status_code == 200
    assert "secret" not in got.json() and got.json()["events"] == w["events"]
    listed = admin.get("/api/v1/webhooks", params={"orgId": tenants.a.id}).json()["webhooks"]
    assert [x["id"] for x in listed if x["id"] == w["id"]] == [w["id"]]
    assert all("secret" not in x for x in listed)

    r = admin.patch(f"/api/v1/webhooks/{w['id']}",
                    json={"enabled": False, "events": ["*"], "url": URL + "/v2"})
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is False and r.json()["events"] == ["*"]
    assert r.json()["url"] == URL + "/v2" and "secret" not in r.json()

    assert admin.delete(f"/api/v1/webhooks/{w['id']}").status_code == 204
    assert_error(admin.get(f"/api/v1/webhooks/{w['id']}"), 404, "not_found")
    assert_error(admin.delete(f"/api/v1/webhooks/{w['id']}"), 404, "not_found")

    rows = sql("SELECT action, details FROM audit_log WHERE resource = 'webhooks'"
               " AND resource_id = %s ORDER BY seq", w["id"])
    assert [a for a, _ in rows] == ["webhook.create", "webhook.update", "webhook.delete"]
    for _, details in rows:
        assert w["secret"] not in details and "/breeze" not in details
    assert json.loads(rows[0][1])["host"] == "hooks.example.com"
    assert set(json.loads(rows[1][1])) == {"enabled", "events", "host", "urlChanged"}


def test_patch_nothing_changed_writes_no_audit_row(admin, tenants, sql):
    w = created(admin, tenants.a.id)
    r = admin.patch(f"/api/v1/webhooks/{w['id']}", json={"url": URL, "enabled": True})
    assert r.status_code == 200
    n = sql("SELECT count(*) FROM audit_log WHERE resource_id = %s", w["id"])[0][0]
    assert n == 1


def test_org_inferred_for_single_org_user(tenants):
    r = tenants.a_admin.api.post("/api/v1/webhooks", json={"url": URL, "events": ["*"]})
    assert r.status_code == 201, r.text
    assert r.json()["orgId"] == tenants.a.id


def test_partner_user_must_name_the_org(admin):
    r = admin.post("/api/v1/webhooks", json={"url": URL, "events": ["*"]})
    body = assert_error(r, 400, "validation_error")
    assert body["error"]["field"] == "orgId"


def test_other_tenant_gets_404(tenants):
    w = created(tenants.a_admin.api, tenants.a.id)
    b = tenants.b_admin.api
    for r in (b.get(f"/api/v1/webhooks/{w['id']}"),
              b.patch(f"/api/v1/webhooks/{w['id']}", json={"enabled": False}),
              b.delete(f"/api/v1/webhooks/{w['id']}"),
              b.get(f"/api/v1/webhooks/{w['id']}/deliveries"),
              b.post(f"/api/v1/webhooks/{w['id']}/test"),
              create(b, tenants.a.id)):
        assert_error(r, 404, "not_found")
    assert all(x["id"] != w["id"] for x in b.get("/api/v1/webhooks").json()["webhooks"])
    assert tenants.a_admin.api.get(f"/api/v1/webhooks/{w['id']}").status_code == 200


def test_viewer_reads_but_cannot_write(tenants):
    w = created(tenants.a_admin.api, tenants.a.id)
    v = tenants.a_viewer.api
    assert v.get("/api/v1/webhooks").status_code == 200
    assert v.get(f"/api/v1/webhooks/{w['id']}").status_code == 200
    assert v.get(f"/api/v1/webhooks/{w['id']}/deliveries").status_code == 200
    assert_error(create(v, tenants.a.id), 403)
    assert_error(v.patch(f"/api/v1/webhooks/{w['id']}", json={"enabled": False}), 403)
    assert_error(v.delete(f"/api/v1/webhooks/{w['id']}"), 403)
    assert_error(v.post(f"/api/v1/webhooks/{w['id']}/test"), 403)


def test_secret_sealed_at_rest(admin, tenants, sql):
    w = created(admin, tenants.a.id)
    (enc,) = sql("SELECT secret_enc FROM webhooks WHERE id = %s", w["id"])[0]
    assert enc.startswith("enc:v1:")  # docs/encryption.md (migration 0017)
    assert w["secret"] not in enc and w["secret"][6:] not in enc and w["secret"][6:20] not in enc


def test_idempotent_replay_withholds_the_secret(admin, tenants):
    key = uniq("idem")
    body = {"orgId": tenants.a.id, "url": URL, "events": ["*"]}
    first = admin.post("/api/v1/webhooks", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201 and first.json()["secret"]
    again = admin.post("/api/v1/webhooks", json=body, headers={"Idempotency-Key": key})
    assert_error(again, 409, "idempotency_key_secret_withheld")
    assert first.json()["secret"] not in again.text


BAD_URLS = [
    ("http://localhost/hook", "blocked_host"),
    ("http://LOCALHOST./hook", "blocked_host"),
    ("http://api.localhost/hook", "blocked_host"),
    ("http://metadata.google.internal/computeMetadata/v1/", "blocked_host"),
    ("http://metadata.azure.com/", "blocked_host"),
    ("http://127.0.0.1/hook", "blocked_address"),
    ("http://127.1/hook", "blocked_address"),
    ("http://2130706433/hook", "blocked_address"),
    ("http://0x7f.1/hook", "blocked_address"),
    ("http://[::1]/hook", "blocked_address"),
    ("http://[::ffff:127.0.0.1]/hook", "blocked_address"),
    ("http://169.254.169.254/latest/meta-data/", "blocked_address"),
    ("http://[fd00:ec2::254]/", "blocked_address"),
    ("http://10.1.2.3/hook", "blocked_address"),
    ("http://192.168.0.10:8080/hook", "blocked_address"),
    ("http://0.0.0.0/hook", "blocked_address"),
    ("file:///etc/passwd", "bad_scheme"),
    ("gopher://example.com/_x", "bad_scheme"),
    ("dict://example.com:11211/stat", "bad_scheme"),
    ("ftp://example.com/x", "bad_scheme"),
    ("http://good.example@127.0.0.1/", "bad_url"),
    ("https://user:pw@hooks.example.com/", "bad_url"),
    ("not a url", "bad_scheme"),  # no scheme: libcurl calls it a bad one
    ("http://", "bad_url"),
]


@pytest.mark.parametrize("url,kind", BAD_URLS)
def test_url_refused_when_saved(admin, tenants, url, kind):
    body = assert_error(create(admin, tenants.a.id, url=url), 400, "validation_error")
    assert body["error"]["field"] == "url"
    assert f"({kind})" in body["error"]["message"], body


def test_url_refused_on_patch(admin, tenants):
    w = created(admin, tenants.a.id)
    body = assert_error(admin.patch(f"/api/v1/webhooks/{w['id']}",
                                    json={"url": "http://169.254.169.254/"}),
                        400, "validation_error")
    assert body["error"]["field"] == "url" and "blocked_address" in body["error"]["message"]
    assert admin.get(f"/api/v1/webhooks/{w['id']}").json()["url"] == URL


@pytest.mark.parametrize("events", [[], ["no.such.event"], ["*", "*"], ["webhook.test"],
                                    ["outbound.blocked"]])
def test_events_validated(admin, tenants, events):
    body = assert_error(create(admin, tenants.a.id, events=events), 400, "validation_error")
    assert body["error"]["field"] == "events"


def test_events_queued_in_the_audit_transaction(admin, tenants, make_org, sql):
    org = make_org()
    w = created(admin, org.id, events=["site.create"])
    star = created(admin, org.id, events=["*"])
    off = created(admin, org.id, events=["site.create"], enabled=False)
    other = created(admin, tenants.b.id, events=["*"])
    r = admin.post(f"/api/v1/organizations/{org.id}/sites", json={"name": uniq("site")})
    assert r.status_code == 201
    site = r.json()
    (audit_id,) = sql("SELECT id FROM audit_log WHERE action = 'site.create' AND resource_id = %s",
                      site["id"])[0]
    rows = sql("SELECT webhook_id::text, event, status, attempts, payload FROM webhook_deliveries"
               " WHERE audit_id = %s ORDER BY webhook_id", audit_id)
    assert sorted(r[0] for r in rows) == sorted([w["id"], star["id"]])
    for _, event, status, attempts, payload in rows:
        assert (event, status, attempts) == ("site.create", "pending", 0)
        assert payload["action"] == "site.create" and payload["resourceId"] == site["id"]
        assert payload["auditId"] == audit_id and payload["details"]["name"] == site["name"]
    # webhook.* changes (even to a "*" subscriber) are never delivered: no loops.
    admin.patch(f"/api/v1/webhooks/{star['id']}", json={"events": ["*", "site.create"]})
    n = sql("SELECT count(*) FROM webhook_deliveries d JOIN audit_log a ON a.id = d.audit_id"
            " WHERE d.webhook_id = %s AND a.action LIKE 'webhook.%%'", star["id"])[0][0]
    assert n == 0
    assert sql("SELECT count(*) FROM webhook_deliveries WHERE webhook_id IN (%s, %s)",
               off["id"], other["id"])[0][0] == 0


def test_test_route_and_deliveries_list(admin, tenants):
    w = created(admin, tenants.a.id)
    ids = []
    for _ in range(3):
        r = admin.post(f"/api/v1/webhooks/{w['id']}/test")
        assert r.status_code == 202, r.text
        d = r.json()
        assert d["event"] == "webhook.test" and d["status"] == "pending" and d["attempts"] == 0
        assert d["auditId"] is None
        ids.append(d["id"])
    page = admin.get(f"/api/v1/webhooks/{w['id']}/deliveries", params={"limit": 2}).json()
    assert [d["id"] for d in page["deliveries"]] == ids[::-1][:2]
    assert page["nextCursor"]
    rest = admin.get(f"/api/v1/webhooks/{w['id']}/deliveries",
                     params={"limit": 2, "cursor": page["nextCursor"]}).json()
    assert [d["id"] for d in rest["deliveries"]] == ids[:1] and rest["nextCursor"] is None
    assert_error(admin.get(f"/api/v1/webhooks/{w['id']}/deliveries", params={"cursor": "x"}),
                 400, "validation_error")
    admin.patch(f"/api/v1/webhooks/{w['id']}", json={"enabled": False})
    assert_error(admin.post(f"/api/v1/webhooks/{w['id']}/test"), 409, "webhook_disabled")


def test_delete_fails_undelivered(admin, tenants, sql):
    w = created(admin, tenants.a.id)
    d = admin.post(f"/api/v1/webhooks/{w['id']}/test").json()
    assert admin.delete(f"/api/v1/webhooks/{w['id']}").status_code == 204
    assert sql("SELECT status, last_error FROM webhook_deliveries WHERE id = %s",
               d["id"])[0] == ("failed", "webhook deleted")


def test_site_limited_account_cannot_use_webhooks(admin, make_org, make_user):
    org = make_org()
    w = created(admin, org.id)
    limited = make_user("org_admin", orgId=org.id, siteIds=[org.site_id]).api
    for r in (limited.get("/api/v1/webhooks"), limited.get(f"/api/v1/webhooks/{w['id']}"),
              limited.get(f"/api/v1/webhooks/{w['id']}/deliveries"),
              limited.patch(f"/api/v1/webhooks/{w['id']}", json={"enabled": False}),
              limited.delete(f"/api/v1/webhooks/{w['id']}"),
              limited.post(f"/api/v1/webhooks/{w['id']}/test"), create(limited, org.id)):
        assert_error(r, 403, "forbidden")
    assert admin.get(f"/api/v1/webhooks/{w['id']}").json()["enabled"] is True
