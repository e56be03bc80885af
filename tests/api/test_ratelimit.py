"""Rate limits as wired into the server (docs/rate-limiting.md; checklist
R1-R5, A4): each test spawns servers with the checklist defaults or tiny
limits on a private Redis (so no other test's traffic shares a bucket)."""
import hashlib
import secrets
import subprocess
import threading
import math
import time

import pytest

from conftest import SLOW, Api, assert_error, enroll_body, http_session, uniq
from test_readyz import redis  # noqa: F401  (the private-Redis fixture)

LOGIN = "/api/v1/auth/login"
ENROLL = "/api/v1/agents/enroll"
ME = "/api/v1/auth/me"


def limited(r, limiter_word=None):
    """R is a 429 rate_limited with Retry-After and the X-RateLimit-* headers;
    returns Retry-After in seconds."""
    assert_error(r, 429, "rate_limited")
    if limiter_word:
        assert limiter_word in r.json()["error"]["message"], r.text
    ra = r.headers["Retry-After"]
    assert ra.isdigit() and int(ra) >= 1, ra
    assert r.headers["X-RateLimit-Remaining"] == "0"
    assert int(r.headers["X-RateLimit-Reset"]) >= int(time.time())
    return int(ra)


def limits(**kw):
    """Environment overrides: checklist defaults for every limiter (the
    generous test defaults removed) plus KW."""
    env = {k: None for k in ("RATE_LIMIT_LOGIN", "RATE_LIMIT_LOGIN_IP", "RATE_LIMIT_API_USER",
                             "RATE_LIMIT_AGENT_DEVICE", "AGENT_ORG_RATE_LIMIT_PER_MIN",
                             "RATE_LIMIT_ENROLL", "RATE_LIMIT_MFA")}
    # A generous Redis budget: under the sanitizers a burst of checks can
    # wait longer than the default 100 ms for a pooled connection and fall
    # back to counting in process, which these tests do not want to see.
    env["RATE_LIMIT_REDIS_TIMEOUT_MS"] = "5000"
    env.update(kw)
    return env


def enroll_wrong_secret(client, headers=None):
    """An enrolment attempt that the rate limit counts and the server then
    refuses cheaply (403: wrong enrolment secret, no key lookup)."""
    return client.post(ENROLL, json=enroll_body("brz_ek_" + secrets.token_hex(16), "wrong-secret"),
                       token=None, headers=headers)


def redis_cli(redis, *args):
    out = subprocess.run(["redis-cli", "-p", str(redis.port), "-a", redis.password,
                          "--no-auth-warning", *args], capture_output=True, text=True, timeout=10)
    return out.stdout.strip()


def audit_count(sql, action, column, value):
    """Audit rows of ACTION whose COLUMN (ip_address or actor_id) is VALUE
    (ids are no clock: other tests move the audit sequence)."""
    assert column in ("ip_address", "actor_id")
    return sql(f"SELECT count(*) FROM audit_log WHERE action = %s AND {column} = %s",
               action, value)[0][0]


def fresh_ip():
    return "10.%d.%d.%d" % tuple(secrets.randbelow(254) + 1 for _ in range(3))


def test_api_user_exact_boundaries_and_sliding_window(spawn_server, redis, make_user, bootstrap, clock):
    """Limit 3 / 60 s: the 3rd passes, the 4th is 429; capacity comes back
    one admission at a time as the window slides past each one (a fixed
    window would give all three back at once)."""
    srv = spawn_server(**limits(RATE_LIMIT_API_USER="3/60"), REDIS_URL=redis.url)
    u = make_user("org_viewer", orgId=bootstrap.orgId)
    c = Api(srv.url).login(u.email, u.password)

    r = c.get(ME)  # a1 at offset 0
    assert r.status_code == 200
    assert (r.headers["X-RateLimit-Limit"], r.headers["X-RateLimit-Remaining"]) == ("3", "2")
    clock.set_offset(10)
    assert c.get(ME).headers["X-RateLimit-Remaining"] == "1"  # a2 at 10
    clock.set_offset(20)
    r = c.get(ME)  # a3 at 20: the limit-th passes
    assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "0"
    assert limited(c.get(ME), "api_user") in (39, 40)  # a1 frees at 60
    clock.set_offset(59)
    assert limited(c.get(ME)) == 1
    clock.set_offset(60)
    assert c.get(ME).status_code == 200  # a1 has left the window: one slot
    assert limited(c.get(ME)) in (9, 10)  # a2 frees at 70
    clock.set_offset(70)
    assert c.get(ME).status_code == 200
    assert limited(c.get(ME)) in (9, 10)  # a3 frees at 80
    # Another user has its own bucket; probes are never limited.
    v = make_user("org_viewer", orgId=bootstrap.orgId)
    assert Api(srv.url).login(v.email, v.password).get(ME).status_code == 200
    for _ in range(30):
        r = http_session().get(srv.url + "/healthz", timeout=10)
        assert r.status_code == 200 and "X-RateLimit-Limit" not in r.headers
    assert srv.stop() == 0


