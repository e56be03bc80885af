"""Idempotency-Key on the create routes (src/server/http/idempotency.c).

A retry with the same key and body returns the first answer (marked
Idempotent-Replayed) and changes nothing; the same key with another body is
422; another caller's identical key is another key; concurrent duplicates
create one object; an answer that held a secret shown once is never replayed
(409 idempotency_key_secret_withheld with the rest of it)."""
import hashlib
import socket
import threading
import urllib.parse
import uuid

import psycopg2
import pytest

from conftest import assert_error, enroll_body, superuser_breeze_url, uniq


class Case:
    """One create route: how to send it, where its object and audit row live,
    and which secret member (if any) its answer holds."""

    def __init__(self, name, path, body, table, col, action, id_member="id", secret=None):
        self.name, self._path, self._body = name, path, body
        self.table, self.col, self.action = table, col, action
        self.id_member, self.secret = id_member, secret

    def path(self, env):
        return self._path(env)

    def body(self, env):
        return self._body(env)


CASES = [
    Case("organization", lambda e: "/api/v1/organizations", lambda e: {"name": uniq("idem-org")},
         "organizations", "name", "organization.create"),
    Case("site", lambda e: f"/api/v1/organizations/{e.org.id}/sites",
         lambda e: {"name": uniq("idem-site")}, "sites", "name", "site.create"),
    Case("user", lambda e: "/api/v1/users",
         lambda e: {"email": f"{uniq('idem')}@example.test", "name": "Idem", "role": "org_viewer",
                    "orgId": e.org.id, "password": "Pw-" + uuid.uuid4().hex},
         "users", "email", "user.create"),
    Case("enrollment_key", lambda e: "/api/v1/enrollment-keys",
         lambda e: {"orgId": e.org.id, "siteId": e.org.site_id, "name": uniq("idem-key")},
         "enrollment_keys", "name", "enrollment_key.create", secret="key"),
    Case("enroll", lambda e: "/api/v1/agents/enroll",
         lambda e: enroll_body(e.agents.create_key(org_id=e.org.id, site_id=e.org.site_id,
                                                   maxUsage=5)["key"], e.agents.secret),
         "devices", "hostname", "device.enroll", id_member="agentId", secret="authToken"),
]
IDS = [c.name for c in CASES]


@pytest.fixture(scope="module")
def ctx(admin, make_org, agents):
    class E:
        pass
    e = E()
    e.admin, e.org, e.agents = admin, make_org(), agents
    return e


def send(env, case, body, key, client=None):
    client = client or env.admin
    headers = {} if key is None else {"Idempotency-Key": key}
    token = None if case.name == "enroll" else client.token
    return client.post(case.path(env), json=body, headers=headers, token=token)


def count(sql, case, body):
    member = {"name": "name", "email": "email", "hostname": "hostname"}[case.col]
    return sql(f"SELECT count(*) FROM {case.table} WHERE {case.col} = %s", body[member])[0][0]


def audit_rows(sql, case, resource_id):
    return sql("SELECT count(*) FROM audit_log WHERE action = %s AND resource_id = %s",
               case.action, resource_id)[0][0]


