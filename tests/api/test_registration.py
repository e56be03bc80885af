"""The registration switch (issue 8 §3, checklist A3): POST
/api/v1/auth/register is an unknown route while ENABLE_REGISTRATION is off;
on, it signs up a new partner and its partner_admin under a password policy,
with one answer whether or not the e-mail address has an account."""
import json

import pytest

from conftest import Api, assert_error, uniq

PATH = "/api/v1/auth/register"
ACCEPTED = {"status": "accepted",
            "message": "If this address can be registered, its account is ready: sign in with it."}


def body(**kw):
    b = {"email": f"{uniq('reg')}@example.test", "name": "New Admin",
         "password": "vX7-" + uniq("pw"), "partnerName": uniq("MSP")}
    b.update(kw)
    return b


def test_off_is_an_unknown_route(api):
    """Off (the main server's default): 404 like any unknown path, whatever
    the request holds, so nobody can tell the route exists."""
    unknown = api.post("/api/v1/auth/registerx", json=body())
    assert_error(unknown, 404, "not_found")
    for r in (api.post(PATH, json=body()), api.post(PATH, json={"bogus": 1}),
              api.post(PATH, data=b"{not json", headers={"Content-Type": "application/json"}),
              api.post(PATH, data=b"x", headers={"Content-Type": "text/plain"})):
        assert_error(r, 404, "not_found")
        assert r.json() == unknown.json()


@pytest.fixture
def reg(spawn_server):
    srv = spawn_server(ENABLE_REGISTRATION="true")
    return Api(srv.url)


def test_on_signs_up_a_partner_and_its_admin(reg, sql):
    b = body()
    r = reg.post(PATH, json=b)
    assert r.status_code == 202, r.text
    assert r.json() == ACCEPTED
    c = reg.login(b["email"], b["password"])
    me = c.get("/api/v1/auth/me").json()
    assert me["role"]["name"] == "partner_admin" and me["orgId"] is None
    pid = me["partnerId"]
    assert sql("SELECT name FROM partners WHERE id = %s", pid) == [(b["partnerName"],)]
    # The new partner starts empty and is its own tenant.
    assert c.get("/api/v1/organizations").json()["organizations"] == []
    rows = sql("SELECT actor_type, actor_id, partner_id::text, details FROM audit_log"
               " WHERE action = 'auth.register' AND resource_id = %s", pid)
    assert len(rows) == 1 and rows[0][:3] == ("user", me["id"], pid)
    assert json.loads(rows[0][3])["email"] == b["email"] and b["password"] not in rows[0][3]
    # And it can build its tenancy.
    assert c.post("/api/v1/organizations", json={"name": "First"}).status_code == 201


@pytest.mark.parametrize("password, why", [
    ("short-9xQ", "12 to 128"),
    ("k" * 129, "12 to 128"),
    ("winniethepooh", "common"),
    ("QwertyUiop123", "common"),
    ("Password12345!", "common"),
    ("EMAIL", "e-mail"),
    ("x-LOCALPART-x", "e-mail"),
])
def test_password_policy(reg, password, why):
    email = f"{uniq('pol')}@example.test"
    if password == "EMAIL":
        password = email.upper()
    elif password == "x-LOCALPART-x":
        password = "xx-" + email.split("@")[0].upper() + "-xx"
    b = assert_error(reg.post(PATH, json=body(email=email, password=password)), 400,
                     "weak_password")
    assert b["error"]["field"] == "password" and why in b["error"]["message"]
    assert_error(reg.post("/api/v1/auth/login", json={"email": email, "password": password}),
                 401, "invalid_credentials")


def test_existing_address_gets_the_same_answer_and_nothing_changes(reg, bootstrap, sql):
    first = body()
    r1 = reg.post(PATH, json=first)
    assert r1.status_code == 202
    partners = sql("SELECT count(*) FROM partners")[0][0]
    again = body(email=first["email"].upper(), partnerName=uniq("Other MSP"))
    r2 = reg.post(PATH, json=again)
    assert (r2.status_code, r2.json()) == (r1.status_code, r1.json())
    assert sql("SELECT count(*) FROM partners")[0][0] == partners
    # The account is untouched: its password is still the first one.
    reg.login(first["email"], first["password"])
    assert_error(reg.post("/api/v1/auth/login", json={"email": first["email"],
                                                      "password": again["password"]}),
                 401, "invalid_credentials")
    # The bootstrap administrator's address too.
    r3 = reg.post(PATH, json=body(email=bootstrap.email))
    assert (r3.status_code, r3.json()) == (r1.status_code, r1.json())
    reg.login(bootstrap.email, bootstrap.password)
    rows = sql("SELECT actor_type, partner_id, result, details FROM audit_log"
               " WHERE action = 'auth.register.duplicate' ORDER BY id DESC LIMIT 2")
    assert [json.loads(d)["email"] for *_, d in rows] == [bootstrap.email, first["email"]]
    assert all(r[:3] == ("system", None, "failure") for r in rows)


@pytest.mark.parametrize("password", [
    " " * 12, "\t" * 14, "\u200b" * 12, "ab" + " " * 12,
    "password1234 ", " password1234", "pass word1234", "password\u200b1234",
    "Qwerty\u00a0Uiop123", "winnie the pooh",
])
def test_password_policy_ignores_spaces_and_invisible_characters(reg, password):
    """Blanks neither make up the length nor hide a common password."""
    b = body(password=password)
    assert_error(reg.post(PATH, json=b), 400, "weak_password")
    assert reg.post("/api/v1/auth/login", json={"email": b["email"],
                                                "password": password}).status_code == 401


def test_a_passphrase_with_spaces_is_accepted(reg):
    b = body(password="violet " + uniq("stapler") + " orbit")
    assert reg.post(PATH, json=b).status_code == 202
    assert reg.post("/api/v1/auth/login", json={"email": b["email"],
                                                "password": b["password"]}).status_code == 200
