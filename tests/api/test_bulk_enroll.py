"""
The bulk-enrolment fast path of the heartbeat benchmark (bench/bulk_enroll.c,
issue 13 §1): the rows it writes equal those of enrolment through
POST /api/v1/agents/enroll field by field (ids, times, hostnames and token
hashes excepted), its tokens work for heartbeats (one by one and through
bench_heartbeat --agents-file), the organization's audit chain verifies
afterwards, and it refuses to run outside a throwaway test database.
"""
import hashlib
import os
import re
import stat
import subprocess
from urllib.parse import urlsplit

import pytest

from conftest import BUILD, server_env, uniq

BULK = BUILD / "bench_bulk_enroll"
GEN = BUILD / "bench_heartbeat"
N = 50

# What bench_bulk_enroll (and bench_heartbeat --enroll) send as enrolment body.
BODY = {
    "osType": "linux",
    "osVersion": "Debian GNU/Linux 12 (bookworm)",
    "architecture": "x86_64",
    "agentVersion": "0.1.0",
    "hardware": {"cpuCount": 4, "memoryTotalBytes": 8589934592,
                 "diskTotalBytes": 107374182400, "kernel": "6.1.0-28-amd64",
                 "cpuModel": "Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz"},
}

pytestmark = pytest.mark.skipif(not BULK.exists(), reason="benchmarks not built")


def run_bulk(env, *args, **overrides):
    """bench_bulk_enroll ARGS with the serve environment (BREEZE_ENV=test, the
    server's HEARTBEAT_INTERVAL_SECONDS) and the server's database role."""
    e = server_env(env, BENCH_DATABASE_URL=env["DATABASE_URL"], **overrides)
    return subprocess.run([str(BULK), *map(str, args)], env=e, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)


def db_name(env):
    return urlsplit(env["DATABASE_URL"]).path.lstrip("/")


