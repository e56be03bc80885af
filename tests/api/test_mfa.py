"""TOTP multi-factor authentication (checklist A1, A2): enrolment, the login's
second step (mfaToken → /auth/mfa/verify), replay and window rules, recovery
codes, the encrypted secret and its key rotation, and the 428 forced-enrolment
gate on every route of the route table.

Codes are computed with pyotp at the servers' time (the `clock` fixture moves
it); each test uses its own user, so no test sees another's used steps."""
import json
import re
import secrets
import subprocess
import threading
import time
import uuid
from contextlib import contextmanager

import pyotp
import pytest

from conftest import SERVER_BIN, TEST_CLOCK, Api, assert_error, base_process_env

RECOVERY_RE = re.compile(r"^[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}$")
# GET /auth/me, enrolment (and, once they exist, logout and refresh).
EXEMPT = {("GET", "/api/v1/auth/me"), ("POST", "/api/v1/auth/mfa/setup"),
          ("POST", "/api/v1/auth/mfa/enable")}


def server_now():
    return time.time() + TEST_CLOCK.offset


def code(secret, steps=0):
    """The TOTP code of SECRET at the servers' time plus STEPS 30-second steps."""
    return pyotp.TOTP(secret).at(int(server_now()) + 30 * steps)


def mfa_setup(client, password):
    r = client.post("/api/v1/auth/mfa/setup", json={"currentPassword": password})
    assert r.status_code == 200, r.text
    return r.json()


def enrol(client, password):
    """Setup + enable at the current step; returns the setup answer."""
    s = mfa_setup(client, password)
    r = client.post("/api/v1/auth/mfa/enable", json={"code": code(s["secret"])})
    assert r.status_code == 200, r.text
    assert r.json() == {"mfaEnabled": True}
    return s


def mfa_login(api, user):
    r = api.post("/api/v1/auth/login", json={"email": user.email, "password": user.password},
                 token=None)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mfaRequired"] is True and "accessToken" not in body, body
    assert body["expiresIn"] == 300
    return body["mfaToken"]


def verify(api, token, **kw):
    return api.post("/api/v1/auth/mfa/verify", json={"mfaToken": token, **kw}, token=None)


@pytest.fixture
def enrolled(make_user, clock):
    """A partner_technician (a role that does not force MFA) with MFA on; the
    clock is moved one step on so the enable step is in the past."""
    u = make_user("partner_technician")
    u.setup = enrol(u.api, u.password)
    u.secret = u.setup["secret"]
    clock.advance(30)
    return u


@contextmanager
def forced(sql, *roles):
    """Built-in ROLES force MFA (as migration 0009 sets; the session runs with
    it off, see conftest's bootstrap fixture) for the duration."""
    sql("UPDATE roles SET force_mfa = true WHERE name = ANY(%s)", list(roles))
    try:
        yield
    finally:
        sql("UPDATE roles SET force_mfa = false WHERE name = ANY(%s)", list(roles))


def test_migration_forces_mfa_for_builtin_admin_roles(bootstrap):
    assert bootstrap.force_mfa_roles == ["org_admin", "partner_admin"]