def burst(servers, n, fn):
    """N threads, spread round-robin over SERVERS, released together."""
    barrier = threading.Barrier(n)
    clients = [Api(servers[i % len(servers)].url) for i in range(n)]
    codes = [None] * n

    def run(i):
        barrier.wait()
        codes[i] = fn(clients[i]).status_code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60 * SLOW)
    return codes


@pytest.mark.parametrize("instances", [1, 2])
def test_fifty_at_once_against_ten_admit_exactly_ten(spawn_server, redis, instances):
    servers = [spawn_server(**limits(RATE_LIMIT_ENROLL="10/60"), REDIS_URL=redis.url)
               for _ in range(instances)]
    codes = burst(servers, 50, enroll_wrong_secret)
    assert codes.count(403) == 10 and codes.count(429) == 40, codes
    assert redis_cli(redis, "ZCARD", "rl:{127.0.0.1}:enroll") == "10"
    for s in servers:
        assert "ratelimit.redis_unavailable" not in s.log_text()
        assert s.stop() == 0


def test_login_email_variants_share_one_bucket_and_refusals_are_audited_once(
        spawn_server, redis, sql):
    """R1 at the checklist default 5 / 300 s: case and surrounding blanks do
    not make a fresh bucket. A refused login costs no password check and
    writes no auth.login.failed row; the refusal is audited once per window."""
    srv = spawn_server(**limits(), REDIS_URL=redis.url, TRUSTED_PROXY_CIDRS="127.0.0.1/32")
    ip = fresh_ip()
    c = Api(srv.url)
    name = uniq("victim")
    variants = [f"{name}@example.test", f" {name.upper()}@Example.TEST", f"{name}@EXAMPLE.test  ",
                f"\t{name}@example.test", f"{name.capitalize()}@example.Test"]
    t0 = time.monotonic()
    for i, email in enumerate(variants):
        r = c.post(LOGIN, json={"email": email, "password": "wrong-password"}, token=None,
                   headers={"X-Forwarded-For": ip})
        assert_error(r, 401, "invalid_credentials")
        assert r.headers["X-RateLimit-Remaining"] == str(4 - i)
    for _ in range(3):
        ra = limited(c.post(LOGIN, json={"email": f"  {name.upper()}@example.test",
                                         "password": "wrong-password"}, token=None,
                            headers={"X-Forwarded-For": ip}), "login")
        # The first attempt leaves the 300 s window this much later (the
        # five hashes take seconds on a loaded machine).
        assert 300 - math.ceil(time.monotonic() - t0) - 1 <= ra <= 300, ra
    assert audit_count(sql, "auth.login.failed", "ip_address", ip) == 5
    assert audit_count(sql, "auth.login.rate_limited", "ip_address", ip) == 1
    row = sql("SELECT actor_type, resource, result, details FROM audit_log"
              " WHERE action = 'auth.login.rate_limited' AND ip_address = %s", ip)[0]
    assert row[:3] == ("system", "sessions", "denied") and '"login"' in row[3]
    assert name not in row[3].lower()
    # Another e-mail from the same address is still let through (login_ip is 20).
    assert_error(c.post(LOGIN, json={"email": f"other-{name}@example.test",
                                     "password": "wrong-password"}, token=None,
                        headers={"X-Forwarded-For": ip}),
                 401, "invalid_credentials")
    assert srv.stop() == 0


def test_spoofed_forwarded_for_from_untrusted_peer_gets_the_peers_bucket(spawn_server, redis):
    srv = spawn_server(**limits(RATE_LIMIT_ENROLL="2/60"), REDIS_URL=redis.url,
                       TRUSTED_PROXY_CIDRS=None)
    c = Api(srv.url)
    for ip in ("198.51.100.1", "198.51.100.2"):
        assert enroll_wrong_secret(c, {"X-Forwarded-For": ip}).status_code == 403
    limited(enroll_wrong_secret(c, {"X-Forwarded-For": "198.51.100.3"}), "enroll")
    assert srv.stop() == 0


