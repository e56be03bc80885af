"""deploy/docker-compose.prod.yml and deploy/Dockerfile (checklist K1-K5,
N1-N5, S1-S3). The compose file is checked service by service, so a service
added without the hardening fails here: no-new-privileges and every
capability dropped (K1, K2), CPU, memory and pids limits (K4), a non-root
user (K5), a healthcheck, published ports only for the proxy (80/443) and
TURN (3478) or on 127.0.0.1 (N1, N2, N3, N5); breeze-server and the proxy
run read-only with a small tmpfs (K3). Every ${VAR} it reads is a secret
that `gen-secrets --compose` prints (or one of the two names the operator
sets), so .env.prod from that command is complete; `docker-compose config`
(Debian's docker-compose) accepts the file with it, and yamllint too. The
Dockerfile's final stage has exactly the runtime libraries the built server
links."""
import os
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import REPO, SERVER_BIN, base_process_env

DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "docker-compose.prod.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
# Set by the operator, not generated (docs/deploy.md).
OPERATOR_VARS = {"BREEZE_DOMAIN", "ACME_EMAIL"}
# Optional, with a default: the host's systemd-journal GID for Promtail.
OPTIONAL_VARS = {"JOURNAL_GID"}
# The proxy and the TURN relay are the only services that publish ports to
# every address, and only these.
PUBLIC_PORTS = {"caddy": {"80", "443"}, "coturn": {"3478"}}
# K3: read-only root file system for the API and the web front.
READ_ONLY = {"breeze-server", "caddy"}
UID_1001 = {"breeze-server", "caddy", "migrate"}


def compose():
    return yaml.safe_load(COMPOSE.read_text())


def services():
    return compose()["services"]


def gen_secrets(*args):
    r = subprocess.run([str(SERVER_BIN), "gen-secrets", *args], capture_output=True,
                       text=True, timeout=30, env=base_process_env())
    assert r.returncode == 0, r.stderr
    return dict(line.split("=", 1) for line in r.stdout.splitlines()
                if line and not line.startswith("#"))


def referenced_vars(text):
    """{name: modifier} of every ${NAME...} interpolation ($$ escapes skipped)."""
    found = {}
    for m in re.finditer(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)(:?[?-])?", text):
        found.setdefault(m.group(1), set()).add(m.group(2) or "")
    return found


def test_every_service_is_hardened():
    problems = []
    for name, svc in services().items():
        def bad(msg):
            problems.append(f"{name}: {msg}")
        if "no-new-privileges:true" not in (svc.get("security_opt") or []):
            bad("security_opt lacks no-new-privileges:true (K1)")
        if svc.get("cap_drop") != ["ALL"]:
            bad(f"cap_drop is {svc.get('cap_drop')}, not [ALL] (K2)")
        if svc.get("cap_add"):
            bad(f"cap_add {svc['cap_add']}: nothing needs a capability back (K2)")
        for key in ("privileged", "pid", "ipc", "userns_mode", "devices"):
            if svc.get(key):
                bad(f"{key} is set")
        if svc.get("network_mode") == "host":
            bad("network_mode: host")
        if not re.fullmatch(r"\d+(\.\d+)?", str(svc.get("cpus", ""))) or float(svc["cpus"]) <= 0:
            bad("no cpus limit (K4)")
        if not re.fullmatch(r"\d+[kmg]", str(svc.get("mem_limit", ""))):
            bad("no mem_limit (K4)")
        if not isinstance(svc.get("pids_limit"), int) or not 0 < svc["pids_limit"] <= 1024:
            bad("no pids_limit (K4)")
        user = str(svc.get("user", ""))
        uid = user.split(":")[0]
        if not re.fullmatch(r"\d+:\d+|\d+", user) or uid == "0" or (
                ":" in user and user.split(":")[1] == "0"):
            bad(f"user {user!r} is not a numeric non-root uid:gid (K5)")
        if name in UID_1001 and user != "1001:1001":
            bad(f"user {user!r}, not 1001:1001 (K5)")
        for vol in svc.get("volumes") or []:
            if "docker.sock" in str(vol):
                bad("mounts the Docker socket")
        hc = svc.get("healthcheck")
        if hc and hc.get("disable"):
            # Only a one-shot job whose exit status others wait for.
            waiters = [n for n, s in services().items()
                       if (s.get("depends_on") or {}).get(name, {}).get("condition")
                       == "service_completed_successfully"]
            if svc.get("restart") != "no" or not waiters:
                bad("healthcheck disabled on a long-running service")
        elif not hc or not hc.get("test"):
            bad("no healthcheck")
        if name in READ_ONLY:
            if svc.get("read_only") is not True:
                bad("read_only is not true (K3)")
            tmpfs = svc.get("tmpfs") or []
            if not tmpfs or not all(re.search(r"size=\d+[km]\b", t) for t in tmpfs):
                bad(f"tmpfs {tmpfs}: each needs a size (K3)")
    assert not problems, "\n".join(problems)


