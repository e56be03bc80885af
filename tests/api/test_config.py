"""Start-up configuration: the server refuses bad configuration with exit 3 and
one line naming the variable (never its value), starts with a good one, and
stops cleanly on SIGTERM. Checklist S1, S4, S5, A3, N4, K5."""
import json
import re
import secrets
import signal
import subprocess

import pytest

from conftest import SERVER_BIN, base_process_env, superuser_breeze_url

SECRET_VARS = ("JWT_SECRET", "APP_ENCRYPTION_KEY", "MFA_ENCRYPTION_KEY", "MFA_RECOVERY_CODE_PEPPER",
               "ENROLLMENT_KEY_PEPPER", "AGENT_ENROLLMENT_SECRET", "METRICS_SCRAPE_TOKEN",
               "AUDIT_SIGNING_KEY")


def sensitive_values(env):
    """Every secret of ENV, including the passwords inside the URLs."""
    vals = [env[k] for k in SECRET_VARS if env.get(k)]
    vals.append(env["REDIS_PASSWORD"])
    for k in ("DATABASE_URL", "MIGRATION_DATABASE_URL", "AUDIT_ADMIN_DATABASE_URL",
              "SUPERUSER_DATABASE_URL", "REDIS_URL"):
        m = re.match(r"^[a-z]+://[^:/@]*:([^@]+)@", env.get(k, ""))
        if m:
            vals.append(m.group(1))
    return vals


HEX = secrets.token_hex(32)

