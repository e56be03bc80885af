"""Device listing (filters, validation, cursor pagination) and device detail."""
import pytest

from conftest import assert_error, uniq

DEVICES = "/api/v1/devices"
LIST_FIELDS = {"id", "orgId", "siteId", "hostname", "osType", "osVersion", "status", "lastSeenAt",
               "lastIp"}
DETAIL_FIELDS = LIST_FIELDS | {"architecture", "agentVersion", "enrolledAt", "hardware",
                               "inventory", "metrics", "uptimeSeconds"}


def list_all(client, query):
    """Every device of a paged listing; asserts pages are well-formed."""
    seen, pages, cursor = [], 0, None
    while True:
        q = query + (f"&cursor={cursor}" if cursor else "")
        r = client.get(f"{DEVICES}?{q}")
        assert r.status_code == 200, r.text
        b = r.json()
        pages += 1
        seen += b["devices"]
        cursor = b["nextCursor"]
        assert cursor is None or isinstance(cursor, str)
        if cursor is None:
            return seen, pages
        assert pages < 100


@pytest.fixture
def fleet(admin, make_org, agents):
    """A fresh organization with two sites and five devices (site 1: three,
    site 2: two); two have sent a heartbeat."""
    org = make_org()
    s2 = admin.post(f"/api/v1/organizations/{org.id}/sites", json={"name": "Second"}).json()["id"]
    prefix = uniq("fl")
    devs = []
    for i, site in enumerate([org.site_id, org.site_id, org.site_id, s2, s2]):
        devs.append(agents.new_device(None, org.id, site, hostname=f"{prefix}-{i}"))
    for d in devs[:2]:
        r = agents.heartbeat(d["agentId"], d["authToken"], hostname=d["hostname"])
        assert r.status_code == 200, r.text
    return type("Fleet", (), dict(org=org, site1=org.site_id, site2=s2, devs=devs, prefix=prefix))


def test_list_shape(admin, fleet):
    r = admin.get(f"{DEVICES}?orgId={fleet.org.id}")
    assert r.status_code == 200, r.text
    b = r.json()
    assert set(b) >= {"devices", "nextCursor"}
    assert b["nextCursor"] is None
    assert {d["id"] for d in b["devices"]} == {d["agentId"] for d in fleet.devs}
    for d in b["devices"]:
        assert set(d) >= LIST_FIELDS
        assert d["orgId"] == fleet.org.id
        assert "authToken" not in d and "authTokenHash" not in d


def test_pagination_limit_2(admin, fleet):
    seen, pages = list_all(admin, f"orgId={fleet.org.id}&limit=2")
    assert pages == 3
    ids = [d["id"] for d in seen]
    assert len(ids) == len(set(ids)) == 5
    assert set(ids) == {d["agentId"] for d in fleet.devs}


def test_pagination_limit_1_and_exact_fit(admin, fleet):
    seen, pages = list_all(admin, f"orgId={fleet.org.id}&limit=1")
    assert pages == 5 and len({d["id"] for d in seen}) == 5
    r = admin.get(f"{DEVICES}?orgId={fleet.org.id}&limit=5")
    assert len(r.json()["devices"]) == 5 and r.json()["nextCursor"] is None


def test_cursor_does_not_cross_filters(admin, fleet):
    """A cursor continues the same filtered listing: site 1 never leaks site 2."""
    seen, _ = list_all(admin, f"siteId={fleet.site1}&limit=1")
    assert {d["id"] for d in seen} == {d["agentId"] for d in fleet.devs[:3]}


def test_filter_by_site(admin, fleet):
    r = admin.get(f"{DEVICES}?siteId={fleet.site2}")
    assert r.status_code == 200
    assert {d["id"] for d in r.json()["devices"]} == {d["agentId"] for d in fleet.devs[3:]}
    assert all(d["siteId"] == fleet.site2 for d in r.json()["devices"])


def test_filter_by_hostname_prefix(admin, fleet, agents):
    other = agents.new_device(hostname=uniq("zz"))
    r = admin.get(f"{DEVICES}?hostname={fleet.prefix}-")
    assert r.status_code == 200
    got = {d["id"] for d in r.json()["devices"]}
    assert got == {d["agentId"] for d in fleet.devs}
    assert other["agentId"] not in got
    r = admin.get(f"{DEVICES}?hostname={fleet.prefix}-3")
    assert [d["id"] for d in r.json()["devices"]] == [fleet.devs[3]["agentId"]]


