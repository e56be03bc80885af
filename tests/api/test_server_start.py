"""What serve writes when it starts: JSON lines only, without libmicrohttpd's
warning about the logger option's position, and a start failure that names
the address and port it could not listen on."""
import json
import socket

from conftest import free_port


def test_start_log_is_json_without_mhd_warning(spawn_server):
    srv = spawn_server()
    assert srv.stop() == 0
    lines = [l for l in srv.log_text().splitlines() if l.strip()]
    assert lines
    for l in lines:
        json.loads(l)  # every line is one JSON object
    assert '"http.mhd"' not in srv.log_text(), srv.log_text()[:2000]
    assert "not the first option" not in srv.log_text()


def test_start_failure_names_address_and_port(run_server):
    port = free_port()
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    busy.bind(("127.0.0.1", port))
    busy.listen(1)
    try:
        r = run_server(LISTEN_ADDR=f"127.0.0.1:{port}")
    finally:
        busy.close()
    assert r.returncode == 1, r.stderr[-2000:]
    failed = [json.loads(l) for l in r.stderr.splitlines() if '"http.start.failed"' in l]
    assert failed, r.stderr
    assert failed[0]["listen"] == "127.0.0.1"
    assert failed[0]["port"] == str(port)
