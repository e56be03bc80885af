"""`breeze-server check`: the compose and Caddyfile rules beyond the
attack tests (tests/api/test_attack_obs.py) — the proxy's one allowed
capability, unconfined security options, interpolated values, and the
Caddyfile's text rules when no caddy binary is on PATH."""
import json
import subprocess

import pytest

from conftest import SERVER_BIN, base_process_env
from test_attack_obs import HSTS, compose_rows, good_services


def test_the_proxy_may_add_back_net_bind_service_only(tmp_path):
    services = good_services()
    services["caddy"]["cap_add"] = ["NET_BIND_SERVICE"]
    assert compose_rows(tmp_path, services)["K2"]["result"] == "PASS"
    services["redis"]["cap_add"] = ["NET_BIND_SERVICE"]
    assert compose_rows(tmp_path, services)["K2"]["result"] == "FAIL"


@pytest.mark.parametrize("opt", ["seccomp=unconfined", "apparmor:unconfined"])
def test_unconfined_security_opt_fails_k1(tmp_path, opt):
    services = good_services()
    services["postgres"]["security_opt"].append(opt)
    assert compose_rows(tmp_path, services)["K1"]["result"] == "FAIL"


@pytest.mark.parametrize("user,result", [("${APP_UID:-1001}:1001", "PASS"),
                                         ("${APP_UID}", "MANUAL"),
                                         ("breeze", "FAIL")])
def test_breeze_server_user_is_judged_by_its_default(tmp_path, user, result):
    services = good_services()
    services["breeze-server"]["user"] = user
    assert compose_rows(tmp_path, services)["K5"]["result"] == result


@pytest.mark.parametrize("url,result", [
    ("redis://:${REDIS_PASSWORD:?set it}@redis:6379/0", "PASS"),
    ("redis://:${REDIS_PASSWORD}@redis:6379/0", "MANUAL"),
    ("redis://:${REDIS_PASSWORD:-}@redis:6379/0", "FAIL"),
])
def test_interpolated_redis_url(tmp_path, url, result):
    services = good_services()
    services["breeze-server"]["environment"]["REDIS_URL"] = url
    rows = compose_rows(tmp_path, services)
    assert rows["N4"]["result"] == result, rows["N4"]


def test_a_literal_password_in_a_url_fails_s3_naming_the_variable_only(tmp_path):
    services = good_services()
    services["breeze-server"]["environment"]["DATABASE_URL"] = \
        "postgresql://app:Pw0rdLiteral77@postgres/breeze"
    rows = compose_rows(tmp_path, services)
    assert rows["S3"]["result"] == "FAIL" and "DATABASE_URL" in rows["S3"]["reason"]
    assert "Pw0rdLiteral77" not in json.dumps(rows)


@pytest.mark.parametrize("vol", ["/:/host:ro", "/proc/1:/p", {"type": "bind", "source": "/etc",
                                                              "target": "/e"}])
def test_binding_host_system_directories_fails_k2(tmp_path, vol):
    services = good_services()
    services["postgres"]["volumes"] = [vol]
    assert compose_rows(tmp_path, services)["K2"]["result"] == "FAIL"


def _caddy_text_rows(tmp_path, site_body):
    """The Caddyfile judged by its text only: no caddy on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    p = tmp_path / "Caddyfile"
    p.write_text("{\n\temail {$ACME_EMAIL}\n}\n\n{$BREEZE_DOMAIN} {\n" + site_body + "\n}\n")
    env = dict(base_process_env(), PATH=str(bin_dir), BREEZE_DOMAIN="rmm.acme-msp.net",
               ACME_EMAIL="ops@acme-msp.net", METRICS_SCRAPE_TOKEN="t" * 43)
    r = subprocess.run([str(SERVER_BIN), "check", "--json", "--caddyfile", str(p)], env=env,
                       capture_output=True, text=True, timeout=60)
    rows = {i["id"]: i for i in json.loads(r.stdout)["items"]}
    assert "caddy adapt" not in rows["N8"]["reason"]
    return rows


@pytest.mark.parametrize("body,item,result", [
    ("\t" + HSTS + "\n\t@m path /metrics*\n\trespond @m 404\n\treverse_proxy x:1", "M1", "PASS"),
    ("\t" + HSTS + "\n\t@m path /metrics*\n\trespond @m 404\n\treverse_proxy @m x:1", "M1",
     "WARN"),
    ("\t" + HSTS + "\n\trespond /x \"a\\\"b\" # " + HSTS + "\n\treverse_proxy x:1", "N9", "PASS"),
    ("\theader Strict-Transport-Security \"max-age=600\"\n\treverse_proxy x:1", "N9", "FAIL"),
    ("\t" + HSTS + "\n\theader -Strict-Transport-Security\n\treverse_proxy x:1", "N9", "FAIL"),
    ("\t" + HSTS + "\n\ttls {\n\t\tissuer   internal\n\t}\n\treverse_proxy x:1", "N10", "FAIL"),
    ("\t" + HSTS + "\n\ttls\tinternal\n\treverse_proxy x:1", "N10", "FAIL"),
])
def test_caddyfile_text_rules_without_caddy(tmp_path, body, item, result):
    rows = _caddy_text_rows(tmp_path, body)
    assert rows[item]["result"] == result, rows[item]


def test_caddyfile_with_a_port_other_than_443_fails_n8_without_caddy(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    p = tmp_path / "Caddyfile"
    p.write_text("{\n\temail {$ACME_EMAIL}\n}\n{$BREEZE_DOMAIN}:8443 {\n\t" + HSTS + "\n}\n")
    env = dict(base_process_env(), PATH=str(bin_dir), BREEZE_DOMAIN="rmm.acme-msp.net",
               ACME_EMAIL="ops@acme-msp.net")
    r = subprocess.run([str(SERVER_BIN), "check", "--json", "--caddyfile", str(p)], env=env,
                       capture_output=True, text=True, timeout=60)
    rows = {i["id"]: i for i in json.loads(r.stdout)["items"]}
    assert rows["N8"]["result"] == "FAIL", rows["N8"]
