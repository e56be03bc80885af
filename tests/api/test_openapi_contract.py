"""docs/openapi.yaml and the server agree.

The route table (`breeze-server routes`, one JSON object per route) and the
spec's operations are compared both ways, with ulfius templates (`:id`)
written as OpenAPI templates (`{id}`); each route's documented security,
permission (`x-permission`) and request body match its flags. A route and
its description land together: nothing is specified ahead of its
implementation.

The response validator itself (openapi_contract.py, run on every response
of the API tests) is checked here too: it must refuse drift.
"""
import copy
import json
import re
import subprocess

import pytest
import requests

import openapi_contract
from conftest import SERVER_BIN, base_process_env

@pytest.fixture(scope="module")
def spec():
    return openapi_contract.Contract().spec


@pytest.fixture(scope="module")
def routes():
    p = subprocess.run([str(SERVER_BIN), "routes"], env=base_process_env(), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, f"breeze-server routes failed ({p.returncode}):\n{p.stderr}"
    out = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    assert len(out) > 10, p.stdout
    return {(r["method"], openapi_path(r["path"])): r for r in out}


def openapi_path(ulfius_path):
    """/api/v1/devices/:id -> /api/v1/devices/{id}"""
    return re.sub(r":([A-Za-z_][A-Za-z0-9_]*)", r"{\1}", ulfius_path)


def operations(spec):
    """{(METHOD, template): (operation, path item)} of the spec."""
    ops = {}
    for template, item in spec["paths"].items():
        for method, op in item.items():
            if method in openapi_contract.METHODS:
                ops[(method.upper(), template)] = (op, item)
    return ops


def fmt(keys):
    return "\n  ".join(f"{m} {p}" for m, p in sorted(keys, key=lambda k: (k[1], k[0])))


def test_every_route_is_documented(spec, routes):
    missing = set(routes) - set(operations(spec))
    assert not missing, "routes in the route table but not in docs/openapi.yaml:\n  " + fmt(missing)


def test_every_documented_operation_is_routed(spec, routes):
    ops = operations(spec)
    absent = set(ops) - set(routes)
    assert not absent, ("operations in docs/openapi.yaml but not in the route table:\n  "
                        + fmt(absent))
    # A route and its description land in the same commit: nothing is
    # specified ahead of its implementation.
    planned = {k for k, (op, _) in ops.items() if "x-planned" in op}
    assert not planned, "x-planned operations in docs/openapi.yaml:\n  " + fmt(planned)


def effective_security(spec, op):
    return op.get("security", spec.get("security", []))


def test_security_matches_route_flags(spec, routes):
    ops = operations(spec)
    bad = []
    for key, r in sorted(routes.items()):
        if key not in ops:
            continue  # reported by test_every_route_is_documented
        sec = effective_security(spec, ops[key][0])
        if r["user"]:
            # An API key works on a user route unless the route is closed to
            # keys (self-service or ROUTE_NO_API_KEY): then bearerAuth only.
            want = [{"bearerAuth": []}, {"apiKey": []}] if r["apiKey"] else [{"bearerAuth": []}]
            if sec != want:
                bad.append(f"{key[0]} {key[1]}: a user route must require {want}, spec has {sec}")
        elif sec not in ([], [{"agentToken": []}], [{"metricsToken": []}]):
            bad.append(f"{key[0]} {key[1]}: a public route is documented with {sec}")
        elif sec == [{"metricsToken": []}]:
            if key != ("GET", "/metrics"):
                bad.append(f"{key[0]} {key[1]}: metricsToken outside GET /metrics")
        elif sec and not key[1].startswith("/api/v1/agents/"):
            bad.append(f"{key[0]} {key[1]}: agentToken outside /api/v1/agents/")
    assert not bad, "\n".join(bad)


def test_permission_matches_route_table(spec, routes):
    ops = operations(spec)
    bad = [f"{m} {p}: route table {r['permission']!r}, spec x-permission {ops[(m, p)][0].get('x-permission')!r}"
           for (m, p), r in sorted(routes.items())
           if (m, p) in ops and ops[(m, p)][0].get("x-permission") != r["permission"]]
    assert not bad, "\n".join(bad)


def test_request_body_matches_json_body_flag(spec, routes):
    ops = operations(spec)
    bad = []
    for (m, p), r in sorted(routes.items()):
        if (m, p) not in ops:
            continue
        body = ops[(m, p)][0].get("requestBody")
        documented = body is not None and "application/json" in body.get("content", {})
        if documented != r["jsonBody"]:
            bad.append(f"{m} {p}: jsonBody {r['jsonBody']}, spec requestBody {'yes' if documented else 'no'}")
    assert not bad, "\n".join(bad)


def test_query_parameters_match_the_route_table(spec, routes):
    """The query parameters a route accepts (every other one is a 400) are
    exactly the ones the spec documents for it."""
    c = openapi_contract.Contract()
    ops = operations(spec)
    bad = []
    for (m, p), r in sorted(routes.items()):
        if (m, p) not in ops:
            continue
        op, item = ops[(m, p)]
        params = [c.deref(x) for x in item.get("parameters", []) + op.get("parameters", [])]
        documented = {x["name"] for x in params if x["in"] == "query"}
        if documented != set(r["query"]):
            bad.append(f"{m} {p}: route accepts {sorted(r['query'])}, spec documents "
                       f"{sorted(documented)}")
    assert not bad, "\n".join(bad)


def test_path_parameters_are_declared_uuids(spec):
    c = openapi_contract.Contract()
    bad = []
    for (m, p), (op, item) in operations(spec).items():
        params = [c.deref(x) for x in item.get("parameters", []) + op.get("parameters", [])]
        path_params = {x["name"]: x for x in params if x["in"] == "path"}
        names = re.findall(r"\{([^}]+)\}", p)
        if set(names) != set(path_params):
            bad.append(f"{m} {p}: template names {names}, declared {sorted(path_params)}")
        for n, x in path_params.items():
            schema = c.deref(x.get("schema", {}))
            if not x.get("required") or schema.get("type") != "string" or schema.get("format") != "uuid":
                bad.append(f"{m} {p}: path parameter {n} must be a required uuid string")
    assert not bad, "\n".join(bad)


def _walk(schema, c, seen, where, bad, request):
    """Every object schema with properties must be closed; request bodies too."""
    if isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        if ref in seen:
            return
        seen.add(ref)
        schema = c.deref(schema)
        where = ref
    if not isinstance(schema, dict):
        return
    if "properties" in schema and schema.get("additionalProperties") is not False:
        bad.append(f"{where}: an object with properties must say additionalProperties: false")
    if request and schema.get("type") == "object" and "properties" not in schema and where.endswith("(body)"):
        bad.append(f"{where}: a request body must list its members")
    for key in ("properties", "$defs"):
        for name, sub in schema.get(key, {}).items():
            _walk(sub, c, seen, f"{where}/{name}", bad, request)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            _walk(schema[key], c, seen, f"{where}/{key}", bad, request)
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(schema.get(key, [])):
            _walk(sub, c, seen, f"{where}/{key}/{i}", bad, request)


def test_objects_are_closed(spec):
    """Drift is caught only if an unexpected member is an error: every object
    schema with properties (responses and request bodies) is closed."""
    c = openapi_contract.Contract()
    bad = []
    for (m, p), (op, _) in operations(spec).items():
        rb = op.get("requestBody")
        if rb is not None:
            _walk(c.deref(rb)["content"]["application/json"]["schema"], c, set(),
                  f"{m} {p} (body)", bad, True)
        for status, resp in op["responses"].items():
            for media in c.deref(resp).get("content", {}).values():
                _walk(media["schema"], c, set(), f"{m} {p} {status}", bad, False)
    assert not bad, "\n".join(sorted(set(bad)))


def test_dispatcher_statuses_are_documented(spec, routes):
    """Statuses the dispatcher (http/server.c) can answer before or around any
    handler are documented on every route they apply to, not only on those a
    test happens to provoke: 400 (query not UTF-8, bad Content-Length) and
    413 everywhere; 415 and 400 on JSON-body routes; 401, 403 (a permission),
    500 and 503 on user routes; 403 also on self-service routes (API keys);
    428 on user routes without ROUTE_MFA_EXEMPT."""
    ops = operations(spec)
    bad = []
    for (m, p), r in sorted(routes.items()):
        if (m, p) not in ops:
            continue
        want = {"400", "413"}
        if r["jsonBody"]:
            want |= {"415"}
        if r["user"]:
            want |= {"401", "500", "503"}
        if r["user"] and not r["mfaExempt"]:
            want |= {"428"}  # the forced-enrolment gate (A2)
        if r["permission"] or r.get("selfService"):
            want |= {"403"}
        missing = want - set(ops[(m, p)][0]["responses"])
        if missing:
            bad.append(f"{m} {p}: undocumented {', '.join(sorted(missing))}")
    assert not bad, "\n".join(bad)


def test_spec_version_is_the_server_version(spec):
    version = (openapi_contract.SPEC_PATH.parents[1] / "VERSION").read_text().strip()
    assert spec["info"]["version"] == version
    p = subprocess.run([str(SERVER_BIN), "version"], env=base_process_env(), capture_output=True,
                       text=True, timeout=60)
    assert p.stdout.split() == ["breeze-server", version], p.stdout


# The one error status whose body is not an Error: readiness reports which
# dependency is down in the same shape as a 200.
NOT_ERROR_SHAPED = {("GET", "/readyz", "503"): "#/components/schemas/Readyz"}


def test_error_responses_use_the_error_schema(spec):
    c = openapi_contract.Contract()
    allowed = {"#/components/schemas/Error", "#/components/schemas/EnrollmentKeyError",
               "#/components/schemas/CreateConflictError"}
    bad = []
    for (m, p), (op, _) in operations(spec).items():
        for status, resp in op["responses"].items():
            if int(status) < 400:
                continue
            schema = c.deref(resp).get("content", {}).get("application/json", {}).get("schema", {})
            want = {NOT_ERROR_SHAPED[(m, p, status)]} if (m, p, status) in NOT_ERROR_SHAPED else allowed
            if schema.get("$ref") not in want:
                bad.append(f"{m} {p} {status}: {schema}")
    assert not bad, "\n".join(bad)


# ------------------------------------------------------------------ the validator


def _exchange(api, method, path, **kw):
    """A real response from the server, taken without validation (a plain
    requests call, not http_session)."""
    r = requests.request(method, api.base + path, timeout=30, **kw)
    return r.request.method, r.request.url, r.status_code, r.headers, r.content


def test_validator_refuses_drift(api):
    good = openapi_contract.Contract()
    ex = _exchange(api, "GET", "/healthz")
    assert good.check(*ex) is None

    # A member the server sends that the schema does not list.
    c = openapi_contract.Contract()
    c.spec = copy.deepcopy(c.spec)
    del c.spec["components"]["schemas"]["Healthz"]["properties"]["status"]
    problem = c.check(*ex)
    assert problem and "Additional properties" in problem, problem

    # A required member the server does not send; a wrong type; a bad format.
    c.spec = copy.deepcopy(good.spec)
    c.spec["components"]["schemas"]["Healthz"]["required"].append("uptime")
    assert "uptime" in (c.check(*ex) or "")
    c.spec = copy.deepcopy(good.spec)
    c.spec["components"]["schemas"]["Healthz"]["properties"]["status"] = {"type": "integer"}
    assert c.check(*ex)
    assert good.check("GET", api.base + "/api/v1/organizations/x", 200,
                      {"Content-Type": "application/json"},
                      b'{"id":"not-a-uuid","partnerId":"00000000-0000-0000-0000-000000000000",'
                      b'"name":"n","createdAt":"2026-01-02T03:04:05Z"}')
    assert good.check("GET", api.base + "/api/v1/organizations/x", 200,
                      {"Content-Type": "application/json"},
                      b'{"id":"00000000-0000-0000-0000-000000000000",'
                      b'"partnerId":"00000000-0000-0000-0000-000000000000",'
                      b'"name":"n","createdAt":"yesterday"}')

    # An undocumented status of a documented operation.
    method, url, _, headers, body = ex
    assert "not documented" in (good.check(method, url, 418, headers, body) or "")

    # An unknown path must be the dispatcher's 404, a known path's unknown
    # method its 405, and both bodies must be Errors.
    assert good.check("GET", api.base + "/nope", 200, headers, body)
    assert good.check(*_exchange(api, "GET", "/nope")) is None
    assert good.check(*_exchange(api, "PUT", "/healthz")) is None
    assert good.check("PUT", api.base + "/healthz", 404, headers, body)
    assert good.check("PUT", api.base + "/healthz", 405, headers, body)
    m, u, st, h, b = _exchange(api, "PUT", "/healthz")
    assert "Allow" in good.check(m, u, st, {k: v for k, v in h.items() if k != "Allow"}, b)
    assert "code" in good.check(m, u, 405, h, b.replace(b"method_not_allowed", b"not_found"))

    # A response documented without content must have none.
    assert good.check("DELETE", api.base + "/api/v1/sites/00000000-0000-0000-0000-000000000000",
                      204, headers, b"{}")


def test_violation_fails_the_request(api, monkeypatch):
    broken = openapi_contract.Contract()
    broken.spec = copy.deepcopy(broken.spec)
    broken.spec["components"]["schemas"]["Healthz"]["properties"]["status"]["const"] = "fine"
    monkeypatch.setattr(openapi_contract, "_CONTRACT", broken)
    try:
        with pytest.raises(openapi_contract.ContractViolation, match="Healthz|status|fine"):
            api.get("/healthz")
    finally:
        recorded = openapi_contract.take_violations()
    assert len(recorded) == 1 and "/healthz" in recorded[0], recorded