def test_setup_answer_and_storage(make_user, sql):
    u = make_user("partner_technician")
    assert_error(u.api.post("/api/v1/auth/mfa/setup", json={"currentPassword": "wrong" * 4}),
                 403, "invalid_password")
    s = mfa_setup(u.api, u.password)
    assert re.fullmatch(r"[A-Z2-7]{32}", s["secret"])  # 160 bits, unpadded
    email = u.email.replace("@", "%40")
    assert s["otpauthUri"] == (f"otpauth://totp/Breeze:{email}?secret={s['secret']}"
                               "&issuer=Breeze&algorithm=SHA1&digits=6&period=30")
    parsed = pyotp.parse_uri(s["otpauthUri"])
    assert parsed.secret == s["secret"] and parsed.name == u.email and parsed.issuer == "Breeze"
    assert s["qrSvg"].startswith("<svg ") and s["qrSvg"].endswith("</svg>")
    assert len(s["recoveryCodes"]) == 10 and len(set(s["recoveryCodes"])) == 10
    assert all(RECOVERY_RE.match(c) for c in s["recoveryCodes"])
    # Only ciphertext and keyed hashes are stored.
    (enc,), = sql("SELECT secret_enc FROM user_mfa WHERE user_id = %s", u.id)
    # enc:v1:<key fingerprint>:<base64url(nonce ‖ ciphertext ‖ tag)> (docs/encryption.md)
    assert re.fullmatch(r"enc:v1:[0-9a-f]{8}:[A-Za-z0-9_-]{64}", enc), enc
    assert s["secret"] not in enc
    hashes = [h for (h,) in sql("SELECT code_hash FROM mfa_recovery_codes WHERE user_id = %s", u.id)]
    assert len(hashes) == 10
    assert not any(c.replace("-", "") in h.upper() for c in s["recoveryCodes"] for h in hashes)
    # Still pending: login needs no second step yet, /me says off.
    assert u.api.get("/api/v1/auth/me").json()["mfaEnabled"] is False
    # Setup again replaces the pending secret: the first one's code no longer enables.
    s2 = mfa_setup(u.api, u.password)
    assert s2["secret"] != s["secret"]
    assert_error(u.api.post("/api/v1/auth/mfa/enable", json={"code": code(s["secret"])}),
                 403, "invalid_code")
    r = u.api.post("/api/v1/auth/mfa/enable", json={"code": code(s2["secret"])})
    assert r.status_code == 200, r.text
    # On: setup is refused until MFA is disabled.
    assert_error(u.api.post("/api/v1/auth/mfa/setup", json={"currentPassword": u.password}),
                 409, "mfa_already_enabled")
    assert_error(u.api.post("/api/v1/auth/mfa/enable", json={"code": code(s2["secret"])}),
                 409, "mfa_already_enabled")


def test_enable_needs_a_setup(make_user):
    u = make_user("partner_technician")
    assert_error(u.api.post("/api/v1/auth/mfa/enable", json={"code": "123456"}),
                 409, "mfa_not_pending")