def test_hostname_filter_is_a_prefix_not_a_pattern(admin, fleet):
    """LIKE metacharacters are literal."""
    for q in ("%25", "_", f"{fleet.prefix[:3]}%25", "%25" + fleet.prefix[3:]):
        r = admin.get(f"{DEVICES}?orgId={fleet.org.id}&hostname={q}")
        assert r.status_code == 200, r.text
        assert r.json()["devices"] == [], q


def test_filter_by_status(admin, fleet, sql):
    base = f"{DEVICES}?orgId={fleet.org.id}"
    online = {d["id"] for d in admin.get(f"{base}&status=online").json()["devices"]}
    never = {d["id"] for d in admin.get(f"{base}&status=never").json()["devices"]}
    assert online == {d["agentId"] for d in fleet.devs[:2]}
    assert never == {d["agentId"] for d in fleet.devs[2:]}
    assert admin.get(f"{base}&status=offline").json()["devices"] == []
    sql("UPDATE devices SET last_seen_at = now() - interval '1 day' WHERE id = %s",
        fleet.devs[0]["agentId"])
    offline = admin.get(f"{base}&status=offline").json()["devices"]
    assert [d["id"] for d in offline] == [fleet.devs[0]["agentId"]]
    assert offline[0]["status"] == "offline"


@pytest.mark.parametrize("query,param", [
    ("status=bogus", "status"),
    ("orgId=not-a-uuid", "orgId"),
    ("siteId=not-a-uuid", "siteId"),
    ("limit=0", "limit"),
    ("limit=501", "limit"),
    ("limit=-1", "limit"),
    ("limit=abc", "limit"),
    ("limit=2x", "limit"),
    ("cursor=garbage", "cursor"),
    ("cursor=" + "A" * 40, "cursor"),
])
def test_bad_filters_are_400_naming_the_parameter(admin, query, param):
    b = assert_error(admin.get(f"{DEVICES}?{query}"), 400)
    assert param in b["error"]["message"], b


def test_limit_500_is_accepted(admin):
    assert admin.get(f"{DEVICES}?limit=500").status_code == 200


def test_unknown_org_filter_is_404(admin):
    assert_error(admin.get(f"{DEVICES}?orgId=7c9e6679-7425-40de-944b-e07fc1f90ae7"), 404)


def test_unknown_site_filter_finds_nothing(admin):
    r = admin.get(f"{DEVICES}?siteId=7c9e6679-7425-40de-944b-e07fc1f90ae7")
    assert r.status_code == 404 or (r.status_code == 200 and r.json()["devices"] == []), r.text


def test_device_detail_before_and_after_heartbeat(admin, agents):
    d = agents.new_device(hostname=uniq("detail"))
    r = admin.get(f"{DEVICES}/{d['agentId']}")
    assert r.status_code == 200, r.text
    dev = r.json()
    assert set(dev) >= DETAIL_FIELDS
    assert dev["id"] == d["agentId"] and dev["hostname"] == d["hostname"]
    assert dev["orgId"] == d["orgId"] and dev["siteId"] == d["siteId"]
    assert dev["status"] == "never"
    assert dev["lastSeenAt"] is None
    assert dev["enrolledAt"]
    assert "authToken" not in r.text and d["authToken"] not in r.text

    assert agents.heartbeat(d["agentId"], d["authToken"]).status_code == 200
    dev = admin.get(f"{DEVICES}/{d['agentId']}").json()
    assert dev["status"] == "online"
    assert dev["lastSeenAt"] and dev["lastIp"] == "127.0.0.1"
    assert dev["metrics"]["memoryTotalBytes"] == 8 << 30
    assert dev["uptimeSeconds"] == 12345


@pytest.mark.parametrize("dev_id", ["not-a-uuid", "7c9e6679-7425-40de-944b-e07fc1f90ae7"])
def test_unknown_device_is_404(admin, dev_id):
    assert_error(admin.get(f"{DEVICES}/{dev_id}"), 404)


def test_devices_need_authentication(api, agents):
    d = agents.new_device()
    assert_error(api.get(DEVICES), 401)
    assert_error(api.get(f"{DEVICES}/{d['agentId']}"), 401)
    # An agent token is not a user credential.
    assert_error(api.get(f"{DEVICES}/{d['agentId']}", token=d["authToken"]), 401)


def test_org_viewer_can_read_devices(tenants, agents):
    d = agents.new_device(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
    r = tenants.a_viewer.api.get(f"{DEVICES}/{d['agentId']}")
    assert r.status_code == 200
