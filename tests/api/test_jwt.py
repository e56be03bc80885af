"""Access-token verification, probed with tokens forged here from JWT_SECRET.

The positive control (a correctly forged HS256 token for a live session is
accepted) proves the forging code is right, so every refusal below is the
server's doing. Forgeries are data: one table, one test."""
import base64
import hashlib
import hmac
import json
import time
import uuid

import pytest

from conftest import assert_error

ME = "/api/v1/auth/me"


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def forge(claims, secret, header=None, alg="HS256", sig=None):
    header = header if header is not None else {"alg": alg, "typ": "JWT"}
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    p = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{h}.{p}".encode()
    if sig is None:
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}.get(alg)
        sig = b64url(hmac.new(secret.encode(), signing_input, digest).digest()) if digest else ""
    return f"{h}.{p}.{sig}"


def decode_claims(token):
    p = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


@pytest.fixture(scope="module")
def victim(make_user):
    """A logged-in user whose session the forgeries reuse."""
    return make_user("partner_technician")


def good_claims(user_id, sid, now=None):
    now = int(now or time.time())
    return {"sub": user_id, "sid": sid, "iss": "breeze", "aud": "breeze-api", "iat": now,
            "exp": now + 600}


def test_forged_hs256_token_for_live_session_is_accepted(api, env, victim):
    """Positive control."""
    sid = decode_claims(victim.api.token)["sid"]
    tok = forge(good_claims(victim.id, sid), env["JWT_SECRET"])
    r = api.get(ME, token=tok)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == victim.id
    assert r.json()["sessionId"] == sid

def test_forged_token_with_past_nbf_is_accepted(api, env, victim):
    """Positive control for the nbf cases: a past nbf is fine."""
    sid = decode_claims(victim.api.token)["sid"]
    c = good_claims(victim.id, sid)
    tok = forge({**c, "nbf": c["iat"] - 10}, env["JWT_SECRET"])
    assert api.get(ME, token=tok).status_code == 200


def test_server_tokens_are_hs256_with_expected_claims(victim):
    header = json.loads(base64.urlsafe_b64decode(victim.api.token.split(".")[0] + "=="))
    assert header["alg"] == "HS256"
    c = decode_claims(victim.api.token)
    assert c["iss"] == "breeze" and c["aud"] == "breeze-api" and c["sub"] == victim.id
    assert c["exp"] - c["iat"] == 900
    uuid.UUID(c["sid"])


def _without(d, k):
    d = dict(d)
    d.pop(k)
    return d