def test_enable_revokes_other_sessions_and_login_needs_the_code(api, make_user, clock):
    u = make_user("partner_technician")
    other = api.login(u.email, u.password)
    s = enrol(u.api, u.password)
    assert_error(other.get("/api/v1/auth/me"), 401)
    me = u.api.get("/api/v1/auth/me")
    assert me.status_code == 200 and me.json()["mfaEnabled"] is True
    clock.advance(30)
    token = mfa_login(api, u)
    r = verify(api, token, code=code(s["secret"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"]["id"] == u.id and body["tokenType"] == "Bearer"
    assert "mfaEnrollmentRequired" not in body
    me = api.clone(token=body["accessToken"]).get("/api/v1/auth/me")
    assert me.status_code == 200 and me.json()["id"] == u.id


def test_enable_code_is_not_accepted_again_at_login(api, make_user):
    """The step used to enable is spent: the same code cannot log in."""
    u = make_user("partner_technician")
    s = mfa_setup(u.api, u.password)
    c = code(s["secret"])
    assert u.api.post("/api/v1/auth/mfa/enable", json={"code": c}).status_code == 200
    token = mfa_login(api, u)
    assert_error(verify(api, token, code=c), 401, "invalid_code")


def test_replayed_code_refused(api, enrolled):
    c = code(enrolled.secret)
    assert verify(api, mfa_login(api, enrolled), code=c).status_code == 200
    assert_error(verify(api, mfa_login(api, enrolled), code=c), 401, "invalid_code")
    # An earlier step than the last one used is refused too.
    assert_error(verify(api, mfa_login(api, enrolled), code=code(enrolled.secret, -1)),
                 401, "invalid_code")


def test_code_two_steps_away_refused(api, enrolled):
    token = mfa_login(api, enrolled)
    assert_error(verify(api, token, code=code(enrolled.secret, 2)), 401, "invalid_code")
    assert_error(verify(api, token, code=code(enrolled.secret, -2)), 401, "invalid_code")


def test_one_step_either_way_accepted(api, enrolled, clock):
    # One step behind (the enable step is two behind by now).
    clock.advance(30)
    r = verify(api, mfa_login(api, enrolled), code=code(enrolled.secret, -1))
    assert r.status_code == 200, r.text
    # One step ahead.
    r = verify(api, mfa_login(api, enrolled), code=code(enrolled.secret, 1))
    assert r.status_code == 200, r.text
    # That step is spent: the current one (behind it) is refused now.
    assert_error(verify(api, mfa_login(api, enrolled), code=code(enrolled.secret)),
                 401, "invalid_code")


def test_five_wrong_codes_kill_the_token(api, enrolled):
    token = mfa_login(api, enrolled)
    good = code(enrolled.secret)
    wrong = f"{(int(good) + 1) % 1000000:06d}"
    for _ in range(4):
        assert_error(verify(api, token, code=wrong), 401, "invalid_code")
    assert_error(verify(api, token, recoveryCode="AAAA-AAAA"), 401, "invalid_code")
    assert_error(verify(api, token, code=good), 401, "mfa_token_invalid")
    # A new login still works with that code (it was never accepted).
    assert verify(api, mfa_login(api, enrolled), code=good).status_code == 200


def test_mfa_token_expires_after_five_minutes(api, enrolled, clock):
    token = mfa_login(api, enrolled)
    clock.advance(301)
    assert_error(verify(api, token, code=code(enrolled.secret)), 401, "mfa_token_invalid")
    token = mfa_login(api, enrolled)
    clock.advance(290)
    assert verify(api, token, code=code(enrolled.secret)).status_code == 200


def test_mfa_token_is_single_use_and_opaque(api, enrolled, clock, sql):
    token = mfa_login(api, enrolled)
    assert sql("SELECT count(*) FROM mfa_challenges WHERE token_hash = %s", token) == [(0,)]
    assert verify(api, token, code=code(enrolled.secret)).status_code == 200
    clock.advance(30)
    assert_error(verify(api, token, code=code(enrolled.secret)), 401, "mfa_token_invalid")
    assert_error(verify(api, "x" * 43, code=code(enrolled.secret)), 401, "mfa_token_invalid")


def test_verify_needs_exactly_one_code(api, enrolled):
    token = mfa_login(api, enrolled)
    assert_error(verify(api, token), 400, "validation_error")
    assert_error(verify(api, token, code="123456", recoveryCode="AAAA-AAAA"), 400,
                 "validation_error")
    assert_error(verify(api, token, code="123456", extra=1), 400, "validation_error")


def test_recovery_code_single_use_under_concurrency(api, enrolled):
    rc = enrolled.setup["recoveryCodes"][0]
    tokens = [mfa_login(api, enrolled) for _ in range(20)]
    results = [None] * len(tokens)
    start = threading.Barrier(len(tokens))

    def run(i):
        c = api.clone(token=None)
        start.wait()
        results[i] = verify(c, tokens[i], recoveryCode=rc).status_code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(tokens))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [401] * 19, results
    assert_error(verify(api, mfa_login(api, enrolled), recoveryCode=rc), 401, "invalid_code")


@pytest.mark.parametrize("form", [str.lower, lambda c: c.replace("-", ""),
                                  lambda c: c.lower().replace("-", ""), str])
def test_recovery_code_any_case_with_or_without_dash(api, enrolled, form):
    rc = enrolled.setup["recoveryCodes"][3]
    r = verify(api, mfa_login(api, enrolled), recoveryCode=form(rc))
    assert r.status_code == 200, r.text
    assert_error(verify(api, mfa_login(api, enrolled), recoveryCode=rc), 401, "invalid_code")


def test_regenerated_recovery_codes_replace_the_old(api, enrolled):
    assert_error(enrolled.api.post("/api/v1/auth/mfa/recovery-codes",
                                   json={"currentPassword": "nope" * 4}), 403, "invalid_password")
    r = enrolled.api.post("/api/v1/auth/mfa/recovery-codes",
                          json={"currentPassword": enrolled.password})
    assert r.status_code == 200, r.text
    new = r.json()["recoveryCodes"]
    assert len(new) == 10 and not set(new) & set(enrolled.setup["recoveryCodes"])
    assert_error(verify(api, mfa_login(api, enrolled),
                        recoveryCode=enrolled.setup["recoveryCodes"][1]), 401, "invalid_code")
    assert verify(api, mfa_login(api, enrolled), recoveryCode=new[0]).status_code == 200


def test_recovery_codes_need_mfa_on(make_user):
    u = make_user("partner_technician")
    assert_error(u.api.post("/api/v1/auth/mfa/recovery-codes",
                            json={"currentPassword": u.password}), 409, "mfa_not_enabled")


def test_disable(api, enrolled, clock):
    a = enrolled.api
    assert_error(a.post("/api/v1/auth/mfa/disable",
                        json={"code": code(enrolled.secret), "currentPassword": "bad" * 5}),
                 403, "invalid_password")
    assert_error(a.post("/api/v1/auth/mfa/disable",
                        json={"code": code(enrolled.secret, 3), "currentPassword": enrolled.password}),
                 403, "invalid_code")
    r = a.post("/api/v1/auth/mfa/disable",
               json={"code": code(enrolled.secret), "currentPassword": enrolled.password})
    assert r.status_code == 200 and r.json() == {"mfaEnabled": False}, r.text
    r = api.post("/api/v1/auth/login", json={"email": enrolled.email, "password": enrolled.password})
    assert r.status_code == 200 and "accessToken" in r.json(), r.text
    assert_error(a.post("/api/v1/auth/mfa/disable",
                        json={"code": "000000", "currentPassword": enrolled.password}),
                 409, "mfa_not_enabled")


def test_disable_refused_when_the_role_forces_mfa(api, make_user, sql, clock):
    u = make_user("partner_technician")
    s = enrol(u.api, u.password)
    clock.advance(30)
    with forced(sql, "partner_technician"):
        assert_error(u.api.post("/api/v1/auth/mfa/disable",
                                json={"code": code(s["secret"]), "currentPassword": u.password}),
                     403, "mfa_required_by_role")
        assert u.api.get("/api/v1/auth/me").json()["mfaEnabled"] is True
    rows = sql("SELECT details FROM audit_log WHERE actor_id = %s AND action = 'auth.mfa.disable'"
               " AND result = 'failure'", u.id)
    assert [json.loads(d)["reason"] for (d,) in rows] == ["mfa_required_by_role"]


def test_secret_bound_to_its_user(api, enrolled, make_user, sql, clock):
    """A ciphertext copied into another user's row does not open there."""
    other = make_user("partner_technician")
    enrol(other.api, other.password)
    clock.advance(30)
    sql("UPDATE user_mfa SET secret_enc = (SELECT secret_enc FROM user_mfa WHERE user_id = %s)"
        " WHERE user_id = %s", enrolled.id, other.id)
    # The victim's codes do not log the other user in: never a pass.
    r = verify(api, mfa_login(api, other), code=code(enrolled.secret))
    assert r.status_code == 500, r.text


def test_key_rotation_with_previous_key(api, enrolled, spawn_server, env, sql, clock):
    old = env["MFA_ENCRYPTION_KEY"]
    new = secrets.token_hex(32)
    (before,), = sql("SELECT secret_enc FROM user_mfa WHERE user_id = %s", enrolled.id)
    # The new key alone cannot open the secret: refused, never a pass.
    alone = spawn_server(MFA_ENCRYPTION_KEY=new)
    r = verify(Api(alone.url), mfa_login(api, enrolled),
               code=code(enrolled.secret))
    assert r.status_code == 500, r.text
    # With the old key as MFA_ENCRYPTION_KEY_PREVIOUS the user logs in, and
    # the secret is re-sealed under the new key.
    rotated = spawn_server(MFA_ENCRYPTION_KEY=new, MFA_ENCRYPTION_KEY_PREVIOUS=old)
    client = Api(rotated.url)
    r = verify(client, mfa_login(client, enrolled), code=code(enrolled.secret))
    assert r.status_code == 200, r.text
    (after,), = sql("SELECT secret_enc FROM user_mfa WHERE user_id = %s", enrolled.id)
    assert after.split(":")[2] != before.split(":")[2], (before, after)  # the key id
    # From now on the new key alone is enough.
    clock.advance(30)
    c2 = Api(alone.url)
    r = verify(c2, mfa_login(c2, enrolled), code=code(enrolled.secret))
    assert r.status_code == 200, r.text


def test_audit_rows_without_code_values(api, enrolled, sql):
    token = mfa_login(api, enrolled)
    bad = f"{(int(code(enrolled.secret)) + 7) % 1000000:06d}"
    assert_error(verify(api, token, code=bad), 401, "invalid_code")
    good = code(enrolled.secret)
    assert verify(api, token, code=good).status_code == 200
    rows = sql("SELECT action, result, details FROM audit_log WHERE actor_id = %s ORDER BY id",
               enrolled.id)
    actions = [(a, r) for a, r, _ in rows]
    for want in [("auth.mfa.setup", "success"), ("auth.mfa.enable", "success"),
                 ("auth.login.mfa_challenge", "success"), ("auth.mfa.verify.failed", "failure"),
                 ("auth.login", "success")]:
        assert want in actions, actions
    text = json.dumps(rows)
    for secret_value in [bad, good, token, enrolled.secret, *enrolled.setup["recoveryCodes"]]:
        assert secret_value not in text


# ------------------------------------------------------------------ the 428 gate


def route_table():
    p = subprocess.run([str(SERVER_BIN), "routes"], env=base_process_env(), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def concrete(path):
    """A route template with a fresh UUID for every :param."""
    return re.sub(r":[A-Za-z_][A-Za-z0-9_]*", lambda _: str(uuid.uuid4()), path)


def assert_mfa_gate_on_every_route(send):
    """Walks the route table: every authenticated route without ROUTE_MFA_EXEMPT
    answers 428 mfa_enrollment_required (with enrollUrl) and every exempt one
    does not. SEND(method, path, json) makes the request with the credential
    under test (a bearer access token here; an API key the same way)."""
    routes = [r for r in route_table() if r["user"]]
    exempt = {(r["method"], r["path"]) for r in routes if r["mfaExempt"]}
    assert EXEMPT <= exempt, exempt
    gated = 0
    for r in routes:
        body = {} if r["jsonBody"] else None
        resp = send(r["method"], concrete(r["path"]), body)
        if (r["method"], r["path"]) in exempt:
            assert resp.status_code != 428, (r, resp.text)
            continue
        b = assert_error(resp, 428, "mfa_enrollment_required")
        assert b["error"]["enrollUrl"] == "/api/v1/auth/mfa/setup", (r, b)
        gated += 1
    assert gated > 10


def bearer_sender(client):
    def send(method, path, body):
        kw = {} if body is None else {"json": body}
        return client.request(method, path, **kw)
    return send


def test_forced_enrolment_gate_on_every_route_access_token(api, admin, bootstrap, sql):
    """The bootstrap partner_admin is not exempt: with its role forcing MFA and
    none enrolled, only the exempt routes answer."""
    with forced(sql, "partner_admin"):
        r = api.post("/api/v1/auth/login", json={"email": bootstrap.email,
                                                 "password": bootstrap.password})
        assert r.status_code == 200 and r.json()["mfaEnrollmentRequired"] is True, r.text
        fresh = api.clone(token=r.json()["accessToken"])
        for client in (fresh, admin):
            assert_mfa_gate_on_every_route(bearer_sender(client))
        me = admin.get("/api/v1/auth/me").json()
        assert me["role"]["forceMfa"] is True and me["mfaEnabled"] is False
    assert admin.get("/api/v1/organizations").status_code == 200


def test_forced_enrolment_gate_on_every_route_api_key(api, admin, sql):
    """The gate holds for an API key too: a key acts as its creator, so while
    the creator's role forces MFA and none is enrolled, the key gets 428 on
    every non-exempt route (and nothing else on the exempt ones)."""
    perms = admin.get("/api/v1/auth/me").json()["permissions"]
    r = admin.post("/api/v1/api-keys", json={"name": "gate-walk", "permissions": perms})
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    keyed = api.clone(token=None)

    def send(method, path, body):
        kw = {} if body is None else {"json": body}
        return keyed.request(method, path, headers={"X-API-Key": key}, **kw)

    assert send("GET", "/api/v1/organizations", None).status_code == 200
    with forced(sql, "partner_admin"):
        assert_mfa_gate_on_every_route(send)
    assert send("GET", "/api/v1/organizations", None).status_code == 200
    assert admin.delete(f"/api/v1/api-keys/{r.json()['id']}").status_code in (200, 204)


def test_forced_user_enrols_and_passes_the_gate(api, make_user, tenants, sql, clock):
    u = make_user("org_admin", orgId=tenants.a.id)
    with forced(sql, "org_admin"):
        r = api.post("/api/v1/auth/login", json={"email": u.email, "password": u.password})
        assert r.json()["mfaEnrollmentRequired"] is True
        a = api.clone(token=r.json()["accessToken"])
        assert_error(a.get("/api/v1/organizations"), 428, "mfa_enrollment_required")
        s = enrol(a, u.password)
        assert a.get("/api/v1/organizations").status_code == 200
        clock.advance(30)
        r = verify(api, mfa_login(api, u), code=code(s["secret"]))
        assert r.status_code == 200 and "mfaEnrollmentRequired" not in r.json(), r.text
        assert_error(a.post("/api/v1/auth/mfa/disable",
                            json={"code": code(s["secret"], 1), "currentPassword": u.password}),
                     403, "mfa_required_by_role")
