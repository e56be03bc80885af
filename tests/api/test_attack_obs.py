"""Attacks on the observability and operations features: `breeze-server
check` (false PASSes on bad compose files and Caddyfiles, hostile YAML),
GET /metrics (token, labels) and `audit verify --witness` (read only).

Each FINDING test fails while its defect exists; "Held" tests pass."""
import json
import os
import subprocess

import pytest

from conftest import SERVER_BIN, base_process_env

HSTS = 'header Strict-Transport-Security "max-age=31536000; includeSubDomains; preload"'


def run_check(tmp_path, *args):
    # The env's parts of N8 and M1 pass, so those rows show the files' part.
    env = dict(base_process_env(), BREEZE_DOMAIN="rmm.acme-msp.net",
               ACME_EMAIL="ops@acme-msp.net", METRICS_SCRAPE_TOKEN="t" * 43)
    r = subprocess.run([str(SERVER_BIN), "check", "--json", *args], env=env,
                       cwd=str(tmp_path), capture_output=True, text=True, timeout=60)
    assert r.returncode in (0, 1), (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    doc = json.loads(r.stdout)
    return r, {i["id"]: i for i in doc["items"]}


def hardened(image, **extra):
    """A service that meets K1-K5 (user 1001, read-only, limits, no caps)."""
    s = {"image": image, "user": "1001:1001", "read_only": "true",
         "security_opt": ["no-new-privileges:true"], "cap_drop": ["ALL"], "cpus": "1.0",
         "mem_limit": "256m", "pids_limit": "64"}
    s.update(extra)
    return s


def good_services():
    return {
        "breeze-server": hardened("breeze-server:local", environment={
            "REDIS_URL": "redis://:s3cretpassw0rd@redis:6379/0"}),
        "postgres": hardened("postgres:15-bookworm", user="999:999"),
        "redis": hardened("redis:7.0-bookworm", user="999:999",
                          command=["redis-server", "--requirepass", "s3cretpassw0rd"]),
        "caddy": hardened("caddy:2", ports=["80:80", "443:443"]),
    }


def compose_rows(tmp_path, services):
    # JSON is YAML: the check's libyaml reads it as a compose file.
    p = tmp_path / "compose.yml"
    p.write_text(json.dumps({"services": services}))
    return run_check(tmp_path, "--compose", str(p))[1]


def caddy_rows(tmp_path, site_body, site="{$BREEZE_DOMAIN}"):
    p = tmp_path / "Caddyfile"
    p.write_text("{\n\temail {$ACME_EMAIL}\n}\n\n" + site + " {\n" + site_body + "\n}\n")
    return run_check(tmp_path, "--caddyfile", str(p))[1]


# ---------------------------------------------------------------- compose


def test_held_hardened_compose_baseline_passes(tmp_path):
    """Held (sanity of this file's template): the hardened services pass
    K1-K5, N1-N4, so each FINDING below differs by its one trick only."""
    rows = compose_rows(tmp_path, good_services())
    for i in ("K1", "K2", "K3", "K4", "K5", "N1", "N2", "N3", "N4"):
        assert rows[i]["result"] == "PASS", rows[i]


@pytest.mark.parametrize("svc,item", [("postgres", "N2"), ("redis", "N3"),
                                      ("breeze-server", "N1")])
def test_network_mode_host_passes_port_items(tmp_path, svc, item):
    """FINDING (high): `network_mode: host` puts the service on the host's
    network stack, so PostgreSQL (5432), Redis (6379) or breeze-server
    (8080, with /metrics) listen on every host address with no `ports`
    entry at all — yet check says "publishes no port" / "only the proxy
    publishes" and PASSes N1/N2/N3. compose.c ports() only reads `ports`;
    network_mode (host, or container:/service: sharing) is never looked at.
    Fix: network_mode host (and sharing another container's namespace)
    FAILs N1 and the service's item."""
    services = good_services()
    services[svc]["network_mode"] = "host"
    rows = compose_rows(tmp_path, services)
    assert rows[item]["result"] != "PASS", rows[item]
    assert rows["N1"]["result"] != "PASS", rows["N1"]


@pytest.mark.parametrize("trick", [{"privileged": "true"}, {"cap_add": ["ALL"]},
                                   {"cap_add": ["SYS_ADMIN"]}])
def test_privileged_or_cap_add_passes_k2(tmp_path, trick):
    """FINDING (high): K2 ("every service drops ALL capabilities") PASSes
    for a breeze-server with `privileged: true` (every capability, every
    device, no seccomp/AppArmor) or `cap_add: [ALL]` / `[SYS_ADMIN]` next to
    `cap_drop: [ALL]` (Docker applies cap_add after cap_drop). compose.c
    hardening() checks only that cap_drop holds ALL. Fix: privileged true
    and any cap_add FAIL K2 (an allow-list, e.g. NET_BIND_SERVICE for the
    proxy, may stay)."""
    services = good_services()
    services["breeze-server"].update(trick)
    rows = compose_rows(tmp_path, services)
    assert rows["K2"]["result"] != "PASS", rows["K2"]


@pytest.mark.parametrize("key,val", [("cpus", "0"), ("mem_limit", "0"), ("pids_limit", "-1")])
def test_unlimited_limits_pass_k4(tmp_path, key, val):
    """FINDING (medium): K4 wants cpus, mem_limit and pids_limit set, and
    has_limit() accepts any non-empty string: `cpus: 0`, `mem_limit: 0` and
    `pids_limit: -1` are Docker's spellings of "unlimited", and PASS. Fix:
    parse the value (a positive number / size; pids_limit > 0), FAIL
    otherwise."""
    services = good_services()
    services["redis"][key] = val
    rows = compose_rows(tmp_path, services)
    assert rows["K4"]["result"] != "PASS", rows["K4"]


@pytest.mark.parametrize("port", ["80-9000:80-9000", "443-6380:443-6380",
                                  {"target": "80", "published": "80-9000"}])
def test_port_range_on_the_proxy_passes_n1(tmp_path, port):
    """FINDING (medium): the proxy may publish 80 and 443 only, but a port
    RANGE is read by strtol() up to the '-': "80-9000:80-9000" is taken for
    port 80 and N1 PASSes ("only the proxy publishes, on 80 and 443") while
    8 920 host ports are published on every address. Fix: a published
    value must be a single decimal port (whole string consumed), anything
    else is FAIL."""
    services = good_services()
    services["caddy"]["ports"] = [port, "443:443"]
    rows = compose_rows(tmp_path, services)
    assert rows["N1"]["result"] != "PASS", rows["N1"]


@pytest.mark.parametrize("url", ["redis://:@redis:6379/0", "redis://redis:6379/0?x=@y"])
def test_redis_url_without_password_passes_n4(tmp_path, url):
    """FINDING (medium): compose.c server_env() decides "REDIS_URL carries
    a password" from the positions of '@' and ':' alone: an empty password
    (redis://:@redis:6379/0) and a URL with no userinfo but an '@' later
    (redis://redis:6379/0?x=@y, where ':6379' comes before the '@') both
    PASS N4. Fix: parse with the server's own redis_url_parse() and require
    a non-empty password, as config.c does for the env."""
    services = good_services()
    services["breeze-server"]["environment"]["REDIS_URL"] = url
    rows = compose_rows(tmp_path, services)
    assert rows["N4"]["result"] != "PASS", rows["N4"]


def test_requirepass_empty_passes_n4(tmp_path):
    """FINDING (low): redis_password() PASSes N4 when the word
    "requirepass" appears anywhere in the command, so
    `redis-server --requirepass ""` (no password: Redis treats an empty
    requirepass as none) passes "starts with requirepass". Fix: require a
    non-empty argument after requirepass (or a ${VAR} reference)."""
    services = good_services()
    services["redis"]["command"] = ["redis-server", "--requirepass", ""]
    rows = compose_rows(tmp_path, services)
    assert rows["N4"]["result"] != "PASS", rows["N4"]


@pytest.mark.parametrize("user", ["00", "+0", "${PG_UID:-0}"])
def test_uid_zero_spelled_00_passes_k5(tmp_path, user):
    """FINDING (low): K5's root test compares the user string with "root",
    "0", "0:…" and "root:…" only; `user: "00"` (or "000:0") is UID 0 to
    Docker (the uid is parsed as an integer) and PASSes "runs as a non-root
    user"; so does `${PG_UID:-0}`, which compose interpolates to 0 when the
    variable is unset. Fix: parse the uid part numerically (strtol, whole
    string) and FAIL uid 0; treat an interpolated user by its default (or
    as MANUAL)."""
    services = good_services()
    services["postgres"]["user"] = user
    rows = compose_rows(tmp_path, services)
    assert rows["K5"]["result"] != "PASS", rows["K5"]


def test_held_yaml_anchor_merge_is_followed(tmp_path):
    """Held: a merge key cannot hide an override. A service that merges
    the hardening anchor but then overrides cap_drop / user FAILs."""
    p = tmp_path / "compose.yml"
    p.write_text("""
x-h: &h
  security_opt: ["no-new-privileges:true"]
  cap_drop: [ALL]
  user: "1001:1001"
  read_only: "true"
  cpus: "1"
  mem_limit: 1g
  pids_limit: 10
services:
  breeze-server:
    <<: *h
    image: breeze-server:local
  postgres:
    image: postgres:15
    cap_drop: [NET_RAW]
    <<: *h
    user: root
""")
    rows = run_check(tmp_path, "--compose", str(p))[1]
    assert rows["K2"]["result"] == "FAIL" and rows["K5"]["result"] == "FAIL", rows


@pytest.mark.parametrize("doc", [
    # billion laughs: 9 levels of 9 aliases
    "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n"
        for i in range(8)) + "services: *i\n",
    "services: " + "[" * 20000 + "]" * 20000 + "\n",
    "services: " + "{a: " * 5000 + "x" + "}" * 5000 + "\n",
    "? [complex, key]\n: 1\n",
    "services: !!binary AAAA\n\x00\xff",
])
def test_held_hostile_yaml_fails_cleanly(tmp_path, doc):
    """Held: an alias bomb, 20 000 nested sequences, 5 000 nested
    mappings, a complex key and binary junk end in FAIL rows with a
    reason, not a crash or a hang."""
    p = tmp_path / "compose.yml"
    p.write_bytes(doc.encode("utf-8", "surrogateescape") if isinstance(doc, str) else doc)
    r, rows = run_check(tmp_path, "--compose", str(p))
    assert rows["K1"]["result"] == "FAIL" and rows["K1"]["reason"], rows["K1"]


