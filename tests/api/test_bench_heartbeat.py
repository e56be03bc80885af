"""The heartbeat load generator (bench/heartbeat.c) still works against the
real server: it enrols agents through the API, its heartbeat body passes the
strict body validation, and it prints the figures bench/heartbeat.sh and
bench/deadlines.sh read. A smoke test only: it asserts no speed."""
import json
import subprocess

import pytest

from conftest import BUILD, base_process_env

GEN = BUILD / "bench_heartbeat"


def run_gen(api, *args, env=None):
    r = subprocess.run([str(GEN), "--url", api.base, "--agents", "5", "--connections", "2",
                        "--rate", "20", "--duration", "1", *args],
                       env=env or base_process_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_generator_enrols_and_sends_only_accepted_heartbeats(api, agents, env, sql, tmp_path):
    if not GEN.exists():
        pytest.skip(f"{GEN} not built (BUILD_TESTING=OFF)")
    key = agents.create_key(maxUsage=5)
    e = base_process_env()
    e["BENCH_ENROLLMENT_KEY"] = key["key"]
    e["BENCH_ENROLLMENT_SECRET"] = env["AGENT_ENROLLMENT_SECRET"]
    roster = tmp_path / "agents"
    out = run_gen(api, "--enroll", "--agents-file", str(roster), env=e)
    assert "enrolled: 5 agents" in out
    fig = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    for name in ("offered_rate_per_s", "achieved_rate_per_s", "latency_p50_ms", "latency_p90_ms",
                 "latency_p99_ms", "latency_p999_ms", "cpu_server_s", "cpu_postgres_s",
                 "cpu_redis_s", "server_rss_kib"):
        assert name in fig, out
    statuses = {k: v for k, v in fig.items() if k.startswith("status_")}
    assert statuses == {"status_200": "20"}, out
    assert fig["transport_errors"] == "0" and fig["late_unsent"] == "0", out
    assert fig["unanswered"] == "0", out
    # The roster holds the tokens: only its owner may read it.
    assert roster.stat().st_mode & 0o077 == 0
    ids = [line.split()[0] for line in roster.read_text().splitlines()]
    assert len(ids) == 5
    (n,), = sql("SELECT count(*) FROM devices WHERE id = ANY(%s::uuid[])"
                " AND last_seen_at IS NOT NULL", ids)
    assert n == 5
    # A second run reuses the roster (no enrolment) and can print JSON; the
    # heartbeats' hostname is the enrolled one, so none was audited as a rename.
    fig = json.loads(run_gen(api, "--agents-file", str(roster), "--json"))
    assert fig["status_200"] == 20 and fig["transport_errors"] == 0
    (renamed,), = sql("SELECT count(*) FROM audit_log WHERE action = 'device.renamed'"
                      " AND resource_id = ANY(%s)", ids)
    assert renamed == 0
