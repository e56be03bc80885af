"""End to end with the real agent binary: enrol, heartbeat, stop; file modes
(G3); refusal of a secrets file others can read; token storage (G1)."""
import os
import re
import signal
import socket
import stat
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import AGENT_BIN, SLOW, base_process_env, register_log, sha256_hex


@pytest.fixture
def agent_dir(workdir):
    d = workdir / f"agent-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    return d / "agent"  # does not exist yet: enroll creates it


def run_agent(args, log, timeout=60 * SLOW):
    """Runs breeze-agent to completion; stdout+stderr go to LOG (scanned for
    sanitizer reports) and are returned."""
    register_log(log)
    r = subprocess.run([str(AGENT_BIN), *args], env=base_process_env(), capture_output=True,
                       text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    with open(log, "a") as f:
        f.write(r.stdout + r.stderr)
    return r


def enroll(server, agents, config_dir, key=None, secret=None):
    key = key or agents.create_key()["key"]
    r = run_agent(["enroll", "--server", server.url, "--key", key, "--secret",
                   secret or agents.secret, "--config-dir", str(config_dir)],
                  config_dir.parent / "enroll.log")
    return r, key


def agent_id_of(stdout):
    m = re.search(r"agentId=([0-9a-f-]{36})", stdout)
    assert m, stdout
    return m.group(1)


def token_of(config_dir):
    m = re.search(r"brz_[0-9a-f]{64}", (config_dir / "secrets.yaml").read_text())
    assert m, "no token in secrets.yaml"
    return m.group(0)


def mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_agent_enrolls_heartbeats_and_stops(server, agents, admin, sql, agent_dir):
    r, key = enroll(server, agents, agent_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    agent_id = agent_id_of(r.stdout)

    # G3: directory 0750, agent.yaml 0640, secrets.yaml 0600.
    assert mode(agent_dir) == 0o750
    assert mode(agent_dir / "agent.yaml") == 0o640
    assert mode(agent_dir / "secrets.yaml") == 0o600
    cfg = (agent_dir / "agent.yaml").read_text()
    assert agent_id in cfg and server.url in cfg
    token = token_of(agent_dir)
    assert token not in cfg
    # G1: the server holds only the token's SHA-256.
    assert sql("SELECT token_hash FROM agent_tokens WHERE device_id = %s AND state = 'current'",
               agent_id) == [(sha256_hex(token),)]

    log = agent_dir.parent / "run.log"
    register_log(log)
    with open(log, "ab") as f:
        proc = subprocess.Popen([str(AGENT_BIN), "run", "--config-dir", str(agent_dir)],
                                env=base_process_env(), stdout=f, stderr=f,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30 * SLOW
        dev = None
        while time.monotonic() < deadline:
            dev = admin.get(f"/api/v1/devices/{agent_id}").json()
            if dev.get("lastSeenAt") and dev.get("status") == "online":
                break
            assert proc.poll() is None, f"agent exited with {proc.returncode}:\n{log.read_text()[-2000:]}"
            time.sleep(0.3)
        else:
            pytest.fail(f"device never came online: {dev}\n{log.read_text()[-2000:]}")
        assert dev["hostname"] == socket.gethostname()
        assert dev["metrics"]["memoryTotalBytes"] > 0
        assert dev["lastIp"] == "127.0.0.1"
        assert dev["osType"]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=15 * SLOW)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = None
    assert rc == 0, log.read_text()[-2000:]
    out = log.read_text() + (agent_dir.parent / "enroll.log").read_text()
    assert token not in out and key not in out and agents.secret not in out


def test_agent_refuses_readable_secrets_file(server, agents, agent_dir):
    r, _ = enroll(server, agents, agent_dir)
    assert r.returncode == 0, r.stderr
    os.chmod(agent_dir / "secrets.yaml", 0o644)
    r = run_agent(["run", "--config-dir", str(agent_dir)], agent_dir.parent / "run.log",
                  timeout=20 * SLOW)
    assert r.returncode != 0
    assert re.search(r"permission|chmod|group or others", r.stdout + r.stderr, re.I), r.stderr
    assert token_of(agent_dir) not in r.stdout + r.stderr


def test_agent_enroll_with_wrong_secret_fails_cleanly(server, agents, agent_dir, sql):
    k = agents.create_key()
    r, _ = enroll(server, agents, agent_dir, key=k["key"], secret="0" * 64)
    assert r.returncode != 0
    assert not (agent_dir / "agent.yaml").exists()
    assert not (agent_dir / "secrets.yaml").exists()
    assert sql("SELECT usage_count FROM enrollment_keys WHERE id = %s", k["id"]) == [(0,)]


def test_agent_status(server, agents, agent_dir):
    r, _ = enroll(server, agents, agent_dir)
    assert r.returncode == 0, r.stderr
    agent_id = agent_id_of(r.stdout)
    r = run_agent(["status", "--config-dir", str(agent_dir)], agent_dir.parent / "status.log")
    assert r.returncode == 0, r.stdout + r.stderr
    assert agent_id in r.stdout
    assert token_of(agent_dir) not in r.stdout + r.stderr


def test_agent_exits_6_when_token_is_no_longer_accepted(server, agents, agent_dir, sql):
    r, _ = enroll(server, agents, agent_dir)
    assert r.returncode == 0, r.stderr
    agent_id = agent_id_of(r.stdout)
    sql("UPDATE agent_tokens SET token_hash = %s WHERE device_id = %s", "0" * 64, agent_id)
    r = run_agent(["run", "--config-dir", str(agent_dir)], agent_dir.parent / "run.log",
                  timeout=30 * SLOW)
    assert r.returncode == 6, r.stdout + r.stderr  # BZ_EXIT_REJECTED: re-enrol


def test_agent_reports_its_machine_id(server, agents, sql, agent_dir):
    """The hardware fingerprint the server blocks re-enrolment of a
    suspended device by (docs/probes-and-addresses.md) is machine-id(5)."""
    mid = Path("/etc/machine-id")
    if not mid.is_file() or not re.fullmatch(r"[0-9a-f]{32}", mid.read_text().strip()):
        pytest.skip("this machine has no /etc/machine-id")
    r, _ = enroll(server, agents, agent_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sql("SELECT hardware ->> 'machineId' FROM devices WHERE id = %s",
               agent_id_of(r.stdout)) == [(mid.read_text().strip(),)]


def test_enroll_says_when_a_review_blocks_it(server, agents, sql, agent_dir):
    """A 409 device_under_review is not the lost-answer case: the agent says
    that a review is pending, not "remove that device"."""
    r, _ = enroll(server, agents, agent_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    agent_id = agent_id_of(r.stdout)
    sql("UPDATE devices SET status = 'suspended', suspended_at = now(),"
        " suspension_reason = 'cross_tenant_probe', reenrollment_blocked = true WHERE id = %s",
        agent_id)
    try:
        key = agents.create_key()["key"]
        r = run_agent(["enroll", "--server", server.url, "--key", key, "--secret", agents.secret,
                       "--config-dir", str(agent_dir), "--force"], agent_dir.parent / "enroll2.log")
    finally:
        # This machine's hostname must not stay blocked for the other tests.
        sql("UPDATE devices SET status = 'active', suspended_at = NULL, suspension_reason = NULL,"
            " reenrollment_blocked = false WHERE id = %s", agent_id)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "awaits an administrator's review" in out and "remove that device" not in out, out
