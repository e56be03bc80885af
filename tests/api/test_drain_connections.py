"""Drain on SIGTERM and connection limits: the drain bound holds while a query
waits on a table lock, responses during the drain say Connection: close and
idle kept-alive connections are closed; slow header senders are cut at the
header deadline; the per-address connection limit is on by default without a
trusted proxy; the open-file limit is raised or serve refuses; accept()
failing with EMFILE is neither a busy loop nor a log flood."""
import contextlib
import re
import resource
import signal
import socket
import subprocess
import threading
import time

import psycopg2
import pytest

from conftest import SERVER_BIN, SLOW, server_env, superuser_breeze_url

HEALTH = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"


def connect(srv, source="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(10 * SLOW)
    s.connect(("127.0.0.1", srv.port))
    return s


def read_response(s):
    """(status, headers dict lower-case, raw) of one response; status None when
    the server closed (or reset) the connection before answering."""
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                return None, {}, buf
            buf += chunk
    except (ConnectionResetError, BrokenPipeError):
        return None, {}, buf
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs.get("content-length", "0"))
    while len(body) < n:
        chunk = s.recv(4096)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), hdrs, buf


def closed_by_peer(s, timeout):
    """True if the server closes S (end of stream or reset) within TIMEOUT s."""
    s.settimeout(timeout)
    try:
        return s.recv(4096) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def get_health(srv, source="127.0.0.1"):
    with contextlib.closing(connect(srv, source)) as s:
        s.sendall(HEALTH)
        return read_response(s)[0]


def log_events(srv, event):
    return [l for l in srv.log_text().splitlines() if f'"{event}"' in l]


@contextlib.contextmanager
def table_locked(services, table):
    conn = psycopg2.connect(superuser_breeze_url(services.env))
    try:
        with conn.cursor() as cur:
            cur.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield conn
    finally:
        conn.rollback()
        conn.close()


