"""
The repository stands on its own: no message, comment or document points at
a design note, style guide or checklist file that is not in the repository.
(Checklist IDs such as S1 or G7 are fine: docs/security-checklist.md lists
them all.)
"""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOTS = ["src", "tests", "docs", "scripts", "bench", "cmake", "migrations", "README.md",
         "CMakeLists.txt", "Makefile", ".ci"]
# Spelled in pieces so this file does not match itself.
OUTSIDE = ["DESIGN" + ".md", "STYLE" + ".md", "SECURITY_" + "CHECKLIST", "../" + "shared",
           "seeds" + "/security-hardening"]
SKIP_PARTS = {"node_modules", "corpus", "__pycache__"}


def files():
    for root in ROOTS:
        p = REPO / root
        if p.is_file():
            yield p
        elif p.is_dir():
            for f in p.rglob("*"):
                if f.is_file() and not SKIP_PARTS & set(f.parts):
                    yield f


def test_no_references_to_documents_outside_the_repository():
    hits = []
    for f in files():
        try:
            text = f.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if any(o in line for o in OUTSIDE):
                hits.append(f"{f.relative_to(REPO)}:{n}: {line.strip()[:120]}")
    assert not hits, "\n".join(hits)


def test_security_checklist_names_tests_that_exist():
    """docs/security-checklist.md points at tests; each file (and function,
    where it names one) must exist, so the mapping cannot rot."""
    import re
    doc = (REPO / "docs" / "security-checklist.md").read_text(encoding="utf-8")
    missing = []
    for path, func in re.findall(r"`(tests/[\w/]+\.(?:py|c))(?:::(\w+))?`", doc):
        f = REPO / path
        if not f.is_file():
            missing.append(path)
        elif func and not re.search(rf"\b{func}\b", f.read_text(encoding="utf-8")):
            missing.append(f"{path}::{func}")
    assert not missing, missing
    # Every checklist group is on the page.
    for group in ("S1", "N1", "K5", "A1", "G1", "O1", "M1", "L1", "R1"):
        assert f"| {group}" in doc, group


def test_layers_point_down():
    """docs/architecture.md: common/ and crypto/ know no server code; db/,
    redis/, config and the domain modules (tenancy, auth, audit, agents)
    know no HTTP: only the *_api.c files, http/, main.c and routes.c do."""
    import re
    src = REPO / "src"
    inc = re.compile(r'#include "([^"]+)"')
    bad = []
    for f in sorted(src.rglob("*.[ch]")):
        rel = f.relative_to(src).as_posix()
        includes = inc.findall(f.read_text(encoding="utf-8"))
        if rel.startswith(("common/", "crypto/")):
            bad += [f"{rel}: {i}" for i in includes if i.startswith(("server/", "agent/"))]
        elif rel.startswith("agent/"):
            bad += [f"{rel}: {i}" for i in includes if i.startswith("server/")]
        elif rel.startswith("server/") and not rel.startswith("server/http/"):
            name = rel.rsplit("/", 1)[-1]
            wiring = name.endswith(("_api.c", "_api.h")) or rel in ("server/main.c",
                                                                  "server/routes.c",
                                                                  "server/routes.h")
            if not wiring:
                bad += [f"{rel}: {i}" for i in includes
                        if i.startswith("server/http/") or i.endswith("_api.h")]
    assert not bad, "\n".join(bad)


def test_outbound_requests_only_through_the_ssrf_guard():
    """Checklist O1: src/server/outbound/outbound.c is the only server code
    that makes an outbound request (libcurl's transfer API, ulfius's HTTP and
    SMTP clients, raw connect()); the rest of the server may use libcurl's
    URL parser (curl_url) and its string escaping, nothing else of it."""
    import re
    src = REPO / "src" / "server"
    guard = src / "outbound" / "outbound.c"
    forbidden = re.compile(r"\b(curl_easy_(?!escape\b|unescape\b)\w+|curl_multi_\w+|curl_share_\w+|"
                           r"ulfius_send_\w+|ulfius_init_request|connect\s*\()")
    hits = []
    for f in sorted(src.rglob("*.[ch]")):
        if f == guard:
            continue
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("//")[0]
            if forbidden.search(code) and not code.lstrip().startswith(("*", "/*")):
                hits.append(f"{f.relative_to(REPO)}:{n}: {line.strip()[:100]}")
    assert not hits, "\n".join(hits)
    assert forbidden.search(guard.read_text(encoding="utf-8")), "the guard itself uses libcurl"
