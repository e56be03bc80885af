"""/readyz reports PostgreSQL and Redis separately, against a throwaway Redis
that the test can kill."""
import secrets
import shutil
import socket
import subprocess
import time

import pytest

from conftest import SLOW, free_port, http_session


@pytest.fixture
def redis(workdir):
    """A private redis-server (password, no persistence); .stop() kills it."""
    exe = shutil.which("redis-server")
    assert exe, "redis-server not installed"
    port = free_port()
    password = secrets.token_hex(16)
    d = workdir / f"redis-{port}"
    d.mkdir()

    class R:
        url = f"redis://:{password}@127.0.0.1:{port}/0"

        def start(self):
            self.proc = subprocess.Popen(
                [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--requirepass", password, "--daemonize", "no", "--dir", str(d)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        return self
                except OSError:
                    assert self.proc.poll() is None, "redis-server exited"
                    time.sleep(0.05)
            pytest.fail("redis-server did not start")

        def stop(self):
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=10)

    r = R()
    r.port, r.password = port, password
    r.start()
    yield r
    r.stop()


def readyz(srv):
    r = http_session().get(srv.url + "/readyz", timeout=10 * SLOW)
    return r.status_code, r.json()


def test_readyz_follows_redis(spawn_server, redis):
    srv = spawn_server(REDIS_URL=redis.url)
    assert readyz(srv) == (200, {"status": "ready", "checks": {"postgres": "ok", "redis": "ok"}})

    redis.stop()
    status, body = readyz(srv)
    # Redis down degrades the server (sessions still work from PostgreSQL)
    # without taking it out of the load balancer.
    assert status == 200
    assert body == {"status": "degraded", "checks": {"postgres": "ok", "redis": "down"}}
    # Liveness is not readiness: the process itself is fine.
    assert http_session().get(srv.url + "/healthz", timeout=10).status_code == 200

    redis.start()
    deadline = time.monotonic() + 10 * SLOW
    while readyz(srv)[1]["status"] != "ready":
        assert time.monotonic() < deadline, "readyz did not recover after Redis came back"
        time.sleep(0.2)
    assert srv.stop() == 0


def test_readyz_with_wrong_redis_password_is_degraded(spawn_server, redis):
    srv = spawn_server(wait="/healthz", REDIS_URL=f"redis://:wrong{redis.password}@127.0.0.1:{redis.port}/0")
    status, body = readyz(srv)
    assert status == 200
    assert body == {"status": "degraded", "checks": {"postgres": "ok", "redis": "down"}}
    assert redis.password not in srv.log_text()


def test_readyz_gives_no_details(api):
    """Unauthenticated: only ok/down per dependency, no hosts or versions."""
    r = api.get("/readyz")
    assert set(r.json()) == {"status", "checks"}
    assert "127.0.0.1" not in r.text and "postgres://" not in r.text and "redis://" not in r.text


def redis_info_stat(redis, name):
    """A field of INFO stats from the private Redis, over a raw RESP socket."""
    with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as s:
        def cmd(*args):
            s.sendall(b"*%d\r\n" % len(args) + b"".join(
                b"$%d\r\n%s\r\n" % (len(a), a) for a in (x.encode() for x in args)))
        cmd("AUTH", redis.password)
        cmd("INFO", "stats")
        buf = b""
        while buf.count(b"\r\n") < 2 or name.encode() not in buf:
            chunk = s.recv(65536)
            assert chunk, buf
            buf += chunk
    for line in buf.decode().splitlines():
        if line.startswith(name + ":"):
            return int(line.split(":", 1)[1])
    raise AssertionError(f"{name} not in INFO")


def test_readyz_keeps_one_redis_connection(spawn_server, redis):
    """Probes reuse one connection (no connect + AUTH per probe), also when
    many arrive at once on MHD's thread pool."""
    srv = spawn_server(REDIS_URL=redis.url)
    assert readyz(srv)[0] == 200
    before = redis_info_stat(redis, "total_connections_received")
    for _ in range(20):
        assert readyz(srv)[0] == 200
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(8) as ex:
        assert all(s == 200 for s, _ in ex.map(lambda _: readyz(srv), range(40)))
    # Only this test's own INFO connection is new.
    assert redis_info_stat(redis, "total_connections_received") - before == 1
    assert srv.stop() == 0