def wait_lock_waiter(sql, timeout=10 * SLOW):
    """Waits until a breeze-server session waits for a lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'breeze-server'"
               " AND wait_event_type = 'Lock'")[0][0] > 0:
            return
        time.sleep(0.05)
    pytest.fail("no server query is waiting for the lock")


def test_sigterm_during_table_lock_exits_within_drain_bound(spawn_server, services, admin, sql):
    srv = spawn_server(HTTP_DRAIN_SECONDS="2")
    idle = connect(srv)
    idle.sendall(HEALTH)
    assert read_response(idle)[0] == 200  # now an idle kept-alive connection

    with table_locked(services, "organizations"):
        stuck = connect(srv)
        stuck.sendall(b"GET /api/v1/organizations HTTP/1.1\r\nHost: t\r\n"
                      b"Authorization: Bearer " + admin.token.encode() + b"\r\n\r\n")
        wait_lock_waiter(sql)
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        # The idle connection is closed at once, long before the server exits.
        assert closed_by_peer(idle, 1.0 * SLOW)
        assert srv.proc.poll() is None
        # The stuck request is cancelled at the bound and answered, with close.
        status, hdrs, _ = read_response(stuck)
        assert status is not None and status >= 500, status
        assert hdrs.get("connection", "").lower() == "close"
        rc = srv.proc.wait(timeout=10 * SLOW)
        elapsed = time.monotonic() - t0
    assert rc == 0, srv.log_text()[-2000:]
    assert elapsed < 2.0 + 0.8 * SLOW, elapsed
    assert log_events(srv, "server.drain.cancel")
    idle.close()
    stuck.close()


def test_drain_cancels_queries_started_after_the_first_cancel(spawn_server, services, admin,
                                                              sql):
    """Pool of one: the second request waits for the connection the first
    holds, gets it once the first query is cancelled, and is then blocked on
    the lock itself; it is cancelled too, and the bound still holds."""
    srv = spawn_server(HTTP_DRAIN_SECONDS="2", DATABASE_POOL_SIZE="1")
    req = (b"GET /api/v1/organizations HTTP/1.1\r\nHost: t\r\n"
           b"Authorization: Bearer " + admin.token.encode() + b"\r\n\r\n")
    with table_locked(services, "organizations"):
        first = connect(srv)
        first.sendall(req)
        wait_lock_waiter(sql)
        second = connect(srv)
        second.sendall(req)
        time.sleep(0.2)
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        for s in (first, second):
            status, hdrs, _ = read_response(s)
            assert status is not None and status >= 500, status
            assert hdrs.get("connection", "").lower() == "close"
        rc = srv.proc.wait(timeout=10 * SLOW)
        elapsed = time.monotonic() - t0
    assert rc == 0, srv.log_text()[-2000:]
    assert elapsed < 2.0 + 0.8 * SLOW, elapsed
    first.close()
    second.close()


def test_responses_during_drain_say_connection_close(spawn_server, services, admin, sql):
    srv = spawn_server(HTTP_DRAIN_SECONDS="3")
    with table_locked(services, "organizations"):
        stuck = connect(srv)
        stuck.sendall(b"GET /api/v1/organizations HTTP/1.1\r\nHost: t\r\n"
                      b"Authorization: Bearer " + admin.token.encode() + b"\r\n\r\n")
        wait_lock_waiter(sql)
        # A request whose headers are on their way when the drain starts.
        late = connect(srv)
        late.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        time.sleep(0.2)
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        late.sendall(b"\r\n")
        status, hdrs, _ = read_response(late)
        assert status is not None, "request sent during the drain was not answered"
        assert hdrs.get("connection", "").lower() == "close"
        assert closed_by_peer(late, 2.0 * SLOW)
        # New connections are no longer accepted.
        with pytest.raises(OSError):
            get_health(srv)
    assert srv.proc.wait(timeout=10 * SLOW) == 0
    stuck.close()
    late.close()


def trickle(socks, stop):
    """Sends each socket one header line every 0.3 s until STOP is set."""
    while not stop.is_set():
        for s in list(socks):
            try:
                s.sendall(b"X-Slow: 1\r\n")
            except OSError:
                socks.remove(s)
        stop.wait(0.3)


def test_slow_header_clients_are_closed_normal_client_served(spawn_server):
    srv = spawn_server(HTTP_HEADER_TIMEOUT_SECONDS="1")
    slow = []
    for _ in range(6):
        s = connect(srv, "127.0.0.2")
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        slow.append(s)
    # A kept-alive connection that then trickles its second request.
    ka = connect(srv, "127.0.0.2")
    ka.sendall(HEALTH)
    assert read_response(ka)[0] == 200
    time.sleep(1.5)  # idle longer than the header deadline: that is allowed
    ka.sendall(b"GET /healthz HTTP/1.1\r\n")
    slow.append(ka)
    stop = threading.Event()
    sending = list(slow)
    # One that connects and sends nothing at all.
    slow.append(connect(srv, "127.0.0.2"))
    t = threading.Thread(target=trickle, args=(sending, stop), daemon=True)
    t.start()
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.5:
            assert get_health(srv) == 200
            time.sleep(0.1)
        for i, s in enumerate(slow):
            assert closed_by_peer(s, 2.0 * SLOW), f"slow header sender {i} still connected"
    finally:
        stop.set()
        t.join()
        for s in slow:
            s.close()
    assert log_events(srv, "http.header_timeout")
    assert get_health(srv) == 200


def test_trickled_request_line_on_a_kept_alive_connection_is_closed(spawn_server):
    """A kept-alive client that sends its next request line one byte at a
    time keeps libmicrohttpd's idle timer from ever firing; the server closes
    it once the idle timeout plus the header deadline have passed."""
    srv = spawn_server(HTTP_HEADER_TIMEOUT_SECONDS="1", HTTP_TIMEOUT_SECONDS="2",
                       DATABASE_REQUEST_DEADLINE_MS="1500")
    ka = connect(srv, "127.0.0.2")
    ka.sendall(HEALTH)
    assert read_response(ka)[0] == 200
    line = b"GET /healthz?" + b"a" * 200
    t0 = time.monotonic()
    closed = False
    try:
        for ch in line:
            try:
                ka.sendall(bytes([ch]))
            except OSError:
                closed = True
                break
            if closed_by_peer(ka, 0.3):
                closed = True
                break
            assert time.monotonic() - t0 < 10 * SLOW, "trickling client never closed"
        assert closed, "the whole line went through"
        # Idle timeout (2 s) + header deadline (1 s), not earlier.
        assert time.monotonic() - t0 > 2.5
        assert get_health(srv) == 200
    finally:
        ka.close()


def test_per_ip_limit_on_by_default_without_trusted_proxy(spawn_server):
    srv = spawn_server(TRUSTED_PROXY_CIDRS=None)
    held = [connect(srv, "127.0.0.2") for _ in range(64)]
    try:
        time.sleep(0.3)
        extra = connect(srv, "127.0.0.2")
        extra.sendall(HEALTH)
        assert read_response(extra)[0] is None, "65th connection from one address accepted"
        extra.close()
        # Other addresses are not affected, and the held ones work.
        assert get_health(srv) == 200
        held[0].sendall(HEALTH)
        assert read_response(held[0])[0] == 200
    finally:
        for s in held:
            s.close()


def test_per_ip_limit_off_behind_trusted_proxy(spawn_server):
    srv = spawn_server(TRUSTED_PROXY_CIDRS="127.0.0.1/32")
    held = [connect(srv, "127.0.0.2") for _ in range(70)]
    try:
        time.sleep(0.3)
        held[-1].sendall(HEALTH)
        assert read_response(held[-1])[0] == 200
    finally:
        for s in held:
            s.close()
    assert "HTTP_MAX_CONNECTIONS_PER_IP" not in srv.log_text()


def soft_nofile(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError("no Max open files line")


NEED = 1024 + 8 + 64  # HTTP_MAX_CONNECTIONS + pool + margin


def test_low_soft_fd_limit_is_raised(spawn_server):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < NEED:
        pytest.skip(f"hard RLIMIT_NOFILE {hard} below {NEED}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        srv = spawn_server(wait=None)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    srv.wait_up()
    assert soft_nofile(srv.proc.pid) >= NEED
    assert log_events(srv, "server.fd_limit.raised")


def test_hard_fd_limit_too_low_refuses_clearly(services, migrated):
    def lower():
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))

    e = server_env(services.env)
    from conftest import free_port
    e["LISTEN_ADDR"] = f"127.0.0.1:{free_port()}"
    r = subprocess.run([str(SERVER_BIN), "serve", "--allow-root"], env=e, preexec_fn=lower,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=20 * SLOW)
    assert r.returncode == 5, r.stderr  # BZ_EXIT_REFUSED
    assert "open-file limit" in r.stderr and "HTTP_MAX_CONNECTIONS" in r.stderr, r.stderr
    assert len(r.stderr.splitlines()) < 10


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime in ticks


def test_emfile_is_no_busy_loop_and_no_log_flood(spawn_server):
    srv = spawn_server()
    pid = srv.proc.pid
    _, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    # No descriptor left: accept() fails with EMFILE.
    import os
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (len(os.listdir(f"/proc/{pid}/fd")), hard))
    clients = []
    try:
        for _ in range(4):
            clients.append(connect(srv))  # completed by the kernel, never accepted
        time.sleep(0.5)
        c0, lines0 = cpu_seconds(pid), len(srv.log_text().splitlines())
        time.sleep(2.0)
        cpu = cpu_seconds(pid) - c0
        lines = len(srv.log_text().splitlines()) - lines0
        assert cpu < 0.5, f"{cpu:.2f} s of CPU in 2 s while accept() fails"
        assert lines < 20, f"{lines} log lines in 2 s while accept() fails"
        assert re.search(r"resource limit", srv.log_text())
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (NEED, hard))
        for s in clients:
            s.close()
    # Descriptors again: the server serves.
    deadline = time.monotonic() + 5 * SLOW
    while time.monotonic() < deadline:
        try:
            if get_health(srv) == 200:
                break
        except OSError:
            time.sleep(0.1)
    else:
        pytest.fail("server does not serve once descriptors are available again")


def close_wait_count(port):
    """Server-side sockets on PORT in CLOSE-WAIT (peer closed, we did not)."""
    n = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if int(local.split(":")[1], 16) == port and state == "08":
                n += 1
    return n


def test_connections_closed_by_clients_do_not_linger_in_close_wait(spawn_server):
    """A client that goes away (idle, mid-headers or after an answer) is
    closed at once, not left in CLOSE-WAIT until the idle timeout."""
    srv = spawn_server(HTTP_TIMEOUT_SECONDS="30")
    socks = []
    for i in range(30):
        s = connect(srv, "127.0.0.2")
        if i % 3 == 1:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")  # headers unfinished
        elif i % 3 == 2:
            s.sendall(HEALTH)
            assert read_response(s)[0] == 200  # kept alive after an answer
        socks.append(s)
    time.sleep(0.3)
    for s in socks:
        s.close()
    deadline = time.monotonic() + 2.0 * SLOW
    while close_wait_count(srv.port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert close_wait_count(srv.port) == 0
    assert get_health(srv) == 200


def test_kept_alive_connection_reused_as_it_expires_is_served(spawn_server):
    """A client that sends its next request on a kept-alive connection just
    as the idle timeout expires is served, not cut off with the request
    unread (RemoteDisconnected): the idle close skips a connection whose
    next request has begun to arrive. 16 clients reuse their connections
    after gaps around the 2 s timeout for about 10 s."""
    import random
    import threading
    import requests
    srv = spawn_server(HTTP_TIMEOUT_SECONDS="2", DATABASE_REQUEST_DEADLINE_MS="1500")
    errors, served = [], []
    stop = time.monotonic() + 10

    def client(i):
        s = requests.Session()
        rnd = random.Random(i)
        while time.monotonic() < stop:
            try:
                served.append(s.get(srv.url + "/healthz", timeout=10 * SLOW).status_code)
            except requests.ConnectionError as e:
                errors.append(repr(e))
            time.sleep(rnd.choice([0.0, 1.95, 1.99, 2.0, 2.0, 2.01, 2.03, 2.05]))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, f"{len(errors)} of {len(errors) + len(served)} cut off: {errors[:2]}"
    assert served and set(served) == {200}