def test_ipv6_slash64_shares_a_bucket_behind_a_trusted_proxy(spawn_server, redis):
    srv = spawn_server(**limits(RATE_LIMIT_ENROLL="2/60"), REDIS_URL=redis.url,
                       TRUSTED_PROXY_CIDRS="127.0.0.1/32")
    c = Api(srv.url)
    xff = lambda ip: {"X-Forwarded-For": ip}  # noqa: E731
    assert enroll_wrong_secret(c, xff("2001:db8:1:2::1")).status_code == 403
    assert enroll_wrong_secret(c, xff("2001:db8:1:2:ffff:ffff:ffff:5")).status_code == 403
    limited(enroll_wrong_secret(c, xff("2001:db8:1:2::abcd")))
    # The next /64, and an IPv4 client, each have their own bucket.
    assert enroll_wrong_secret(c, xff("2001:db8:1:3::1")).status_code == 403
    assert enroll_wrong_secret(c, xff("203.0.113.9")).status_code == 403
    assert redis_cli(redis, "ZCARD", "rl:{2001:db8:1:2::/64}:enroll") == "2"
    assert srv.stop() == 0


def test_retry_after_of_each_limiter(spawn_server, redis, make_user, bootstrap, agents, sql):
    """Each limiter answers Retry-After until its oldest admission leaves its
    window (agent_org: always 60); a request refused by one limiter costs the
    others nothing."""
    srv = spawn_server(**limits(RATE_LIMIT_LOGIN="2/100", RATE_LIMIT_LOGIN_IP="3/200",
                                RATE_LIMIT_API_USER="2/30", RATE_LIMIT_AGENT_DEVICE="2/40",
                                AGENT_ORG_RATE_LIMIT_PER_MIN="3", RATE_LIMIT_ENROLL="3/50",
                                RATE_LIMIT_MFA="2/70"),
                       REDIS_URL=redis.url, TRUSTED_PROXY_CIDRS="127.0.0.1/32")
    c = Api(srv.url)

    def login(email, ip="192.0.2.10"):
        return c.post(LOGIN, json={"email": email, "password": "wrong-password"}, token=None,
                      headers={"X-Forwarded-For": ip})

    e1, e2, e3 = (f"{uniq('ra')}@example.test" for _ in range(3))
    assert login(e1).status_code == 401 and login(e1).status_code == 401
    assert limited(login(e1), "login") in (99, 100)  # not counted in login_ip
    assert login(e2).status_code == 401  # login_ip: 3rd
    assert limited(login(e3), "login_ip") in (199, 200)

    # API per user (logged in from another address).
    u = make_user("org_viewer", orgId=bootstrap.orgId)
    uc = Api(srv.url).login(u.email, u.password)
    assert uc.get(ME).status_code == 200 and uc.get(ME).status_code == 200
    assert limited(uc.get(ME), "api_user") in (29, 30)

    # Enrolment (two real devices, enrolled through the spawned server).
    devs = []
    for _ in range(2):
        key = agents.create_key()["key"]
        r = Api(srv.url).post(ENROLL, json=enroll_body(key, agents.secret), token=None,
                              headers={"X-Forwarded-For": "192.0.2.20"})
        assert r.status_code == 201, r.text
        devs.append(r.json())
    enroll_hdr = {"X-Forwarded-For": "192.0.2.20"}
    assert enroll_wrong_secret(c, enroll_hdr).status_code == 403
    assert limited(enroll_wrong_secret(c, enroll_hdr), "enroll") in (49, 50)

    # Agents: device 2 / 40 s, organization 3 a minute.
    def hb(d):
        return c.post(f"/api/v1/agents/{d['agentId']}/heartbeat", json={"status": "online"},
                      token=d["authToken"])
    a, b = devs
    assert hb(a).status_code == 200 and hb(a).status_code == 200
    assert limited(hb(a), "agent_device") in (39, 40)  # not counted for the org
    r = hb(b)
    assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "0"  # org: 3rd
    assert limited(hb(b), "agent_org") == 60

    # MFA verification, by the user of the mfaToken.
    token = secrets.token_urlsafe(32)
    sql("INSERT INTO mfa_challenges (user_id, token_hash, expires_at)"
        " VALUES (%s, %s, now() + interval '5 minutes')", u.id,
        hashlib.sha256(token.encode()).hexdigest())

    def verify():
        return c.post("/api/v1/auth/mfa/verify", json={"mfaToken": token, "code": "000000"},
                      token=None)
    assert verify().status_code == 401 and verify().status_code == 401
    assert limited(verify(), "mfa") in (69, 70)
    assert limited(verify()) in (69, 70)
    assert audit_count(sql, "auth.mfa.verify.rate_limited", "actor_id", u.id) == 1
    assert audit_count(sql, "auth.mfa.verify.failed", "actor_id", u.id) == 2
    assert srv.stop() == 0


