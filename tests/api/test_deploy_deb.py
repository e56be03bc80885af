"""`make deb` (scripts/build-deb): the breeze-server and breeze-agent .deb
files are built from the tree with Debian's own tools, lintian finds no
error in them (and no warning but the missing manual pages), every file is
root's with the usual modes, and the server package carries the web
dashboard, the migrations and the sandboxed unit. The agent package is
installed into a scratch root the way dpkg would (files unpacked, then its
postinst with DPKG_ROOT), which makes its user and /etc/breeze 0750; the
unpacked agent then enrols as that user against the test server and writes
agent.yaml 0640 and secrets.yaml 0600 (G3); purge removes /etc/breeze."""
import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import BUILD, REPO, SANITIZED, base_process_env, register_log

pytestmark = [
    pytest.mark.skipif(shutil.which("dpkg-deb") is None or shutil.which("dpkg-shlibdeps") is None,
                       reason="dpkg-deb/dpkg-shlibdeps missing (package dpkg-dev)"),
    pytest.mark.skipif(SANITIZED, reason="packages are made from the normal build's binaries, "
                       "not sanitizer builds"),
]
VERSION = (REPO / "VERSION").read_text().strip()
ALLOWED_WARNINGS = {"no-manual-page"}


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    out = tmp_path_factory.mktemp("debs")
    r = subprocess.run([str(REPO / "scripts" / "build-deb"), "--bin-dir", str(BUILD), "--out",
                        str(out)], capture_output=True, text=True, timeout=300,
                       env=base_process_env())
    assert r.returncode == 0, r.stdout + r.stderr
    paths = [Path(p) for p in r.stdout.split()]
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                          text=True).stdout.strip()
    assert [p.name for p in paths] == [f"breeze-server_{VERSION}_{arch}.deb",
                                       f"breeze-agent_{VERSION}_{arch}.deb"]
    return {p.name.split("_")[0]: p for p in paths}


def contents(deb):
    """[(mode string, owner, path)] of DEB's data archive."""
    out = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                         check=True).stdout
    rows = []
    for line in out.splitlines():
        f = line.split()
        rows.append((f[0], f[1], f[5].removeprefix(".")))
    return rows


def field(deb, name):
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.skipif(shutil.which("lintian") is None, reason="lintian is not installed")
def test_lintian_accepts_both(debs):
    r = subprocess.run(["lintian", "--allow-root", "--tag-display-limit", "0",
                        *map(str, debs.values())], capture_output=True, text=True, timeout=300)
    tags = [line for line in r.stdout.splitlines() if re.match(r"[EWXO]: ", line)]
    errors = [t for t in tags if t.startswith("E: ")]
    assert not errors, "\n".join(tags)
    warnings = {t.split()[2] for t in tags if t.startswith("W: ")}
    assert warnings <= ALLOWED_WARNINGS, "\n".join(tags)
    assert r.returncode == 0, r.stdout + r.stderr


def test_files_are_roots_with_the_usual_modes(debs):
    for pkg, deb in debs.items():
        rows = contents(deb)
        assert rows
        for mode, owner, path in rows:
            assert owner == "root/root", (pkg, path, owner)
            if mode.startswith("d"):
                assert mode == "drwxr-xr-x", (pkg, path, mode)
            elif path.startswith("/usr/bin/"):
                assert mode == "-rwxr-xr-x", (pkg, path, mode)
            else:
                assert mode == "-rw-r--r--", (pkg, path, mode)
        paths = {p for _, _, p in rows}
        for want in (f"/usr/bin/{pkg}", f"/lib/systemd/system/{pkg}.service",
                     f"/usr/lib/sysusers.d/{pkg}.conf", f"/usr/lib/tmpfiles.d/{pkg}.conf",
                     f"/usr/share/doc/{pkg}/copyright", f"/usr/share/doc/{pkg}/changelog.gz"):
            assert want in paths, (pkg, want)
        assert field(deb, "Version") == VERSION
        depends = field(deb, "Depends")
        assert "libc6" in depends and "libcurl3-gnutls" in depends and "systemd" in depends


def test_server_package_has_web_migrations_and_unit(debs, tmp_path):
    deb = debs["breeze-server"]
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    share = tmp_path / "usr" / "share" / "breeze"
    assert sorted(p.name for p in (share / "migrations").iterdir()) == \
        sorted(p.name for p in (REPO / "migrations").glob("*.sql"))
    assert (share / "web" / "index.html").is_file()
    assert (tmp_path / "usr" / "share" / "doc" / "breeze-server" / "deploy.md.gz").is_file()
    unit = (tmp_path / "lib" / "systemd" / "system" / "breeze-server.service").read_text()
    assert "ExecStart=/usr/bin/breeze-server serve" in unit
    assert "/usr/local/bin" not in unit
    for dep in ("libpq5", "libulfius2.7", "libhiredis0.14"):
        assert dep in field(deb, "Depends")
    r = subprocess.run([str(tmp_path / "usr" / "bin" / "breeze-server"), "version"],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == f"breeze-server {VERSION}"


def test_agent_package_installs_and_enrols(debs, server, agents, workdir):
    if os.geteuid() != 0:
        pytest.skip("creating the agent's user in a scratch root needs root")
    root = Path(tempfile.mkdtemp(prefix="debroot-", dir=workdir))
    root.chmod(0o755)
    (root / "etc").mkdir(mode=0o755)
    deb = debs["breeze-agent"]
    control = root.parent / (root.name + "-control")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    subprocess.run(["dpkg-deb", "-e", str(deb), str(control)], check=True)
    env = dict(base_process_env(), DPKG_ROOT=str(root))
    r = subprocess.run(["sh", str(control / "postinst"), "configure"], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    pw = next(line.split(":") for line in (root / "etc" / "passwd").read_text().splitlines()
              if line.startswith("breeze-agent:"))
    uid, gid = int(pw[2]), int(pw[3])
    cfg = root / "etc" / "breeze"
    st = os.stat(cfg)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, 0o750)
    unit = (root / "lib" / "systemd" / "system" / "breeze-agent.service").read_text()
    assert "ExecStart=/usr/bin/breeze-agent run --config-dir /etc/breeze" in unit

    binary = root / "usr" / "bin" / "breeze-agent"
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

    r = subprocess.run(["sh", str(control / "postrm"), "purge"], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not cfg.exists()