def rows(db, query, *params):
    """Rows of QUERY as dicts (the superuser connection)."""
    with db.cursor() as cur:
        cur.execute(query, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def without(d, *keys):
    return {k: v for k, v in d.items() if k not in keys}


@pytest.fixture
def fleet(agents, make_org, env, tmp_path):
    """One device enrolled through the API and N through the fast path, with
    one key of N + 1 uses in a new organization."""
    org = make_org()
    key = agents.create_key(org_id=org.id, site_id=org.site_id, maxUsage=N + 1)
    r = agents.enroll(key["key"], hostname=uniq("api-host"), **BODY)
    assert r.status_code == 201, r.text
    api_dev = r.json()
    tokens = tmp_path / "tokens"
    prefix = uniq("bulk")
    p = run_bulk(env, "--database", db_name(env), "--key-id", key["id"], "--agents", N,
                 "--tokens", tokens, "--host-prefix", prefix, "--batch", 20)
    assert p.returncode == 0, p.stderr
    lines = [ln.split(" ") for ln in tokens.read_text().splitlines()]
    return org, key, api_dev, lines, tokens


def test_bulk_rows_equal_api_enrolment(fleet, sql, db):
    org, key, api_dev, lines, tokens = fleet
    assert stat.S_IMODE(os.stat(tokens).st_mode) == 0o600
    assert len(lines) == N and all(len(ln) == 3 for ln in lines)
    ids = [ln[0] for ln in lines]
    assert len(set(ids)) == N

    # devices: every column but id, hostname and the enrolment time.
    api_row = rows(db, "SELECT * FROM devices WHERE id = %s", api_dev["agentId"])[0]
    bulk = {str(r["id"]): r for r in rows(db, "SELECT * FROM devices WHERE id = ANY(%s::uuid[])", ids)}
    assert set(bulk) == set(ids)
    for (dev_id, _tok, host), r in zip(lines, [bulk[i] for i in ids]):
        assert r["hostname"] == host
        assert without(r, "id", "hostname", "enrolled_at") == \
            without(api_row, "id", "hostname", "enrolled_at")
    assert str(api_row["org_id"]) == org.id

    # agent_tokens: SHA-256 of the token in the file; state, dates as the API's.
    tok_rows = {str(r["device_id"]): r for r in rows(
        db, "SELECT * FROM agent_tokens WHERE device_id = ANY(%s::uuid[])",
        ids + [api_dev["agentId"]])}
    api_tok = tok_rows[api_dev["agentId"]]
    assert api_tok["token_hash"] == hashlib.sha256(api_dev["authToken"].encode()).hexdigest()
    for dev_id, tok, _host in lines:
        t = tok_rows[dev_id]
        assert re.fullmatch(r"brz_[0-9a-f]{64}", tok)
        assert t["token_hash"] == hashlib.sha256(tok.encode()).hexdigest()
        assert t["created_at"] == t["activated_at"] == bulk[dev_id]["enrolled_at"]
        assert without(t, "token_hash", "device_id", "created_at", "activated_at") == \
            without(api_tok, "token_hash", "device_id", "created_at", "activated_at")

    # device_ip_history: the enrolment address, seen at enrolment.
    ip_rows = {str(r["device_id"]): r for r in rows(
        db, "SELECT * FROM device_ip_history WHERE device_id = ANY(%s::uuid[])",
        ids + [api_dev["agentId"]])}
    times = ("device_id", "first_seen_at", "last_seen_at")
    for dev_id in ids:
        h = ip_rows[dev_id]
        assert h["first_seen_at"] == h["last_seen_at"] == bulk[dev_id]["enrolled_at"]
        assert without(h, *times) == without(ip_rows[api_dev["agentId"]], *times)

    # The key's use count: one API enrolment plus N.
    assert sql("SELECT usage_count FROM enrollment_keys WHERE id = %s", key["id"]) == [(N + 1,)]

    # audit_log: one device.enroll row per device, in the organization's
    # chain, in enrolment order, as the API's but for ids, hostname and time.
    cols = ("org_id, partner_id, site_id, actor_type, actor_id, action, resource, resource_id,"
            " details, ip_address, result, chain_id, seq")
    aud = rows(db, f"SELECT {cols} FROM audit_log WHERE action = 'device.enroll'"
               " AND resource_id = ANY(%s) ORDER BY seq", ids + [api_dev["agentId"]])
    assert len(aud) == N + 1
    api_aud = [a for a in aud if a["resource_id"] == api_dev["agentId"]][0]
    bulk_aud = [a for a in aud if a["resource_id"] != api_dev["agentId"]]
    assert [a["resource_id"] for a in bulk_aud] == ids
    seqs = [a["seq"] for a in bulk_aud]
    assert seqs == list(range(seqs[0], seqs[0] + N))

    def norm(a, host):
        return without({**a, "details": a["details"].replace(host, "HOST")},
                       "actor_id", "resource_id", "seq")
    api_host = rows(db, "SELECT hostname FROM devices WHERE id = %s",
                    api_dev["agentId"])[0]["hostname"]
    for a, (dev_id, _tok, host) in zip(bulk_aud, lines):
        assert a["actor_id"] == a["resource_id"] == dev_id
        assert norm(a, host) == norm(api_aud, api_host)


def test_bulk_tokens_heartbeat_and_audit_verifies(fleet, agents, api, audit):
    org, _key, _api_dev, lines, tokens = fleet
    for dev_id, tok, host in lines[:3]:
        r = agents.heartbeat(dev_id, tok, hostname=host)
        assert r.status_code == 200, r.text
    # The load generator reads the file as it is written.
    g = subprocess.run([str(GEN), "--url", api.base, "--agents", str(N), "--connections", "4",
                        "--rate", "100", "--duration", "0.5", "--agents-file", str(tokens)],
                       capture_output=True, text=True, timeout=60)
    assert g.returncode == 0, g.stderr
    assert re.search(r"^status_200: 50$", g.stdout, re.M), g.stdout
    rc, chain, _doc = audit.verify(org.id)
    assert rc == 0, chain


@pytest.mark.parametrize("case", ["no_test_env", "other_database", "too_few_uses"])
def test_bulk_refuses(case, agents, make_org, env, tmp_path, sql):
    org = make_org()
    key = agents.create_key(org_id=org.id, site_id=org.site_id, maxUsage=5)
    prefix = uniq("refused")
    args = ["--database", db_name(env), "--key-id", key["id"], "--agents", 5,
            "--tokens", tmp_path / "t", "--host-prefix", prefix]
    if case == "no_test_env":
        p = run_bulk(env, *args, BREEZE_ENV="production")
        assert "BREEZE_ENV" in p.stderr
    elif case == "other_database":
        args[1] = "postgres"
        p = run_bulk(env, *args)
        assert "--database" in p.stderr
    else:
        args[5] = 6
        p = run_bulk(env, *args)
        assert "too few uses" in p.stderr
    assert p.returncode != 0
    # Nothing was written.
    assert sql("SELECT count(*) FROM devices WHERE hostname LIKE %s", prefix + "%") == [(0,)]
    assert sql("SELECT usage_count FROM enrollment_keys WHERE id = %s", key["id"]) == [(0,)]
