"""
Request bodies are strict and every stored string is a checked display
string: an unknown member, a control character, a bidirectional override or
a blank name (also one of only zero-width or filler characters) is a 400 validation_error that names the field, and nothing is
stored.
"""
import pytest

from conftest import assert_error, uniq


def test_unknown_field_is_named(admin):
    r = admin.post("/api/v1/organizations", json={"name": uniq("org"), "nmae": "typo"})
    body = assert_error(r, 400, "validation_error")
    assert body["error"]["field"] == "nmae"
    assert "nmae" in body["error"]["message"]


def test_unknown_field_refused_before_anything_is_stored(admin, sql):
    name = uniq("org")
    r = admin.post("/api/v1/organizations", json={"name": name, "extra": 1})
    assert_error(r, 400, "validation_error")
    assert sql("SELECT count(*) FROM organizations WHERE name = %s", name)[0][0] == 0


@pytest.mark.parametrize("name", [
    "",
    "   ",
    "tab\there",
    "line\nbreak",
    "esc\x1b[31m",
    "c1\u009b",
    "rlo\u202eevil",
    "isolate\u2066x",
    "bom\ufeff",
    "\u200d",            # zero-width joiner only: renders as nothing
    "\u200b\u2060\u00ad",  # zero-width space, word joiner, soft hyphen
    "\u3164",            # Hangul filler
    "\u2800\u2800",      # Braille blanks
    "\u2003\ufe0f",      # em space, variation selector
])
def test_bad_display_strings_refused(admin, make_org, name):
    body = assert_error(admin.post("/api/v1/organizations", json={"name": name}), 400,
                        "validation_error")
    assert body["error"]["field"] == "name"
    org = make_org()
    body = assert_error(admin.post(f"/api/v1/organizations/{org.id}/sites", json={"name": name}),
                        400, "validation_error")
    assert body["error"]["field"] == "name"


def test_name_length_in_bytes(admin):
    assert_error(admin.post("/api/v1/organizations", json={"name": "é" * 101}), 400,
                 "validation_error")
    r = admin.post("/api/v1/organizations", json={"name": uniq("é" * 90)[:100]})
    assert r.status_code == 201, r.text


def test_wrong_type_named(admin):
    body = assert_error(admin.post("/api/v1/organizations", json={"name": 5}), 400,
                        "validation_error")
    assert body["error"]["field"] == "name"


@pytest.mark.parametrize("path,params", [
    ("/api/v1/audit", {"siteId": "00000000-0000-0000-0000-000000000001"}),  # not a filter
    ("/api/v1/devices", {"orgid": "00000000-0000-0000-0000-000000000001"}),  # misspelt
    ("/api/v1/organizations", {"limit": "5"}),  # takes no parameters at all
    ("/api/v1/enrollment-keys", {"siteId": "00000000-0000-0000-0000-000000000001"}),
])
def test_unknown_query_parameter_is_named(admin, path, params):
    """A filter the route does not know would silently list everything."""
    name = next(iter(params))
    body = assert_error(admin.get(path, params=params), 400, "validation_error")
    assert f"'{name}'" in body["error"]["message"], body


def test_known_query_parameters_still_work(admin, tenants):
    r = admin.get("/api/v1/devices", params={"orgId": tenants.a.id, "limit": "5"})
    assert r.status_code == 200, r.text
