"""The injectable clock: BREEZE_TEST_CLOCK_FILE moves bz_now() of a server
started with BREEZE_ENV=test, and nothing else honours it."""


def test_moving_the_clock_expires_an_access_token(api, bootstrap, clock):
    me = api.login(bootstrap.email, bootstrap.password)
    assert me.get("/api/v1/auth/me").status_code == 200
    clock.advance(16 * 60)  # past the 15-minute access-token lifetime
    r = me.get("/api/v1/auth/me")
    assert r.status_code == 401, r.text
    clock.set_offset(0)
    assert me.get("/api/v1/auth/me").status_code == 200


def test_production_refuses_a_test_clock(run_server, tmp_path):
    p = run_server(BREEZE_ENV="production", BREEZE_TEST_CLOCK_FILE=str(tmp_path / "c"))
    assert p.returncode != 0
    assert "BREEZE_TEST_CLOCK_FILE: only allowed with BREEZE_ENV=test" in p.stderr