# ---------------------------------------------------------------- Caddyfile


def test_held_caddy_baseline(tmp_path):
    """Held (sanity): the minimal Caddyfile of these tests passes N8, N9,
    N10 and keeps M1 at WARN when it never mentions /metrics."""
    rows = caddy_rows(tmp_path, "\t" + HSTS + "\n\treverse_proxy {$BREEZE_UPSTREAM}")
    for i in ("N8", "N9", "N10"):
        assert rows[i]["result"] == "PASS", rows[i]
    assert rows["M1"]["result"] == "WARN", rows["M1"]


def test_caddy_proxying_metrics_passes_m1(tmp_path):
    """FINDING (medium): M1 PASSes ("keeps /metrics off the public site")
    whenever the text "/metrics" appears in the Caddyfile — including a
    line that explicitly PROXIES it to the public:
    `reverse_proxy /metrics* {$BREEZE_UPSTREAM}`. Request rates, login
    failures and limiter state are then one token away from the internet.
    Fix: PASS only on a matcher for /metrics whose handler is
    `respond … 404`/`abort`/`error` (as the shipped file does), else WARN."""
    rows = caddy_rows(tmp_path, "\t" + HSTS + "\n\treverse_proxy /metrics* {$BREEZE_UPSTREAM}"
                      "\n\treverse_proxy {$BREEZE_UPSTREAM}")
    assert rows["M1"]["result"] != "PASS", rows["M1"]


