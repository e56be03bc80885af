"""Decommissioning with the real agent running: its next heartbeat is
refused (401) and the agent stops, asking to be enrolled again (exit 2)."""
import subprocess
import time
import uuid

import pytest

from conftest import AGENT_BIN, SLOW, base_process_env, register_log
from test_agent_e2e import agent_id_of, enroll

AGENT_EXIT_REENROLL = 6  # BZ_EXIT_REJECTED, src/common/exitcode.h


@pytest.fixture
def agent_dir(workdir):
    d = workdir / f"agent-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    return d / "agent"


def test_running_agent_is_refused_after_decommission(server, agents, admin, sql, agent_dir):
    r, _ = enroll(server, agents, agent_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    agent_id = agent_id_of(r.stdout)
    log = agent_dir.parent / "run.log"
    register_log(log)
    with open(log, "ab") as f:
        proc = subprocess.Popen([str(AGENT_BIN), "run", "--config-dir", str(agent_dir)],
                                env=base_process_env(), stdout=f, stderr=f,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30 * SLOW
        while time.monotonic() < deadline:
            if sql("SELECT 1 FROM device_heartbeats WHERE device_id = %s", agent_id):
                break
            assert proc.poll() is None, log.read_text()[-2000:]
            time.sleep(0.3)
        else:
            pytest.fail("the agent's heartbeat never arrived:\n" + log.read_text()[-2000:])
        r = admin.post(f"/api/v1/devices/{agent_id}/decommission")
        assert r.status_code == 200, r.text
        # The next heartbeat (5 s interval) is refused and the agent stops.
        rc = proc.wait(timeout=30 * SLOW)
        assert rc == AGENT_EXIT_REENROLL, log.read_text()[-2000:]
        assert "agent.reenroll_required" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert sql("SELECT count(*) FROM device_heartbeats WHERE device_id = %s", agent_id) == [(1,)]
