"""deploy/systemd/breeze-server.*: the server's unit runs it as its own
user in a systemd sandbox (K1, K5) that `systemd-analyze security
--offline` rates at most 2.0 and `systemd-analyze verify` accepts; the
network stays (it listens and talks to PostgreSQL, Redis and webhook
receivers), only the address families are restricted. The env file is read
by systemd as root (EnvironmentFile=), so it stays 0600 root's (S2); the
sysusers/tmpfiles files give the user and /etc/breeze-server."""
import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import REPO, SERVER_BIN
from test_deploy_systemd import ANALYZE, exit_codes, needs_analyze, parse_unit, verify

DEPLOY = REPO / "deploy" / "systemd"
UNIT = DEPLOY / "breeze-server.service"
INSTALLED_BIN = "/usr/local/bin/breeze-server"

REQUIRED = {
    "User": "breeze-server",
    "Group": "breeze-server",
    "EnvironmentFile": "/etc/breeze-server/server.env",
    "ProtectSystem": "strict",
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "ProtectHome": "yes",
    "PrivateDevices": "yes",
    "PrivateUsers": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectProc": "invisible",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "SystemCallFilter": "@system-service",
    "SystemCallArchitectures": "native",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "UMask": "0077",
    "Restart": "on-failure",
}


def test_unit_has_the_sandbox_and_restart_policy():
    svc = parse_unit(UNIT.read_text())["Service"]
    for key, want in REQUIRED.items():
        assert want in svc.get(key, []), f"{key}={want} missing; have {svc.get(key)}"
    assert svc["ExecStart"] == [f"{INSTALLED_BIN} serve"]
    # Never --allow-root, never root.
    assert "--allow-root" not in UNIT.read_text()
    assert "Environment" in svc and "BREEZE_ENV=production" in svc["Environment"]
    # The network is not cut off, and nothing is writable.
    assert "PrivateNetwork" not in svc and "IPAddressDeny" not in svc
    assert "ReadWritePaths" not in svc
    codes = exit_codes()
    prevent = {int(c) for c in svc["RestartPreventExitStatus"][0].split()}
    assert prevent == {codes[n] for n in ("USAGE", "CONFIG", "REFUSED")}
    # setrlimit is outside the filter (@resources denied), so the unit
    # gives the descriptors HTTP_MAX_CONNECTIONS needs up front.
    assert int(svc["LimitNOFILE"][0]) >= 4096
    assert "~@privileged @resources" in svc["SystemCallFilter"]


@pytest.fixture
def unit_copy(tmp_path):
    text = UNIT.read_text()
    p = tmp_path / "breeze-server.service"
    p.write_text(text.replace(f"ExecStart={INSTALLED_BIN}", f"ExecStart={SERVER_BIN}"))
    return p


@needs_analyze
def test_unit_verifies(unit_copy):
    rc, out = verify(unit_copy)
    assert rc == 0, out
    assert "breeze-server.service" not in out, out


@needs_analyze
def test_unit_security_exposure(unit_copy, capsys):
    helptext = subprocess.run([ANALYZE, "security", "--help"], capture_output=True,
                              text=True).stdout
    if "--offline" not in helptext:
        pytest.skip("this systemd-analyze has no security --offline (systemd < 250)")
    r = subprocess.run([ANALYZE, "security", "--offline=yes", "--threshold=20", str(unit_copy)],
                       capture_output=True, text=True, timeout=60, cwd=unit_copy.parent)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", r.stdout)
    assert m, r.stdout + r.stderr
    with capsys.disabled():
        print(f"\nbreeze-server.service exposure {m.group(1)} {m.group(2)}")
    assert r.returncode == 0, r.stdout[-3000:]
    assert float(m.group(1)) <= 2.0


@pytest.mark.skipif(not (shutil.which("systemd-sysusers") and shutil.which("systemd-tmpfiles")),
                    reason="systemd-sysusers/systemd-tmpfiles not installed (package systemd)")
def test_sysusers_and_tmpfiles(workdir):
    if os.geteuid() != 0:
        pytest.skip("creating files owned by another user needs root")
    root = Path(tempfile.mkdtemp(prefix="sdroot-server-", dir=workdir))
    root.chmod(0o755)
    (root / "etc").mkdir(mode=0o755)
    for sub, name in (("sysusers.d", "breeze-server.sysusers"),
                      ("tmpfiles.d", "breeze-server.tmpfiles")):
        d = root / "usr" / "lib" / sub
        d.mkdir(parents=True)
        shutil.copy(DEPLOY / name, d / "breeze-server.conf")
    for cmd in (["systemd-sysusers", f"--root={root}", "breeze-server.conf"],
                ["systemd-tmpfiles", "--create", f"--root={root}", "breeze-server.conf"]):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
    pw = next(line.split(":") for line in (root / "etc" / "passwd").read_text().splitlines()
              if line.startswith("breeze-server:"))
    gid = int(pw[3])
    assert 0 < int(pw[2]) < 1000 and pw[6] == "/usr/sbin/nologin", pw
    st = os.stat(root / "etc" / "breeze-server")
    # root's directory, the group may enter; the env file inside stays 0600 root.
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, gid, 0o750)