def test_caddy_hsts_deleted_later_passes_n9(tmp_path):
    """FINDING (medium): hsts() looks at the FIRST "Strict-Transport-Security"
    only. A later `header -Strict-Transport-Security` removes the header
    Caddy would send (the API's own copy too, with defer), yet N9 PASSes.
    Fix: FAIL N9 on any "-Strict-Transport-Security" and judge every
    occurrence, not the first."""
    rows = caddy_rows(tmp_path, "\t" + HSTS + "\n\theader -Strict-Transport-Security"
                      "\n\treverse_proxy {$BREEZE_UPSTREAM}")
    assert rows["N9"]["result"] != "PASS", rows["N9"]


def test_caddy_hsts_in_a_comment_after_escaped_quote_passes_n9(tmp_path):
    """FINDING (medium): read_uncommented() toggles "quoted" on every '"',
    ignoring Caddy's backslash escape, so after `"a\\"b"` the '#' that
    starts a real comment is taken for quoted text and the commented-out
    HSTS line is judged as configuration: N9 PASSes while Caddy sends no
    HSTS. Fix: honour '\\' escapes (and backtick tokens) like Caddy's
    lexer, or ask `caddy adapt` for the JSON config and read that."""
    rows = caddy_rows(tmp_path, '\trespond /x "a\\"b" # ' + HSTS +
                      "\n\treverse_proxy {$BREEZE_UPSTREAM}")
    assert rows["N9"]["result"] != "PASS", rows["N9"]


