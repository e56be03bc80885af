"""Partner and site settings encrypted at rest (checklist O2; docs/encryption.md):
GET/PATCH /api/v1/partners/:id/settings and /api/v1/sites/:id/settings.

Plaintext JSON in and out, merge-patch semantics (RFC 7396), only
"enc:v1:<keyId>:<base64url(nonce ‖ ciphertext ‖ tag)>" in the database
(checked here by decrypting it independently with the `cryptography`
package, so the associated data is exactly "<table>.<column>:<row id>"),
tenant isolation, audit rows with secret values redacted, and a clear 500
settings_undecryptable (never garbage) for a value moved to another row or
column, tampered, truncated, under an unknown key id or a wrong key."""
import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid

import pyotp
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from conftest import TEST_CLOCK, assert_error, read_env_file, uniq


def site_url(sid):
    return f"/api/v1/sites/{sid}/settings"


def partner_url(pid):
    return f"/api/v1/partners/{pid}/settings"


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def fingerprint(key_hex):
    """A key's default id: HMAC-SHA-256 of a fixed label under it, 8 hex digits."""
    return hmac.new(bytes.fromhex(key_hex), b"breeze aead key id v1", hashlib.sha256).hexdigest()[:8]


def decrypt(env, value, aad):
    """Opens an enc:v1 value with the session's APP_ENCRYPTION_KEY."""
    prefix, version, key_id, b64 = value.split(":")
    assert (prefix, version) == ("enc", "v1")
    raw = b64url_decode(b64)
    key = bytes.fromhex(env["APP_ENCRYPTION_KEY"])
    return json.loads(AESGCM(key).decrypt(raw[:12], raw[12:], aad.encode()))


@pytest.fixture(scope="module")
def env_values(env_file):
    return read_env_file(env_file)


def stored(sql, table, row_id):
    return sql(f"SELECT settings_enc FROM {table} WHERE id = %s", row_id)[0][0]


def test_site_settings_round_trip_stored_only_as_ciphertext(admin, make_org, sql, env_values):
    org = make_org()
    url = site_url(org.site_id)
    assert admin.get(url).json() == {}
    password = "pw-" + secrets.token_hex(12)
    body = {"smtp": {"host": "mail.example.test", "password": password}, "timezone": "Europe/Berlin"}
    r = admin.patch(url, json=body)
    assert r.status_code == 200, r.text
    assert r.json() == body
    assert admin.get(url).json() == body
    enc = stored(sql, "sites", org.site_id)
    assert enc.startswith("enc:v1:")
    for plain in (password, password[3:15], "mail.example.test", "Europe/Berlin", "smtp", "timezone"):
        assert plain not in enc
    raw = b64url_decode(enc.split(":")[3])
    assert len(raw) == 12 + len(json.dumps(body, separators=(",", ":"))) + 16
    assert decrypt(env_values, enc, f"sites.settings_enc:{org.site_id}") == body
    # The associated data binds the row and the column.
    with pytest.raises(Exception):
        decrypt(env_values, enc, f"sites.settings_enc:{org.id}")
    with pytest.raises(Exception):
        decrypt(env_values, enc, f"partners.settings_enc:{org.site_id}")
    # A fresh nonce on every write.
    admin.patch(url, json={"n": 1})
    admin.patch(url, json={"n": None})
    again = stored(sql, "sites", org.site_id)
    assert again != enc and decrypt(env_values, again, f"sites.settings_enc:{org.site_id}") == body


def test_merge_patch_semantics(admin, make_org, sql):
    org = make_org()
    url = site_url(org.site_id)
    admin.patch(url, json={"smtp": {"host": "h", "password": "p"}, "tz": "UTC", "tags": [1, 2]})
    r = admin.patch(url, json={"smtp": {"password": None, "port": 587}, "tz": None, "tags": [3]})
    assert r.status_code == 200, r.text
    assert r.json() == {"smtp": {"host": "h", "port": 587}, "tags": [3]}
    assert admin.get(url).json() == r.json()
    assert admin.patch(url, json={"smtp": None, "tags": None}).json() == {}
    assert stored(sql, "sites", org.site_id) is None


