"""deploy/systemd/: the agent's unit runs it as its own user in a systemd
sandbox (G3, K1). `systemd-analyze verify` accepts it, every required
directive is there, `systemd-analyze security --offline` rates it at most
2.0 ("OK"), the sysusers/tmpfiles files give a user and a directory the
agent accepts (enrolled and checked as that user), and a traced heartbeat of
the real agent uses only system calls, socket families and paths the sandbox
leaves it (systemd is not PID 1 on the test machines)."""
import functools
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import AGENT_BIN, REPO, SANITIZED, base_process_env, register_log
from test_agent_e2e import agent_dir, run_agent  # noqa: F401

DEPLOY = REPO / "deploy" / "systemd"
UNIT = DEPLOY / "breeze-agent.service"
INSTALLED_BIN = "/usr/local/bin/breeze-agent"
CONFIG_DIR = "/etc/breeze"
ANALYZE = shutil.which("systemd-analyze") or (
    "/usr/bin/systemd-analyze" if os.path.exists("/usr/bin/systemd-analyze") else None)
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (Debian package systemd; "
    "scripts/install-deps installs it)")

# Directive -> the value it must have (one of its assignments, whitespace
# normalised).
REQUIRED = {
    "User": "breeze-agent",
    "Group": "breeze-agent",
    "ProtectSystem": "strict",
    "ReadWritePaths": CONFIG_DIR,
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "ProtectHome": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "SystemCallFilter": "@system-service",
    "SystemCallArchitectures": "native",
    "CapabilityBoundingSet": "",
    "UMask": "0077",
    "Restart": "on-failure",
}


def parse_unit(text):
    """{section: {key: [values]}} of a unit file (keys may repeat)."""
    units, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = units.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(" ".join(value.split()))
    return units


def exit_codes():
    """NAME -> value of enum bz_exit in src/common/exitcode.h."""
    text = (REPO / "src" / "common" / "exitcode.h").read_text()
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"BZ_EXIT_(\w+) = (\d+)", text)}


def test_unit_has_the_sandbox_and_restart_policy():
    svc = parse_unit(UNIT.read_text())["Service"]
    for key, want in REQUIRED.items():
        assert want in svc.get(key, []), f"{key}={want} missing; have {svc.get(key)}"
    # Only the config directory (which holds state.yaml too) is writable.
    assert svc["ReadWritePaths"] == [CONFIG_DIR]
    assert svc["ExecStart"] == [f"{INSTALLED_BIN} run --config-dir {CONFIG_DIR}"]
    assert int(re.match(r"(\d+)", svc["RestartSec"][0]).group(1)) > 0
    # Never restarted into a problem that needs a person: usage, config
    # (unsafe files included), refused, token rejected (re-enrol), disabled.
    codes = exit_codes()
    prevent = {int(c) for c in svc["RestartPreventExitStatus"][0].split()}
    want = {codes[n] for n in ("USAGE", "CONFIG", "REFUSED", "REJECTED", "DISABLED")}
    assert prevent == want, (prevent, want)
    assert codes["REJECTED"] == 6 and codes["CONFIG"] == 3
    # Nothing that would hide what the inventory reads.
    assert "ProcSubset" not in svc and "PrivateNetwork" not in svc
    assert "InaccessiblePaths" not in svc


def test_unit_paths_match_the_agent(tmp_path):
    # The config directory in the unit is the agent's default.
    r = run_agent(["run", "--help"], tmp_path / "help.log")
    assert r.returncode == 0
    assert f"default {CONFIG_DIR}" in r.stdout, r.stdout
    tmpfiles = (DEPLOY / "breeze-agent.tmpfiles").read_text()
    assert re.search(rf"^d {re.escape(CONFIG_DIR)} 0750 breeze-agent breeze-agent -$", tmpfiles,
                     re.M), tmpfiles
    assert re.search(r"^u breeze-agent - ", (DEPLOY / "breeze-agent.sysusers").read_text(), re.M)


def copy_for_analyze(unit, installed_bin, built_bin, directory):
    """UNIT copied into DIRECTORY with ExecStart pointing at BUILT_BIN, which
    `systemd-analyze verify` needs to exist; everything else unchanged."""
    text = unit.read_text()
    assert text.count(installed_bin) >= 1
    p = directory / unit.name
    p.write_text(text.replace(f"ExecStart={installed_bin}", f"ExecStart={built_bin}"))
    return p


@pytest.fixture
def unit_copy(tmp_path):
    return copy_for_analyze(UNIT, INSTALLED_BIN, AGENT_BIN, tmp_path)


def verify(unit):
    """(exit status, output) of systemd-analyze verify UNIT."""
    r = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True,
                       timeout=60, cwd=unit.parent)
    return r.returncode, r.stdout + r.stderr


