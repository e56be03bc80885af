"""`breeze-server rotate-encryption-key` (docs/encryption.md): --dry-run counts
per table/column/key and changes nothing; a run stopped after one batch
leaves the rest for the rerun (resumable); a full run while a server under
the new key serves settings reads and writes leaves every value under the
new key, readable, with nothing lost; webhook secrets in the pre-0017 "v1:"
form are converted too; the encryptions are counted per key. The test
rotates back to the session's key at the end, so the other tests keep
their key."""
import base64
import hashlib
import hmac
import json
import secrets
import subprocess
import threading

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from conftest import SERVER_BIN, sanitizer_findings, server_env, uniq

TARGETS = (("partners", "settings_enc"), ("sites", "settings_enc"), ("webhooks", "secret_enc"))


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def fingerprint(key_hex):
    """crypto/aead.h's key id: HMAC-SHA-256 of a fixed label under the key."""
    return hmac.new(bytes.fromhex(key_hex), b"breeze aead key id v1", hashlib.sha256).hexdigest()[:8]


def legacy_seal(key_hex, plain, aad):
    """A value in crypto/aead.h's "v1:<id>:<nonce>:<ct+tag>" form."""
    nonce = secrets.token_bytes(12)
    ct = AESGCM(bytes.fromhex(key_hex)).encrypt(nonce, plain.encode(), aad.encode())
    return f"v1:{fingerprint(key_hex)}:{b64url(nonce)}:{b64url(ct)}"


def env_open(key_hex, value, aad):
    _, _, _, b64 = value.split(":")
    raw = b64url_decode(b64)
    return AESGCM(bytes.fromhex(key_hex)).decrypt(raw[:12], raw[12:], aad.encode()).decode()


def values(sql):
    out = {}
    for table, col in TARGETS:
        for rid, v in sql(f"SELECT id::text, {col} FROM {table} WHERE {col} IS NOT NULL"):
            out[(table, rid)] = v
    return out


