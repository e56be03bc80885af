"""The web dashboard's static files (src/server/http/static.c,
docs/dashboard.md): `/` and the SPA fallback answer index.html, assets are
served by their hashed names, /api/ keeps the JSON 404, every page and
asset carries the dashboard's Content-Security-Policy, no request path
leads out of WEB_ROOT, and a missing build leaves the API working. Also the
build (scripts/build-web): reproducible, and it refuses HTML sinks."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, assert_error
from test_raw_http import raw

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'; require-trusted-types-for 'script'; trusted-types 'none'")
API_CSP = "default-src 'none'; frame-ancestors 'none'"
DIST = REPO / "web" / "dist"
BUILD_WEB = REPO / "scripts" / "build-web"
ASSET_RE = re.compile(r'(?:src|href)="(/assets/[^"]+)"')


def assert_page_headers(r, cache):
    assert r.headers["Content-Security-Policy"] == CSP
    assert r.headers["Cache-Control"] == cache
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert re.fullmatch(r"[0-9a-f-]{36}", r.headers["X-Request-Id"])


def test_index_at_root_and_at_every_app_route(api):
    index = (DIST / "index.html").read_bytes()
    r = api.get("/")
    assert r.status_code == 200 and r.content == index
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert_page_headers(r, "no-cache")
    h = api.request("HEAD", "/")
    assert h.status_code == 200 and h.content == b""
    assert h.headers["Content-Security-Policy"] == CSP
    # The SPA fallback: a reload or a bookmark of any page of the app.
    for path in ("/login", "/mfa/enroll", "/devices", "/devices/0b4f4ad0-1c1e-4c7e-9a51-5f1d3c2b7a10",
                 "/devices?status=online", "/healthz/x", "/no/such/page.html"):
        r = api.get(path)
        assert r.status_code == 200 and r.content == index, path
        assert_page_headers(r, "no-cache")
        assert api.request("HEAD", path).headers["Content-Security-Policy"] == CSP


def test_assets_by_hashed_name_with_their_types(api):
    types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
             ".svg": "image/svg+xml"}
    names = ASSET_RE.findall((DIST / "index.html").read_text())
    assert len(names) == 3, names
    for f in sorted((DIST / "assets").iterdir()):
        assert re.fullmatch(r"[a-z_]+\.[0-9a-f]{12}\.(js|css|svg)", f.name), f.name
        r = api.get(f"/assets/{f.name}")
        assert r.status_code == 200 and r.content == f.read_bytes(), f.name
        assert r.headers["Content-Type"] == types[f.suffix]
        assert_page_headers(r, "public, max-age=31536000, immutable")
    for path in ("/assets/nope.js", "/assets/", "/assets/main.js", "/assets/x.exe", "/assets/a/b.js"):
        r = assert_error(api.get(path), 404, "not_found")
        assert r["error"]["message"] == "no such route"


def test_api_paths_keep_the_json_404(api):
    for path in ("/api", "/api/", "/api/v1/nope", "/api/v1/devices/x/y/z", "/api/mfa/enroll",
                 "/API/V1/ORGS", "/Api"):
        r = api.get(path)
        assert_error(r, 404, "not_found")
        assert r.headers["Content-Type"] == "application/json"
        assert r.headers["Content-Security-Policy"] == API_CSP
        assert r.headers["Cache-Control"] == "no-store"
    # Only GET and HEAD reach the files.
    assert_error(api.post("/mfa/enroll", json={}), 404, "not_found")
    assert_error(api.delete("/assets/x.js"), 404, "not_found")
    r = api.post("/", json={})
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "GET, HEAD"
    # The API's own answers carry the JSON policy.
    assert api.get("/healthz").headers["Content-Security-Policy"] == API_CSP


TRAVERSALS = [
    "/assets/../index.html", "/assets/%2e%2e/index.html", "/assets/..%2findex.html",
    "/assets/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/../../../../etc/passwd", "/assets/main.js%00.css", "/assets/%00", "/assets//index.html",
    "/assets/.hidden.js", "/assets/./favicon.svg", "/assets\\..\\index.html", "/./devices",
    "/devices/..", "//etc/passwd", "/assets/%61pi.js",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_path_leaves_the_web_root(server, path):
    """Sent raw (clients normalize '..' away): never a file outside the root,
    never a file through an escape; a 404 JSON (or, for an encoded escape
    that libmicrohttpd itself refuses, a 400)."""
    status, headers, body, _ = raw(server.url, [f"GET {path} HTTP/1.1", "Host: x",
                                                "Connection: close"])
    assert b"root:" not in body
    assert status in (400, 404), (status, body[:200])
    if status == 404:
        assert b'"not_found"' in body and headers["content-type"] == "application/json"


def test_symbolic_links_below_the_root_are_not_followed(spawn_server, tmp_path):
    root = tmp_path / "web"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>t</title>")
    (root / "assets" / "ok.js").write_text("export const x = 1;\n")
    (root / "assets" / "passwd.js").symlink_to("/etc/passwd")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "e.js").write_text("secret\n")
    (root / "assets" / "up.js").symlink_to("../../elsewhere/e.js")
    srv = spawn_server(WEB_ROOT=str(root))
    from conftest import Api
    c = Api(srv.url)
    assert c.get("/assets/ok.js").text == "export const x = 1;\n"
    assert_error(c.get("/assets/passwd.js"), 404, "not_found")
    assert_error(c.get("/assets/up.js"), 404, "not_found")
    # A linked assets directory or index.html is not followed either.
    shutil.rmtree(root / "assets")
    (root / "assets").symlink_to(tmp_path / "elsewhere")
    assert_error(c.get("/assets/e.js"), 404, "not_found")
    (root / "index.html").unlink()
    (root / "index.html").symlink_to(tmp_path / "elsewhere" / "e.js")
    assert_error(c.get("/"), 503, "web_not_built")
    assert_error(c.get("/devices"), 404, "not_found")


def test_missing_build_keeps_the_api_working(spawn_server, tmp_path):
    missing = tmp_path / "not-built"
    srv = spawn_server(WEB_ROOT=str(missing))
    from conftest import Api
    c = Api(srv.url)
    body = assert_error(c.get("/"), 503, "web_not_built")
    assert "make web" in body["error"]["message"]
    assert_error(c.get("/devices"), 404, "not_found")
    assert c.get("/healthz").status_code == 200
    assert '"web.not_built"' in srv.log_text() and str(missing) in srv.log_text()
    # Built while the server runs: served at once, no restart.
    subprocess.run([str(BUILD_WEB), "--out", str(missing)], check=True, capture_output=True)
    assert c.get("/").status_code == 200 and c.get("/devices").status_code == 200


def test_web_root_must_be_absolute(run_server):
    r = run_server(WEB_ROOT="web/dist")
    assert r.returncode != 0
    assert "WEB_ROOT: must be an absolute path" in r.stderr


# ------------------------------------------------------------------ the build

# Forbidden in web/src: HTML sinks and string-to-code (every value is
# rendered as text), Web Storage and cookies written by script (the access
# token lives in memory only). scripts/build-web refuses them too.
FORBIDDEN = [r"\.innerHTML\b", r"\.outerHTML\b", r"\binsertAdjacentHTML\b", r"\bdocument\.write",
             r"\bcreateContextualFragment\b", r"\beval\s*\(", r"\bnew\s+Function\b",
             r"\blocalStorage\b", r"\bsessionStorage\b", r"\bindexedDB\b",
             r"\bdocument\.cookie\s*=[^=]", r"\bDOMParser\b", r"\bsrcdoc\b",
             r"\b(innerHTML|outerHTML|setHTMLUnsafe|execCommand)\b", r"\bReflect\s*\.",
             r"\[\s*['\"`][^\]]*['\"`]\s*\+", r"(?i)javascript:", r"(?<![\w.])Function\s*\("]


# The two cookie writes allowed (web/src/api.js forgetCsrfCookie), exactly.
ALLOWED_LINES = {"document.cookie = 'breeze_csrf_token=; Max-Age=0; Path=/; SameSite=Strict';",
                 "document.cookie = '__Host-breeze_csrf_token=; Max-Age=0; Path=/; Secure; SameSite=Strict';"}


def test_no_html_sinks_or_storage_in_web_src():
    hits = []
    for f in sorted((REPO / "web" / "src").iterdir()):
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip() in ALLOWED_LINES:
                continue
            hits += [f"{f.name}:{n}: {line.strip()}" for rx in FORBIDDEN if re.search(rx, line)]
    assert not hits, "\n".join(hits)
    # Nothing from another origin: no absolute URL in a src or href.
    text = (REPO / "web" / "src" / "index.html").read_text()
    assert not re.search(r'(src|href)="(https?:)?//', text)


@pytest.mark.normal_only
def test_build_is_reproducible_and_refuses_html_sinks(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        subprocess.run([str(BUILD_WEB), "--out", str(out)], check=True, capture_output=True)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    # Imports name the hashed modules, so a module's name covers its imports.
    main = next((a / "assets").glob("main.*.js")).read_text()
    assert re.search(r"from '\./api\.[0-9a-f]{12}\.js';", main)
    src = tmp_path / "src"
    shutil.copytree(REPO / "web" / "src", src)
    with open(src / "devices.js", "a") as f:
        f.write("document.body.innerHTML = location.hash;\n")
    r = subprocess.run([str(BUILD_WEB), "--src", str(src), "--out", str(tmp_path / "c")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "HTML sink" in r.stderr
    assert not (tmp_path / "c").exists()