def test_bad_bodies_and_size_limit(admin, make_org):
    url = site_url(make_org().site_id)
    for bad in ({"1abc": 1}, {"a b": 1}, {"x" * 65: 1}):
        assert_error(admin.patch(url, json=bad), 400, "validation_error")
    assert_error(admin.patch(url, json=[1]), 400)
    assert_error(admin.patch(url, json={"blob": "x" * 17000}), 413, "payload_too_large")
    assert admin.get(url).json() == {}
    assert admin.patch(url, json={"blob": "x" * 15000}).status_code == 200
    assert_error(admin.patch(url, json={"more": "y" * 2000}), 413, "payload_too_large")
    assert admin.get(url).json() == {"blob": "x" * 15000}


def test_patch_is_audited_with_secret_values_redacted(admin, make_org, sql):
    org = make_org()
    url = site_url(org.site_id)
    s1, s2, s3 = (secrets.token_hex(16) for _ in range(3))
    body = {"apiKey": s1, "webhookToken": s2, "region": "eu-west",
            "db": {"DBPassword": s3, "host": "db.internal"}, "clientSecret": None}
    assert admin.patch(url, json=body).status_code == 200
    rows = sql("SELECT details, org_id::text, actor_id::text FROM audit_log"
               " WHERE action = 'site.settings.update' AND resource_id = %s", org.site_id)
    assert len(rows) == 1
    details, org_id, actor = rows[0]
    for s in (s1, s2, s3):
        assert s not in details
    d = json.loads(details)
    assert org_id == org.id
    assert sorted(d["changed"]) == ["apiKey", "db", "region", "webhookToken"]
    assert d["patch"] == {"apiKey": "[REDACTED]", "webhookToken": "[REDACTED]", "region": "eu-west",
                          "db": {"DBPassword": "[REDACTED]", "host": "db.internal"},
                          # the audit layer (audit_redact) also masks a deletion's null
                          "clientSecret": "[REDACTED]"}
    # A patch that changes nothing writes no row.
    assert admin.patch(url, json={"region": "eu-west"}).status_code == 200
    assert sql("SELECT count(*) FROM audit_log WHERE action = 'site.settings.update'"
               " AND resource_id = %s", org.site_id)[0][0] == 1


def test_partner_settings(admin, bootstrap, sql, env_values):
    url = partner_url(bootstrap.partnerId)
    token = "psa-" + secrets.token_hex(12)
    brand = uniq("brand")
    r = admin.patch(url, json={"brand": brand, "psaToken": token})
    assert r.status_code == 200, r.text
    try:
        got = admin.get(url).json()
        assert got["brand"] == brand and got["psaToken"] == token
        enc = stored(sql, "partners", bootstrap.partnerId)
        assert token not in enc and brand not in enc
        assert decrypt(env_values, enc, f"partners.settings_enc:{bootstrap.partnerId}") == got
        (details, org_id, partner_id), = sql(
            "SELECT details, org_id::text, partner_id::text FROM audit_log"
            " WHERE action = 'partner.settings.update' AND resource_id = %s"
            " ORDER BY id DESC LIMIT 1", bootstrap.partnerId)
        assert org_id is None and partner_id == bootstrap.partnerId
        assert token not in details and json.loads(details)["patch"]["psaToken"] == "[REDACTED]"
    finally:
        admin.patch(url, json={"brand": None, "psaToken": None})


def test_tenant_isolation_and_permissions(admin, tenants, sql):
    # Another partner's settings, and ids that are no partner: 404.
    other = sql("INSERT INTO partners (name) VALUES (%s) RETURNING id::text", uniq("Other partner"))[0][0]
    for pid in (other, str(uuid.uuid4())):
        assert_error(admin.get(partner_url(pid)), 404, "not_found")
        assert_error(admin.patch(partner_url(pid), json={"x": 1}), 404, "not_found")
    assert sql("SELECT settings_enc FROM partners WHERE id = %s", other)[0][0] is None
    # Another organization's site: 404 for its admin, whatever the verb.
    b_site = tenants.b.site_id
    assert admin.patch(site_url(b_site), json={"b": "secret of b"}).status_code == 200
    for who in (tenants.a_admin.api,):
        assert_error(who.get(site_url(b_site)), 404, "not_found")
        assert_error(who.patch(site_url(b_site), json={"b": None}), 404, "not_found")
    assert admin.get(site_url(b_site)).json() == {"b": "secret of b"}
    assert tenants.a_admin.api.get(site_url(tenants.a.site_id)).status_code == 200
    # Partner settings are for partner admins; site settings for site managers.
    for who in (tenants.a_admin.api, tenants.a_viewer.api, tenants.tech_a.api):
        assert_error(who.get(partner_url(tenants.partner_id)), 403)
        assert_error(who.patch(partner_url(tenants.partner_id), json={"x": 1}), 403)
    for who in (tenants.a_viewer.api, tenants.tech_a.api):
        assert_error(who.get(site_url(tenants.a.site_id)), 403)
        assert_error(who.patch(site_url(tenants.a.site_id), json={"x": 1}), 403)
    admin.patch(site_url(b_site), json={"b": None})


