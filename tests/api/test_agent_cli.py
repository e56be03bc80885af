"""The command lines of breeze-agent and breeze-server: re-enrolment is refused
without --force and names the device it replaces with it, `status` shows the
last accepted heartbeat, every command answers --help on stdout with exit 0,
and bad usage exits 2 (the exit-code table in README.md, common/exitcode.h)."""
import calendar
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import AGENT_BIN, SERVER_BIN, SLOW, base_process_env, register_log
from test_agent_e2e import agent_dir, agent_id_of, enroll, mode, run_agent, token_of  # noqa: F401

EXIT_USAGE, EXIT_CONFIG, EXIT_UNAVAILABLE, EXIT_REFUSED, EXIT_REJECTED = 2, 3, 4, 5, 6


def key_usage(sql, key_id):
    return sql("SELECT usage_count FROM enrollment_keys WHERE id = %s", key_id)[0][0]


def test_second_enroll_is_refused_without_force(server, agents, sql, agent_dir):
    r, _ = enroll(server, agents, agent_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    agent_id = agent_id_of(r.stdout)
    token = token_of(agent_dir)
    cfg = (agent_dir / "agent.yaml").read_text()

    k = agents.create_key()
    r, _ = enroll(server, agents, agent_dir, key=k["key"])
    assert r.returncode == EXIT_REFUSED, r.stdout + r.stderr
    assert agent_id in r.stderr and "--force" in r.stderr, r.stderr
    assert socket.gethostname() in r.stderr, r.stderr
    # Refused before the key was spent; nothing on disk changed.
    assert key_usage(sql, k["id"]) == 0
    assert token_of(agent_dir) == token
    assert (agent_dir / "agent.yaml").read_text() == cfg
    assert token not in r.stdout + r.stderr


def test_enroll_with_force_names_the_device_it_replaces(server, agents, sql, agent_dir):
    r, _ = enroll(server, agents, agent_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    old_id = agent_id_of(r.stdout)
    old_token = token_of(agent_dir)
    (agent_dir / "state.yaml").write_text('lastHeartbeatEpoch: 1700000000\n')

    k = agents.create_key()
    r = run_agent(["enroll", "--force", "--server", server.url, "--key", k["key"], "--secret",
                   agents.secret, "--config-dir", str(agent_dir)], agent_dir.parent / "force.log")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"replacing device: agentId={old_id} hostname={socket.gethostname()}" in r.stdout, r.stdout
    new_id = agent_id_of(r.stdout.split("enrolled:", 1)[1])
    assert new_id != old_id
    assert f"agentId: \"{new_id}\"" in (agent_dir / "agent.yaml").read_text()
    assert token_of(agent_dir) != old_token
    assert key_usage(sql, k["id"]) == 1
    # The old device's heartbeat history does not carry over.
    assert not (agent_dir / "state.yaml").exists()
    assert old_token not in r.stdout + r.stderr


def test_status_shows_the_last_accepted_heartbeat(server, agents, admin, agent_dir):
    r, _ = enroll(server, agents, agent_dir)
    assert r.returncode == 0, r.stderr
    agent_id = agent_id_of(r.stdout)
    r = run_agent(["status", "--config-dir", str(agent_dir)], agent_dir.parent / "status.log")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^heartbeat: +never$", r.stdout, re.M), r.stdout

    before = int(time.time())
    log = agent_dir.parent / "run.log"
    register_log(log)
    with open(log, "ab") as f:
        proc = subprocess.Popen([str(AGENT_BIN), "run", "--config-dir", str(agent_dir)],
                                env=base_process_env(), stdout=f, stderr=f,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30 * SLOW
        while not (agent_dir / "state.yaml").exists():
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "no state.yaml after the first heartbeat"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=15 * SLOW)
    after = int(time.time())
    assert rc == 0, log.read_text()[-2000:]
    assert admin.get(f"/api/v1/devices/{agent_id}").json()["lastSeenAt"]

    # Not a secrets file: readable by the agent's group, no token in it.
    assert mode(agent_dir / "state.yaml") == 0o640
    assert token_of(agent_dir) not in (agent_dir / "state.yaml").read_text()
    assert "lastHeartbeat" not in (agent_dir / "secrets.yaml").read_text()

    r = run_agent(["status", "--config-dir", str(agent_dir)], agent_dir.parent / "status.log")
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"^heartbeat: +(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) \(last accepted\)$", r.stdout, re.M)
    assert m, r.stdout
    t = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%SZ"))
    assert before - 1 <= t <= after + 1, (before, m.group(1), after)


def test_status_and_run_when_not_enrolled_exit_3(agent_dir):
    r = run_agent(["status", "--config-dir", str(agent_dir)], agent_dir.parent / "status.log")
    assert r.returncode == EXIT_CONFIG, r.stdout + r.stderr
    assert "enrolled:   no" in r.stdout
    r = run_agent(["run", "--config-dir", str(agent_dir)], agent_dir.parent / "run.log")
    assert r.returncode == EXIT_CONFIG, r.stdout + r.stderr
    assert "agent.not_enrolled" in r.stderr


def test_enroll_exit_codes_for_rejected_and_unreachable(server, agents, agent_dir):
    r, _ = enroll(server, agents, agent_dir, secret="0" * 64)
    assert r.returncode == EXIT_REJECTED, r.stdout + r.stderr
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run_agent(["enroll", "--server", f"http://127.0.0.1:{port}", "--key", "k" * 20,
                   "--secret", "s" * 20, "--config-dir", str(agent_dir)],
                  agent_dir.parent / "enroll.log")
    assert r.returncode == EXIT_UNAVAILABLE, r.stdout + r.stderr


def test_enroll_without_secret_is_a_usage_error_and_spends_nothing(server, agents, sql, agent_dir):
    # The server requires the shared secret; without one the agent says so
    # itself (exit 2) instead of sending the key for a 400 (exit 1).
    k = agents.create_key()
    r = run_agent(["enroll", "--server", server.url, "--key", k["key"],
                   "--config-dir", str(agent_dir)], agent_dir.parent / "enroll.log")
    assert r.returncode == EXIT_USAGE, r.stdout + r.stderr
    assert "BREEZE_ENROLLMENT_SECRET" in r.stderr
    assert key_usage(sql, k["id"]) == 0
    assert not (agent_dir / "secrets.yaml").exists()


AGENT_HELP = [["enroll", "--help"], ["run", "--help"], ["status", "--help"], ["version", "--help"],
              ["help", "--help"], ["help", "enroll"], ["--help"], ["help"], ["run", "-h"]]
SERVER_HELP = [["serve", "--help"], ["migrate", "--help"], ["bootstrap", "--help"],
               ["gen-secrets", "--help"], ["version", "--help"], ["help", "--help"],
               ["help", "serve"], ["audit", "--help"], ["audit", "help"], ["audit", "verify", "--help"],
               ["help", "audit"], ["routes", "--help"], ["help", "routes"], ["--help"], ["help"]]
HELP = [(AGENT_BIN, a) for a in AGENT_HELP] + [(SERVER_BIN, a) for a in SERVER_HELP]


def run_bin(binary, args, tmp_path):
    # No DATABASE_URL and a scratch directory: a --help that fell through
    # to the command would fail instead of doing anything.
    return subprocess.run([str(binary), *args], env=base_process_env(), capture_output=True,
                          text=True, timeout=30 * SLOW, stdin=subprocess.DEVNULL, cwd=tmp_path)


@pytest.mark.parametrize("binary,args", HELP, ids=[f"{b.name} {' '.join(a)}" for b, a in HELP])
def test_help_prints_usage_on_stdout_and_exits_0(binary, args, tmp_path):
    r = run_bin(binary, args, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("usage: "), r.stdout
    assert r.stderr == ""
    if len(args) >= 2 and args[0] not in ("help", "audit") and not args[0].startswith("-"):
        # The command's own usage, not the program's.
        assert r.stdout.splitlines()[0].startswith(f"usage: {binary.name} {args[0]}"), r.stdout


BAD = [(AGENT_BIN, a) for a in (
    [], ["frobnicate"], ["run", "--bogus"], ["status", "extra"], ["run", "--server", "http://x"],
    ["enroll"], ["enroll", "--server", "http://127.0.0.1:1"], ["enroll", "--server", "ftp://x", "--key", "k"],
    ["version", "extra"], ["help", "frobnicate"], ["status", "--config-dir", ""],
)] + [(SERVER_BIN, a) for a in (
    [], ["frobnicate"], ["serve", "--bogus"], ["migrate", "extra"], ["gen-secrets", "extra"], ["routes", "extra"],
    ["version", "extra"], ["help", "frobnicate"], ["bootstrap", "--email", "a@b.c"], ["audit"],
    ["audit", "frobnicate"], ["audit", "verify", "--org", "x", "--all", "--bogus"],
)]


@pytest.mark.parametrize("binary,args", BAD, ids=[f"{b.name} {' '.join(a) or '(none)'}" for b, a in BAD])
def test_bad_usage_exits_2(binary, args, tmp_path):
    r = run_bin(binary, args, tmp_path)
    assert r.returncode == EXIT_USAGE, r.stdout + r.stderr
    assert r.stderr, "a usage error says what is wrong on stderr"
    assert not (tmp_path / "agent.yaml").exists()


def test_server_config_error_exits_3(tmp_path):
    ef = tmp_path / "missing.env"
    r = run_bin(SERVER_BIN, ["migrate", "--env-file", str(ef)], tmp_path)
    assert r.returncode == EXIT_CONFIG, r.stdout + r.stderr
    r = run_bin(SERVER_BIN, ["migrate"], tmp_path)  # no DATABASE_URL
    assert r.returncode == EXIT_CONFIG, r.stdout + r.stderr
    assert "DATABASE_URL" in r.stderr


SERVER_ONLY_LIBS = ("libpq", "libulfius", "libmicrohttpd", "libhiredis", "libjwt", "libargon2", "liboath",
                    "libcmocka")


def test_agent_binary_links_no_server_library():
    """The agent links only what it uses (CMakeLists.txt: one imported target
    per pkg-config module): none of the server's libraries on its link line
    or in its DT_NEEDED. Both, because gcc on Debian links --as-needed and
    would hide an over-wide link line that clang (no --as-needed) keeps."""
    link = AGENT_BIN.parent / "CMakeFiles" / "breeze-agent.dir" / "link.txt"
    if link.exists():  # Makefile generator
        words = [os.path.basename(w) for w in link.read_text().split()]
        for lib in SERVER_ONLY_LIBS:
            assert not [w for w in words if w.startswith(lib + ".") or w == "-l" + lib[3:]], (lib, words)
    out = subprocess.run(["readelf", "-d", str(AGENT_BIN)], capture_output=True, text=True,
                         check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
    assert any(n.startswith("libcurl") for n in needed), needed
    for lib in SERVER_ONLY_LIBS:
        assert not [n for n in needed if n.startswith(lib + ".") or n.startswith(lib + "-")], (lib, needed)
