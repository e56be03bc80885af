"""Attacks on the encrypted settings (docs/encryption.md; checklist O2):
GET/PATCH /api/v1/partners/:id/settings and /api/v1/sites/:id/settings,
redaction of secret members in audit details, the 16 KiB limit, the per-key
encryption counter and `rotate-encryption-key`.

Tests whose docstring starts with FINDING fail while the defect exists;
"Held" tests document attacks that the code resisted."""
import json
import secrets
import subprocess
import threading
import uuid


from conftest import SERVER_BIN, assert_error, sanitizer_findings, server_env, uniq


def site_url(sid):
    return f"/api/v1/sites/{sid}/settings"


def partner_url(pid):
    return f"/api/v1/partners/{pid}/settings"


def with_key(api, key):
    """A client that sends KEY as X-API-Key and no bearer token."""
    c = api.clone(token=None)
    orig = c.request

    def request(method, path, headers=None, **kw):
        return orig(method, path, headers={"X-API-Key": key, **(headers or {})}, **kw)
    c.request = request
    return c


def make_key(client, perms, **fields):
    r = client.post("/api/v1/api-keys", json={"name": uniq("key"), "permissions": perms, **fields})
    assert r.status_code == 201, r.text
    return r.json()["key"]


def stored(sql, table, row_id):
    return sql(f"SELECT settings_enc FROM {table} WHERE id = %s", row_id)[0][0]


# --------------------------------------------------------------------------- findings


def test_uppercase_site_id_in_path_bricks_the_settings(admin, make_org, sql, db):
    """FINDING (medium): a PATCH through an upper-case spelling of the site id
    seals the settings with associated data "sites.settings_enc:<UPPER-CASE
    ID>". http_path_uuid() accepts either case (is_uuid) and passes the
    path's spelling unchanged to settings_seal(), while the database, every
    other caller and rotate-encryption-key use the canonical lower-case id.
    From then on GET/PATCH through the normal id answer 500
    settings_undecryptable, rotation counts the value as undecryptable
    forever (exit 1), and the audit row's resource_id is not the row's id. Any
    site manager (or a client library that upper-cases UUIDs) breaks the
    site's settings this way. Fix: canonicalise path UUIDs to lower case in
    http_path_uuid() (or build the AAD from the id the database returns)."""
    org = make_org()
    up = org.site_id.upper()
    try:
        r = admin.patch(site_url(up), json={"smtpPassword": "pw-" + secrets.token_hex(6),
                                            "tz": "UTC"})
        assert r.status_code == 200, r.text
        got = admin.get(site_url(org.site_id))
        assert got.status_code == 200, \
            f"settings written via {up} unreadable via {org.site_id}: {got.text}"
        assert got.json()["tz"] == "UTC"
        rid = sql("SELECT resource_id FROM audit_log WHERE action = 'site.settings.update'"
                  " ORDER BY id DESC LIMIT 1")[0][0]
        assert rid == org.site_id
    finally:
        # Leave no undecryptable value behind for later tests (rotation).
        with db.cursor() as cur:
            cur.execute("UPDATE sites SET settings_enc = NULL WHERE id = %s", (org.site_id,))


def test_uppercase_site_id_in_path_reads_as_undecryptable(admin, make_org):
    """FINDING (low): the same cause read the other way: settings written
    through the canonical id answer GET /sites/<UPPER-CASE ID>/settings with
    500 settings_undecryptable (and an encryption.undecryptable
    "tag_mismatch" error line, i.e. a false tamper alarm) instead of 200 with
    the settings — the id names the same row (tenancy_site_visible matches it
    via ::uuid). Fix as above: canonicalise the id before building the AAD."""
    org = make_org()
    assert admin.patch(site_url(org.site_id), json={"tz": "UTC"}).status_code == 200
    r = admin.get(site_url(org.site_id.upper()))
    assert r.status_code == 200, r.text
    assert r.json() == {"tz": "UTC"}