def undecryptable(resp):
    assert_error(resp, 500, "settings_undecryptable")


@pytest.fixture
def two_sites(admin, make_org, sql):
    a, b = make_org(), make_org()
    admin.patch(site_url(a.site_id), json={"secretA": "alpha-" + secrets.token_hex(8)})
    admin.patch(site_url(b.site_id), json={"secretB": "beta-" + secrets.token_hex(8)})
    return a, b


def set_stored(db, table, row_id, value):
    with db.cursor() as cur:
        cur.execute(f"UPDATE {table} SET settings_enc = %s WHERE id = %s", (value, row_id))


def test_ciphertext_moved_to_another_row_or_column_does_not_open(admin, bootstrap, two_sites, sql,
                                                                 db, server):
    a, b = two_sites
    enc_a = stored(sql, "sites", a.site_id)
    enc_b = stored(sql, "sites", b.site_id)
    # Each moved value is put back (finally), so no undecryptable value is
    # left for later tests (test_encryption_rotation.py re-encrypts them all).
    try:
        set_stored(db, "sites", b.site_id, enc_a)
        undecryptable(admin.get(site_url(b.site_id)))
        undecryptable(admin.patch(site_url(b.site_id), json={"x": 1}))
        assert stored(sql, "sites", b.site_id) == enc_a  # nothing changed
        log = server.log_text()
        line = [x for x in log.splitlines()
                if "encryption.undecryptable" in x and b.site_id in x][-1]
        assert '"table":"sites"' in line.replace(" ", "") and "tag_mismatch" in line
        assert enc_a not in log and enc_a.split(":")[3][:20] not in log
    finally:
        set_stored(db, "sites", b.site_id, enc_b)
    assert "secretB" in admin.get(site_url(b.site_id)).json()
    # The row it belongs to still opens.
    assert "secretA" in admin.get(site_url(a.site_id)).json()
    # Another column: the partner's value in a site's row, and back.
    before = stored(sql, "partners", bootstrap.partnerId)
    try:
        with db.cursor() as cur:
            cur.execute("UPDATE partners SET settings_enc = %s WHERE id = %s", (enc_a, bootstrap.partnerId))
        undecryptable(admin.get(partner_url(bootstrap.partnerId)))
    finally:
        with db.cursor() as cur:
            cur.execute("UPDATE partners SET settings_enc = %s WHERE id = %s", (before, bootstrap.partnerId))


def flip(c):
    return "B" if c == "A" else "A"


def test_tampered_truncated_and_unknown_key_id(admin, two_sites, sql, db, server):
    a, _ = two_sites
    enc = stored(sql, "sites", a.site_id)
    _, _, key_id, b64 = enc.split(":")
    tampered_tag = enc[:-2] + flip(enc[-2]) + enc[-1]
    tampered_ct = f"enc:v1:{key_id}:{b64[:20]}{flip(b64[20])}{b64[21:]}"
    cases = {
        "tag": (tampered_tag, "tag_mismatch"),
        "ciphertext": (tampered_ct, "tag_mismatch"),
        "truncated": (f"enc:v1:{key_id}:{b64[:30]}", "malformed"),
        "cut tag": (enc[:-6], None),
        "unknown key": (f"enc:v1:retired-key-9:{b64}", "unknown_key"),
        "not base64url": (f"enc:v1:{key_id}:{b64[:-3]}*!*", "malformed"),
    }
    try:
        for name, (value, reason) in cases.items():
            set_stored(db, "sites", a.site_id, value)
            r = admin.get(site_url(a.site_id))
            undecryptable(r)
            assert "secretA" not in r.text, name
            if reason:
                lines = [x for x in server.log_text().splitlines()
                         if "encryption.undecryptable" in x and a.site_id in x]
                assert reason in lines[-1], (name, lines[-1])
        assert "retired-key-9" in [x for x in server.log_text().splitlines()
                                   if "unknown_key" in x and a.site_id in x][-1]
    finally:
        set_stored(db, "sites", a.site_id, enc)
    assert "secretA" in admin.get(site_url(a.site_id)).json()