def published(svc):
    """(host_ip, host_port) of every published port of SVC (short syntax)."""
    out = []
    for p in svc.get("ports") or []:
        assert isinstance(p, str), f"long port syntax not handled here: {p}"
        spec = p.split("/")[0]
        parts = spec.split(":")
        assert len(parts) in (2, 3), f"port {p!r} must name its host port"
        out.append(("" if len(parts) == 2 else parts[0], parts[-2]))
    return out


def test_only_the_proxy_and_turn_publish_and_the_rest_only_on_loopback():
    problems = []
    for name, svc in services().items():
        for host_ip, port in published(svc):
            if name in PUBLIC_PORTS and host_ip == "" and port in PUBLIC_PORTS[name]:
                continue
            if host_ip != "127.0.0.1":
                problems.append(f"{name} publishes {port} on {host_ip or 'every address'}")
    assert not problems, problems
    svcs = services()
    # N2, N3: the databases publish nothing and sit on a network with no way out.
    for name in ("postgres", "redis"):
        assert not svcs[name].get("ports"), name
        assert svcs[name]["networks"] == ["backend"], name
    assert compose()["networks"]["backend"]["internal"] is True
    assert {p for _, p in published(svcs["caddy"])} == {"80", "443"}
    # TURN only in its optional profile.
    assert svcs["coturn"]["profiles"] == ["turn"]
    for name in ("prometheus", "loki", "promtail", "grafana"):
        assert svcs[name]["profiles"] == ["monitoring"], name
    for name in ("postgres", "redis", "migrate", "breeze-server", "caddy"):
        assert "profiles" not in svcs[name], name


def test_redis_needs_the_password_from_the_env_file_and_redis_url_carries_it():
    svcs = services()
    redis = svcs["redis"]
    assert redis["environment"]["REDISCLI_AUTH"].startswith("${REDIS_PASSWORD:?")
    script = redis["command"][-1]
    # The password reaches redis-server on stdin, not on its command line.
    assert "requirepass $$REDISCLI_AUTH" in script
    assert re.search(r"redis-server \S+ - <<", script), script
    url = svcs["breeze-server"]["environment"]["REDIS_URL"]
    assert re.fullmatch(r"redis://:\$\{REDIS_PASSWORD:\?[^}]*\}@redis:6379/\d+", url), url


def test_the_server_gets_every_secret_and_trusts_only_the_proxy():
    svcs = services()
    env = svcs["breeze-server"]["environment"]
    for var in gen_secrets():
        assert env.get(var, "").startswith(f"${{{var}:?"), f"{var} not passed from .env.prod"
    assert env["BREEZE_ENV"] == "production"
    proxy_ip = svcs["caddy"]["networks"]["edge"]["ipv4_address"]
    assert env["TRUSTED_PROXY_CIDRS"] == f"{proxy_ip}/32"
    # Least privilege: the owner's password only where migrations run.
    assert "MIGRATION_DATABASE_URL" not in env
    assert "BREEZE_OWNER_DB_PASSWORD" in svcs["migrate"]["environment"]["MIGRATION_DATABASE_URL"]
    deps = svcs["breeze-server"]["depends_on"]
    assert deps["migrate"]["condition"] == "service_completed_successfully"


def test_every_variable_comes_from_gen_secrets_compose():
    text = COMPOSE.read_text()
    refs = referenced_vars(text)
    generated = gen_secrets("--compose")
    assert set(gen_secrets()) < set(generated)
    assert len(set(generated.values())) == len(generated)
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in generated.values())
    unknown = set(refs) - set(generated) - OPERATOR_VARS - OPTIONAL_VARS
    assert not unknown, f"not printed by gen-secrets --compose: {sorted(unknown)}"
    # A secret that is missing stops compose (":?"), never an empty default.
    for var, mods in refs.items():
        if var not in OPTIONAL_VARS:
            assert mods == {":?"}, f"${{{var}}} must be ${{{var}:?...}}"
    # Nothing the compose file needs is left out of the generated file.
    assert set(generated) - {"POSTGRES_PASSWORD"} <= set(refs) | set(gen_secrets())


