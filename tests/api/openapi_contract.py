"""
The API contract (docs/openapi.yaml) as a response validator for the API tests.

Every response a test receives through a session from `session()` (the Api
client in conftest.py uses one) is checked against the spec: the request's
path is matched to a path template, the method to an operation, the status to
one of that operation's documented responses, and the JSON body to its schema
(JSON Schema 2020-12, `$ref`s into `#/components/...` resolved in the spec).

  - an undocumented status of a documented operation is a violation;
  - a path that matches no template must answer 404 with the Error schema
    (the dispatcher's "no such route"), unless it is a GET or HEAD outside
    /api/ and an operation for it is marked `x-spa-fallback` (the web
    dashboard's index.html and assets): then it is checked as that
    operation; a documented path with a method it does not have must answer
    405 with the Error schema;
  - a response documented with several media types must have one of them
    as its Content-Type (only JSON bodies are checked against a schema);
  - a documented response without content must have an empty body.

A violation raises ContractViolation (an AssertionError) out of the request,
so the test that sent it fails, and is also recorded (take_violations()) so
conftest.py can fail a test whose violation was swallowed, e.g. in a thread.
"""
import json
import re
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import jsonschema
import requests
import yaml

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# RFC 3339 §5.6 date-time (JSON Schema's "date-time" format).
_DATE_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


class ContractViolation(AssertionError):
    """A response that docs/openapi.yaml does not allow."""


def _format_checker():
    """Checks the formats the spec uses; jsonschema alone would skip them
    (date-time needs an extra package) or accept non-canonical UUIDs."""
    fc = jsonschema.FormatChecker(formats=())

    @fc.checks("uuid")
    def _uuid(v):
        return not isinstance(v, str) or bool(_UUID_RE.match(v))

    @fc.checks("date-time")
    def _date_time(v):
        return not isinstance(v, str) or bool(_DATE_TIME_RE.match(v))

    return fc


def _segments(path):
    """Path segments as ulfius matches them: split on '/', empty ones dropped."""
    return [s for s in path.split("/") if s]