def test_wrong_key_is_a_clear_error(spawn_server, bootstrap, two_sites, sql, api):
    """A server whose key has the id of the one that sealed the values but
    other bytes: 500 settings_undecryptable, never garbage; it still starts."""
    a, _ = two_sites
    key_id = stored(sql, "sites", a.site_id).split(":")[2]
    srv = spawn_server(APP_ENCRYPTION_KEY=secrets.token_hex(32), APP_ENCRYPTION_KEY_ID=key_id)
    other = api.__class__(srv.url).login(bootstrap.email, bootstrap.password)
    undecryptable(other.get(site_url(a.site_id)))
    assert "tag_mismatch" in [x for x in srv.log_text().splitlines()
                              if "encryption.undecryptable" in x][-1]
    # A server that does not know the key id at all.
    srv2 = spawn_server(APP_ENCRYPTION_KEY=secrets.token_hex(32), APP_ENCRYPTION_KEY_ID="other-key")
    other2 = api.__class__(srv2.url).login(bootstrap.email, bootstrap.password)
    undecryptable(other2.get(site_url(a.site_id)))
    assert "unknown_key" in [x for x in srv2.log_text().splitlines()
                             if "encryption.undecryptable" in x][-1]


def test_mfa_secret_in_the_pre_0017_form_opens_and_is_resealed(api, make_user, sql, db, env_values,
                                                               clock):
    """TOTP secrets share the format (under MFA_ENCRYPTION_KEY): one written
    before migration 0017 ("v1:<fingerprint>:<nonce>:<ct‖tag>", the user id as
    associated data) still logs in, and is rewritten as enc:v1 on that use."""
    u = make_user("partner_technician")
    r = u.api.post("/api/v1/auth/mfa/setup", json={"currentPassword": u.password})
    assert r.status_code == 200, r.text
    b32 = r.json()["secret"]
    assert u.api.post("/api/v1/auth/mfa/enable", json={"code": totp_now(b32)}).status_code == 200
    (enc,), = sql("SELECT secret_enc FROM user_mfa WHERE user_id = %s", u.id)
    key = env_values["MFA_ENCRYPTION_KEY"]
    assert enc.startswith(f"enc:v1:{fingerprint(key)}:")
    raw = base64.b32decode(b32 + "=" * (-len(b32) % 8))
    assert decrypt_bytes(key, enc, f"user_mfa.secret_enc:{u.id}") == raw
    nonce = secrets.token_bytes(12)
    legacy = (f"v1:{fingerprint(key)}:{b64url(nonce)}:"
              f"{b64url(AESGCM(bytes.fromhex(key)).encrypt(nonce, raw, u.id.encode()))}")
    with db.cursor() as cur:
        cur.execute("UPDATE user_mfa SET secret_enc = %s WHERE user_id = %s", (legacy, u.id))
    clock.advance(30)
    r = api.post("/api/v1/auth/login", json={"email": u.email, "password": u.password}, token=None)
    assert r.status_code == 200 and r.json()["mfaRequired"], r.text
    r = api.post("/api/v1/auth/mfa/verify", json={"mfaToken": r.json()["mfaToken"],
                                                  "code": totp_now(b32)}, token=None)
    assert r.status_code == 200, r.text
    (after,), = sql("SELECT secret_enc FROM user_mfa WHERE user_id = %s", u.id)
    assert after.startswith("enc:v1:")
    assert decrypt_bytes(key, after, f"user_mfa.secret_enc:{u.id}") == raw


def totp_now(b32):
    return pyotp.TOTP(b32).at(int(time.time() + TEST_CLOCK.offset))


def decrypt_bytes(key_hex, value, aad):
    raw = b64url_decode(value.split(":")[3])
    return AESGCM(bytes.fromhex(key_hex)).decrypt(raw[:12], raw[12:], aad.encode())