def test_uppercase_partner_id_in_path_bricks_partner_settings(admin, bootstrap, sql, db):
    """FINDING (medium): partner settings have the same defect, and
    check_access() even compares the partner id with strcasecmp() on
    purpose: PATCH /partners/<UPPER-CASE ID>/settings is accepted and seals
    under "partners.settings_enc:<UPPER-CASE ID>"; afterwards the partner's
    settings answer 500 through the canonical id (and rotation cannot
    re-encrypt them). Fix: canonicalise the id (lower case) before access
    checks and AAD."""
    pid = bootstrap.partnerId
    before = stored(sql, "partners", pid)
    try:
        r = admin.patch(partner_url(pid.upper()), json={"attackBrand": uniq("b")})
        assert r.status_code == 200, r.text
        got = admin.get(partner_url(pid))
        assert got.status_code == 200, got.text
    finally:
        with db.cursor() as cur:
            cur.execute("UPDATE partners SET settings_enc = %s WHERE id = %s", (before, pid))


# --------------------------------------------------------------------------- held: access


def test_held_cross_tenant_and_limited_callers(admin, api, tenants, make_user, make_org):
    """Held: another organization's site (also via upper case), a partner
    admin limited to one organization (403 on partner settings), an API key
    limited to one organization (403), keys lacking the write permission
    (403), a random partner id (404)."""
    a, b = tenants.a, tenants.b
    assert admin.patch(site_url(b.site_id), json={"bOnly": "x"}).status_code == 200
    for sid in (b.site_id, b.site_id.upper()):
        assert_error(tenants.a_admin.api.get(site_url(sid)), 404, "not_found")
        assert_error(tenants.a_admin.api.patch(site_url(sid), json={"bOnly": None}), 404,
                     "not_found")
    limited_pa = make_user("partner_admin", orgIds=[a.id])
    assert_error(limited_pa.api.get(partner_url(tenants.partner_id)), 403)
    assert_error(limited_pa.api.patch(partner_url(tenants.partner_id), json={"x": 1}), 403)
    assert_error(limited_pa.api.get(site_url(b.site_id)), 404)
    assert_error(limited_pa.api.get(partner_url(str(uuid.uuid4()))), 404)
    k_org = with_key(api, make_key(admin, ["orgs:write", "sites:write"], orgId=a.id))
    assert_error(k_org.get(partner_url(tenants.partner_id)), 403)
    assert_error(k_org.get(site_url(b.site_id)), 404)
    assert k_org.get(site_url(a.site_id)).status_code == 200
    k_read = with_key(api, make_key(admin, ["orgs:read", "sites:read"]))
    assert_error(k_read.get(site_url(a.site_id)), 403)
    assert_error(k_read.get(partner_url(tenants.partner_id)), 403)
    k_sites = with_key(api, make_key(admin, ["sites:write"]))
    assert_error(k_sites.get(partner_url(tenants.partner_id)), 403)
    admin.patch(site_url(b.site_id), json={"bOnly": None})


def test_held_deleted_site_is_404(admin, make_org, sql, db):
    """Held: a deleted site's settings are 404 for read and write."""
    org = make_org()
    assert admin.patch(site_url(org.site_id), json={"k1": 1}).status_code == 200
    with db.cursor() as cur:
        cur.execute("UPDATE sites SET deleted_at = now() WHERE id = %s", (org.site_id,))
    assert_error(admin.get(site_url(org.site_id)), 404, "not_found")
    assert_error(admin.patch(site_url(org.site_id), json={"k1": None}), 404, "not_found")


# --------------------------------------------------------------------------- held: bodies


