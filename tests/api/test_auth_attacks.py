"""Attacks on sessions and MFA (issue 8 §1, §2): races between refresh,
logout, password change and reuse detection; cookie, CSRF and Origin tricks;
the session boundaries on the test clock; concurrent guesses at an mfaToken;
the forced-enrolment gate under path and method tricks; secrets in logs."""
import socket
import threading

import pytest

from conftest import SLOW, Api, assert_error
from test_mfa import code, enrol, forced, mfa_login, verify
from test_sessions import (CSRF, LOGOUT, REFRESH, RT, cookie_login, jar, me, raw, refresh)


@pytest.fixture
def user(make_user, bootstrap):
    return make_user("org_viewer", orgId=bootstrap.orgId)


def parallel(fns):
    """Runs the callables FNS at once (a barrier); returns their results."""
    out = [None] * len(fns)
    gate = threading.Barrier(len(fns))

    def run(i):
        gate.wait()
        out[i] = fns[i]()

    ts = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120 * SLOW)
    return out


def raw_http(url, request_bytes):
    """Sends REQUEST_BYTES to the server at URL; returns the status code."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=30 * SLOW) as s:
        s.sendall(request_bytes)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ")[1]) if data else 0


# ------------------------------------------------------------------ refresh races


def test_refresh_racing_logout_leaves_nothing_alive(api, user):
    for _ in range(5):
        c, _ = cookie_login(api.base, user.email, user.password)
        rt, csrf = jar(c)
        a, b = Api(api.base), Api(api.base)
        r1, r2 = parallel([lambda: raw(a.base, REFRESH, rt, csrf),
                           lambda: raw(b.base, LOGOUT, rt, csrf)])
        assert r2.status_code == 200, r2.text
        if r1.status_code == 200:
            assert_error(me(c, token=r1.json()["accessToken"]), 401)
            new_rt = r1.cookies.get(RT)
            assert_error(raw(api.base, REFRESH, new_rt, csrf), 401)
        assert_error(me(c), 401)


def test_refresh_racing_password_change(api, make_user, bootstrap):
    u = make_user("org_viewer", orgId=bootstrap.orgId)
    pw = u.password
    for i in range(3):
        victim, _ = cookie_login(api.base, u.email, pw)
        rt, csrf = jar(victim)
        owner = api.login(u.email, pw)
        new_pw = f"Another-long-pass-{i}-{pw}"
        r1, r2 = parallel([
            lambda: raw(api.base, REFRESH, rt, csrf),
            lambda: owner.post("/api/v1/auth/password",
                               json={"currentPassword": pw, "newPassword": new_pw})])
        assert r2.status_code == 200, r2.text
        pw = new_pw
        if r1.status_code == 200:
            assert_error(me(victim, token=r1.json()["accessToken"]), 401)
            assert_error(raw(api.base, REFRESH, r1.cookies.get(RT), csrf), 401)
        assert me(owner).status_code == 200


def test_thief_and_victim_race_with_one_token(api, user):
    """Both hold generation 0 and refresh at once: whoever wins, the loser's
    replay is reuse, so neither ends with a live token."""
    for _ in range(5):
        c, _ = cookie_login(api.base, user.email, user.password)
        rt, csrf = jar(c)
        results = parallel([lambda: raw(api.base, REFRESH, rt, csrf) for _ in range(2)])
        winners = [r for r in results if r.status_code == 200]
        assert len(winners) == 1
        w = winners[0]
        assert_error(me(c, token=w.json()["accessToken"]), 401)
        assert_error(raw(api.base, REFRESH, w.cookies.get(RT), csrf), 401)


def test_reuse_racing_a_rotation(api, user):
    """An old generation is replayed while the holder rotates the current one."""
    for _ in range(5):
        c, _ = cookie_login(api.base, user.email, user.password)
        old_rt, csrf = jar(c)
        assert refresh(c).status_code == 200
        cur_rt, _ = jar(c)
        r_old, r_cur = parallel([lambda: raw(api.base, REFRESH, old_rt, csrf),
                                 lambda: raw(api.base, REFRESH, cur_rt, csrf)])
        assert r_old.status_code == 401
        if r_cur.status_code == 200:
            assert_error(me(c, token=r_cur.json()["accessToken"]), 401)
            assert_error(raw(api.base, REFRESH, r_cur.cookies.get(RT), csrf), 401)


def test_grace_never_covers_an_older_generation(spawn_server, bootstrap, make_user):
    srv = spawn_server(REFRESH_REUSE_GRACE_SECONDS="60")
    u = make_user("org_viewer", orgId=bootstrap.orgId)
    c, _ = cookie_login(srv.url, u.email, u.password)
    g0, csrf = jar(c)
    assert refresh(c).status_code == 200
    g1, _ = jar(c)
    assert refresh(c).status_code == 200
    assert_error(raw(srv.url, REFRESH, g1, csrf), 401, "refresh_raced")
    assert me(c).status_code == 200
    assert_error(raw(srv.url, REFRESH, g0, csrf), 401, "refresh_token_reused")
    assert_error(me(c), 401)


# ------------------------------------------------------------------ cookies, CSRF, Origin


def test_cookie_tricks(api, user):
    a = Api(api.base)

    def post(cookie, hdr):
        return a.post(REFRESH, token=None, headers={"Cookie": cookie, "X-Breeze-CSRF": hdr})

    c, _ = cookie_login(api.base, user.email, user.password)
    rt, csrf = jar(c)
    refused = [
        (f"{RT}={rt}; {CSRF}=", "", 403),  # empty CSRF cookie and header
        (f"{RT}={rt}; {CSRF}={csrf}; {CSRF}={csrf}", csrf, 403),  # the CSRF cookie twice
        (f"{RT}={rt}, {CSRF}={csrf}", csrf, 403),  # a comma is no separator
        (f"{RT} = {rt}; {CSRF}={csrf}", csrf, 401),
        (f"{RT.upper()}={rt}; {CSRF}={csrf}", csrf, 401),  # names are case-sensitive
        (f"__Host-{RT}={rt}; {CSRF}={csrf}", csrf, 401),
        (f"{RT}={'A' * 6000}; {CSRF}={csrf}", csrf, 401),
        (f"{RT}={rt}; {CSRF}={csrf}x", f"{csrf}x", 403),
        (f"{RT}={rt}; {CSRF}={csrf}", csrf[:-1], 403),
    ]
    for cookie, hdr, status in refused:
        assert post(cookie, hdr).status_code == status, cookie[:80]
    r = a.post(REFRESH, token=None, headers={"Cookie": f"{RT}={rt}\u00e9; {CSRF}={csrf}".encode(),
                                             "X-Breeze-CSRF": csrf})
    assert_error(r, 401, "invalid_refresh_token")
    host = api.base.split("//")[1]
    # The cookies split across two Cookie fields: refused, nothing consumed.
    req = (f"POST {REFRESH} HTTP/1.1\r\nHost: {host}\r\nCookie: {RT}={rt}\r\n"
           f"Cookie: {CSRF}={csrf}\r\nX-Breeze-CSRF: {csrf}\r\nContent-Length: 0\r\n"
           "Connection: close\r\n\r\n").encode()
    assert raw_http(api.base, req) == 403
    # A 200 kB Cookie field: 431, and the server lives on.
    req = (f"POST {REFRESH} HTTP/1.1\r\nHost: {host}\r\nCookie: {'z=' + 'C' * 200000}\r\n"
           "Content-Length: 0\r\nConnection: close\r\n\r\n").encode()
    assert raw_http(api.base, req) == 431
    assert me(c).status_code == 200
    assert refresh(c).status_code == 200  # none of that consumed the token


def test_origin_tricks(spawn_server, bootstrap, make_user):
    srv = spawn_server(ALLOWED_ORIGINS="https://rmm.example.test")
    u = make_user("org_viewer", orgId=bootstrap.orgId)
    c, _ = cookie_login(srv.url, u.email, u.password)
    rt, csrf = jar(c)
    for bad in ("null", "https://rmm.example.test/", "https://user@rmm.example.test",
                "https://:pw@rmm.example.test", "https://rmm.example.test.", "https://rmm.example.test:443/",
                "https://rmm.example.test#x", "https://rmm.example.test?x",
                "https://rmm.example.test, https://evil.example", "https://evil.example",
                "https://rmm.example.test%2eevil.example",
                "https://xn--rmm.example.test", "HTTPS://RMM.EXAMPLE.TEST:0443",
                "https://rmm.example.test:"):
        r = raw(srv.url, REFRESH, "A" * 43, csrf, {"Origin": bad})
        assert r.status_code == 403 or (r.status_code == 401 and bad in (
            "HTTPS://RMM.EXAMPLE.TEST:0443", "https://rmm.example.test:")), (bad, r.status_code)
    # Spellings of the same origin (a browser sends none of them) pass on to
    # the refresh-token check.
    for same in ("https://rmm%2eexample.test", "HTTPS://RMM.EXAMPLE.TEST:0443"):
        assert raw(srv.url, REFRESH, "A" * 43, csrf, {"Origin": same}).status_code == 401
    assert refresh(c).status_code == 200


# ------------------------------------------------------------------ boundaries


def test_max_age_exact_boundary(spawn_server, bootstrap, make_user, clock, sql):
    srv = spawn_server(SESSION_MAX_AGE="600", SESSION_IDLE_TIMEOUT="0")
    u = make_user("org_viewer", orgId=bootstrap.orgId)
    c, _ = cookie_login(srv.url, u.email, u.password)
    sid = me(c).json()["sessionId"]
    (exp,), = sql("SELECT extract(epoch FROM expires_at)::bigint FROM sessions WHERE id = %s", sid)
    import time
    from conftest import TEST_CLOCK
    now = int(time.time()) + TEST_CLOCK.offset
    clock.advance(exp - now - 2)
    assert refresh(c).status_code == 200
    clock.advance(3)
    assert_error(refresh(c), 401, "session_expired")
    assert_error(me(c), 401)


def test_idle_exact_boundary(spawn_server, bootstrap, make_user, clock, sql):
    srv = spawn_server(SESSION_IDLE_TIMEOUT="600")
    u = make_user("org_viewer", orgId=bootstrap.orgId)
    c, _ = cookie_login(srv.url, u.email, u.password)
    sid = me(c).json()["sessionId"]
    sql("UPDATE sessions SET last_seen_at = last_seen_at WHERE id = %s", sid)
    clock.advance(605)
    assert_error(refresh(c), 401, "session_expired")
    assert_error(me(c), 401)


# ------------------------------------------------------------------ sessions and passwords


def test_delete_other_users_session_is_404(api, make_user, bootstrap):
    a = make_user("org_viewer", orgId=bootstrap.orgId)
    b = make_user("org_viewer", orgId=bootstrap.orgId)
    bs = b.api.get("/api/v1/auth/sessions").json()["sessions"]
    assert_error(a.api.delete(f"/api/v1/auth/sessions/{bs[0]['id']}"), 404, "not_found")
    assert me(b.api).status_code == 200
    ids = {s["id"] for s in a.api.get("/api/v1/auth/sessions").json()["sessions"]}
    assert bs[0]["id"] not in ids


def test_password_change_edges(api, make_user, bootstrap):
    u = make_user("org_viewer", orgId=bootstrap.orgId)
    c = u.api
    assert_error(c.post("/api/v1/auth/password", json={"newPassword": "x" * 20}), 400)
    assert_error(c.post("/api/v1/auth/password",
                        json={"currentPassword": "wrong" * 4, "newPassword": "y" * 20}),
                 403, "invalid_current_password")
    r = c.post("/api/v1/auth/password",
               json={"currentPassword": u.password, "newPassword": u.password})
    assert r.status_code in (200, 400)
    assert me(c).status_code == 200  # never the caller's own session


# ------------------------------------------------------------------ MFA


@pytest.fixture
def enrolled(make_user, clock):
    u = make_user("partner_technician")
    u.setup = enrol(u.api, u.password)
    u.secret = u.setup["secret"]
    clock.advance(30)
    return u


def test_concurrent_wrong_codes_at_most_five_evaluated(api, enrolled):
    token = mfa_login(api, enrolled)
    good = code(enrolled.secret)
    wrong = [f"{(int(good) + k) % 1000000:06d}" for k in range(1, 13)]
    clients = [api.clone(token=None) for _ in wrong]
    results = parallel([lambda c=c, w=w: verify(c, token, code=w) for c, w in zip(clients, wrong)])
    evaluated = [r for r in results if r.json()["error"]["code"] == "invalid_code"]
    assert all(r.status_code == 401 for r in results)
    assert len(evaluated) <= 5, [r.json()["error"]["code"] for r in results]
    assert_error(verify(api, token, code=good), 401, "mfa_token_invalid")


def test_concurrent_wrong_and_right_codes(api, enrolled):
    token = mfa_login(api, enrolled)
    good = code(enrolled.secret)
    codes = [f"{(int(good) + k) % 1000000:06d}" for k in range(1, 9)] + [good]
    clients = [api.clone(token=None) for _ in codes]
    results = parallel([lambda c=c, w=w: verify(c, token, code=w) for c, w in zip(clients, codes)])
    ok = [r for r in results if r.status_code == 200]
    assert len(ok) <= 1
    evaluated = [r for r in results if r.status_code == 401
                 and r.json()["error"]["code"] == "invalid_code"]
    if ok:
        assert len(evaluated) <= 4


def test_mfa_token_of_another_user_or_after_success(api, enrolled, make_user, clock):
    other = make_user("partner_technician")
    other.secret = enrol(other.api, other.password)["secret"]
    clock.advance(30)
    t = mfa_login(api, enrolled)
    # The other user's code with this user's token.
    assert_error(verify(api, t, code=code(other.secret)), 401, "invalid_code")
    assert verify(api, t, code=code(enrolled.secret)).status_code == 200
    clock.advance(30)
    assert_error(verify(api, t, code=code(enrolled.secret)), 401, "mfa_token_invalid")


def test_code_of_an_earlier_step_after_a_later_one(api, enrolled):
    t = mfa_login(api, enrolled)
    assert verify(api, t, code=code(enrolled.secret, 1)).status_code == 200
    t = mfa_login(api, enrolled)
    assert_error(verify(api, t, code=code(enrolled.secret, 0)), 401, "invalid_code")


def test_enable_with_code_of_another_secret(make_user):
    a = make_user("partner_technician")
    b = make_user("partner_technician")
    sa = a.api.post("/api/v1/auth/mfa/setup", json={"currentPassword": a.password}).json()
    a.api.post("/api/v1/auth/mfa/setup", json={"currentPassword": a.password})  # replaces it
    assert_error(a.api.post("/api/v1/auth/mfa/enable", json={"code": code(sa["secret"])}),
                 403, "invalid_code")
    sb = b.api.post("/api/v1/auth/mfa/setup", json={"currentPassword": b.password}).json()
    assert_error(a.api.post("/api/v1/auth/mfa/enable", json={"code": code(sb["secret"])}),
                 403, "invalid_code")


def test_setup_while_enabled(api, enrolled):
    assert_error(enrolled.api.post("/api/v1/auth/mfa/setup",
                                   json={"currentPassword": enrolled.password}),
                 409, "mfa_already_enabled")


def test_password_change_kills_pending_mfa_tokens(api, enrolled, clock):
    """Whoever learnt the old password and got an mfaToken with it must not
    finish that login after the owner changed the password."""
    t = mfa_login(api, enrolled)
    c = api.clone(token=None)
    owner = c.clone(token=verify(c, mfa_login(api, enrolled),
                                 code=code(enrolled.secret)).json()["accessToken"])
    new_pw = "A-brand-new-long-password-1"
    r = owner.post("/api/v1/auth/password",
                   json={"currentPassword": enrolled.password, "newPassword": new_pw})
    assert r.status_code == 200, r.text
    clock.advance(30)
    assert_error(verify(api, t, code=code(enrolled.secret)), 401, "mfa_token_invalid")


def test_gate_path_and_method_tricks(api, make_user, bootstrap, sql):
    u = make_user("org_admin", orgId=bootstrap.orgId)
    with forced(sql, "org_admin"):
        c = api.login(u.email, u.password)
        for path in ("/api/v1/orgs", "/api/v1/orgs/", "/api/v1//orgs", "/API/V1/ORGS",
                     "/api/v1/%6frgs", "/api/v1/auth/../orgs", "/api/v1/auth/me/../../orgs",
                     "/api/v1/auth/sessions", "/api/v1/auth/sessions/"):
            for method in ("GET", "HEAD", "OPTIONS"):
                r = c.request(method, path)
                assert r.status_code in (404, 405, 428), (method, path, r.status_code)
                if r.status_code == 200:
                    pytest.fail(f"{method} {path} passed the gate")
        r = c.post("/api/v1/auth/password", json={"currentPassword": u.password,
                                                   "newPassword": "x" * 20})
        assert r.status_code == 428


def test_secrets_not_in_server_log(api, enrolled, server):
    t = mfa_login(api, enrolled)
    good = code(enrolled.secret)
    assert verify(api, t, code=good).status_code == 200
    log = server.log_path.read_text(errors="replace")
    for v in [enrolled.secret, good, t, *enrolled.setup["recoveryCodes"]]:
        assert v not in log


def test_fresh_mfa_tokens_do_not_buy_unlimited_guesses(api, enrolled, clock):
    """Whoever has the password can log in again for a fresh mfaToken at any
    time: without a limit per user, 5 guesses per token would be unlimited
    guesses at the code. Past MFA_USER_MAX_FAILURES wrong codes in
    MFA_FAILURE_WINDOW_S even the right code is refused; later it works."""
    good = code(enrolled.secret)
    wrong = f"{(int(good) + 1) % 1000000:06d}"
    for _ in range(4):  # 4 tokens, 20 wrong codes
        t = mfa_login(api, enrolled)
        for _ in range(5):
            assert_error(verify(api, t, code=wrong), 401, "invalid_code")
    r = verify(api, mfa_login(api, enrolled), code=good)
    assert_error(r, 401, "mfa_token_invalid")
    assert "too many" in r.json()["error"]["message"]
    clock.advance(901)
    assert verify(api, mfa_login(api, enrolled), code=code(enrolled.secret)).status_code == 200


def test_password_change_racing_a_verify(api, enrolled):
    """The change drops the pending mfaTokens while a verify of one runs: no
    deadlock, and a session the verify won is revoked with the others."""
    pw = enrolled.password
    c = api.clone(token=None)
    owner = c.clone(token=verify(c, mfa_login(api, enrolled),
                                 code=code(enrolled.secret)).json()["accessToken"])
    for i in range(4):
        t = mfa_login(api, enrolled)
        new_pw = f"Racing-password-{i}-{pw}"
        v, p = parallel([
            lambda: verify(api.clone(token=None), t, code=code(enrolled.secret, 1 if i % 2 else 0)),
            lambda: owner.post("/api/v1/auth/password",
                               json={"currentPassword": pw, "newPassword": new_pw})])
        assert p.status_code == 200, p.text
        pw = enrolled.password = new_pw
        assert v.status_code in (200, 401), v.text
        if v.status_code == 200:
            assert_error(me(c, token=v.json()["accessToken"]), 401)