@pytest.mark.normal_only
@needs_analyze
def test_unit_verifies(unit_copy):
    rc, out = verify(unit_copy)
    assert rc == 0, out
    # verify exits 0 after warnings such as "Unknown key"; none is allowed.
    assert "breeze-agent.service" not in out, out


@pytest.mark.normal_only
@needs_analyze
def test_verify_would_catch_a_broken_unit(unit_copy):
    # The check above is not vacuous: a misspelt directive and a missing
    # binary are both reported.
    good = unit_copy.read_text()
    unit_copy.write_text(good.replace("ProtectHome=yes", "ProtectHomes=yes"))
    rc, out = verify(unit_copy)
    assert "ProtectHomes" in out and "breeze-agent.service" in out, out
    unit_copy.write_text(good.replace(f"ExecStart={AGENT_BIN}", "ExecStart=/nonexistent/agent"))
    rc, out = verify(unit_copy)
    assert rc != 0 and "/nonexistent/agent" in out, out


@pytest.mark.normal_only
@functools.lru_cache(maxsize=None)
def analyze_has_offline():
    helptext = subprocess.run([ANALYZE, "security", "--help"], capture_output=True,
                              text=True).stdout
    return "--offline" in helptext


def assert_exposure_ok(unit, capsys, label):
    """`systemd-analyze security --offline` rates UNIT at most 2.0 ("OK");
    the score is printed as LABEL (also with -q). Skips on systemd < 250."""
    if not analyze_has_offline():
        pytest.skip("this systemd-analyze has no security --offline (systemd < 250)")
    r = subprocess.run([ANALYZE, "security", "--offline=yes", "--threshold=20", str(unit)],
                       capture_output=True, text=True, timeout=60, cwd=unit.parent)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", r.stdout)
    assert m, r.stdout + r.stderr
    with capsys.disabled():  # shown in the test output, also with -q
        print(f"\n{label} {m.group(1)} {m.group(2)}")
    # --threshold=20: exit status non-zero above 2.0; the score depends only
    # on the unit and the systemd version, so this is deterministic.
    assert r.returncode == 0, r.stdout[-3000:]
    assert float(m.group(1)) <= 2.0


@needs_analyze
def test_unit_security_exposure(unit_copy, capsys):
    assert_exposure_ok(unit_copy, capsys, "systemd-analyze security --offline: exposure")


def have(tool):
    return shutil.which(tool) is not None


def sysusers_root(workdir, name):
    """A scratch root (under WORKDIR) where systemd-sysusers and
    systemd-tmpfiles --create applied deploy/systemd/NAME.sysusers and
    NAME.tmpfiles, installed as /usr/lib/{sysusers,tmpfiles}.d/NAME.conf.
    Returns (root, NAME's /etc/passwd fields)."""
    root = Path(tempfile.mkdtemp(prefix=f"sdroot-{name}-", dir=workdir))
    root.chmod(0o755)
    (root / "etc").mkdir(mode=0o755)  # sysusers locks ROOT/etc/passwd in it
    for sub, ext in (("sysusers.d", "sysusers"), ("tmpfiles.d", "tmpfiles")):
        d = root / "usr" / "lib" / sub
        d.mkdir(parents=True)
        shutil.copy(DEPLOY / f"{name}.{ext}", d / f"{name}.conf")
    for cmd in (["systemd-sysusers", f"--root={root}", f"{name}.conf"],
                ["systemd-tmpfiles", "--create", f"--root={root}", f"{name}.conf"]):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
    pw = next(line.split(":") for line in (root / "etc" / "passwd").read_text().splitlines()
              if line.startswith(f"{name}:"))
    return root, pw


@pytest.mark.skipif(not (have("systemd-sysusers") and have("systemd-tmpfiles")),
                    reason="systemd-sysusers/systemd-tmpfiles not installed (package systemd)")
def test_sysusers_and_tmpfiles_make_a_layout_the_agent_accepts(server, agents, workdir):
    if os.geteuid() != 0:
        pytest.skip("creating files owned by the agent's user needs root; these tests are not root")
    root, pw = sysusers_root(workdir, "breeze-agent")
    uid, gid = int(pw[2]), int(pw[3])
    assert 0 < uid < 1000 and pw[6] == "/usr/sbin/nologin", pw
    cfg = root / CONFIG_DIR.lstrip("/")
    st = os.stat(cfg)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, 0o750)

    # The documented enrolment, as that user: accepted, files written so.
    binary = root / "breeze-agent"
    shutil.copy(AGENT_BIN, binary)
    binary.chmod(0o755)
    log = root / "agent.log"
    register_log(log)

    def as_agent(*args):
        r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                            str(binary), *args, "--config-dir", str(cfg)],
                           env=base_process_env(), capture_output=True, text=True, timeout=60)
        with open(log, "a") as f:
            f.write(r.stdout + r.stderr)
        return r

    key = agents.create_key()["key"]
    r = as_agent("enroll", "--server", server.url, "--key", key, "--secret", agents.secret)
    assert r.returncode == 0, r.stdout + r.stderr
    r = as_agent("status")
    assert r.returncode == 0, r.stdout + r.stderr
    for name, want in (("agent.yaml", 0o640), ("secrets.yaml", 0o600)):
        st = os.stat(cfg / name)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (uid, want), name
    # Root running the agent on that directory is refused: not root's files.
    r = run_agent(["status", "--config-dir", str(cfg)], workdir / "sdroot-status.log")
    assert r.returncode == 3, r.stdout + r.stderr
    assert f"{cfg} is owned by " in r.stdout and f"uid {uid}" in r.stdout, r.stdout