def test_redis_down_means_local_limits_then_shared_again(spawn_server, redis):
    srv = spawn_server(**limits(RATE_LIMIT_ENROLL="3/60"), REDIS_URL=redis.url)
    c = Api(srv.url)
    assert enroll_wrong_secret(c).status_code == 403
    assert redis_cli(redis, "ZCARD", "rl:{127.0.0.1}:enroll") == "1"

    redis.stop()
    # In process: the same limit, counted afresh by this instance; never unlimited.
    codes = [enroll_wrong_secret(c).status_code for _ in range(5)]
    assert codes == [403, 403, 403, 429, 429], codes
    assert srv.log_text().count("ratelimit.redis_unavailable") == 1

    redis.start()  # no persistence: an empty Redis
    deadline = time.monotonic() + 20 * SLOW
    while "ratelimit.redis_resumed" not in srv.log_text():
        assert time.monotonic() < deadline, srv.log_text()[-2000:]
        enroll_wrong_secret(c)
        time.sleep(0.3)
    # Shared again: the admissions since the return are in Redis.
    n = int(redis_cli(redis, "ZCARD", "rl:{127.0.0.1}:enroll") or 0)
    assert n >= 1
    codes = [enroll_wrong_secret(c).status_code for _ in range(4 - n)]
    assert codes == [403] * (3 - n) + [429], codes
    assert redis_cli(redis, "ZCARD", "rl:{127.0.0.1}:enroll") == "3"
    assert srv.stop() == 0


def test_deny_mode_answers_503_while_redis_is_down(spawn_server, redis):
    srv = spawn_server(**limits(), REDIS_URL=redis.url, RATE_LIMIT_ON_REDIS_FAILURE="deny")
    c = Api(srv.url)
    assert enroll_wrong_secret(c).status_code == 403
    redis.stop()
    for r in (enroll_wrong_secret(c),
              c.post(LOGIN, json={"email": "x@example.test", "password": "pw"}, token=None)):
        assert_error(r, 503, "rate_limit_unavailable")
        assert r.headers["Retry-After"] == "1"
    assert http_session().get(srv.url + "/healthz", timeout=10).status_code == 200
    redis.start()
    deadline = time.monotonic() + 20 * SLOW
    while enroll_wrong_secret(c).status_code == 503:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert srv.stop() == 0


def test_step_up_credentials_count_against_the_mfa_limit(spawn_server, redis, make_user, bootstrap,
                                                          sql):
    """A stolen access token is no faster a password or TOTP oracle than the
    login and MFA routes: every re-entered credential of a signed-in user
    (password change, MFA setup, disable, recovery codes) counts against the
    per-user `mfa` limiter, before the credential is checked."""
    srv = spawn_server(**limits(RATE_LIMIT_MFA="3/300"), REDIS_URL=redis.url)
    u = make_user("org_viewer", orgId=bootstrap.orgId)
    c = Api(srv.url).login(u.email, u.password)
    wrong = {"currentPassword": "wrong-" + u.password, "newPassword": "Another-Long-Pass-99"}
    assert_error(c.post("/api/v1/auth/password", json=wrong), 403, "invalid_current_password")
    assert_error(c.post("/api/v1/auth/mfa/setup", json={"currentPassword": "wrong" * 4}), 403,
                 "invalid_password")
    # (Counted even when refused for another reason.)
    assert_error(c.post("/api/v1/auth/mfa/recovery-codes", json={"currentPassword": "wrong" * 4}),
                 409, "mfa_not_enabled")
    # The fourth guess is refused before the password is looked at, even
    # the right one.
    right = {"currentPassword": u.password, "newPassword": "Another-Long-Pass-99"}
    assert limited(c.post("/api/v1/auth/password", json=right), "mfa") > 200
    assert limited(c.post("/api/v1/auth/mfa/disable",
                          json={"code": "000000", "currentPassword": u.password}), "mfa") > 200
    assert limited(c.post("/api/v1/auth/mfa/setup", json={"currentPassword": u.password}), "mfa")
    assert audit_count(sql, "auth.step_up.rate_limited", "actor_id", u.id) == 1
    # Nothing changed, and other routes and users are not held up.
    assert c.get(ME).status_code == 200
    v = make_user("org_viewer", orgId=bootstrap.orgId)
    vc = Api(srv.url).login(v.email, v.password)
    assert_error(vc.post("/api/v1/auth/password", json={**wrong, "currentPassword": "x" * 12}),
                 403, "invalid_current_password")
    assert Api(srv.url).login(u.email, u.password).get(ME).status_code == 200