# (id, env overrides (None removes), variable that must be named on stderr)
# Overrides that are callables receive the services env (to reuse its values).
REFUSED = [
    ("prod-jwt-changeme", {"BREEZE_ENV": "production", "JWT_SECRET": "changeme" + HEX}, "JWT_SECRET"),
    ("prod-jwt-short", {"BREEZE_ENV": "production", "JWT_SECRET": HEX[:31]}, "JWT_SECRET"),
    ("prod-jwt-low-entropy", {"BREEZE_ENV": "production", "JWT_SECRET": "ab" * 24}, "JWT_SECRET"),
    ("prod-app-key-equals-mfa-key",
     {"BREEZE_ENV": "production", "APP_ENCRYPTION_KEY": lambda e: e["MFA_ENCRYPTION_KEY"]},
     "APP_ENCRYPTION_KEY"),
    ("prod-pepper-reused",
     {"BREEZE_ENV": "production", "ENROLLMENT_KEY_PEPPER": lambda e: e["JWT_SECRET"]},
     "ENROLLMENT_KEY_PEPPER"),
    ("prod-mfa-key-missing", {"BREEZE_ENV": "production", "MFA_ENCRYPTION_KEY": None},
     "MFA_ENCRYPTION_KEY"),
    ("prod-redis-without-password",
     {"BREEZE_ENV": "production", "REDIS_URL": lambda e: f"redis://127.0.0.1:{e['REDIS_PORT']}/0"},
     "REDIS_URL"),
    ("prod-registration-enabled", {"BREEZE_ENV": "production", "ENABLE_REGISTRATION": "true"},
     "ENABLE_REGISTRATION"),
    ("prod-cookies-not-secure", {"BREEZE_ENV": "production", "SESSION_COOKIE_SECURE": "false"},
     "SESSION_COOKIE_SECURE"),
    ("test-jwt-missing", {"JWT_SECRET": None}, "JWT_SECRET"),
    ("test-enrollment-pepper-missing", {"ENROLLMENT_KEY_PEPPER": None}, "ENROLLMENT_KEY_PEPPER"),
    ("test-agent-secret-missing", {"AGENT_ENROLLMENT_SECRET": None}, "AGENT_ENROLLMENT_SECRET"),
    ("database-url-missing", {"DATABASE_URL": None}, "DATABASE_URL"),
    ("redis-url-missing", {"REDIS_URL": None}, "REDIS_URL"),
    ("bad-breeze-env", {"BREEZE_ENV": "staging"}, "BREEZE_ENV"),
    ("heartbeat-too-small", {"HEARTBEAT_INTERVAL_SECONDS": "4"}, "HEARTBEAT_INTERVAL_SECONDS"),
    ("heartbeat-too-big", {"HEARTBEAT_INTERVAL_SECONDS": "3601"}, "HEARTBEAT_INTERVAL_SECONDS"),
    ("heartbeat-not-a-number", {"HEARTBEAT_INTERVAL_SECONDS": "60s"}, "HEARTBEAT_INTERVAL_SECONDS"),
    ("token-max-age-zero", {"AGENT_TOKEN_MAX_AGE_DAYS": "0"}, "AGENT_TOKEN_MAX_AGE_DAYS"),
    ("token-max-age-too-big", {"AGENT_TOKEN_MAX_AGE_DAYS": "3651"}, "AGENT_TOKEN_MAX_AGE_DAYS"),
    ("listen-addr-hostname", {"LISTEN_ADDR": "localhost:8080"}, "LISTEN_ADDR"),
    ("listen-addr-no-port", {"LISTEN_ADDR": "127.0.0.1"}, "LISTEN_ADDR"),
    ("body-limit-too-small", {"HTTP_MAX_BODY_BYTES": "10"}, "HTTP_MAX_BODY_BYTES"),
    # Sessions (A5, A7) and the origins trusted with the session cookies.
    ("session-max-age-too-small", {"SESSION_MAX_AGE": "299"}, "SESSION_MAX_AGE"),
    ("session-idle-too-big", {"SESSION_IDLE_TIMEOUT": str(30 * 86400 + 1)}, "SESSION_IDLE_TIMEOUT"),
    ("refresh-grace-too-big", {"REFRESH_REUSE_GRACE_SECONDS": "61"}, "REFRESH_REUSE_GRACE_SECONDS"),
    ("allowed-origin-with-path", {"ALLOWED_ORIGINS": "https://rmm.example.test/app"}, "ALLOWED_ORIGINS"),
    ("allowed-origin-not-http", {"ALLOWED_ORIGINS": "ftp://rmm.example.test"}, "ALLOWED_ORIGINS"),
    ("allowed-origin-empty-item", {"ALLOWED_ORIGINS": "https://a.example.test,,https://b.example.test"},
     "ALLOWED_ORIGINS"),
    # Database URLs are postgresql:// URIs that libpq parses.
    ("database-url-keyword-form",
     {"DATABASE_URL": "host=127.0.0.1 dbname=breeze user=breeze_app password=kw-secret-value-1"},
     "DATABASE_URL"),
    ("database-url-garbage", {"DATABASE_URL": "definitely not a database url"}, "DATABASE_URL"),
    ("migration-url-keyword-form", {"MIGRATION_DATABASE_URL": "dbname=breeze user=breeze"},
     "MIGRATION_DATABASE_URL"),
    ("audit-admin-url-bad-option",
     {"AUDIT_ADMIN_DATABASE_URL": "postgresql://127.0.0.1/breeze?nosuchoption=1"},
     "AUDIT_ADMIN_DATABASE_URL"),
    # A proxy list that trusts every address lets any client choose its own.
    ("prod-trusted-proxies-every-ipv4", {"BREEZE_ENV": "production", "TRUSTED_PROXY_CIDRS": "0.0.0.0/0"},
     "TRUSTED_PROXY_CIDRS"),
    ("prod-trusted-proxies-every-ipv6",
     {"BREEZE_ENV": "production", "TRUSTED_PROXY_CIDRS": "127.0.0.1/32,::/0"}, "TRUSTED_PROXY_CIDRS"),
    ("prod-trusted-proxies-halves",
     {"BREEZE_ENV": "production", "TRUSTED_PROXY_CIDRS": "0.0.0.0/1,128.0.0.0/1"},
     "TRUSTED_PROXY_CIDRS"),
    # Outbound requests and webhooks (issue 12).
    ("ssrf-allowlist-host-bits", {"SSRF_ALLOWLIST": "10.0.0.1/8"}, "SSRF_ALLOWLIST"),
    ("ssrf-allowlist-bad-name", {"SSRF_ALLOWLIST": "ok.example,bad_name!"}, "SSRF_ALLOWLIST"),
    ("app-key-not-hex", {"APP_ENCRYPTION_KEY": "zq" * 32}, "APP_ENCRYPTION_KEY"),
    # Encrypted settings (O2, docs/encryption.md): key ids and the keyring.
    ("app-key-id-bad-char", {"APP_ENCRYPTION_KEY_ID": "key 2026"}, "APP_ENCRYPTION_KEY_ID"),
    ("app-key-id-too-long", {"APP_ENCRYPTION_KEY_ID": "k" * 33}, "APP_ENCRYPTION_KEY_ID"),
    ("keyring-not-hex", {"APP_ENCRYPTION_KEYRING": "old:" + "zq" * 32}, "APP_ENCRYPTION_KEYRING"),
    ("keyring-empty-entry", {"APP_ENCRYPTION_KEYRING": "old:" + HEX + ","}, "APP_ENCRYPTION_KEYRING"),
    ("keyring-duplicate-id", {"APP_ENCRYPTION_KEY_ID": "k1", "APP_ENCRYPTION_KEYRING": "k1:" + HEX},
     "APP_ENCRYPTION_KEYRING"),
    ("keyring-repeats-active-key",
     {"APP_ENCRYPTION_KEYRING": lambda e: "old:" + e["APP_ENCRYPTION_KEY"]}, "APP_ENCRYPTION_KEYRING"),
    ("prod-keyring-reuses-mfa-key",
     {"BREEZE_ENV": "production", "APP_ENCRYPTION_KEYRING": lambda e: "old:" + e["MFA_ENCRYPTION_KEY"]},
     "APP_ENCRYPTION_KEYRING"),
    ("keyring-without-app-key", {"APP_ENCRYPTION_KEY": None, "APP_ENCRYPTION_KEYRING": "old:" + HEX},
     "APP_ENCRYPTION_KEYRING"),
    ("webhook-interval-too-big", {"WEBHOOK_WORKER_INTERVAL_MS": "600001"},
     "WEBHOOK_WORKER_INTERVAL_MS"),
]


