"""R6 with the real breeze-agent binary: against a server with a tiny
per-device limit the agent waits as Retry-After says, never sends early,
and resumes heartbeating."""
import json
import signal
import subprocess
import time
from datetime import datetime, timezone

from conftest import AGENT_BIN, SLOW, base_process_env, register_log
from test_agent_e2e import agent_dir, agent_id_of, enroll  # noqa: F401  (fixture, helpers)
from test_ratelimit import limits
from test_readyz import redis  # noqa: F401

WINDOW_S = 8  # one heartbeat per 8 s per device; the agent beats every 5 s


def heartbeats(srv):
    """(start, status) of the heartbeats (one agent per server) as logged:
    start = log time - duration, in epoch seconds."""
    out = []
    for line in srv.log_text().splitlines():
        if '"http.request"' not in line:
            continue
        try:
            f = json.loads(line)
        except ValueError:
            continue
        if f.get("route") != "/api/v1/agents/:agentId/heartbeat":
            continue
        ts = datetime.strptime(f["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=timezone.utc).timestamp()
        out.append((ts - f["durationMs"] / 1000, f["status"]))
    return out


def test_agent_waits_for_retry_after_and_resumes(spawn_server, redis, agents, agent_dir):
    srv = spawn_server(**limits(RATE_LIMIT_AGENT_DEVICE=f"1/{WINDOW_S}"), REDIS_URL=redis.url)
    r, _ = enroll(srv, agents, agent_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    agent_id_of(r.stdout)  # enrolled

    log = agent_dir.parent / "run.log"
    register_log(log)
    with open(log, "ab") as f:
        proc = subprocess.Popen([str(AGENT_BIN), "run", "--config-dir", str(agent_dir)],
                                env=base_process_env(), stdout=f, stderr=f,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60 * SLOW
        while True:
            hb = heartbeats(srv)
            refused = [i for i, (_, s) in enumerate(hb) if s == 429]
            # Two refusals, each followed by an admitted heartbeat.
            if len(refused) >= 2 and refused[1] + 1 < len(hb):
                break
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, (hb, log.read_text()[-2000:])
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=15 * SLOW)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = None
    assert rc == 0, log.read_text()[-2000:]
    assert hb[0][1] == 200
    admitted = [t for t, s in hb if s == 200]
    for i, (t, s) in enumerate(hb[:-1]):
        if s != 429:
            continue
        # The slot frees one window after the last admission; Retry-After
        # (rounded up) points there, and the agent sends nothing before it.
        last_ok = max(a for a in admitted if a < t)
        nxt = hb[i + 1]
        assert nxt[0] >= last_ok + WINDOW_S - 0.25 and nxt[0] - t >= 1, (hb, i)
        assert nxt[1] == 200, hb  # never early, so never refused twice in a row
    assert "agent.retry_scheduled" in log.read_text()
    assert srv.stop() == 0