# (id, function(claims, secret) -> token)
FORGERIES = [
    ("alg-none-unsigned", lambda c, s: forge(c, s, {"alg": "none", "typ": "JWT"}, sig="")),
    ("alg-None-unsigned", lambda c, s: forge(c, s, {"alg": "None", "typ": "JWT"}, sig="")),
    ("alg-none-no-typ", lambda c, s: forge(c, s, {"alg": "none"}, sig="")),
    ("alg-none-with-hs256-sig", lambda c, s: forge(
        c, s, {"alg": "none", "typ": "JWT"},
        sig=forge(c, s).split(".")[2])),
    ("hs256-empty-signature", lambda c, s: forge(c, s, sig="")),
    ("hs512-right-secret", lambda c, s: forge(c, s, alg="HS512")),
    ("hs384-right-secret", lambda c, s: forge(c, s, alg="HS384")),
    ("rs256-header-hmac-sig", lambda c, s: forge(
        c, s, {"alg": "RS256", "typ": "JWT"}, sig=forge(c, s).split(".")[2])),
    ("no-alg", lambda c, s: forge(c, s, {"typ": "JWT"}, sig=forge(c, s).split(".")[2])),
    ("wrong-secret", lambda c, s: forge(c, s + "x")),
    ("other-random-secret", lambda c, s: forge(c, uuid.uuid4().hex * 2)),
    ("flipped-signature", lambda c, s: (lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BB"))(forge(c, s))),
    ("no-exp", lambda c, s: forge(_without(c, "exp"), s)),
    ("exp-in-the-past", lambda c, s: forge({**c, "exp": int(time.time()) - 5}, s)),
    ("exp-as-string", lambda c, s: forge({**c, "exp": str(c["exp"])}, s)),
    ("wrong-aud", lambda c, s: forge({**c, "aud": "breeze-web"}, s)),
    ("no-aud", lambda c, s: forge(_without(c, "aud"), s)),
    ("wrong-iss", lambda c, s: forge({**c, "iss": "evil"}, s)),
    ("no-iss", lambda c, s: forge(_without(c, "iss"), s)),
    ("no-sid", lambda c, s: forge(_without(c, "sid"), s)),
    ("no-sub", lambda c, s: forge(_without(c, "sub"), s)),
    ("unknown-sid", lambda c, s: forge({**c, "sid": str(uuid.uuid4())}, s)),
    ("sid-not-uuid", lambda c, s: forge({**c, "sid": "1 OR 1=1"}, s)),
    ("iat-far-future", lambda c, s: forge({**c, "iat": int(time.time()) + 3600,
                                           "exp": int(time.time()) + 7200}, s)),
    # Times must fit one access-token lifetime (900 s) with a 60 s skew.
    ("exp-a-year-ahead", lambda c, s: forge({**c, "exp": int(time.time()) + 365 * 86400}, s)),
    ("exp-two-lifetimes-ahead", lambda c, s: forge({**c, "exp": c["iat"] + 1800}, s)),
    ("iat-older-than-exp-minus-ttl", lambda c, s: forge({**c, "iat": c["exp"] - 2000}, s)),
    ("iat-beyond-skew", lambda c, s: forge({**c, "iat": int(time.time()) + 120}, s)),
    ("nbf-in-the-future", lambda c, s: forge({**c, "nbf": int(time.time()) + 300}, s)),
    ("nbf-as-string", lambda c, s: forge({**c, "nbf": str(c["iat"])}, s)),
    ("two-parts", lambda c, s: ".".join(forge(c, s).split(".")[:2])),
    ("four-parts", lambda c, s: forge(c, s) + ".x"),
]


@pytest.mark.parametrize("make_token", [f[1] for f in FORGERIES], ids=[f[0] for f in FORGERIES])
def test_forged_token_is_refused(api, env, victim, make_token):
    sid = decode_claims(victim.api.token)["sid"]
    tok = make_token(good_claims(victim.id, sid), env["JWT_SECRET"])
    assert_error(api.get(ME, token=tok), 401)


def test_token_with_payload_changed_after_signing_is_refused(api, env, victim, bootstrap):
    """Signing as the victim, then swapping sub for the admin's."""
    sid = decode_claims(victim.api.token)["sid"]
    h, _, sig = forge(good_claims(victim.id, sid), env["JWT_SECRET"]).split(".")
    p = b64url(json.dumps(good_claims(bootstrap.userId, sid), separators=(",", ":")).encode())
    assert_error(api.get(ME, token=f"{h}.{p}.{sig}"), 401)


def test_valid_signature_but_sub_of_another_user_is_refused(api, env, victim, bootstrap):
    """A session id only works for its own user."""
    sid = decode_claims(victim.api.token)["sid"]
    tok = forge(good_claims(bootstrap.userId, sid), env["JWT_SECRET"])
    assert_error(api.get(ME, token=tok), 401)


def test_revoked_session_is_refused(api, make_user, sql):
    u = make_user("partner_technician")
    c = api.login(u.email, u.password)
    assert c.get(ME).status_code == 200
    sid = decode_claims(c.token)["sid"]
    sql("UPDATE sessions SET revoked_at = now() WHERE id = %s", sid)
    assert_error(c.get(ME), 401)
    # Other sessions of the same user are unaffected.
    assert u.api.get(ME).status_code == 200


def test_expired_session_is_refused(api, make_user, sql):
    u = make_user("partner_technician")
    sid = decode_claims(u.api.token)["sid"]
    sql("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = %s", sid)
    assert_error(u.api.get(ME), 401)


def test_token_in_lowercase_bearer_scheme(api, victim):
    r = api.get(ME, token=None, headers={"Authorization": "bearer " + victim.api.token})
    assert r.status_code == 200