def check_replay(case, first, again):
    """AGAIN is the replay of FIRST: the same answer, or for a secret the
    409 that withholds it but carries the rest."""
    assert again.headers.get("Idempotent-Replayed") == "true", again.headers
    if case.secret is None:
        assert again.status_code == first.status_code == 201, again.text
        assert again.json() == first.json()
        return
    body = assert_error(again, 409, "idempotency_key_secret_withheld")
    want = dict(first.json())
    assert want.pop(case.secret)
    assert body["resource"] == want
    assert case.secret not in body["resource"]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_retry_returns_first_answer_and_changes_nothing(ctx, sql, case):
    env = ctx
    body, key = case.body(env), str(uuid.uuid4())
    first = send(env, case, body, key)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    rid = first.json()[case.id_member]
    for _ in range(2):
        check_replay(case, first, send(env, case, body, key))
    assert count(sql, case, body) == 1
    assert audit_rows(sql, case, rid) == 1
    # The remembered answer never holds the secret.
    rows = sql("SELECT response::text, withheld FROM idempotency_keys"
               " WHERE route = %s AND key_hash = encode(sha256(%s::bytea), 'hex')",
               f"POST {urllib.parse.unquote(case.path(env)).replace(env.org.id, ':id')}",
               key.encode())
    assert len(rows) == 1
    assert rows[0][1] == (case.secret is not None)
    if case.secret:
        assert first.json()[case.secret] not in rows[0][0]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_same_key_other_body_is_422(ctx, sql, case):
    env = ctx
    key = str(uuid.uuid4())
    b1, b2 = case.body(env), case.body(env)
    if case.name == "enroll":
        b2["enrollmentKey"] = b1["enrollmentKey"]  # the same caller, another host
    assert send(env, case, b1, key).status_code == 201
    assert_error(send(env, case, b2, key), 422, "idempotency_key_reused")
    assert count(sql, case, b2) == 0


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_no_key_behaves_as_before(ctx, sql, case):
    env = ctx
    body = case.body(env)
    r = send(env, case, body, None)
    assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers
    again = send(env, case, body, None)
    assert "Idempotent-Replayed" not in again.headers
    if case.name in ("enroll", "enrollment_key"):
        # Without a key a repeat is a new request: a second key or device.
        assert again.status_code == 201, again.text
        assert count(sql, case, body) == 2
    else:
        # ... here refused, the name or e-mail address being taken.
        assert_error(again, 409, "conflict")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_other_caller_same_key_is_another_key(ctx, sql, make_user, case):
    env = ctx
    key, body = str(uuid.uuid4()), case.body(env)
    first = send(env, case, body, key)
    assert first.status_code == 201
    if case.name == "enroll":
        # Another agent: another enrolment key, the same Idempotency-Key value.
        r = send(env, case, case.body(env), key)
        assert r.status_code == 201, r.text
    else:
        # Another user sends the same key and the very same body: it runs as
        # its own request (the name or e-mail address is taken by now, or a
        # second object), never answered from the first caller's row.
        other = make_user("partner_admin")
        r = send(env, case, body, key, client=other.api)
        if r.status_code != 201:
            assert_error(r, 409, "conflict")
    assert "Idempotent-Replayed" not in r.headers
    if r.status_code == 201:
        assert r.json()[case.id_member] != first.json()[case.id_member]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_concurrent_duplicates_create_one(ctx, sql, case):
    env = ctx
    body, key = case.body(env), str(uuid.uuid4())
    clients = [env.admin.clone() for _ in range(4)]
    barrier = threading.Barrier(len(clients))
    out = [None] * len(clients)

    def go(i):
        barrier.wait()
        out[i] = send(env, case, body, key, client=clients[i])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fresh = [r for r in out if r.status_code == 201 and "Idempotent-Replayed" not in r.headers]
    assert len(fresh) == 1, [(r.status_code, r.text[:200]) for r in out]
    for r in out:
        if r is fresh[0]:
            continue
        if r.status_code == 409 and r.json()["error"]["code"] == "idempotency_key_in_progress":
            assert r.headers.get("Retry-After")
        else:
            check_replay(case, fresh[0], r)
    assert count(sql, case, body) == 1
    assert audit_rows(sql, case, fresh[0].json()[case.id_member]) == 1