class Contract:
    """docs/openapi.yaml, loaded once, with a validator per schema."""

    def __init__(self, spec_path=SPEC_PATH):
        with open(spec_path, encoding="utf-8") as f:
            self.spec = yaml.safe_load(f)
        self.format_checker = _format_checker()
        self._local = threading.local()
        self.error_schema = {"$ref": "#/components/schemas/Error"}
        # (segments, template) with literal templates before parameterized
        # ones of the same length, as a router prefers the literal match.
        self.templates = sorted(
            ((_segments(t), t) for t in self.spec["paths"]),
            key=lambda st: (len(st[0]), sum(s.startswith("{") for s in st[0])))

    def deref(self, obj):
        """OBJ, or what its local $ref points at (components/responses, …)."""
        while isinstance(obj, dict) and "$ref" in obj:
            ref = obj["$ref"]
            assert ref.startswith("#/"), f"only local $refs are supported: {ref}"
            node = self.spec
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            obj = node
        return obj

    def match_path(self, path):
        """The spec's path template for the request path PATH, or None."""
        segs = [unquote(s) for s in _segments(path)]
        for tsegs, template in self.templates:
            if len(tsegs) != len(segs):
                continue
            if all(t.startswith("{") or t == s for t, s in zip(tsegs, segs)):
                return template
        return None

    def operations(self, template):
        item = self.spec["paths"][template]
        return {m: op for m, op in item.items() if m in METHODS}

    def _resolver(self):
        """A RefResolver for the spec, one per thread: it keeps a scope stack,
        so sharing one between threads (the concurrency tests) is not safe,
        and building one per call would re-index the whole spec each time."""
        cached = getattr(self._local, "resolver", None)
        if cached is None or cached[0] is not self.spec:
            cached = (self.spec, jsonschema.RefResolver.from_schema(self.spec))
            self._local.resolver = cached
        return cached[1]

    def validate_schema(self, schema, instance):
        """Raises jsonschema.ValidationError when INSTANCE does not fit SCHEMA."""
        v = jsonschema.Draft202012Validator(schema, resolver=self._resolver(),
                                            format_checker=self.format_checker)
        err = jsonschema.exceptions.best_match(v.iter_errors(instance))
        if err is not None:
            raise err

    def check(self, method, url, status, headers, body):
        """Checks one exchange; returns None or the text of the violation."""
        method = method.upper()
        path = urlsplit(url).path
        template = self.match_path(path)
        where = f"{method} {path} -> {status}"
        if template is None and status != 404:
            template = self.spa_fallback(method, path)
        if template is None:
            if status != 404:
                return f"{where}: the path matches no template in docs/openapi.yaml, " \
                       f"so the server must answer 404 (no such route)"
            return self._check_body(where, self.error_schema, headers, body, method, "not_found")
        ops = self.operations(template)
        op = ops.get(method.lower())
        if op is None:
            if status != 405:
                return f"{where}: {template} has no {method} in docs/openapi.yaml " \
                       f"(documented: {', '.join(m.upper() for m in ops)}), so the server must answer 405"
            if not headers.get("Allow"):
                return f"{where}: a 405 must carry Allow (RFC 9110 §15.5.6)"
            return self._check_body(where, self.error_schema, headers, body, method,
                                    "method_not_allowed")
        where = f"{method} {template} ({path}) -> {status}"
        responses = op.get("responses", {})
        resp = responses.get(str(status))
        if resp is None:
            return f"{where}: status {status} is not documented " \
                   f"(documented: {', '.join(sorted(responses))})"
        resp = self.deref(resp)
        content = resp.get("content")
        if not content:
            if body:
                return f"{where}: documented without a body, got {body[:200]!r}"
            return None
        if list(content) != ["application/json"] and method != "HEAD":
            # Several media types (the dashboard's files): the one sent must
            # be documented; only JSON has a schema to check.
            ctype = headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype not in content:
                return f"{where}: Content-Type {ctype!r} is not documented " \
                       f"(documented: {', '.join(content)})"
            if ctype != "application/json":
                return None if body else f"{where}: empty {ctype} body"
        media = content.get("application/json")
        if media is None:
            return None if method == "HEAD" else \
                f"{where}: only application/json responses can be checked"
        return self._check_body(where, media.get("schema", {}), headers, body, method)

    def spa_fallback(self, method, path):
        """The template whose operation for METHOD is marked x-spa-fallback
        (the web dashboard answers every GET or HEAD path outside /api/ that
        matches no route), or None."""
        if path.lower() == "/api" or path.lower().startswith("/api/"):
            return None
        for template in self.spec["paths"]:
            if self.operations(template).get(method.lower(), {}).get("x-spa-fallback"):
                return template
        return None

    def _check_body(self, where, schema, headers, body, method, code=None):
        if method == "HEAD":
            return None  # no body by definition (RFC 9110 §9.3.2)
        ctype = headers.get("Content-Type", "")
        if not ctype.startswith("application/json"):
            return f"{where}: Content-Type {ctype!r}, want application/json"
        try:
            doc = json.loads(body)
        except ValueError as e:
            return f"{where}: body is not JSON ({e}): {body[:200]!r}"
        try:
            self.validate_schema(schema, doc)
        except jsonschema.ValidationError as e:
            loc = "/".join(str(p) for p in e.absolute_path) or "(root)"
            return f"{where}: body does not match the schema at {loc}: {e.message}\n" \
                   f"  schema path: {'/'.join(str(p) for p in e.absolute_schema_path)}\n" \
                   f"  body: {json.dumps(doc)[:1000]}"
        if code is not None and doc["error"]["code"] != code:
            return f"{where}: error code {doc['error']['code']!r}, want {code!r}"
        return None


_CONTRACT = None
_CONTRACT_LOCK = threading.Lock()
_VIOLATIONS = []
_VIOLATIONS_LOCK = threading.Lock()


def contract():
    """The Contract of docs/openapi.yaml (loaded on first use)."""
    global _CONTRACT
    with _CONTRACT_LOCK:
        if _CONTRACT is None:
            _CONTRACT = Contract()
        return _CONTRACT


def take_violations():
    """The violations recorded since the last call (and forgets them)."""
    with _VIOLATIONS_LOCK:
        out = list(_VIOLATIONS)
        _VIOLATIONS.clear()
        return out


def check_response(resp, *args, **kwargs):
    """requests response hook: raises ContractViolation (and records it) when
    RESP does not match docs/openapi.yaml."""
    req = resp.request
    problem = contract().check(req.method, req.url, resp.status_code, resp.headers,
                               resp.content or b"")
    if problem is not None:
        with _VIOLATIONS_LOCK:
            _VIOLATIONS.append(problem)
        raise ContractViolation("response violates docs/openapi.yaml: " + problem)
    return resp


def session():
    """A requests.Session whose every response is checked against the spec."""
    s = requests.Session()
    s.hooks["response"].append(check_response)
    return s