def rotate(env, *args):
    p = subprocess.run([str(SERVER_BIN), "rotate-encryption-key", *args], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    found = sanitizer_findings(p.stderr)
    assert not found, "\n".join(found[:20])
    return p


@pytest.fixture(scope="module")
def keys(services, env, sql):
    old_hex = env["APP_ENCRYPTION_KEY"]
    # The session's values are under its key's id (its fingerprint unless named).
    old_id = env.get("APP_ENCRYPTION_KEY_ID") or fingerprint(old_hex)
    new_hex, new_id = secrets.token_hex(32), uniq("k-rot")
    k = {"old_hex": old_hex, "old_id": old_id, "new_hex": new_hex, "new_id": new_id,
         # The new key active, the session's one for decryption only.
         "new_env": {"APP_ENCRYPTION_KEY": new_hex, "APP_ENCRYPTION_KEY_ID": new_id,
                     "APP_ENCRYPTION_KEYRING": f"{old_id}:{old_hex}"},
         # Back: the session's key active, the new one in the ring.
         "back_env": {"APP_ENCRYPTION_KEYRING": f"{new_id}:{new_hex}"}}
    yield k
    # A test that failed half-way leaves nothing under the new key (which
    # the other tests' servers do not know).
    if any(v.startswith(f"enc:v1:{new_id}:") for v in values(sql).values()):
        rotate(server_env(services.env, **k["back_env"]), "--batch", "50")


@pytest.fixture(scope="module")
def data(admin, make_org, sql, db, keys):
    sites = []
    for i in range(3):
        org = make_org()
        ids = [org.site_id]
        for _ in range(3):
            r = admin.post(f"/api/v1/organizations/{org.id}/sites", json={"name": uniq("s")})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        for sid in ids:
            body = {"n": 0, "apiToken": secrets.token_hex(8)}
            assert admin.patch(f"/api/v1/sites/{sid}/settings", json=body).status_code == 200
            sites.append((sid, body))
    hook = admin.post("/api/v1/webhooks", json={"orgId": org.id, "url": "https://hooks.example.com/x",
                                                 "events": ["device.enroll"]}).json()
    # A secret as written before migration 0017.
    legacy = legacy_seal(keys["old_hex"], hook["secret"], f"webhooks.secret:{hook['id']}")
    with db.cursor() as cur:
        cur.execute("UPDATE webhooks SET secret_enc = %s WHERE id = %s", (legacy, hook["id"]))
    return {"sites": sites, "hook": hook}


def test_dry_run_counts_and_changes_nothing(services, sql, keys, data):
    before = values(sql)
    usage = sql("SELECT key_id, encryptions FROM encryption_key_usage ORDER BY 1")
    p = rotate(server_env(services.env, **keys["new_env"]), "--dry-run")
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    assert "dry run" in out
    assert f"sites.settings_enc key={keys['old_id']} values=" in out
    assert "(previous: to re-encrypt)" in out
    assert f"webhooks.secret_enc key=v1:{fingerprint(keys['old_hex'])} values=1 (old format" in out
    assert f"value(s) not under key {keys['new_id']}" in out
    assert values(sql) == before
    assert sql("SELECT key_id, encryptions FROM encryption_key_usage ORDER BY 1") == usage
    assert keys["new_hex"] not in out + p.stderr and keys["old_hex"] not in out + p.stderr


def test_rotation_resumable_under_load_and_back(services, spawn_server, bootstrap, admin, sql,
                                                keys, data):
    new_env = server_env(services.env, **keys["new_env"])
    new_prefix = f"enc:v1:{keys['new_id']}:"
    # Stopped after one batch of two: two values moved, the rest left for the rerun.
    p = rotate(new_env, "--batch", "2", "--max-batches", "1")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "run it again" in p.stdout
    assert sum(v.startswith(new_prefix) for v in values(sql).values()) == 2

    # A server under the new key serves reads and writes while the rest rotates.
    srv = spawn_server(**keys["new_env"])
    client = admin.__class__(srv.url).login(bootstrap.email, bootstrap.password)
    expected = {sid: dict(body) for sid, body in data["sites"]}
    errors, stop, going = [], threading.Event(), threading.Event()

    def traffic():
        n = 0
        while not stop.is_set() or n < 2 * len(expected):
            sid = list(expected)[n % len(expected)]
            n += 1
            if n == 4:
                going.set()
            r = client.patch(f"/api/v1/sites/{sid}/settings", json={"n": n})
            if r.status_code != 200:
                errors.append(r.text)
                continue
            expected[sid]["n"] = n
            g = client.get(f"/api/v1/sites/{sid}/settings")
            if g.status_code != 200 or g.json() != expected[sid]:
                errors.append(g.text)

    t = threading.Thread(target=traffic)
    t.start()
    try:
        assert going.wait(60)
        p = rotate(new_env, "--batch", "2")
    finally:
        stop.set()
        t.join(timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "batch 1:" in p.stdout and "re-encrypted" in p.stdout
    assert not errors, errors[:5]
    after = values(sql)
    assert after and all(v.startswith(new_prefix) for v in after.values()), \
        [k for k, v in after.items() if not v.startswith(new_prefix)][:5]
    for sid, body in expected.items():
        assert client.get(f"/api/v1/sites/{sid}/settings").json() == body
        assert json.loads(env_open(keys["new_hex"], after[("sites", sid)],
                                   f"sites.settings_enc:{sid}")) == body
    hook = data["hook"]
    assert env_open(keys["new_hex"], after[("webhooks", hook["id"])],
                    f"webhooks.secret_enc:{hook['id']}") == hook["secret"]
    (n_new,), = sql("SELECT encryptions FROM encryption_key_usage WHERE key_id = %s", keys["new_id"])
    assert n_new >= len(after)
    # A rerun finds nothing to do.
    p = rotate(new_env)
    assert p.returncode == 0 and "batch 1:" not in p.stdout, p.stdout
    assert values(sql) == after

    # Back to the session's key, so the other tests keep theirs.
    p = rotate(server_env(services.env, **keys["back_env"]), "--batch", "50")
    assert p.returncode == 0, p.stdout + p.stderr
    old_prefix = f"enc:v1:{keys['old_id']}:"
    assert all(v.startswith(old_prefix) for v in values(sql).values())
    for sid, body in expected.items():
        assert admin.get(f"/api/v1/sites/{sid}/settings").json() == body


def test_undecryptable_values_are_reported_not_lost(services, sql, db, keys, data):
    """A value no key opens stays as it is; the run says so and exits 1."""
    sid, _ = data["sites"][0]
    (good,), = sql("SELECT settings_enc FROM sites WHERE id = %s", sid)
    bad = f"enc:v1:gone-key:{good.split(':')[3]}"
    with db.cursor() as cur:
        cur.execute("UPDATE sites SET settings_enc = %s WHERE id = %s", (bad, sid))
    try:
        p = rotate(server_env(services.env))
        assert p.returncode == 1, p.stdout + p.stderr
        assert "cannot be decrypted" in p.stdout
        assert "encryption.undecryptable" in p.stderr and sid in p.stderr and "unknown_key" in p.stderr
        assert sql("SELECT settings_enc FROM sites WHERE id = %s", sid)[0][0] == bad
    finally:
        with db.cursor() as cur:
            cur.execute("UPDATE sites SET settings_enc = %s WHERE id = %s", (good, sid))