def test_caddy_internal_issuer_passes_n10(tmp_path):
    """FINDING (medium): N10 looks for the literal strings "tls internal"
    and "local_certs"; `tls { issuer internal }` (the block form of the
    same self-signed CA) or "tls  internal" with two spaces PASS "issues
    certificates from a public ACME CA only". Fix: tokenise (split on
    whitespace) before matching, and FAIL "issuer internal" too."""
    rows = caddy_rows(tmp_path, "\t" + HSTS + "\n\ttls {\n\t\tissuer internal\n\t}"
                      "\n\treverse_proxy {$BREEZE_UPSTREAM}")
    assert rows["N10"]["result"] != "PASS", rows["N10"]


def test_caddy_site_on_port_80_passes_n8(tmp_path):
    """FINDING (medium): the site address `{$BREEZE_DOMAIN}:80` serves the
    site over plain HTTP only (Caddy does not enable automatic HTTPS for
    an address on the HTTP port), but N8 only rejects "auto_https off" and
    "http://{$BREEZE_DOMAIN}" and PASSes "automatic TLS". Fix: FAIL a site
    address for {$BREEZE_DOMAIN} with an explicit :80 (or any port other
    than 443) or an http:// scheme."""
    rows = caddy_rows(tmp_path, "\t" + HSTS + "\n\treverse_proxy {$BREEZE_UPSTREAM}",
                      site="{$BREEZE_DOMAIN}:80")
    assert rows["N8"]["result"] != "PASS", rows["N8"]


# ---------------------------------------------------------------- env file


def test_held_symlinked_env_file_fails_s2(tmp_path):
    """Held: an env file that is a symbolic link FAILs S2 (lstat), and no
    secret value from it appears in check's output."""
    real = tmp_path / "real.env"
    secret = "Zq" + os.urandom(24).hex()
    real.write_text(f"JWT_SECRET={secret}\nREDIS_URL=redis://:{secret}x@h:6379/0\n")
    os.chmod(real, 0o600)
    link = tmp_path / "link.env"
    link.symlink_to(real)
    r, rows = run_check(tmp_path, "--env-file", str(link))
    assert rows["S2"]["result"] == "FAIL", rows["S2"]
    assert secret not in r.stdout + r.stderr


