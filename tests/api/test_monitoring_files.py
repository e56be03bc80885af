"""The monitoring files of deploy/ checked by their real tools (checklist M2,
M4; docs/monitoring.md, docs/logging.md): the alert rules by `promtool
check rules` and `promtool test rules` (every alert fires on a synthetic
series and stays quiet on a healthy one), the Prometheus configuration by
`promtool check config`, every YAML file by yamllint, and the Promtail
configuration's labels and fields by its structure (and `promtail
-check-syntax` where promtail is installed: Debian 12 does not package
it)."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import SLOW, Api

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "deploy" / "prometheus"
PROMTAIL = REPO / "deploy" / "promtail" / "promtail.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None,
                                    reason="promtool (Debian package prometheus) not installed")
YAMLLINT = "{extends: default, rules: {line-length: {max: 120}, document-start: disable}}"

# The alerts the checklist's M2 item and docs/monitoring.md promise.
ALERTS = {"BreezeHigh5xxRatio", "BreezeSlowP95", "BreezeInstanceDown",
          "BreezePostgresUnreachable", "BreezeRedisUnreachable",
          "BreezeRateLimiterLocalFallback", "BreezeAuditChainBroken",
          "BreezeAuditVerificationStale", "BreezeRefreshTokenReuse",
          "BreezeAgentTokenSuspended", "BreezeFailedLoginSpike", "BreezeEnrollmentSpike",
          "BreezeHeartbeatRateDrop", "BreezeCertificateExpiresSoon"}


def run(*cmd, cwd=None):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60 * SLOW)


def rules():
    doc = yaml.safe_load((PROM / "alerts.yml").read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"]}


@pytest.mark.normal_only
@needs_promtool
def test_alert_rules_check_and_unit_tests_pass():
    p = run(PROMTOOL, "check", "rules", "alerts.yml", cwd=PROM)
    assert p.returncode == 0, p.stdout + p.stderr
    p = run(PROMTOOL, "test", "rules", "alerts_test.yml", cwd=PROM)
    assert p.returncode == 0 and "SUCCESS" in p.stdout, p.stdout + p.stderr


def test_every_alert_is_there_and_proven_both_ways():
    have = rules()
    assert set(have) == ALERTS, set(have) ^ ALERTS
    for name, r in have.items():
        assert r["labels"]["severity"] in ("warning", "critical"), name
        assert r["annotations"]["summary"] and r["annotations"]["description"], name
    tests = yaml.safe_load((PROM / "alerts_test.yml").read_text())["tests"]
    fires, quiet = set(), set()
    for t in tests:
        for a in t["alert_rule_test"]:
            (fires if a["exp_alerts"] else quiet).add(a["alertname"])
    assert fires == ALERTS and quiet == ALERTS, (ALERTS - fires, ALERTS - quiet)


def test_alerts_use_only_series_the_server_exports(api, env):
    """A renamed metric must not leave an alert watching nothing."""
    r = Api(api.base).get("/metrics", token=None,
                          headers={"Authorization": "Bearer " + env["METRICS_SCRAPE_TOKEN"]})
    assert r.status_code == 200
    families = set(re.findall(r"^# TYPE (\S+) ", r.text, re.M))
    exported = set(families)
    for f in families:
        exported |= {f + "_bucket", f + "_sum", f + "_count"}
    used = set()
    for r_ in rules().values():
        used |= set(re.findall(r"\b(breeze_[a-z0-9_]+)", r_["expr"]))
    assert used and used <= exported, used - exported


@pytest.mark.normal_only
@needs_promtool
def test_prometheus_config_is_valid(tmp_path):
    """promtool check config, with the scrape token file it names next to it
    (it must exist; the value is the deployment's METRICS_SCRAPE_TOKEN)."""
    cfg = yaml.safe_load((PROM / "prometheus.yml").read_text())
    breeze = [j for j in cfg["scrape_configs"] if j["job_name"] == "breeze"]
    assert len(breeze) == 1 and breeze[0]["metrics_path"] == "/metrics"
    auth = breeze[0]["authorization"]
    assert auth == {"type": "Bearer", "credentials_file": "breeze-metrics-token"}, auth
    assert "alerts.yml" in cfg["rule_files"]
    for f in ("prometheus.yml", "alerts.yml"):
        shutil.copy(PROM / f, tmp_path / f)
    (tmp_path / "breeze-metrics-token").write_text("not-the-real-token\n")
    p = run(PROMTOOL, "check", "config", str(tmp_path / "prometheus.yml"))
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.normal_only
@pytest.mark.skipif(shutil.which("yamllint") is None, reason="yamllint not installed")
def test_yaml_files_lint_clean():
    files = sorted(PROM.glob("*.yml")) + [PROMTAIL]
    p = run("yamllint", "-f", "parsable", "-d", YAMLLINT, *map(str, files))
    assert p.returncode == 0, p.stdout + p.stderr


def test_promtail_ships_json_lines_with_the_right_labels():
    cfg = yaml.safe_load(PROMTAIL.read_text())
    assert [c["url"] for c in cfg["clients"]] == ["http://127.0.0.1:3100/loki/api/v1/push"]
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert set(jobs) == {"breeze-journal", "breeze-docker"}
    keep = jobs["breeze-journal"]["relabel_configs"][0]
    assert keep["action"] == "keep" and re.fullmatch(keep["regex"], "breeze-server.service")
    assert "com.docker.compose.service=breeze-server" in \
        jobs["breeze-docker"]["docker_sd_configs"][0]["filters"][0]["values"]
    for name, job in jobs.items():
        stages = {k: v for s in job["pipeline_stages"] for k, v in s.items()}
        extracted = stages["json"]["expressions"]
        assert {"level", "route", "status", "requestId"} <= set(extracted), name
        # Labels are bounded; the request id is a field, never a label.
        assert set(stages["labels"]) == {"level", "route", "status"}, name
        assert set(stages["structured_metadata"]) == {"requestId"}, name
        assert stages["timestamp"]["source"] == "ts", name


@pytest.mark.normal_only
@pytest.mark.skipif(shutil.which("promtail") is None, reason="promtail not installed")
def test_promtail_check_syntax():
    p = run("promtail", "-check-syntax", "-config.file", str(PROMTAIL))
    assert p.returncode == 0, p.stdout + p.stderr
