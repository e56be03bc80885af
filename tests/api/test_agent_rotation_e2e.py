"""Token rotation with the real agent binary (G2): the agent rotates when the
server asks, with zero failed heartbeats, and recovers from a crash between
receiving a token and confirming it."""
import re
import signal
import subprocess
import threading
import time

import pytest
import requests

from conftest import AGENT_BIN, SLOW, base_process_env, register_log, sha256_hex
from test_agent_e2e import agent_dir, agent_id_of, enroll, token_of  # noqa: F401

DEVICES = "/api/v1/devices"


def secrets_of(config_dir):
    return (config_dir / "secrets.yaml").read_text()


def start_agent(config_dir):
    log = config_dir.parent / f"run-{time.monotonic_ns()}.log"
    register_log(log)
    f = open(log, "ab")
    proc = subprocess.Popen([str(AGENT_BIN), "run", "--config-dir", str(config_dir)],
                            env=base_process_env(), stdout=f, stderr=f,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    f.close()
    return proc, log


def stop_agent(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=15 * SLOW)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def wait_for(cond, what, proc, log, timeout=40):
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        assert proc.poll() is None, f"agent exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


def token_state(sql, token):
    rows = sql("SELECT state FROM agent_tokens WHERE token_hash = %s", sha256_hex(token))
    return rows[0][0] if rows else None


def heartbeats_refused(log):
    """Agent log lines that report a heartbeat the server did not accept."""
    return [ln for ln in log.read_text().splitlines()
            if re.search(r"heartbeat_failed|reenroll_required|agent\.refused", ln)]


def test_agent_rotates_on_request_without_a_failed_heartbeat(server, agents, admin, sql,
                                                            agent_dir):
    r, _ = enroll(server, agents, agent_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    agent_id = agent_id_of(r.stdout)
    old = token_of(agent_dir)
    proc, log = start_agent(agent_dir)
    stop = threading.Event()
    side = []

    def in_flight():
        # Requests made with the old token while the rotation happens (a
        # second process of the agent, a retry in flight): every one must
        # be accepted until the grace period ends.
        while not stop.is_set():
            side.append(agents.heartbeat(agent_id, old).status_code)
            time.sleep(0.05)

    t = threading.Thread(target=in_flight)
    try:
        wait_for(lambda: admin.get(f"{DEVICES}/{agent_id}").json().get("lastSeenAt"),
                 "the first heartbeat", proc, log)
        t.start()
        r = admin.post(f"{DEVICES}/{agent_id}/rotate-agent-token")
        assert r.status_code in (200, 202), r.text
        new = wait_for(lambda: (token_of(agent_dir) != old and
                                "pendingToken" not in secrets_of(agent_dir) and
                                token_of(agent_dir)), "the rotated token on disk", proc, log)
        assert token_state(sql, new) == "current"
        assert token_state(sql, old) == "previous"
        # The agent goes on with the new token.
        seen = sql("SELECT last_seen_at FROM devices WHERE id = %s", agent_id)[0][0]
        wait_for(lambda: sql("SELECT last_seen_at FROM devices WHERE id = %s",
                             agent_id)[0][0] > seen, "a heartbeat after the rotation", proc, log)
    finally:
        stop.set()
        if t.is_alive():
            t.join()
        rc = stop_agent(proc)
    assert rc == 0, log.read_text()[-3000:]
    assert side and set(side) == {200}, side
    assert heartbeats_refused(log) == [], log.read_text()[-3000:]
    out = log.read_text()
    assert old not in out and new not in out
    assert re.search(r"agent\.token_rotated", out), out[-3000:]
    assert sql("SELECT count(*) FROM audit_log WHERE resource_id = %s"
               " AND action = 'agent.token.rotated'", agent_id) == [(1,)]


def rotate_by_hand(server, agent_id, token):
    r = requests.post(f"{server.url}/api/v1/agents/{agent_id}/rotate-token", json={},
                      headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["authToken"]


def crash_between_receiving_and_confirming(server, agents, agent_dir):
    """secrets.yaml as a crash right after phase 1 leaves it."""
    r, _ = enroll(server, agents, agent_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    agent_id = agent_id_of(r.stdout)
    old = token_of(agent_dir)
    new = rotate_by_hand(server, agent_id, old)
    path = agent_dir / "secrets.yaml"
    text = path.read_text().rstrip("\n") + f"\npendingToken: {new}\n"
    path.write_text(text)
    return agent_id, old, new


def test_agent_confirms_a_pending_token_after_a_crash(server, agents, sql, agent_dir):
    agent_id, old, new = crash_between_receiving_and_confirming(server, agents, agent_dir)
    assert token_state(sql, new) == "pending"
    proc, log = start_agent(agent_dir)
    try:
        wait_for(lambda: "pendingToken" not in secrets_of(agent_dir), "the confirmation",
                 proc, log)
        assert token_of(agent_dir) == new
        assert token_state(sql, new) == "current" and token_state(sql, old) == "previous"
        wait_for(lambda: sql("SELECT last_seen_at FROM devices WHERE id = %s", agent_id)[0][0],
                 "a heartbeat", proc, log)
    finally:
        rc = stop_agent(proc)
    assert rc == 0, log.read_text()[-3000:]
    assert heartbeats_refused(log) == []


def test_agent_drops_an_expired_pending_token_and_keeps_working(server, agents, sql, clock,
                                                                agent_dir):
    agent_id, old, new = crash_between_receiving_and_confirming(server, agents, agent_dir)
    clock.advance(3601)  # the pending token's hour is over
    proc, log = start_agent(agent_dir)
    try:
        wait_for(lambda: "pendingToken" not in secrets_of(agent_dir), "the pending token dropped",
                 proc, log)
        assert token_of(agent_dir) == old
        assert token_state(sql, old) == "current"
        wait_for(lambda: sql("SELECT last_seen_at FROM devices WHERE id = %s", agent_id)[0][0],
                 "a heartbeat with the current token", proc, log)
    finally:
        rc = stop_agent(proc)
    assert rc == 0, log.read_text()[-3000:]
    assert heartbeats_refused(log) == []
    assert re.search(r"rotation_expired", log.read_text())