def test_held_env_file_readable_by_group_fails_s2(tmp_path):
    """Held: mode 0640 FAILs S2."""
    f = tmp_path / "e.env"
    f.write_text("BREEZE_DOMAIN=rmm.acme-msp.net\n")
    os.chmod(f, 0o640)
    rows = run_check(tmp_path, "--env-file", str(f))[1]
    assert rows["S2"]["result"] == "FAIL", rows["S2"]


# ---------------------------------------------------------------- /metrics


def _get(base, path, headers):
    import urllib.error
    import urllib.request
    rq = urllib.request.Request(base + path, headers=headers)
    try:
        with urllib.request.urlopen(rq, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_held_metrics_token_and_labels(api, env):
    """Held: a prefix of the token, the token with a trailing space, or an
    empty bearer is 401; raw paths of unknown routes and odd methods never
    become label values (templates and "(unmatched)" only)."""
    tok = env["METRICS_SCRAPE_TOKEN"]
    for h in ("Bearer " + tok[:-1], "Bearer " + tok + " ", "Bearer ", "Bearer  " + tok):
        st, _ = _get(api.base, "/metrics", {"Authorization": h})
        assert st == 401, h
    marker = "zz" + os.urandom(6).hex()
    _get(api.base, f"/api/v1/{marker}/x%22y", {})
    _get(api.base, f"/api/v1/orgs/{marker}", {})
    st, text = _get(api.base, "/metrics", {"Authorization": "Bearer " + tok})
    assert st == 200
    assert marker not in text


# ---------------------------------------------------------------- witness


def test_witness_shadowed_by_a_stored_checkpoint_with_another_key(audit, tmp_path):
    """FINDING (high): the superuser rewrites a row and re-seals the chain
    (as in test_audit_witness.py), but instead of DELETING the stored
    checkpoint — which the witness catches — only rewrites its
    public_key column to a key nobody trusts. witness.c stored_copy()
    decides "this witness line is a copy of a stored checkpoint" from seq,
    checksum, signature and created_at, NOT the public key, so the genuine
    witness line is dropped as a duplicate; the stored copy is then
    "signed by an unknown key: ignored" (a warning only), and the verify
    with --witness says ok: the witness hides exactly the tampering it
    exists to show (docs/logging.md promises checkpoint_mismatch naming
    the witness line). Fix: compare the public key too in stored_copy()
    (or drop the dedup: a trusted witness line should always be checked
    on its own), so an untrusted stored row never shadows a trusted line."""
    from audit_canonical import checksum
    from test_audit_tamper import make_chain, tamper
    from test_audit_witness import witness_file

    org, rows = make_chain(audit)
    p = audit.cli("checkpoint")
    assert p.returncode == 0, p.stderr
    log = witness_file(tmp_path, p.stderr)
    rc, chain, _ = audit.verify(org, "--witness", log)
    assert rc == 0 and chain["ok"], chain

    new = [dict(r) for r in rows]
    new[2]["details"] = '{"i": 2, "note": "nothing happened here"}'
    prev = new[1]["checksum"]
    stmts = []
    for r in new[2:]:
        r["prev_checksum"] = prev
        r["checksum"] = prev = checksum(r)
        stmts.append(("UPDATE audit_log SET details = %s, prev_checksum = %s, checksum = %s"
                      " WHERE id = %s", (r["details"], r["prev_checksum"], r["checksum"], r["id"])))
    stmts.append(("UPDATE audit_chain_heads SET checksum = %s WHERE chain_id = %s", (prev, org)))
    stmts.append(("UPDATE audit_checkpoints SET public_key = %s WHERE chain_id = %s",
                  ("ab" * 32, org)))
    tamper(audit, *stmts)

    rc, chain, doc = audit.verify(org, "--witness", log)
    assert rc == 1 and not chain["ok"], chain
    assert "checkpoint_mismatch" in {b["kind"] for b in chain["breaks"]}, chain


def test_metrics_without_token_is_404_whatever_is_sent(spawn_server):
    """FINDING (low): docs/openapi.yaml promises that without
    METRICS_SCRAPE_TOKEN "the endpoint answers 404 whatever is sent" (it
    should not exist, like any unknown path), but a query parameter is
    refused by the dispatcher's check_query() before the handler runs:
    GET /metrics?x=1 answers 400 validation_error, so the route's existence
    (and the server's identity as breeze) is visible where /api/v1/nope?x=1
    is a 404. Fix: give the route ROUTE_* handling that lets the handler answer
    first (or decide the 404 before check_query for this route)."""
    srv = spawn_server(METRICS_SCRAPE_TOKEN=None)
    assert _get(srv.url, "/metrics", {})[0] == 404
    assert _get(srv.url, "/api/v1/nope?x=1", {})[0] == 404
    st, body = _get(srv.url, "/metrics?x=1", {})
    assert st == 404, (st, body)


def test_literal_secrets_in_the_compose_file_pass(tmp_path):
    """FINDING (medium): the compose file is meant to be committed; it
    should reference secrets (${JWT_SECRET:?…}) from the git-ignored env
    file (S3). A compose file that carries the secrets themselves —
    `JWT_SECRET: <64 hex>` and a literal Redis password in REDIS_URL — is
    judged with no FAIL or WARN on any secrets item (S1-S5), and N4 even
    PASSes on the literal password. Fix: in check_compose, FAIL S3 for a
    secret variable (config_secret_name() list, *_PASSWORD, a password in a
    URL) whose value is not a ${…} reference, naming the variable only."""
    services = good_services()
    services["breeze-server"]["environment"]["JWT_SECRET"] = os.urandom(32).hex()
    rows = compose_rows(tmp_path, services)
    bad = {i: rows[i] for i in ("S1", "S2", "S3", "S4", "S5")
           if rows[i]["result"] in ("FAIL", "WARN") and "compose" in rows[i]["reason"]}
    assert bad, {i: rows[i] for i in ("S1", "S2", "S3", "S4", "S5")}


@pytest.mark.parametrize("trick", [
    {"volumes": ["/var/run/docker.sock:/var/run/docker.sock"]},
    {"pid": "host"},
    {"devices": ["/dev/mem:/dev/mem"]},
])
def test_host_escape_settings_pass_every_k_item(tmp_path, trick):
    """FINDING (medium): K1-K5 are "checked service by service" to show a
    compromised container stays contained, but a service that mounts the
    Docker socket (root on the host), shares the host's PID namespace, or
    maps /dev/mem passes every K row: compose.c never looks at volumes,
    pid/ipc/userns_mode or devices. Fix: FAIL K2 (or a K row) on
    docker.sock / host-path mounts of /, /proc, /sys, /dev, on
    pid|ipc|userns_mode: host and on devices."""
    services = good_services()
    services["redis"].update(trick)
    rows = compose_rows(tmp_path, services)
    assert any(rows[i]["result"] != "PASS" for i in ("K1", "K2", "K3", "K4", "K5")), \
        {i: rows[i] for i in ("K1", "K2", "K3", "K4", "K5")}


def test_caddyfile_over_1_mib_is_judged_on_its_first_mib(tmp_path):
    """FINDING (low): read_uncommented() stops silently at CADDYFILE_MAX
    (1 MiB of non-comment text) and judges the prefix: whatever comes after
    — here `tls internal`, a self-signed CA — is never seen and N10 PASSes.
    Fail-open on a limit. Fix: a file over the limit FAILs N8-N10 ("too
    large to judge") instead of being truncated."""
    big = "\trespond /pad \"" + "x" * (1 << 20) + "\"\n"
    rows = caddy_rows(tmp_path, "\t" + HSTS + "\n" + big + "\ttls internal\n"
                      "\treverse_proxy {$BREEZE_UPSTREAM}")
    assert rows["N10"]["result"] != "PASS", rows["N10"]


def test_held_parallel_scrapes_and_requests_stay_valid(api, env):
    """Held: 4 scrapers and 4 clients in parallel (new route slots being
    claimed while the registry is rendered): every scrape is 200 and every
    sample line is well-formed exposition text."""
    import re
    import threading
    tok = env["METRICS_SCRAPE_TOKEN"]
    line_re = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_]\w*="([^"\\\n]|\\.)*",?)*\})?'
                         r' [-+0-9.eE]+(Inf)?$')
    bad, statuses = [], []

    def scraper():
        for _ in range(15):
            st, text = _get(api.base, "/metrics", {"Authorization": "Bearer " + tok})
            statuses.append(st)
            bad.extend(ln for ln in text.splitlines()
                       if ln and not ln.startswith("#") and not line_re.match(ln))

    def client(i):
        for j in range(15):
            _get(api.base, ("/readyz", "/healthz", f"/api/v1/x{i}{j}", "/api/v1/orgs")[j % 4], {})

    ts = [threading.Thread(target=scraper) for _ in range(4)]
    ts += [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert set(statuses) == {200} and not bad, (set(statuses), bad[:5])


def test_held_witness_survives_huge_and_forged_lines(audit, tmp_path):
    """Held: a 200 KiB line, a truncated checkpoint line, a duplicate-key
    line and a forged line (untrusted key) before the genuine lines do not
    stop the witness from catching the newest rows deleted together with
    their stored checkpoints."""
    from test_audit_tamper import make_chain, tamper
    from test_audit_witness import witness_file

    org, rows = make_chain(audit)
    p = audit.cli("checkpoint")
    log = witness_file(tmp_path, p.stderr)
    forged = json.dumps({"msg": "audit.checkpoint", "chainId": org, "seq": 1,
                         "checksum": "0" * 64, "createdAt": 1, "publicKey": "ab" * 32,
                         "signature": "cd" * 64})
    junk = ['{"msg":"audit.checkpoint","pad":"' + "x" * (200 << 10) + '"}',
            forged[:40], '{"msg":"audit.checkpoint","msg":"x"}', forged]
    log.write_text("\n".join(junk) + "\n" + log.read_text())
    tamper(audit,
           ("DELETE FROM audit_log WHERE chain_id = %s AND seq > 4", (org,)),
           ("UPDATE audit_chain_heads SET seq = 4, checksum = %s WHERE chain_id = %s",
            (rows[3]["checksum"], org)),
           ("DELETE FROM audit_checkpoints WHERE chain_id = %s", (org,)))
    rc, chain, _ = audit.verify(org, "--witness", log)
    assert rc == 1 and "checkpoint_mismatch" in {b["kind"] for b in chain["breaks"]}, chain


def test_held_env_file_owned_by_another_user_fails_s2(tmp_path):
    """Held: a 0600 env file owned by another uid (nobody) FAILs S2."""
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")
    f = tmp_path / "e.env"
    f.write_text("BREEZE_DOMAIN=rmm.acme-msp.net\n")
    os.chmod(f, 0o600)
    os.chown(f, 65534, 65534)
    rows = run_check(tmp_path, "--env-file", str(f))[1]
    assert rows["S2"]["result"] == "FAIL", rows["S2"]


def test_env_file_in_a_world_writable_directory_passes_s2(tmp_path):
    """FINDING (low): S2 looks at the env file's own mode and owner only.
    In a directory anyone may write (0777, no sticky bit) any local user
    can rename the file away and put their own in its place (their
    REDIS_URL, ALLOWED_ORIGINS, SSRF_ALLOWLIST… at the next start), yet S2
    PASSes "mode 0600, owned by uid 0". Fix: FAIL S2 when a directory on
    the file's path is group/other-writable without the sticky bit or is
    owned by someone other than root or the service user."""
    d = tmp_path / "shared"
    d.mkdir()
    os.chmod(d, 0o777)
    f = d / "e.env"
    f.write_text("BREEZE_DOMAIN=rmm.acme-msp.net\n")
    os.chmod(f, 0o600)
    rows = run_check(tmp_path, "--env-file", str(f))[1]
    assert rows["S2"]["result"] != "PASS", rows["S2"]
