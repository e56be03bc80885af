"""PostgreSQL restarted under load (its own cluster, so the session's other
tests keep theirs): while it is down requests get 503 with Retry-After,
never a 500 or a reset; once it is back every request succeeds and every
acknowledged write is there."""
import subprocess
import threading
import time
import types
import uuid

import psycopg2
import pytest

from conftest import (DEV_SERVICES, SERVER_BIN, SLOW, Api, ServerProc, base_process_env,
                      read_env_file, server_env, superuser_breeze_url)


@pytest.fixture(scope="module")
def own_services(workdir):
    d = workdir / "svc-restart"
    try:
        r = subprocess.run([str(DEV_SERVICES), "start", str(d)], capture_output=True, text=True,
                           timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        env_file = d / "breeze.env"
        for cmd, stdin in ((["migrate"], None),
                           (["bootstrap", "--password-stdin", "--email", "restart@breeze.test",
                             "--name", "Restart Admin", "--partner", "P", "--org", "O", "--site",
                             "S"], "Restart-" + uuid.uuid4().hex + "\n")):
            r = subprocess.run([str(SERVER_BIN), *cmd, "--env-file", str(env_file)],
                               input=stdin, env=base_process_env(), capture_output=True,
                               text=True, timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
        import json
        ids = json.loads(r.stdout.strip().splitlines()[-1])
        env = read_env_file(env_file)
        conn = psycopg2.connect(superuser_breeze_url(env))
        try:
            with conn, conn.cursor() as cur:
                # As in conftest's bootstrap: this test is about the database,
                # not about forced MFA enrolment.
                cur.execute("UPDATE roles SET force_mfa = false WHERE builtin")
        finally:
            conn.close()
        yield types.SimpleNamespace(dir=d, env=env, password=stdin.strip(),
                                    **ids)
    finally:
        subprocess.run([str(DEV_SERVICES), "stop", str(d)], capture_output=True, timeout=120)


def test_restart_under_load_no_500_and_no_lost_write(own_services, workdir):
    svc = own_services
    srv = ServerProc(server_env(svc.env, DATABASE_POOL_SIZE="4"),
                     workdir / f"server-restart-{uuid.uuid4().hex[:6]}.log")
    srv.start()
    try:
        srv.wait_up()
        admin = Api(srv.url).login("restart@breeze.test", svc.password)
        events, acked = [], []
        lock = threading.Lock()
        stop = threading.Event()

        def load(n):
            c = admin.clone()
            i = 0
            while not stop.is_set():
                i += 1
                name = f"restart-{n}-{i}-{uuid.uuid4().hex[:6]}"
                t = time.monotonic()
                try:
                    if i % 2:
                        r = c.post("/api/v1/enrollment-keys",
                                   json={"orgId": svc.orgId, "siteId": svc.siteId, "name": name})
                    else:
                        r = c.get("/api/v1/organizations")
                    status, retry = r.status_code, r.headers.get("Retry-After")
                except Exception as e:  # a reset or a timeout: never acceptable
                    status, retry = repr(e), None
                with lock:
                    events.append((t, status, retry))
                    if status == 201:
                        acked.append(name)
                time.sleep(0.01)

        threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        r = subprocess.run([str(DEV_SERVICES), "restart-pg", str(svc.dir)], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        back = time.monotonic()
        time.sleep(3.0 * SLOW)  # the late window below starts SLOW seconds after "back"
        stop.set()
        for t in threads:
            t.join(timeout=60)

        bad = [e for e in events if e[1] not in (200, 201, 503)]
        assert not bad, bad[:10]
        assert all(e[2] == "2" for e in events if e[1] == 503)
        # Requests sent a second after PostgreSQL was back all succeed.
        late = [e for e in events if e[0] > back + 1.0 * SLOW]
        assert late and all(e[1] in (200, 201) for e in late), \
            [e for e in late if e[1] not in (200, 201)][:10]
        assert acked
        conn = psycopg2.connect(superuser_breeze_url(svc.env))
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT name FROM enrollment_keys WHERE name = ANY(%s)", (acked,))
                found = {row[0] for row in cur.fetchall()}
        finally:
            conn.close()
        assert set(acked) == found, sorted(set(acked) - found)[:10]
    finally:
        assert srv.stop() == 0, srv.log_text()[-2000:]
