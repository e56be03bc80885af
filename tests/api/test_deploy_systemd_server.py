"""deploy/systemd/breeze-server.*: the server's unit runs it as its own
user in a systemd sandbox (K1, K5) that `systemd-analyze security
--offline` rates at most 2.0 and `systemd-analyze verify` accepts; the
network stays (it listens and talks to PostgreSQL, Redis and webhook
receivers), only the address families are restricted. The env file is read
by systemd as root (EnvironmentFile=), so it stays 0600 root's (S2); the
sysusers/tmpfiles files give the user and /etc/breeze-server."""
import os
import shutil
import stat

import pytest

from conftest import REPO, SERVER_BIN
from test_deploy_systemd import (assert_exposure_ok, copy_for_analyze, exit_codes, needs_analyze,
                                 parse_unit, sysusers_root, verify)

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
    return copy_for_analyze(UNIT, INSTALLED_BIN, SERVER_BIN, tmp_path)


@pytest.mark.normal_only
@needs_analyze
def test_unit_verifies(unit_copy):
    rc, out = verify(unit_copy)
    assert rc == 0, out
    assert "breeze-server.service" not in out, out


@pytest.mark.normal_only
@needs_analyze
def test_unit_security_exposure(unit_copy, capsys):
    assert_exposure_ok(unit_copy, capsys, "breeze-server.service exposure")


@pytest.mark.normal_only
@pytest.mark.skipif(not (shutil.which("systemd-sysusers") and shutil.which("systemd-tmpfiles")),
                    reason="systemd-sysusers/systemd-tmpfiles not installed (package systemd)")
def test_sysusers_and_tmpfiles(workdir):
    if os.geteuid() != 0:
        pytest.skip("creating files owned by another user needs root")
    root, pw = sysusers_root(workdir, "breeze-server")
    gid = int(pw[3])
    assert 0 < int(pw[2]) < 1000 and pw[6] == "/usr/sbin/nologin", pw
    st = os.stat(root / "etc" / "breeze-server")
    # root's directory, the group may enter; the env file inside stays 0600 root.
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, gid, 0o750)
