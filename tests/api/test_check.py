"""`breeze-server check` (src/server/check/): one row per checklist item.
A deliberately bad deployment makes every item it can judge FAIL; a good
one (the shipped deploy/ files, gen-secrets, a fresh database) has no FAIL.
--live runs against a database of its own per test (created here, migrated
with the real binary), so the session database's state never leaks in."""
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from conftest import REPO, SERVER_BIN, base_process_env, free_port, read_env_file

ALL_IDS = ([f"S{i}" for i in range(1, 7)] + [f"N{i}" for i in range(1, 11)]
           + [f"K{i}" for i in range(1, 6)] + [f"A{i}" for i in range(1, 8)]
           + [f"G{i}" for i in range(1, 9)] + ["O1", "O2"] + [f"M{i}" for i in range(1, 5)]
           + [f"L{i}" for i in range(1, 7)] + [f"R{i}" for i in range(1, 7)])


def run_check(env, *args):
    r = subprocess.run([str(SERVER_BIN), "check", "--json", *args], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode in (0, 1), (r.returncode, r.stdout, r.stderr)
    doc = json.loads(r.stdout)
    rows = {i["id"]: i for i in doc["items"]}
    assert [i["id"] for i in doc["items"]] == ALL_IDS
    return r, rows


def with_db(url, db):
    u = urlsplit(url)
    return urlunsplit((u.scheme, u.netloc, "/" + db, u.query, u.fragment))


@pytest.fixture
def fresh_db(services, migrated):
    """A new, migrated database of the session's cluster (same roles);
    dropped afterwards. Yields (name, superuser connection to it)."""
    env = services.env
    name = "check_" + uuid.uuid4().hex[:10]
    su = psycopg2.connect(env["SUPERUSER_DATABASE_URL"])
    su.autocommit = True
    with su.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} OWNER breeze_owner TEMPLATE template0")
        cur.execute(f"REVOKE ALL ON DATABASE {name} FROM PUBLIC")
        cur.execute(f"GRANT CONNECT ON DATABASE {name} TO breeze_app, breeze_audit_admin")
    db = psycopg2.connect(with_db(env["SUPERUSER_DATABASE_URL"], name))
    db.autocommit = True
    with db.cursor() as cur:
        cur.execute("ALTER SCHEMA public OWNER TO breeze_owner")
        cur.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        cur.execute("GRANT USAGE ON SCHEMA public TO breeze_app, breeze_audit_admin")
    penv = dict(base_process_env(), DATABASE_URL=with_db(env["DATABASE_URL"], name),
                MIGRATION_DATABASE_URL=with_db(env["MIGRATION_DATABASE_URL"], name))
    r = subprocess.run([str(SERVER_BIN), "migrate"], env=penv, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    try:
        yield name, db
    finally:
        db.close()
        with su.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        su.close()


def gen_secrets():
    out = subprocess.run([str(SERVER_BIN), "gen-secrets"], env=base_process_env(),
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if line and line[0] != "#")


def write_env(path, values, mode=0o600):
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    os.chmod(path, mode)
    return path


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env=dict(base_process_env(), GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
                            GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t"))


def host_stand_in(root, tcp_ports, sshd, ruleset):
    """A stand-in for the host (BREEZE_TEST_CHECK_HOST_DIR): listeners on
    0.0.0.0 at TCP_PORTS, `sshd -T` output, an nftables ruleset."""
    net = root / "proc-net"
    net.mkdir(parents=True)
    head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
    lines = [f"   {i}: 00000000:{p:04X} 00000000:0000 0A 00000000:00000000 00:00000000 "
             f"00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n"
             for i, p in enumerate(tcp_ports)]
    # a loopback listener on a forbidden port never counts
    lines.append("   9: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 "
                 "00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n")
    (net / "tcp").write_text(head + "".join(lines))
    for t in ("tcp6", "udp", "udp6"):
        (net / t).write_text(head)
    (root / "sshd-T").write_text(sshd)
    (root / "nft-ruleset").write_text(ruleset)
    return root


BAD_COMPOSE = """
services:
  breeze-server:
    image: breeze/server:latest
    user: "0"
    ports: ["8080:8080"]
    environment:
      REDIS_URL: redis://redis:6379/0
  postgres:
    image: postgres:15
    ports: ["5432:5432"]
    security_opt: ["no-new-privileges:true"]
    cap_drop: [ALL]
  redis:
    image: redis:7
    ports: ["0.0.0.0:6379:6379"]
  grafana:
    image: grafana/grafana
    ports: ["3000:3000"]
"""

BAD_CADDYFILE = """
{
    auto_https off
}
:80 {
    tls internal
    reverse_proxy breeze-server:8080
}
"""


@pytest.fixture
def self_signed_tls(tmp_path):
    """A TLS listener on 127.0.0.1 serving a self-signed certificate."""
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=rmm.acme-msp.net"],
                   check=True, capture_output=True, timeout=60)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                continue
            try:
                with ctx.wrap_socket(c, server_side=True) as s:
                    s.recv(1)
            except (OSError, ssl.SSLError):
                pass
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield f"127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join(2)
    srv.close()


def test_a_bad_deployment_fails_every_item_check_can_judge(services, fresh_db, tmp_path,
                                                          self_signed_tls):
    name, db = fresh_db
    env = services.env
    with db.cursor() as cur:
        # L3, L5, G1, G5 broken by a careless superuser; a non-MFA admin (A1),
        # an admin role without forced MFA (A2), an audit row rewritten (L4).
        cur.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_delete")
        cur.execute("GRANT DELETE ON audit_log TO breeze_app")
        cur.execute("ALTER TABLE devices ADD COLUMN agent_token text")
        cur.execute("ALTER TABLE enrollment_keys ALTER COLUMN expires_at DROP NOT NULL")
        cur.execute("UPDATE roles SET force_mfa = false WHERE name = 'org_admin'")
        cur.execute("ALTER TABLE partners ADD COLUMN settings jsonb")  # O2: plaintext again
    boot = dict(base_process_env(), DATABASE_URL=with_db(env["DATABASE_URL"], name),
                MIGRATION_DATABASE_URL=with_db(env["MIGRATION_DATABASE_URL"], name),
                **gen_secrets())
    r = subprocess.run([str(SERVER_BIN), "bootstrap", "--email", "admin@acme-msp.net", "--name",
                        "Admin", "--partner", "P", "--org", "O", "--site", "S"], env=boot,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    with db.cursor() as cur:
        cur.execute("SET session_replication_role = replica")  # past the append-only trigger
        cur.execute("UPDATE audit_log SET details = '{\"tampered\": true}'"
                    " WHERE id = (SELECT min(id) FROM audit_log)")
        cur.execute("SET session_replication_role = origin")

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    secrets = gen_secrets()
    bad = dict(secrets, BREEZE_ENV="test", JWT_SECRET="changeme-" + "a" * 10,
               MFA_ENCRYPTION_KEY=secrets["APP_ENCRYPTION_KEY"], ENABLE_REGISTRATION="true",
               DATABASE_URL=with_db(env["DATABASE_URL"], name),
               REDIS_URL=re.sub(r"//:[^@]*@", "//", env["REDIS_URL"]),
               RATE_LIMIT_LOGIN="50/60", RATE_LIMIT_ENROLL="100/60",
               RATE_LIMIT_API_USER="1000/60", RATE_LIMIT_AGENT_DEVICE="1200/60",
               AGENT_ORG_RATE_LIMIT_PER_MIN="6000", SESSION_MAX_AGE=str(7 * 86400),
               REFRESH_REUSE_GRACE_SECONDS="30", SSRF_ALLOWLIST="10.0.0.0/8",
               BREEZE_DOMAIN="localhost", ACME_EMAIL="me@example.com")
    del bad["METRICS_SCRAPE_TOKEN"]
    ef = write_env(repo / ".env.prod", bad, mode=0o644)
    git(repo, "add", ".env.prod")
    git(repo, "commit", "-qm", "oops")
    (tmp_path / "compose.yml").write_text(BAD_COMPOSE)
    (tmp_path / "Caddyfile").write_text(BAD_CADDYFILE)
    host = host_stand_in(tmp_path / "host", [22, 443, 5432, 8080],
                         "passwordauthentication yes\npermitrootlogin yes\n", "")
    penv = dict(base_process_env(), BREEZE_TEST_CHECK_HOST_DIR=str(host))
    r, rows = run_check(penv, "--env-file", str(ef), "--compose", str(tmp_path / "compose.yml"),
                        "--caddyfile", str(tmp_path / "Caddyfile"), "--repo", str(repo), "--live",
                        "--tls-target", self_signed_tls)
    assert r.returncode == 1
    must_fail = ["S1", "S2", "S3", "S4", "S5", "N1", "N2", "N3", "N4", "N5", "N6", "N7", "N8",
                 "N9", "N10", "K1", "K2", "K3", "K4", "K5", "A1", "A2", "A3", "A4", "G1", "G5",
                 "M1", "M2", "M4", "L3", "L4", "L5", "O2", "R1", "R5"]
    wrong = {i: rows[i] for i in must_fail if rows[i]["result"] != "FAIL"}
    assert not wrong, json.dumps(wrong, indent=1)
    for i in ("A5", "A7", "O1", "R2", "R3", "R4", "G4"):
        assert rows[i]["result"] == "WARN", rows[i]
    # Reasons name variables, files and settings, never a secret's value.
    text = r.stdout + r.stderr
    for k, v in bad.items():
        if k.endswith(("SECRET", "KEY", "PEPPER", "TOKEN")) and len(v) >= 8:
            assert v not in text, k
    assert env["REDIS_PASSWORD"] not in text


def test_without_live_what_needs_the_services_is_manual(tmp_path):
    ef = write_env(tmp_path / ".env.prod", dict(gen_secrets(), BREEZE_ENV="production"))
    r, rows = run_check(base_process_env(), "--env-file", str(ef))
    for i in ("S6", "A1", "A2", "G1", "G5", "L3", "L4", "N6", "N7", "K1"):
        assert rows[i]["result"] == "MANUAL", rows[i]
        assert rows[i]["reason"]
    assert rows["S2"]["result"] == "PASS" and rows["S3"]["result"] == "PASS", rows["S3"]


def test_check_usage(services):
    r = subprocess.run([str(SERVER_BIN), "check", "--nope"], env=base_process_env(),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "usage: breeze-server check" in r.stderr
    r = subprocess.run([str(SERVER_BIN), "help", "check"], env=base_process_env(),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "--live" in r.stdout


def test_the_shipped_deployment_has_no_fail(services, fresh_db, tmp_path):
    """gen-secrets, the env file git-ignored at 0600, the shipped compose
    file and Caddyfile, the shipped nftables ruleset on a host that listens
    only on 22/80/443, and a fresh database whose administrator has MFA:
    no row FAILs (MANUAL and WARN may remain, each with its reason)."""
    name, db = fresh_db
    env = services.env
    secrets = gen_secrets()
    good = dict(secrets, BREEZE_ENV="test",
                DATABASE_URL=with_db(env["DATABASE_URL"], name),
                AUDIT_ADMIN_DATABASE_URL=with_db(env["AUDIT_ADMIN_DATABASE_URL"], name),
                REDIS_URL=env["REDIS_URL"], BREEZE_DOMAIN="rmm.acme-msp.net",
                ACME_EMAIL="ops@acme-msp.net")
    boot = dict(base_process_env(), MIGRATION_DATABASE_URL=with_db(env["MIGRATION_DATABASE_URL"],
                                                                    name), **good)
    r = subprocess.run([str(SERVER_BIN), "bootstrap", "--email", "admin@acme-msp.net", "--name",
                        "Admin", "--partner", "P", "--org", "O", "--site", "S"], env=boot,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    with db.cursor() as cur:
        # check reads only the flag; enrolling TOTP through the API is what
        # tests/api/test_mfa.py covers.
        cur.execute("UPDATE users SET mfa_enabled = true")
    repo = tmp_path / "ops"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / ".gitignore").write_text(".env.prod\n")
    ef = write_env(repo / ".env.prod", good)
    host = host_stand_in(tmp_path / "host", [22, 80, 443],
                         "passwordauthentication no\nkbdinteractiveauthentication no\n"
                         "permitrootlogin prohibit-password\n",
                         (REPO / "deploy" / "firewall" / "nftables.conf").read_text())
    penv = dict(base_process_env(), BREEZE_TEST_CHECK_HOST_DIR=str(host))
    r, rows = run_check(penv, "--env-file", str(ef),
                        "--compose", str(REPO / "deploy" / "docker-compose.prod.yml"),
                        "--caddyfile", str(REPO / "deploy" / "Caddyfile"), "--repo", str(REPO),
                        "--live", "--tls-target", f"127.0.0.1:{free_port()}")
    fails = {i: v for i, v in rows.items() if v["result"] == "FAIL"}
    assert not fails, json.dumps(fails, indent=1)
    assert r.returncode == 0, r.stderr
    for i in ("S2", "S3", "S6", "N1", "N3", "N4", "N5", "N6", "N7", "N8", "N9", "K1", "K2",
              "K3", "K4", "K5", "A1", "A2", "A3", "G1", "G5", "L3", "L4", "L5", "M1", "M2", "M4",
              "O2"):
        assert rows[i]["result"] == "PASS", rows[i]
    assert rows["N10"]["result"] == "MANUAL"  # nothing answers TLS there
    assert rows["N2"]["result"] == "MANUAL"  # pg_hba_file_rules is for superusers