def filter_set(analyze, *groups, _seen=None):
    """Every system call named by GROUPS (systemd-analyze syscall-filter),
    nested groups expanded."""
    seen = set() if _seen is None else _seen
    calls = set()
    for g in groups:
        if g in seen:
            continue
        seen.add(g)
        out = subprocess.run([analyze, "syscall-filter", g], capture_output=True, text=True,
                             check=True).stdout
        for line in out.splitlines()[1:]:
            name = line.strip()
            if not name or name.startswith("#"):
                continue
            calls |= filter_set(analyze, name, _seen=seen) if name.startswith("@") else {name}
    return calls


def sandbox_filter(unit_text):
    """The system calls the unit's SystemCallFilter= lines allow."""
    svc = parse_unit(unit_text)["Service"]
    allowed = set()
    for value in svc["SystemCallFilter"]:
        deny = value.startswith("~")
        names = value.lstrip("~").split()
        calls = set()
        for n in names:
            calls |= filter_set(ANALYZE, n) if n.startswith("@") else {n}
        allowed = allowed - calls if deny else allowed | calls
    return allowed


TRACE_LINE = re.compile(r"^(?:\d+ +)?(\w+)\((.*)$")


@needs_analyze
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_agent_run_stays_inside_the_sandbox(server, agents, agent_dir, tmp_path):
    """One accepted heartbeat (enrolment, inventory, metrics, state.yaml) of
    the real agent under strace: every system call is one the unit's
    SystemCallFilter= allows, every socket one of its address families, and
    every file it opens is one the sandbox leaves it (writes only in its
    config directory; no /home, /root or other processes' /proc). systemd is
    not PID 1 here, so this is how the unit is shown not to break the
    agent."""
    if SANITIZED:
        pytest.skip("the sanitizer runtime makes system calls of its own that the agent "
                    "does not")
    from test_agent_e2e import enroll
    r, _ = enroll(server, agents, agent_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    trace, log = tmp_path / "strace.txt", tmp_path / "run.log"
    register_log(log)
    with open(log, "ab") as f:
        proc = subprocess.Popen(["strace", "-f", "-qq", "-s", "256", "-o", str(trace),
                                 str(AGENT_BIN), "run", "--config-dir", str(agent_dir)],
                                env=base_process_env(), stdout=f, stderr=f,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (agent_dir / "state.yaml").exists():
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "no accepted heartbeat under strace"
            time.sleep(0.2)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 1, children
        os.kill(int(children[0]), signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    allowed = sandbox_filter(UNIT.read_text())
    families = set(parse_unit(UNIT.read_text())["Service"]["RestrictAddressFamilies"][0].split())
    used, problems = set(), []
    cfg = str(agent_dir)
    for line in trace.read_text().splitlines():
        m = TRACE_LINE.match(line)
        if not m:
            continue
        call, args = m.groups()
        used.add(call)
        if call in ("socket", "socketpair"):
            fam = args.split(",", 1)[0]
            if fam not in families:
                problems.append(f"socket family {fam}: {line}")
        if call in ("openat", "open", "mkdir", "mkdirat", "rename", "renameat", "renameat2",
                    "unlink", "unlinkat"):
            for path in re.findall(r'"([^"]*)"', args):
                writes = call != "openat" and call != "open" or re.search(
                    r"O_WRONLY|O_RDWR|O_CREAT", args)
                if writes and not (path.startswith(cfg + "/") or path == cfg or
                                   not path.startswith("/") or path.startswith("/dev/null")):
                    problems.append(f"write outside {cfg}: {line}")
                if re.match(r"/(home|root|run/user)(/|$)", path) or re.match(r"/proc/\d+", path):
                    problems.append(f"hidden by the sandbox: {line}")
                if path.startswith("/dev/") and path not in (
                        "/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/dev/full"):
                    problems.append(f"device: {line}")
    assert used, "empty trace"
    assert not (used - allowed), f"not allowed by SystemCallFilter=: {sorted(used - allowed)}"
    assert not problems, "\n".join(problems[:20])
