"""Requests written byte by byte on a raw socket, for what an HTTP library
will not send: a header split over several field lines in different letter
case (the client IP is taken from all of them, in order, RFC 9110 §5.3), and
oversized bodies that must be refused with 413 before the server reads them
(a 500 MB Content-Length, Expect: 100-continue, a chunked body past the
limit), and ambiguous body lengths (two Content-Length lines, Content-Length
with Transfer-Encoding), refused with 400 and the connection closed."""
import json
import re
import socket
import time

from conftest import Api, heartbeat_body

MAX_BODY = 1048576
LOGIN = "/api/v1/auth/login"


def connect(url, timeout=10):
    host, port = url.rsplit("/", 1)[-1].split(":")
    s = socket.create_connection((host, int(port)), timeout=timeout)
    return s


def read_response(s, timeout=10):
    """Reads one response (headers + Content-Length body) or until EOF.
    Returns (status, headers dict lower-case, body bytes, raw bytes)."""
    s.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0] else 0
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:n], buf


def peer_closed(s, timeout=5):
    """True if the server closes the connection (EOF or reset) within TIMEOUT."""
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if s.recv(65536) == b"":
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def raw(url, lines, body=b""):
    s = connect(url)
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    try:
        return read_response(s)
    finally:
        s.close()


def logged_client_ip(srv, request_id, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in srv.log_text().splitlines():
            if request_id in line and '"http.request"' in line:
                return json.loads(line)["clientIp"]
        time.sleep(0.05)
    raise AssertionError(f"no http.request line for {request_id}")


# --------------------------------------------------------------------------- X-Forwarded-For


def test_forwarded_for_on_two_lines_in_different_case_is_combined(spawn_server):
    """Behind a trusted proxy, the client is the right-most untrusted address of
    ALL X-Forwarded-For lines joined in order, whatever their letter case: a
    client's own first line cannot choose the address."""
    srv = spawn_server(TRUSTED_PROXY_CIDRS="127.0.0.1/32")
    host = srv.url.split("//")[1]
    cases = [
        (["X-Forwarded-For: 198.51.100.1", "x-forwarded-for: 203.0.113.5"], "203.0.113.5"),
        (["x-forwarded-for: 198.51.100.1", "X-FORWARDED-FOR: 203.0.113.6"], "203.0.113.6"),
        # Order across spellings is kept: ulfius's own map would give 192.0.2.1.
        (["x-forwarded-for: 198.51.100.1", "X-Forwarded-For: 192.0.2.1",
          "x-forwarded-for: 203.0.113.7"], "203.0.113.7"),
        # A trusted hop on the last line is skipped, as with one line.
        (["X-Forwarded-For: 198.51.100.1", "x-forwarded-for: 203.0.113.8, 127.0.0.1"],
         "203.0.113.8"),
        (["X-Forwarded-For: 203.0.113.9"], "203.0.113.9"),
    ]
    for xff, want in cases:
        status, h, _, _ = raw(srv.url, ["GET /healthz HTTP/1.1", f"Host: {host}", *xff,
                                        "Connection: close"])
        assert status == 200
        assert logged_client_ip(srv, h["x-request-id"]) == want, xff


def test_forwarded_for_from_untrusted_peer_is_ignored_on_any_line(spawn_server):
    srv = spawn_server(TRUSTED_PROXY_CIDRS="10.0.0.0/8")
    host = srv.url.split("//")[1]
    status, h, _, _ = raw(srv.url, ["GET /healthz HTTP/1.1", f"Host: {host}",
                                    "X-Forwarded-For: 198.51.100.1",
                                    "x-forwarded-for: 203.0.113.5", "Connection: close"])
    assert status == 200
    assert logged_client_ip(srv, h["x-request-id"]) == "127.0.0.1"


def test_heartbeat_last_ip_uses_every_forwarded_for_line(spawn_server, agents, sql):
    """The address recorded in devices.last_ip (and so the IP-change audit
    rows) comes from all field lines, not the first one."""
    srv = spawn_server(TRUSTED_PROXY_CIDRS="127.0.0.1/32")
    host = srv.url.split("//")[1]
    d = agents.new_device()
    body = json.dumps(heartbeat_body()).encode()
    status, _, resp, _ = raw(srv.url, [
        f"POST /api/v1/agents/{d['agentId']}/heartbeat HTTP/1.1", f"Host: {host}",
        f"Authorization: Bearer {d['authToken']}", "Content-Type: application/json",
        f"Content-Length: {len(body)}", "X-Forwarded-For: 198.51.100.77",
        "x-forwarded-for: 203.0.113.77", "Connection: close"], body)
    assert status == 200, resp
    assert sql("SELECT host(last_ip) FROM devices WHERE id = %s", d["agentId"])[0][0] == \
        "203.0.113.77"


def test_other_headers_are_combined_too(spawn_server, bootstrap):
    """Every header is read whole: a valid bearer token on the first
    Authorization line and another on a second (lower-case) line is one
    malformed value, refused, not the first line alone."""
    srv = spawn_server()
    host = srv.url.split("//")[1]
    token = Api(srv.url).login(bootstrap.email, bootstrap.password).token
    one = ["GET /api/v1/auth/me HTTP/1.1", f"Host: {host}", f"Authorization: Bearer {token}"]
    status, _, body, _ = raw(srv.url, one + ["Connection: close"])
    assert status == 200, body
    status, _, body, _ = raw(srv.url, one + ["authorization: Bearer y", "Connection: close"])
    assert status == 401, body
    assert json.loads(body)["error"]["code"] == "unauthorized"


# --------------------------------------------------------------------------- body limits


def assert_413(status, headers, body):
    assert status == 413, (status, body)
    assert headers.get("content-type", "").startswith("application/json")
    b = json.loads(body)
    assert b["error"]["code"] == "payload_too_large"
    assert str(MAX_BODY) in b["error"]["message"]
    assert re.fullmatch(r"[0-9a-f-]{36}", headers.get("x-request-id", ""))


def test_500mb_content_length_is_413_before_any_body_byte(server):
    host = server.url.split("//")[1]
    s = connect(server.url)
    try:
        t0 = time.monotonic()
        s.sendall((f"POST {LOGIN} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {500 * 1024 * 1024}\r\n\r\n").encode())
        status, h, body, _ = read_response(s, timeout=5)
        assert time.monotonic() - t0 < 5
        assert_413(status, h, body)
        assert h.get("connection", "").lower() == "close"
        assert peer_closed(s)
    finally:
        s.close()


def test_expect_100_continue_with_too_large_length_gets_413_and_no_100(server):
    host = server.url.split("//")[1]
    s = connect(server.url)
    try:
        s.sendall((f"POST {LOGIN} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {MAX_BODY + 1}\r\nExpect: 100-continue\r\n\r\n").encode())
        status, h, body, raw_bytes = read_response(s, timeout=5)
        assert not raw_bytes.startswith(b"HTTP/1.1 100"), raw_bytes[:200]
        assert b" 100 " not in raw_bytes.split(b"\r\n")[0]
        assert_413(status, h, body)
    finally:
        s.close()


def test_expect_100_continue_within_the_limit_still_continues(server):
    host = server.url.split("//")[1]
    data = b'{"email":"nobody@example.test","password":"wrong-password"}'
    s = connect(server.url)
    try:
        s.sendall((f"POST {LOGIN} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(data)}\r\nExpect: 100-continue\r\n\r\n").encode())
        s.settimeout(5)
        first = s.recv(4096)
        assert first.startswith(b"HTTP/1.1 100"), first
        s.sendall(data)
        status, _, _, _ = read_response(s)
        assert status == 401
    finally:
        s.close()


def test_huge_length_with_leading_zeros_or_many_digits_is_413(server):
    host = server.url.split("//")[1]
    for cl in ["0000000000000000000000002000000", "99999999999999999999999999"]:
        s = connect(server.url)
        try:
            s.sendall((f"POST {LOGIN} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json"
                       f"\r\nContent-Length: {cl}\r\n\r\n").encode())
            status, _, _, _ = read_response(s, timeout=5)
            assert status in (400, 413), cl
        finally:
            s.close()


def test_chunked_body_over_the_limit_is_cut_with_413(server):
    """A chunked body has no length to check up front: it is cut as soon as
    it passes the limit, answered 413, and the connection is closed; the
    sender cannot go on writing hundreds of MB."""
    host = server.url.split("//")[1]
    s = connect(server.url)
    chunk = b"a" * 65536
    sent = 0
    got = None
    try:
        s.sendall((f"POST {LOGIN} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n").encode())
        s.settimeout(0.2)
        try:
            while sent < 64 * MAX_BODY:
                s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
                try:
                    got = s.recv(65536, socket.MSG_PEEK)
                    if got is not None:
                        break
                except socket.timeout:
                    pass
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert sent < 8 * MAX_BODY, f"server kept reading: {sent} bytes sent"
        status, h, body, _ = read_response(s, timeout=5)
        assert_413(status, h, body)
        assert peer_closed(s)
    finally:
        s.close()


# --------------------------------------------------------------------------- ambiguous framing


def assert_refused_and_closed(server, head, body):
    """HEAD + BODY, then a pipelined GET /healthz: the first request is
    refused with 400 and the connection closed, so the bytes after the
    ambiguous body are never read as a second request (RFC 9112 §6.1, §6.3)."""
    host = server.url.split("//")[1]
    s = connect(server.url)
    try:
        s.sendall(head.replace("{host}", host).encode() + body +
                  f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        status, h, data, _ = read_response(s, timeout=5)
        assert status == 400, (status, data)
        assert json.loads(data)["error"]["code"] == "invalid_request"
        assert h.get("connection", "").lower() == "close"
        s.settimeout(3)
        rest = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                rest += b
        except (socket.timeout, ConnectionResetError):
            pass
        assert b"HTTP/1.1" not in rest, rest[:300]
    finally:
        s.close()


def test_two_different_content_lengths_are_400_and_close(server):
    assert_refused_and_closed(
        server, "GET /healthz HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\n"
        "Content-Length: 7\r\n\r\n", b"hello")


def test_content_length_with_transfer_encoding_is_400_and_close(server):
    assert_refused_and_closed(
        server, f"POST {LOGIN} HTTP/1.1\r\nHost: {{host}}\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", b"2\r\n{}\r\n0\r\n\r\n")


def test_server_still_serves_after_refusals(api):
    assert api.get("/healthz").status_code == 200
