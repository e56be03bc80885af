"""deploy/redis/, deploy/postgresql/ and deploy/firewall/ run by their real
programs (checklist N1-N4, N7):
- redis-server starts with the shipped snippet (plus a test password and
  port on stdin, as the compose file does): loopback bind, no command
  without the password, the dangerous commands gone, CONFIG SET of
  protected settings refused, CONFIG GET still there for `check`;
- a throwaway PostgreSQL cluster with the shipped postgresql.conf and
  pg_hba.conf listens on 127.0.0.1 only, with SCRAM and no trust rule; the
  roles script creates the three roles, which can log in over TCP with
  their passwords only;
- the nftables ruleset passes `nft -c` (with and without the TURN lines)
  and opens only SSH, 80, 443 (3478); ufw.sh passes shellcheck and, run
  against a stand-in ufw that records its arguments, allows only those."""
import glob
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2
import pytest

from conftest import REPO, free_port

DEPLOY = REPO / "deploy"
REDIS_CONF = DEPLOY / "redis" / "redis.conf"
PG_DIR = DEPLOY / "postgresql"
FIREWALL = DEPLOY / "firewall"


# --------------------------------------------------------------------------- Redis

@pytest.mark.normal_only
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server missing")
def test_redis_snippet(tmp_path):
    text = REDIS_CONF.read_text()
    assert re.search(r"^bind 127\.0\.0\.1 ::1$", text, re.M)
    assert re.search(r"^protected-mode yes$", text, re.M)
    assert re.search(r"^requirepass \S+$", text, re.M)
    pw, port = secrets.token_hex(16), free_port()
    # bind: IPv4 loopback only here (the test machine may have no ::1).
    extra = f"requirepass {pw}\nport {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
    proc = subprocess.Popen(["redis-server", str(REDIS_CONF), "--daemonize", "no", "-"],
                            stdin=subprocess.PIPE, stdout=open(tmp_path / "redis.log", "wb"),
                            stderr=subprocess.STDOUT, cwd=tmp_path)
    proc.stdin.write(extra.encode())
    proc.stdin.close()

    def cli(*args, auth=True):
        env = dict(os.environ, REDISCLI_AUTH=pw) if auth else {
            k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
        return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
                              capture_output=True, text=True, timeout=10, env=env).stdout.strip()
    try:
        deadline = time.monotonic() + 10
        while cli("PING") != "PONG":
            assert proc.poll() is None, (tmp_path / "redis.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "redis.log").read_text()
            time.sleep(0.05)
        assert "NOAUTH" in cli("PING", auth=False)
        for cmd in (["FLUSHALL"], ["FLUSHDB"], ["KEYS", "*"], ["MONITOR"], ["DEBUG", "SLEEP", "0"],
                    ["MODULE", "LOAD", str(tmp_path / "x.so")], ["REPLICAOF", "NO", "ONE"],
                    ["SAVE"], ["BGSAVE"]):
            out = cli(*cmd)
            assert out.startswith("ERR"), f"{cmd}: {out}"
        assert "protected config" in cli("CONFIG", "SET", "dir", "/tmp")
        assert cli("CONFIG", "GET", "bind").splitlines() == ["bind", "127.0.0.1"]
        assert cli("CONFIG", "GET", "save").splitlines() == ["save"]
        # What breeze-server sends still works (SCRIPT LOAD + EVALSHA, SET/GET).
        sha = cli("SCRIPT", "LOAD", "return 1")
        assert cli("EVALSHA", sha, "0") == "1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --------------------------------------------------------------------------- PostgreSQL

def pg_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@pytest.mark.normal_only
@pytest.mark.skipif(pg_bin() is None, reason="PostgreSQL server binaries missing")
def test_postgresql_snippets_and_roles(workdir):
    hba = (PG_DIR / "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line.strip() and line[0] != "#"]
    assert rules and not [r for r in rules if r[-1] in ("trust", "md5", "password")]
    for r in rules:
        if r[0] == "host":
            assert r[3] in ("127.0.0.1/32", "::1/128"), r
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="pgdeploy-", dir=workdir))
    data, sock = root / "data", root / "run"
    sock.mkdir()
    if as_pg:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    b = pg_bin()
    r = subprocess.run([*as_pg, str(b / "initdb"), "-D", str(data), "-U", "postgres",
                        "--auth=peer", "-E", "UTF8", "--locale=C"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    port = free_port()
    (data / "conf.d").mkdir()
    shutil.copy(PG_DIR / "postgresql.conf", data / "conf.d" / "breeze.conf")
    shutil.copy(PG_DIR / "pg_hba.conf", data / "pg_hba.conf")
    with open(data / "postgresql.conf", "a") as f:
        # As Debian's postgresql.conf does; then this test's own port and socket.
        f.write(f"include_dir = 'conf.d'\n")
        (data / "conf.d" / "zz-test.conf").write_text(
            f"port = {port}\nunix_socket_directories = '{sock}'\nfsync = off\n")
    if as_pg:
        for p in (data / "conf.d", *(data / "conf.d").iterdir(), data / "pg_hba.conf"):
            shutil.chown(p, "postgres")
    for name, want in (("listen_addresses", "127.0.0.1"),
                       ("password_encryption", "scram-sha-256")):
        r = subprocess.run([*as_pg, str(b / "postgres"), "-D", str(data), "-C", name],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout.strip() == want, (name, r.stdout, r.stderr)
    log = root / "pg.log"
    r = subprocess.run([*as_pg, str(b / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                        "start"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr + (log.read_text() if log.exists() else "")
    try:
        pws = {v: secrets.token_hex(16) for v in ("BREEZE_OWNER_DB_PASSWORD",
                                                  "BREEZE_APP_DB_PASSWORD",
                                                  "BREEZE_AUDIT_DB_PASSWORD")}
        env = dict(os.environ, PGHOST=str(sock), PGPORT=str(port), **pws)
        r = subprocess.run([*as_pg, "env", *[f"{k}={v}" for k, v in pws.items()],
                            f"PGHOST={sock}", f"PGPORT={port}", "sh",
                            str(PG_DIR / "initdb" / "10-breeze-roles.sh")],
                           capture_output=True, text=True, timeout=60, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        # The file parses: no rule with an error.
        q = subprocess.run([*as_pg, str(b / "psql"), "-X", "-At", "-h", str(sock), "-p",
                            str(port), "-d", "postgres", "-c",
                            "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL"],
                           capture_output=True, text=True, timeout=30)
        assert q.stdout.strip() == "0", q.stdout + q.stderr
        for role, var in (("breeze_owner", "BREEZE_OWNER_DB_PASSWORD"),
                          ("breeze_app", "BREEZE_APP_DB_PASSWORD"),
                          ("breeze_audit_admin", "BREEZE_AUDIT_DB_PASSWORD")):
            c = psycopg2.connect(host="127.0.0.1", port=port, dbname="breeze", user=role,
                                 password=pws[var], connect_timeout=10)
            with c, c.cursor() as cur:
                cur.execute("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
                            "WHERE rolname = current_user")
                assert cur.fetchone() == (False, False, False)
            c.close()
            with pytest.raises(psycopg2.OperationalError):
                psycopg2.connect(host="127.0.0.1", port=port, dbname="breeze", user=role,
                                 password="wrong", connect_timeout=10).close()
        # The superuser has no TCP rule at all.
        with pytest.raises(psycopg2.OperationalError, match="no pg_hba.conf entry"):
            psycopg2.connect(host="127.0.0.1", port=port, dbname="postgres", user="postgres",
                             password="x", connect_timeout=10).close()
    finally:
        subprocess.run([*as_pg, str(b / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                        "stop"], capture_output=True, timeout=60)


# --------------------------------------------------------------------------- firewall

def nft_check(path):
    return subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True,
                          timeout=30)


@pytest.mark.normal_only
@pytest.mark.skipif(shutil.which("nft") is None, reason="nft (package nftables) missing")
def test_nftables_ruleset(tmp_path):
    probe = tmp_path / "probe.nft"
    probe.write_text("table inet breeze_probe {\n}\n")
    if nft_check(probe).returncode != 0:
        pytest.skip("nft -c needs netlink access this machine does not give")
    r = nft_check(FIREWALL / "nftables.conf")
    assert r.returncode == 0, r.stderr
    text = (FIREWALL / "nftables.conf").read_text()
    turn = tmp_path / "turn.nft"
    turn.write_text(text.replace("#TURN ", ""))
    r = nft_check(turn)
    assert r.returncode == 0, r.stderr
    # The check is real: a typo is refused.
    bad = tmp_path / "bad.nft"
    bad.write_text(text.replace("policy drop;", "policy dorp;"))
    assert nft_check(bad).returncode != 0
    active = [line.strip() for line in text.splitlines()
              if line.strip() and not line.lstrip().startswith("#")]
    assert "type filter hook input priority filter; policy drop;" in active
    ports = set()
    for line in active:
        m = re.search(r"\b(tcp|udp) dport (\{[^}]*\}|\S+)", line)
        if m:
            ports |= {f"{m.group(1)}/{p.strip()}" for p in m.group(2).strip("{}").split(",")}
    assert ports == {"tcp/$ssh_port", "tcp/80", "tcp/443", "udp/443"}, ports
    assert "define ssh_port = 22" in text
    # Only its own table is replaced: Docker's rules survive a reload.
    assert "flush ruleset" not in active


UFW_STANDIN = """#!/bin/sh
echo "$*" >> "$UFW_LOG"
"""


def run_ufw(tmp_path, *args):
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "ufw").write_text(UFW_STANDIN)
    (bindir / "ufw").chmod(0o755)
    log = tmp_path / "ufw.log"
    log.write_text("")
    env = dict(os.environ, PATH=f"{bindir}:/usr/bin:/bin", UFW_LOG=str(log))
    r = subprocess.run(["sh", str(FIREWALL / "ufw.sh"), *args], capture_output=True, text=True,
                       timeout=30, env=env)
    return r, log.read_text().splitlines()


def opened(calls):
    """The PORT/PROTO of every allow or limit rule in CALLS."""
    return {m.group(1) for c in calls
            if (m := re.match(r"(?:--dry-run )?(?:allow|limit) (\S+)", c))}


@pytest.mark.normal_only
def test_ufw_script(tmp_path):
    if shutil.which("shellcheck"):
        r = subprocess.run(["shellcheck", str(FIREWALL / "ufw.sh")], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stdout
    r, calls = run_ufw(tmp_path)
    assert r.returncode == 0, r.stderr
    assert calls[0] == "default deny incoming"
    assert "default allow outgoing" in calls
    assert opened(calls) == {"22/tcp", "80/tcp", "443/tcp", "443/udp"}, calls
    # SSH is allowed (rate-limited) before the firewall goes up.
    assert calls.index("limit 22/tcp comment SSH") < calls.index("--force enable")
    r, calls = run_ufw(tmp_path, "--turn", "--ssh-port", "2222")
    assert r.returncode == 0, r.stderr
    assert opened(calls) == {"2222/tcp", "80/tcp", "443/tcp", "443/udp", "3478/tcp",
                             "3478/udp"}, calls
    r, calls = run_ufw(tmp_path, "--dry-run")
    assert r.returncode == 0 and calls and all(c.startswith("--dry-run ") for c in calls)
    for bad in (["--ssh-port", "22; reboot"], ["--ssh-port", "0"], ["--bogus"]):
        r, calls = run_ufw(tmp_path, *bad)
        assert r.returncode == 2 and calls == [], bad
