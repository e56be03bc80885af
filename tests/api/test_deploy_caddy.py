"""deploy/Caddyfile (checklist N8, N9, M1, G8): `caddy validate` accepts it
with the variables of .env.prod set and `caddy fmt` leaves it as it is; its
adapted JSON config has automatic TLS for BREEZE_DOMAIN with ACME_EMAIL,
HSTS with includeSubDomains and preload, the other security headers,
header/body timeouts against slow clients, no admin API, /metrics refused,
and a reverse proxy that trusts no X-Forwarded-For from the client (Caddy
then sends the peer's address, which TRUSTED_PROXY_CIDRS lets the server
believe). The optional mTLS block for agents is documented in it."""
import json
import shutil
import subprocess

import pytest
import requests

from conftest import REPO, SERVER_BIN, base_process_env

CADDYFILE = REPO / "deploy" / "Caddyfile"
CADDY = shutil.which("caddy")
pytestmark = pytest.mark.skipif(CADDY is None, reason="caddy is not installed "
                                "(Debian package caddy; scripts/install-deps installs it)")
HSTS = "max-age=31536000; includeSubDomains; preload"
DOMAIN = "rmm.example.com"
EMAIL = "ops@example.com"


def caddy_env():
    env = base_process_env()
    env.update(BREEZE_DOMAIN=DOMAIN, ACME_EMAIL=EMAIL, BREEZE_UPSTREAM="127.0.0.1:8080",
               XDG_DATA_HOME="/nonexistent", XDG_CONFIG_HOME="/nonexistent")
    return env


def caddy(*args, path=CADDYFILE, tmp):
    return subprocess.run([CADDY, *args, "--adapter", "caddyfile", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, env=caddy_env(), cwd=tmp)


@pytest.mark.normal_only
def test_caddy_validate(tmp_path):
    r = caddy("validate", tmp=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Valid configuration" in r.stdout + r.stderr
    # Formatted as caddy fmt writes it; no adapter warning at all.
    assert '"level":"warn"' not in r.stderr, r.stderr


@pytest.mark.normal_only
def test_caddy_validate_would_catch_a_broken_file(tmp_path):
    broken = tmp_path / "Caddyfile"
    broken.write_text(CADDYFILE.read_text().replace("read_header 10s", "read_headers 10s"))
    r = caddy("validate", path=broken, tmp=tmp_path)
    assert r.returncode != 0 and "read_headers" in r.stderr, r.stderr[-2000:]


def adapted(tmp):
    r = caddy("adapt", tmp=tmp)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def walk(node):
    """Every dict inside NODE."""
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def site_server(cfg):
    servers = cfg["apps"]["http"]["servers"]
    (srv,) = [s for s in servers.values() if ":443" in s["listen"]]
    return srv


def test_tls_headers_timeouts_and_proxy(tmp_path):
    cfg = adapted(tmp_path)
    assert cfg["admin"]["disabled"] is True
    srv = site_server(cfg)
    hosts = [h for d in walk(srv["routes"]) for h in d.get("host", [])]
    assert hosts == [DOMAIN]
    # N8: ACME with the operator's e-mail (Caddy's automatic TLS for the site).
    (policy,) = cfg["apps"]["tls"]["automation"]["policies"]
    assert policy["subjects"] == [DOMAIN]
    assert {i["module"] for i in policy["issuers"]} >= {"acme"}
    assert all(i["email"] == EMAIL for i in policy["issuers"])
    # Automatic HTTPS is on (not disabled) for the site.
    assert not (srv.get("automatic_https") or {}).get("disable")
    # Slow clients: every read bounded (ns).
    assert srv["read_header_timeout"] == 10 * 10**9
    assert 0 < srv["read_timeout"] <= 60 * 10**9
    assert 0 < srv["idle_timeout"] <= 300 * 10**9
    assert 0 < srv["max_header_bytes"] <= 64 * 1024
    # N9 and the other headers, applied after the upstream's.
    (hdr,) = [d for d in walk(srv) if d.get("handler") == "headers"]
    resp = hdr["response"]
    assert resp["set"]["Strict-Transport-Security"] == [HSTS]
    assert resp["set"]["X-Content-Type-Options"] == ["nosniff"]
    assert resp["set"]["X-Frame-Options"] == ["DENY"]
    assert resp["set"]["Referrer-Policy"] == ["no-referrer"]
    assert resp["deferred"] is True and "Server" in resp["delete"]
    # M1: /metrics is answered 404 by the proxy, before the reverse proxy.
    routes = [d for d in walk(srv) if "handle" in d]
    metrics = [r for r in routes if any(m.get("path") == ["/metrics", "/metrics/*"]
                                        for m in r.get("match", []))]
    assert metrics and metrics[0]["handle"][0]["status_code"] == 404
    (proxy,) = [d for d in walk(srv) if d.get("handler") == "reverse_proxy"]
    assert proxy["upstreams"] == [{"dial": "127.0.0.1:8080"}]
    # Nothing in front of Caddy is trusted: it overwrites X-Forwarded-For
    # with the TCP peer's address instead of appending to the client's.
    assert "trusted_proxies" not in json.dumps(cfg)
    assert not any("X-Forwarded-For" in (d.get("set") or {}) for d in walk(proxy))


def test_mtls_block_for_agents_is_documented():
    text = CADDYFILE.read_text()
    assert "G8" in text
    for needle in ("client_auth", "require_and_verify", "trusted_ca_cert_file",
                   "/api/v1/agents/*"):
        assert needle in text, needle


def test_the_api_sends_hsts_too_in_production(spawn_server):
    """N9: breeze-server in production sends the same HSTS header itself, in
    case the proxy in front of it does not: on answers, errors and the web
    dashboard alike."""
    out = subprocess.run([str(SERVER_BIN), "gen-secrets"], capture_output=True, text=True,
                         timeout=30, env=base_process_env())
    gen = dict(line.split("=", 1) for line in out.stdout.splitlines()
               if line and not line.startswith("#"))
    srv = spawn_server(BREEZE_ENV="production", **gen)
    for path, status in (("/readyz", 200), ("/api/v1/auth/me", 401), ("/", None)):
        r = requests.get(srv.url + path, timeout=30)
        if status is not None:
            assert r.status_code == status, (path, r.status_code)
        assert r.headers["Strict-Transport-Security"] == HSTS, path