def test_held_non_object_bodies_and_bad_json(admin, make_org):
    """Held: null root, scalars, arrays, invalid JSON and an empty body are
    400 and change nothing; deep nesting beyond the parser's limit is 400,
    never a crash."""
    url = site_url(make_org().site_id)
    for raw in (b"null", b"1", b'"s"', b"true", b"[]", b"{", b"", b'{"a":1}x'):
        r = admin.request("PATCH", url, data=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (raw, r.status_code, r.text)
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    r = admin.request("PATCH", url, data=deep, headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 413), r.text
    assert admin.get(url).json() == {}


def test_held_duplicate_keys_and_size_boundary(admin, make_org, sql):
    """Held: duplicate member names are refused or resolved without leaking
    the secret into the audit row; the 16384-byte limit is exact (bytes of
    compact JSON, UTF-8 counted as bytes)."""
    org = make_org()
    url = site_url(org.site_id)
    s1, s2 = secrets.token_hex(8), secrets.token_hex(8)
    raw = f'{{"apiKey":"{s1}","apiKey":"{s2}"}}'.encode()
    r = admin.request("PATCH", url, data=raw, headers={"Content-Type": "application/json"})
    assert r.status_code in (200, 400), r.text
    for (d,) in sql("SELECT details FROM audit_log WHERE resource_id = %s", org.site_id):
        assert s1 not in d and s2 not in d
    admin.patch(url, json={"apiKey": None})
    # '{"blob":"' + N + '"}' is N + 11 bytes.
    assert admin.patch(url, json={"blob": "x" * 16373}).status_code == 200
    assert_error(admin.patch(url, json={"blob": "x" * 16374}), 413, "payload_too_large")
    assert_error(admin.patch(url, json={"blob": "é" * 8187}), 413, "payload_too_large")
    assert admin.patch(url, json={"blob": "é" * 8186}).status_code == 200
    assert admin.get(url).json() == {"blob": "é" * 8186}


def test_held_moderately_deep_settings_round_trip(admin, make_org):
    """Held: a nested object (400 levels) is stored, merged and read back."""
    url = site_url(make_org().site_id)
    v = 1
    for _ in range(400):
        v = {"a": v}
    assert admin.patch(url, json={"deep": v}).status_code == 200
    w = {"b": 2}
    for _ in range(399):
        w = {"a": w}
    r = admin.patch(url, json={"deep": w})
    assert r.status_code == 200, r.text
    got = admin.get(url).json()["deep"]
    for _ in range(399):
        got = got["a"]
    assert got == {"b": 2, "a": 1}


# --------------------------------------------------------------------------- held: redaction


def test_held_redaction_nested_arrays_and_case(admin, make_org, sql, server):
    """Held: secret-named members are redacted at any depth, inside arrays,
    in any ASCII letter case and with separators (apiKey, client_secret,
    X-AUTH-TOKEN, PassWord); the plaintexts are in neither the audit row nor
    the server log, nor in the 413/400 error bodies."""
    org = make_org()
    url = site_url(org.site_id)
    ss = [secrets.token_hex(10) for _ in range(7)]
    body = {
        "integrations": [{"name": "psa", "client_secret": ss[0]},
                         [{"deeper": [{"PassWord": ss[1]}]}]],
        "Api_KEY": ss[2],
        "hdrs": {"X-AUTH-TOKEN": ss[3], "list": [[{"apiKey": {"v": ss[4]}}]]},
        "tokens": [ss[5]],
        "privateKeyPem": ss[6],
    }
    r = admin.patch(url, json=body)
    assert r.status_code == 200, r.text
    (d,), = sql("SELECT details FROM audit_log WHERE action = 'site.settings.update'"
                " AND resource_id = %s", org.site_id)
    for s in ss:
        assert s not in d
    p = json.loads(d)["patch"]
    assert p["integrations"][0] == {"name": "psa", "client_secret": "[REDACTED]"}
    assert p["integrations"][1][0]["deeper"][0]["PassWord"] == "[REDACTED]"
    assert p["hdrs"]["list"][0][0]["apiKey"] == "[REDACTED]"
    big = admin.patch(url, json={"smtpPassword": ss[0], "blob": "x" * 17000})
    assert_error(big, 413, "payload_too_large")
    bad = admin.patch(url, json={"1bad": ss[1]})
    assert_error(bad, 400)
    assert ss[0] not in big.text and ss[1] not in bad.text
    log = server.log_text()
    for s in ss:
        assert s not in log


# --------------------------------------------------------------------------- held: races


def test_held_parallel_patches_lose_nothing_and_count_exactly(admin, make_org, sql, api, bootstrap):
    """Held: 12 parallel PATCHes of one site's settings (each its own member)
    lose no update (row lock FOR UPDATE), and the per-key usage counter
    grows by exactly the number of sealed values."""
    org = make_org()
    url = site_url(org.site_id)
    key_id = None
    assert admin.patch(url, json={"init": 1}).status_code == 200
    key_id = stored(sql, "sites", org.site_id).split(":")[2]
    before = sql("SELECT encryptions FROM encryption_key_usage WHERE key_id = %s", key_id)[0][0]
    clients = [api.login(bootstrap.email, bootstrap.password) for _ in range(4)]
    errors = []

    def worker(i):
        c = clients[i % len(clients)]
        r = c.patch(url, json={f"m{i}": i})
        if r.status_code != 200:
            errors.append(r.text)
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    got = admin.get(url).json()
    assert got == {"init": 1, **{f"m{i}": i for i in range(12)}}
    after = sql("SELECT encryptions FROM encryption_key_usage WHERE key_id = %s", key_id)[0][0]
    assert after - before == 12


# --------------------------------------------------------------------------- held: rotation


def test_held_rotation_with_keyring_missing_the_old_key_changes_nothing(services, sql, make_org,
                                                                        admin):
    """Held: rotate-encryption-key with a new active key and a keyring that
    lacks the key the values are under re-encrypts nothing, destroys
    nothing, exits 1, and prints no key material."""
    org = make_org()
    assert admin.patch(site_url(org.site_id), json={"x": 1}).status_code == 200
    before = sql("SELECT id::text, settings_enc FROM sites WHERE settings_enc IS NOT NULL"
                 " ORDER BY id")
    new_hex = secrets.token_hex(32)
    env = server_env(services.env, APP_ENCRYPTION_KEY=new_hex,
                     APP_ENCRYPTION_KEY_ID=uniq("k-miss"), APP_ENCRYPTION_KEYRING="")
    p = subprocess.run([str(SERVER_BIN), "rotate-encryption-key", "--batch", "50"], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert not sanitizer_findings(p.stderr)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "cannot be decrypted" in p.stdout
    assert new_hex not in p.stdout + p.stderr
    assert services.env["APP_ENCRYPTION_KEY"] not in p.stdout + p.stderr
    after = sql("SELECT id::text, settings_enc FROM sites WHERE settings_enc IS NOT NULL"
                " ORDER BY id")
    assert after == before
    assert admin.get(site_url(org.site_id)).json() == {"x": 1}


# --------------------------------------------------------------------------- more


def test_audit_patch_is_not_bounded_by_the_settings_limit(admin, make_org, sql):
    """FINDING (low): the 16384-byte limit applies to the resulting settings
    only; the patch copied (redacted) into the audit row's details is bounded
    by nothing but HTTP_MAX_BODY_BYTES (1 MiB). A merge patch of tens of
    thousands of removals of absent nested members plus one real change
    yields tiny settings but an audit row of ~0.5 MiB — in an append-only,
    hash-chained log that nobody can trim, repeatable by any site manager
    (any org_admin, or an API key with sites:write) at request rate. Fix:
    refuse patches whose compact JSON exceeds the settings limit as well
    (413), or audit only the effective change (the redacted new values of
    `changed`)."""
    org = make_org()
    url = site_url(org.site_id)
    ghosts = {f"g{i:05d}": None for i in range(40000)}
    r = admin.patch(url, json={"x": 1, "y": ghosts})
    assert r.status_code in (200, 413), r.text
    if r.status_code == 200:
        assert r.json() == {"x": 1, "y": {}}
    rows = sql("SELECT length(details) FROM audit_log WHERE action = 'site.settings.update'"
               " AND resource_id = %s", org.site_id)
    for (n,) in rows:
        assert n <= 2 * 16384, f"audit details of {n} bytes for settings of {len(r.text)} bytes"


def test_held_site_limited_caller_and_media_type(admin, make_org, make_user):
    """Held: an org_admin limited to one site of its organization gets 404
    for the organization's other site; a non-JSON content type is 415."""
    org = make_org()
    r = admin.post(f"/api/v1/organizations/{org.id}/sites", json={"name": uniq("s2")})
    assert r.status_code == 201, r.text
    other = r.json()["id"]
    u = make_user("org_admin", orgId=org.id, siteIds=[org.site_id])
    assert u.api.get(site_url(org.site_id)).status_code == 200
    assert_error(u.api.get(site_url(other)), 404, "not_found")
    assert_error(u.api.patch(site_url(other), json={"x": 1}), 404, "not_found")
    r = admin.request("PATCH", site_url(org.site_id), data=b'{"x":1}',
                      headers={"Content-Type": "text/plain"})
    assert r.status_code == 415, r.text
    assert admin.get(site_url(org.site_id)).json() == {}


def test_held_usage_counter_warns_from_2_31(admin, make_org, sql, db, server):
    """Held: from 2^31 encryptions of a key on, each seal logs
    encryption.key.usage_high with the key id (not the key)."""
    org = make_org()
    url = site_url(org.site_id)
    assert admin.patch(url, json={"a": 1}).status_code == 200
    key_id = stored(sql, "sites", org.site_id).split(":")[2]
    (n0,), = sql("SELECT encryptions FROM encryption_key_usage WHERE key_id = %s", key_id)
    try:
        with db.cursor() as cur:
            cur.execute("UPDATE encryption_key_usage SET encryptions = %s WHERE key_id = %s",
                        ((1 << 31) - 1, key_id))
        assert admin.patch(url, json={"a": 2}).status_code == 200
        lines = [x for x in server.log_text().splitlines() if "encryption.key.usage_high" in x]
        assert lines and key_id in lines[-1] and "2147483648" in lines[-1]
    finally:
        with db.cursor() as cur:
            cur.execute("UPDATE encryption_key_usage SET encryptions = %s WHERE key_id = %s",
                        (n0 + 1, key_id))


def test_held_no_encryption_key_fails_closed(spawn_server, bootstrap, admin, make_org, sql, api):
    """Held: a server without APP_ENCRYPTION_KEY (allowed outside production)
    answers 503 encryption_key_missing for settings and never stores
    plaintext."""
    org = make_org()
    srv = spawn_server(APP_ENCRYPTION_KEY=None, APP_ENCRYPTION_KEY_ID=None,
                       APP_ENCRYPTION_KEYRING=None)
    c = api.__class__(srv.url).login(bootstrap.email, bootstrap.password)
    r = c.patch(site_url(org.site_id), json={"smtpPassword": "plain-pw"})
    assert_error(r, 503, "encryption_key_missing")
    assert_error(c.get(site_url(org.site_id)), 503, "encryption_key_missing")
    assert stored(sql, "sites", org.site_id) is None
    assert "plain-pw" not in srv.log_text()


def test_partner_viewer_reads_settings_values_through_the_audit_log(admin, make_org, make_user):
    """FINDING (low): settings reads need the WRITE permission "because
    settings may hold secrets" (docs/encryption.md), but every value whose
    member name lacks secret/password/token/key is copied verbatim into the
    audit row's details, and audit:read is held by roles without any write
    permission (partner_viewer; custom roles). So a partner_viewer, refused
    403 on GET …/settings, reads the settings through GET /api/v1/audit.
    With ordinary configuration shapes the values are real secrets: a
    nodemailer-style {"smtp": {"auth": {"user", "pass"}}}, "pwd", "passwd",
    "dsn" URLs with credentials, "privateCert" — none is redacted by either
    settings_redact() or audit_redact(). Fix: audit only the member paths
    that changed (or redact every leaf value of the patch) — the settings are
    secret as a whole — or at least extend the word list (pass, pwd, auth,
    dsn, private, cert, credential) and document it."""
    org = make_org()
    s_pass, s_pwd, s_dsn = (secrets.token_hex(10) for _ in range(3))
    body = {"smtp": {"host": "mail.example.test", "auth": {"user": "ops", "pass": s_pass}},
            "ftp": {"pwd": s_pwd}, "dsn": f"postgres://breeze:{s_dsn}@db.internal/app"}
    assert admin.patch(site_url(org.site_id), json=body).status_code == 200
    viewer = make_user("partner_viewer")
    assert_error(viewer.api.get(site_url(org.site_id)), 403)
    r = viewer.api.get("/api/v1/audit", params={"resourceId": org.site_id,
                                                "action": "site.settings.update"})
    assert r.status_code == 200, r.text
    assert org.site_id in r.text  # the viewer does see the row
    for s in (s_pass, s_pwd, s_dsn):
        assert s not in r.text, "settings value readable via the audit log by a partner_viewer"


def test_held_bad_keyrings_refused_without_echoing_keys(services):
    """Held: malformed or duplicate keyrings stop the command with exit 3,
    naming the variable and never printing a key."""
    active = services.env["APP_ENCRYPTION_KEY"]
    other = secrets.token_hex(32)
    cases = {
        "bad id": f"bad id!:{other}",
        "short key": f"k1:{other[:-2]}",
        "active twice": f"k-dup:{active}",
        "same id twice": f"k1:{other},k1:{secrets.token_hex(32)}",
        "empty entry": f"k1:{other},",
        "too many": ",".join(f"k{i}:{secrets.token_hex(32)}" for i in range(8)),
        "id too long": f"{'k' * 33}:{other}",
    }
    for name, ring in cases.items():
        env = server_env(services.env, APP_ENCRYPTION_KEYRING=ring)
        p = subprocess.run([str(SERVER_BIN), "rotate-encryption-key", "--dry-run"], env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        out = p.stdout + p.stderr
        assert p.returncode == 3, (name, p.returncode, out)
        assert "APP_ENCRYPTION_KEYRING" in out, (name, out)
        for hexkey in [active, other] + [e.split(":")[-1] for e in ring.split(",") if e]:
            if len(hexkey) >= 16:
                assert hexkey not in out and hexkey[:16] not in out, (name, out)


def test_dry_run_calls_an_unopenable_old_format_value_re_encryptable(services, admin, make_org,
                                                                     sql, db):
    """FINDING (low): `rotate-encryption-key --dry-run` (step 3 of the
    rotation, "look first") classifies a pre-0017 "v1:<fingerprint>:…"
    webhook secret as "old format: to re-encrypt" even when no key of the
    keyring has that fingerprint: dry_run() looks the column's key up as
    "v1:<fp>", which never matches a keyring id, and falls through to "old
    format". The operator is told the value will be converted, retires the
    old key in step 6 — and the real run cannot open it (the webhook can no
    longer sign). docs/encryption.md promises "unknown key: cannot be
    re-encrypted" for such values. Fix: for "v1:" values compare the
    fingerprint with every keyring key's fingerprint (kr->k[i].fingerprint)."""
    import base64
    import hashlib
    import hmac
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    def b64url(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    org = make_org()
    r = admin.post("/api/v1/webhooks", json={"orgId": org.id, "url": "https://hooks.example.com/a",
                                             "events": ["device.enroll"]})
    assert r.status_code == 201, r.text
    hook = r.json()
    lost = secrets.token_hex(32)
    fp = hmac.new(bytes.fromhex(lost), b"breeze aead key id v1", hashlib.sha256).hexdigest()[:8]
    nonce = secrets.token_bytes(12)
    ct = AESGCM(bytes.fromhex(lost)).encrypt(nonce, hook["secret"].encode(),
                                             f"webhooks.secret:{hook['id']}".encode())
    (orig,), = sql("SELECT secret_enc FROM webhooks WHERE id = %s", hook["id"])
    with db.cursor() as cur:
        cur.execute("UPDATE webhooks SET secret_enc = %s WHERE id = %s",
                    (f"v1:{fp}:{b64url(nonce)}:{b64url(ct)}", hook["id"]))
    try:
        p = subprocess.run([str(SERVER_BIN), "rotate-encryption-key", "--dry-run"],
                           env=server_env(services.env), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        line = [x for x in p.stdout.splitlines() if f"key=v1:{fp}" in x]
        assert line, p.stdout
        assert "unknown key" in line[0], line[0]
    finally:
        with db.cursor() as cur:
            cur.execute("UPDATE webhooks SET secret_enc = %s WHERE id = %s", (orig, hook["id"]))
        admin.delete(f"/api/v1/webhooks/{hook['id']}")