def test_the_env_file_is_git_ignored():
    # S3: .env.prod (and the token file made from it) can never be committed.
    for path in (".env.prod", "deploy/.env.prod", "secrets/metrics_scrape_token"):
        r = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", path])
        assert r.returncode == 0, f"{path} is not git-ignored"


def compose_env(generated):
    env = base_process_env()
    env.update(generated)
    env.update(BREEZE_DOMAIN="rmm.example.com", ACME_EMAIL="ops@example.com")
    return env


@pytest.mark.normal_only
@pytest.mark.skipif(shutil.which("docker-compose") is None,
                    reason="docker-compose is not installed (scripts/install-deps installs it)")
def test_docker_compose_accepts_the_file(tmp_path):
    generated = gen_secrets("--compose")
    cmd = ["docker-compose", "-f", str(COMPOSE), "--profile", "monitoring", "--profile", "turn",
           "config"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                       env=compose_env(generated), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    resolved = yaml.safe_load(r.stdout)
    assert set(resolved["services"]) == set(services())
    assert resolved["services"]["breeze-server"]["environment"]["REDIS_URL"] == \
        f"redis://:{generated['REDIS_PASSWORD']}@redis:6379/0"
    # The check is not vacuous: without one secret compose refuses the file.
    env = compose_env(generated)
    del env["JWT_SECRET"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert r.returncode != 0 and "JWT_SECRET" in r.stderr, r.stderr


@pytest.mark.normal_only
@pytest.mark.skipif(shutil.which("yamllint") is None, reason="yamllint is not installed")
def test_yamllint():
    r = subprocess.run(["yamllint", "-c", str(DEPLOY / "yamllint.yml"), "--strict", str(COMPOSE)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def dockerfile_stages():
    """{stage name: text} of deploy/Dockerfile."""
    stages, name = {}, None
    for line in DOCKERFILE.read_text().splitlines():
        m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line)
        if m:
            name = m.group(2)
            stages[name] = {"base": m.group(1), "text": ""}
        elif name:
            stages[name]["text"] += line + "\n"
    return stages


def apt_packages(text):
    joined = re.sub(r"\\\n", " ", text)
    m = re.search(r"apt-get install -y --no-install-recommends([^&\n]*)", joined)
    assert m, text
    return set(m.group(1).split())


def needed_packages(binary):
    """The Debian packages holding the shared libraries BINARY links (NEEDED)."""
    out = subprocess.run(["objdump", "-p", str(binary)], capture_output=True, text=True,
                         check=True).stdout
    libs = re.findall(r"NEEDED\s+(\S+)", out)
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    names = {}
    for lib in libs:
        m = re.search(rf"^\s*{re.escape(lib)} \(libc6,x86-64\) => (\S+)$", cache, re.M)
        assert m, lib
        real = os.path.realpath(m.group(1))
        # merged /usr: dpkg knows each file under one of its names.
        for path in (m.group(1), real, "/usr" + m.group(1), real.removeprefix("/usr")):
            names[path] = lib
    # One dpkg -S for all (it is slow to start); unknown names are skipped.
    r = subprocess.run(["dpkg", "-S", *names], capture_output=True, text=True)
    pkgs, found = set(), set()
    for line in r.stdout.splitlines():
        pkg, _, path = line.partition(": ")
        if path in names:
            pkgs.add(pkg.split(":")[0])
            found.add(names[path])
    assert found == set(libs), f"no package found for {sorted(set(libs) - found)}"
    return pkgs


def test_dockerfile_stages():
    stages = dockerfile_stages()
    assert stages["build"]["base"] == "debian:12"
    assert stages["server"]["base"] == "debian:12-slim"
    assert stages["caddy"]["base"] == "debian:12-slim"
    server = stages["server"]["text"]
    # K5: the image runs as 1001, not root.
    assert re.search(r"^USER 1001:1001$", server, re.M)
    assert "--uid 1001" in server and "--gid 1001" in server
    assert re.search(r"^USER 1001:1001$", stages["caddy"]["text"], re.M)
    assert "COPY --from=build /src/web/dist/ /usr/share/breeze/web/" in server
    assert "COPY --from=build /src/migrations/ /usr/share/breeze/migrations/" in server
    assert "COPY deploy/Caddyfile /etc/caddy/Caddyfile" in stages["caddy"]["text"]
    # Runtime stage: no compiler, no headers.
    runtime = apt_packages(server)
    assert not {p for p in runtime if p.endswith("-dev") or p in ("build-essential", "cmake")}
    # The build stage installs the build dependencies scripts/install-deps names.
    build = apt_packages(stages["build"]["text"])
    deps = (REPO / "scripts" / "install-deps").read_text()
    for pkg in build - {"python3"}:
        assert re.search(rf"(^|\s){re.escape(pkg)}(\s|$)", deps, re.M), pkg


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) missing")
def test_dockerfile_runtime_libraries_match_the_binary():
    runtime = apt_packages(dockerfile_stages()["server"]["text"])
    need = needed_packages(SERVER_BIN) - {"libc6"}
    if any(p.startswith(("libasan", "libubsan", "gcc-")) for p in need):
        pytest.skip("sanitizer build: its runtime libraries are not the release image's")
    assert need <= runtime, f"missing from the image: {sorted(need - runtime)}"
    extra = runtime - need - {"ca-certificates", "curl"}
    assert not extra, f"not linked by breeze-server: {sorted(extra)}"


def test_gen_secrets_compose_usage():
    r = subprocess.run([str(SERVER_BIN), "gen-secrets", "--help"], capture_output=True,
                       text=True, timeout=30, env=base_process_env())
    assert r.returncode == 0 and "--compose" in r.stdout
    for bad in (["--compose", "extra"], ["--composed"], ["extra", "--compose"]):
        r = subprocess.run([str(SERVER_BIN), "gen-secrets", *bad], capture_output=True,
                           text=True, timeout=30, env=base_process_env())
        assert r.returncode == 2 and r.stdout == "", (bad, r.stdout, r.stderr)
    # Two runs never print the same value.
    a, b = gen_secrets("--compose"), gen_secrets("--compose")
    assert not set(a.values()) & set(b.values())


def test_monitoring_configs_fit_the_compose_services(tmp_path):
    """The monitoring profile's own Prometheus and Promtail files
    (deploy/compose/) name the compose services and the mounted paths:
    Prometheus scrapes breeze-server:8080 with the secret's token file and
    loads the shared alert rules; Promtail reads the mounted journal and
    pushes to the loki service. promtool accepts the Prometheus file."""
    svcs = services()
    prom = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    (job,) = prom["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["breeze-server:8080"]
    assert job["authorization"]["credentials_file"] == "/run/secrets/metrics_scrape_token"
    secret = svcs["prometheus"]["secrets"][0]
    assert (secret["source"], secret["target"]) == ("metrics_scrape_token",
                                                    "metrics_scrape_token")
    mounts = {v.split(":")[1]: v.split(":")[0] for v in svcs["prometheus"]["volumes"]}
    assert mounts["/etc/prometheus/prometheus.yml"] == "./compose/prometheus.yml"
    assert mounts[prom["rule_files"][0]] == "./prometheus/alerts.yml"
    assert "monitoring" in svcs["breeze-server"]["networks"]

    tail = yaml.safe_load((DEPLOY / "compose" / "promtail.yml").read_text())
    assert tail["clients"][0]["url"] == "http://loki:3100/loki/api/v1/push"
    (sc,) = tail["scrape_configs"]
    tmounts = {v.split(":")[1]: v.split(":")[0] for v in svcs["promtail"]["volumes"]}
    assert tmounts[sc["journal"]["path"]] == sc["journal"]["path"]
    assert tmounts["/etc/promtail/promtail.yml"] == "./compose/promtail.yml"
    assert tail["positions"]["filename"].startswith("/tmp/")  # its tmpfs
    labels = next(s["labels"] for s in sc["pipeline_stages"] if "labels" in s)
    assert set(labels) == {"level", "route", "status"}

    if shutil.which("yamllint"):
        r = subprocess.run(["yamllint", "-c", str(DEPLOY / "yamllint.yml"), "--strict",
                            str(DEPLOY / "compose")], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout
    if shutil.which("promtool") is None:
        return
    # promtool wants the token and rule files to exist: point them at
    # copies (the shared rules when they are in the tree, else none).
    token = tmp_path / "token"
    token.write_text("x" * 64 + "\n")
    prom["scrape_configs"][0]["authorization"]["credentials_file"] = str(token)
    alerts = DEPLOY / "prometheus" / "alerts.yml"
    prom["rule_files"] = [str(alerts)] if alerts.exists() else []
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(prom))
    r = subprocess.run(["promtool", "check", "config", str(cfg)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