@pytest.mark.parametrize("overrides,variable", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_bad_config_is_refused_naming_the_variable(run_server, env, overrides, variable):
    """S1/S4/S5/A3/N4: exit 3 (configuration), the variable named, no secret value printed."""
    ov = {k: (v(env) if callable(v) else v) for k, v in overrides.items()}
    r = run_server(**ov)
    out = r.stdout + r.stderr
    assert r.returncode == 3, f"rc={r.returncode}\n{out[-2000:]}"
    assert variable in r.stderr, r.stderr
    for v in sensitive_values(env) + [v for v in ov.values() if v and len(v) >= 16]:
        assert v not in out, f"a secret value appears in the output: {out[-2000:]}"


def test_refuses_to_run_as_root_without_allow_root(run_server):
    """K5: as root, serve needs --allow-root."""
    r = run_server(args=())
    assert r.returncode == 5  # refused
    assert "root" in r.stderr


def test_production_with_generated_secrets_starts(spawn_server):
    """The positive control for the production cases above: `gen-secrets` output
    passes every check, so those refusals come from the variable under test."""
    out = subprocess.run([str(SERVER_BIN), "gen-secrets"], capture_output=True, text=True,
                         timeout=30, env=base_process_env())
    assert out.returncode == 0
    gen = dict(line.split("=", 1) for line in out.stdout.splitlines()
               if line and not line.startswith("#"))
    assert set(SECRET_VARS) <= set(gen)
    assert len(set(gen.values())) == len(gen)
    for v in gen.values():
        assert re.fullmatch(r"[0-9a-f]{64}", v)
    srv = spawn_server(BREEZE_ENV="production", **gen)
    assert srv.proc.poll() is None
    assert srv.stop() == 0


def test_sigterm_exits_zero(spawn_server):
    srv = spawn_server()
    assert srv.stop(signal.SIGTERM) == 0
    assert "server.stopped" in srv.log_text()


def test_sigint_exits_zero(spawn_server):
    srv = spawn_server()
    assert srv.stop(signal.SIGINT) == 0


def test_second_bootstrap_is_refused(env_file, bootstrap):
    password = "Another-" + secrets.token_hex(8)
    r = subprocess.run(
        [str(SERVER_BIN), "bootstrap", "--env-file", str(env_file), "--password-stdin",
         "--email", "second-admin@example.test", "--name", "Second", "--partner", "P2",
         "--org", "O2", "--site", "S2"],
        input=password + "\n", capture_output=True, text=True, timeout=60, env=base_process_env())
    assert r.returncode == 5, r.stdout + r.stderr  # refused
    assert password not in r.stdout + r.stderr


def test_trust_every_address_is_only_a_warning_outside_production(spawn_server):
    srv = spawn_server(TRUSTED_PROXY_CIDRS="0.0.0.0/0")
    assert srv.proc.poll() is None
    assert "config warning: TRUSTED_PROXY_CIDRS: trusts every" in srv.log_text()
    assert srv.stop() == 0


def test_messages_name_no_outside_documents(run_server):
    r = run_server(DATABASE_URL="host=x dbname=y", TRUSTED_PROXY_CIDRS="::/0",
                   BREEZE_ENV="production", JWT_SECRET="short")
    assert r.returncode == 3
    assert ".md" not in r.stderr and "shared/" not in r.stderr, r.stderr
    assert "DATABASE_URL: must be a postgresql:// URI" in r.stderr
    assert "host=x" not in r.stderr


# --------------------------------------------------------------------------- database role


def _prod_env(env, **overrides):
    return {"BREEZE_ENV": "production", **overrides}


def test_production_refuses_the_schema_owner(run_server, env):
    """serve as the migration owner could switch the append-only triggers off:
    refused in production, naming the problem (not the URL or password)."""
    r = run_server(**_prod_env(env, DATABASE_URL=env["MIGRATION_DATABASE_URL"]))
    assert r.returncode == 5, r.stderr[-2000:]
    assert "DATABASE_URL: role breeze_owner owns schema public" in r.stderr, r.stderr
    assert "owns table" in r.stderr
    assert "refusing to start in production with an unsafe database role" in r.stderr
    assert '"db.role.unsafe"' in r.stderr
    for v in sensitive_values(env):
        assert v not in r.stdout + r.stderr


def test_production_refuses_a_superuser(run_server, env):
    from conftest import superuser_breeze_url
    r = run_server(**_prod_env(env, DATABASE_URL=superuser_breeze_url(env)))
    assert r.returncode == 5, r.stderr[-2000:]
    assert "is a superuser" in r.stderr, r.stderr
    assert "BYPASSRLS" in r.stderr


def test_production_refuses_audit_delete_grant(run_server, env):
    """breeze_audit_admin may DELETE from audit_log (retention): not a role for serve."""
    r = run_server(**_prod_env(env, DATABASE_URL=env["AUDIT_ADMIN_DATABASE_URL"]))
    assert r.returncode == 5, r.stderr[-2000:]
    assert "may change or remove audit rows (audit_log DELETE)" in r.stderr, r.stderr


def test_production_refuses_a_role_with_createrole(run_server, env):
    """Up to PostgreSQL 15 a CREATEROLE role may grant itself membership in
    any role but a superuser, the migration owner included, and then switch
    the audit triggers off: refused like the owner itself."""
    import psycopg2
    from urllib.parse import urlsplit, urlunsplit
    name = "breeze_app_cr_" + secrets.token_hex(4)
    password = secrets.token_hex(12)
    su = psycopg2.connect(superuser_breeze_url(env))
    su.autocommit = True
    try:
        with su.cursor() as cur:
            cur.execute(f"CREATE ROLE {name} LOGIN CREATEROLE PASSWORD %s IN ROLE breeze_app",
                        (password,))
        u = urlsplit(env["DATABASE_URL"])
        netloc = f"{name}:{password}@{u.hostname}:{u.port}"
        r = run_server(**_prod_env(env, DATABASE_URL=urlunsplit(
            (u.scheme, netloc, u.path, u.query, u.fragment))))
        assert r.returncode == 5, r.stderr[-2000:]
        assert f"DATABASE_URL: role {name} has CREATEROLE" in r.stderr, r.stderr
        assert password not in r.stdout + r.stderr
    finally:
        with su.cursor() as cur:
            cur.execute(f"DROP ROLE IF EXISTS {name}")
        su.close()


def test_development_warns_about_the_schema_owner_and_starts(spawn_server, env):
    srv = spawn_server(BREEZE_ENV="development", DATABASE_URL=env["MIGRATION_DATABASE_URL"])
    assert srv.proc.poll() is None
    log = srv.log_text()
    lines = [json.loads(l) for l in log.splitlines() if '"db.role.unsafe"' in l]
    assert lines, log[-2000:]
    assert all(l["level"] == "warn" and l["role"] == "breeze_owner" for l in lines)
    assert any("owns schema public" in l["problem"] for l in lines)
    assert srv.stop() == 0


def test_production_app_role_starts_without_migration_url(spawn_server):
    """The positive control: the application role passes the check, and serve
    never needs MIGRATION_DATABASE_URL."""
    srv = spawn_server(BREEZE_ENV="production", MIGRATION_DATABASE_URL=None)
    assert srv.proc.poll() is None
    assert '"db.role.unsafe"' not in srv.log_text()
    assert srv.stop() == 0