def test_generated_password_is_withheld_given_password_replayed(ctx, sql):
    env = ctx
    body = {"email": f"{uniq('idem')}@example.test", "name": "Gen", "role": "org_viewer",
            "orgId": env.org.id}
    key = str(uuid.uuid4())
    first = env.admin.post("/api/v1/users", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201 and first.json().get("password")
    again = env.admin.post("/api/v1/users", json=body, headers={"Idempotency-Key": key})
    r = assert_error(again, 409, "idempotency_key_secret_withheld")
    assert r["resource"]["id"] == first.json()["id"] and "password" not in r["resource"]


def test_expired_key_runs_again(ctx, sql):
    env = ctx
    key = str(uuid.uuid4())
    body = {"name": uniq("idem-exp")}
    first = env.admin.post("/api/v1/organizations", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    sql("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"
        " WHERE key_hash = encode(sha256(%s::bytea), 'hex')", key.encode())
    # After 24 h the key is forgotten: the request runs again (the name is taken now).
    assert_error(env.admin.post("/api/v1/organizations", json=body,
                                headers={"Idempotency-Key": key}), 409, "conflict")
    other = {"name": uniq("idem-exp")}
    r = env.admin.post("/api/v1/organizations", json=other, headers={"Idempotency-Key": key})
    assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers


def test_expired_rows_are_swept_on_insert(ctx, sql):
    env = ctx
    stale = str(uuid.uuid4())
    assert env.admin.post("/api/v1/organizations", json={"name": uniq("idem-sw")},
                          headers={"Idempotency-Key": stale}).status_code == 201
    sql("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"
        " WHERE key_hash = encode(sha256(%s::bytea), 'hex')", stale.encode())
    assert env.admin.post("/api/v1/organizations", json={"name": uniq("idem-sw")},
                          headers={"Idempotency-Key": str(uuid.uuid4())}).status_code == 201
    assert sql("SELECT count(*) FROM idempotency_keys WHERE created_at < now() - interval '24 hours'"
               )[0][0] == 0


def test_quoted_key_is_the_same_key(ctx):
    env = ctx
    key = str(uuid.uuid4())
    body = {"name": uniq("idem-q")}
    first = env.admin.post("/api/v1/organizations", json=body, headers={"Idempotency-Key": key})
    again = env.admin.post("/api/v1/organizations", json=body,
                           headers={"Idempotency-Key": f'"{key}"'})
    check_replay(CASES[0], first, again)


@pytest.mark.parametrize("key", ["x" * 256, '"' + "x" * 256 + '"', "a,b", '"unterminated',
                                 '"a"b', '""', '"a\\qb"', "caf\u00e9"])
def test_malformed_key_is_400(ctx, key):
    env = ctx
    r = env.admin.post("/api/v1/organizations", json={"name": uniq("idem-bad")},
                       headers={"Idempotency-Key": key.encode("utf-8")})
    assert_error(r, 400, "invalid_idempotency_key")


def test_longest_key_is_accepted(ctx):
    env = ctx
    r = env.admin.post("/api/v1/organizations", json={"name": uniq("idem-long")},
                       headers={"Idempotency-Key": "k" * 255})
    assert r.status_code == 201, r.text


def raw_post(url, token, key_bytes, body):
    u = urllib.parse.urlparse(url)
    s = socket.create_connection((u.hostname, u.port), timeout=10)
    try:
        req = (b"POST /api/v1/organizations HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               b"Authorization: Bearer " + token.encode() + b"\r\n"
               b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() +
               b"\r\nIdempotency-Key: " + key_bytes + b"\r\n\r\n" + body)
        s.sendall(req)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data
    finally:
        s.close()


@pytest.mark.parametrize("key", [b"a\tb", b"a\x01b", b"a\x7fb", b""])
def test_control_characters_or_empty_key_is_400(ctx, api, key):
    env = ctx
    body = ('{"name":"%s"}' % uniq("idem-ctl")).encode()
    data = raw_post(api.base, env.admin.token, key, body)
    status = int(data.split(b" ", 2)[1])
    assert status == 400, data[:300]
    assert b"invalid_idempotency_key" in data


def test_agent_sends_a_key_when_enrolling(server, agents, sql, workdir):
    from test_agent_e2e import agent_id_of, enroll
    d = workdir / f"agent-idem-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    r, _ = enroll(server, agents, d / "agent")
    assert r.returncode == 0, r.stderr
    agent_id = agent_id_of(r.stdout)
    rows = sql("SELECT caller, withheld, response->>'authToken' FROM idempotency_keys"
               " WHERE route = 'POST /api/v1/agents/enroll' AND response->>'agentId' = %s",
               agent_id)
    assert len(rows) == 1, rows
    caller, withheld, token = rows[0]
    assert caller.startswith("enroll:") and withheld and token is None


def test_retry_while_first_runs_is_409_in_progress(ctx, services, sql):
    """The first request holds its key's lock until it commits: here another
    session holds it, as a first request still running would."""
    env = ctx
    key, body = str(uuid.uuid4()), {"name": uniq("idem-busy")}
    key_hash = hashlib.sha256(key.encode()).hexdigest()
    held = psycopg2.connect(superuser_breeze_url(services.env))
    try:
        with held.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(7314010, hashtext(%s))",
                        (f"user:{env.admin.user['id']} POST /api/v1/organizations {key_hash}",))
        r = env.admin.post("/api/v1/organizations", json=body, headers={"Idempotency-Key": key})
        assert_error(r, 409, "idempotency_key_in_progress")
        assert r.headers.get("Retry-After") == "1"
        assert count(sql, CASES[0], body) == 0
    finally:
        held.rollback()
        held.close()
    r = env.admin.post("/api/v1/organizations", json=body, headers={"Idempotency-Key": key})
    assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers


def test_key_is_scoped_to_the_route_and_fingerprint_covers_the_path(ctx, make_org):
    env = ctx
    key = str(uuid.uuid4())
    # One key value on two routes: two keys.
    assert env.admin.post("/api/v1/organizations", json={"name": uniq("idem-r")},
                          headers={"Idempotency-Key": key}).status_code == 201
    body = {"orgId": env.org.id, "siteId": env.org.site_id, "name": uniq("idem-r")}
    r = env.admin.post("/api/v1/enrollment-keys", json=body, headers={"Idempotency-Key": key})
    assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers
    # The same route template and body for another organization is another request.
    site = {"name": uniq("idem-p")}
    assert env.admin.post(f"/api/v1/organizations/{env.org.id}/sites", json=site,
                          headers={"Idempotency-Key": key}).status_code == 201
    other = make_org()
    assert_error(env.admin.post(f"/api/v1/organizations/{other.id}/sites", json=site,
                                headers={"Idempotency-Key": key}), 422, "idempotency_key_reused")


def test_same_json_written_differently_is_the_same_request(ctx):
    env = ctx
    key, name = str(uuid.uuid4()), uniq("idem-ws")
    h = {"Idempotency-Key": key, "Content-Type": "application/json"}
    first = env.admin.post("/api/v1/users", data=(
        '{"email":"%s@example.test","name":"W","role":"org_viewer","orgId":"%s","password":"Pw-%s"}'
        % (name, env.org.id, "a" * 20)), headers=h)
    assert first.status_code == 201, first.text
    again = env.admin.post("/api/v1/users", data=(
        '{ "password" : "Pw-%s", "orgId": "%s",\n "role":"org_viewer", "name":"W", '
        '"email":"%s@example.test" }' % ("a" * 20, env.org.id, name)), headers=h)
    check_replay(CASES[2], first, again)
