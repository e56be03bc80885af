"""Concurrent writers never fork a chain or leave a gap (issue 3, item 4):
8 threads, each with its own breeze_app connection, append 1,000 events each,
into one organization and spread across four; autocommit and in 3-row
transactions (some rolled back). Every chain must then be seq 1..N with each
prev_checksum equal to the previous row's checksum, no shared predecessor,
every checksum recomputing, and `audit verify` passing."""
import threading
import time

import psycopg2
import pytest

from audit_canonical import check_chain

WRITERS = 8
EVENTS = 1000


def run_writers(audit, target, n_writers=WRITERS):
    """Runs TARGET(writer_index, conn) in N_WRITERS threads, each with its own
    connection, started together; re-raises the first failure."""
    conns = [audit.connect("app") for _ in range(n_writers)]
    errors = []
    barrier = threading.Barrier(n_writers)

    def work(i):
        try:
            barrier.wait(timeout=30)
            target(i, conns[i])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_writers)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    elapsed = time.monotonic() - t0
    for c in conns:
        c.close()
    assert not any(t.is_alive() for t in threads), "writers hung"
    assert not errors, f"{len(errors)} writer(s) failed, first: {errors[0]!r}"
    return elapsed


INSERT = ("INSERT INTO audit_log (org_id, actor_type, actor_id, action, resource, resource_id, details)"
          " VALUES (%s, 'system', %s, 'test.concurrent', 'tests', %s, '{}')")


def check_chains(audit, expected):
    """EXPECTED: {org_id: number of rows}. Checks each chain in Python and
    with `audit verify`."""
    for org, n in expected.items():
        rows = audit.rows(org)
        assert len(rows) == n, f"chain {org}: {len(rows)} rows, want {n}"
        check_chain(rows)
        assert audit.head(org) == (n, rows[-1]["checksum"])
        rc, chain, doc = audit.verify(org)
        assert rc == 0 and chain["ok"] is True and chain["breaks"] == [], doc
        assert chain["rowsChecked"] == n


def test_one_organization_autocommit(audit):
    org = audit.new_org()

    def writer(i, conn):
        with conn.cursor() as cur:
            for j in range(EVENTS):
                cur.execute(INSERT, (org, f"w{i}", f"{i}-{j}"))

    elapsed = run_writers(audit, writer)
    print(f"\n{WRITERS * EVENTS} appends to one chain in {elapsed:.2f}s "
          f"({WRITERS * EVENTS / elapsed:.0f}/s)")
    check_chains(audit, {org: WRITERS * EVENTS})
    # Every writer's events are all there, in that writer's order.
    got = audit.su("SELECT actor_id, array_agg(resource_id ORDER BY seq) FROM audit_log"
                   " WHERE chain_id = %s GROUP BY actor_id", org)
    assert len(got) == WRITERS
    for actor, rids in got:
        i = actor[1:]
        assert rids == [f"{i}-{j}" for j in range(EVENTS)], f"writer {actor}: events lost or reordered"


def test_four_organizations_autocommit(audit):
    orgs = [audit.new_org() for _ in range(4)]

    def writer(i, conn):
        with conn.cursor() as cur:
            for j in range(EVENTS):
                cur.execute(INSERT, (orgs[(i + j) % 4], f"w{i}", f"{i}-{j}"))

    elapsed = run_writers(audit, writer)
    print(f"\n{WRITERS * EVENTS} appends to four chains in {elapsed:.2f}s "
          f"({WRITERS * EVENTS / elapsed:.0f}/s)")
    check_chains(audit, {o: WRITERS * EVENTS // 4 for o in orgs})


@pytest.mark.parametrize("n_orgs", [1, 4])
def test_three_row_transactions_with_rollbacks(audit, n_orgs):
    """Writers append 3 rows per transaction; every 7th transaction is rolled
    back after its inserts (holding the chain's head until then). Committed
    transactions stay contiguous; rolled-back ones leave no trace or gap."""
    orgs = [audit.new_org() for _ in range(n_orgs)]
    n_tx = EVENTS // 3
    committed = {o: 0 for o in orgs}
    lock = threading.Lock()

    def writer(i, conn):
        conn.autocommit = False
        with conn.cursor() as cur:
            for t in range(n_tx):
                org = orgs[(i + t) % n_orgs]
                for k in range(3):
                    cur.execute(INSERT, (org, f"w{i}", f"{i}-{t}-{k}"))
                if t % 7 == 6:
                    conn.rollback()
                else:
                    conn.commit()
                    with lock:
                        committed[org] += 3

    elapsed = run_writers(audit, writer)
    total = sum(committed.values())
    print(f"\n{total} committed appends ({n_orgs} chain(s), 3-row transactions) in {elapsed:.2f}s")
    check_chains(audit, committed)
    for org in orgs:
        # A transaction's three rows are consecutive in the chain.
        got = audit.su("SELECT resource_id FROM audit_log WHERE chain_id = %s ORDER BY seq", org)
        rids = [r[0] for r in got]
        for x in range(0, len(rids), 3):
            a, b, c = rids[x:x + 3]
            assert a.rsplit("-", 1)[0] == b.rsplit("-", 1)[0] == c.rsplit("-", 1)[0], rids[x:x + 3]
            assert [a[-1], b[-1], c[-1]] == ["0", "1", "2"], rids[x:x + 3]
        # Nothing of a rolled-back transaction survived.
        assert not [r for r in rids if int(r.split("-")[1]) % 7 == 6]


def test_no_fork_even_when_a_writer_stalls_holding_the_head(audit):
    """A transaction that appended and then stalls blocks the other writers of
    its chain (they must not fork around it) but not other chains."""
    org, other = audit.new_org(), audit.new_org()
    audit.insert(org, 1)
    slow = audit.connect("app", autocommit=False)
    with slow.cursor() as cur:
        cur.execute(INSERT, (org, "slow", "slow-1"))
    done = []

    def blocked():
        audit.insert(org, 1, actor_id="fast")
        done.append(time.monotonic())

    t = threading.Thread(target=blocked)
    t.start()
    time.sleep(0.5)
    assert not done, "a second writer appended while the first held the chain's head"
    t0 = time.monotonic()
    audit.insert(other, 1)  # another organization is not blocked
    assert time.monotonic() - t0 < 2
    slow.commit()
    slow.close()
    t.join(timeout=30)
    assert done
    rows = audit.rows(org)
    check_chain(rows)
    assert [r["actor_id"] for r in rows] == [None, "slow", "fast"]
