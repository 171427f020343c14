"""tools/loadgen, the fixed-rate load generator tools/bench uses for latency at the same
load: it sends what the schedule says, to each port in its slices, counts what the
servers really answered, and counts broken answers as errors.

Run: ATRIUM_BIN=... python3 -m pytest tests/integration/test_loadgen.py
(loadgen is built next to atrium; LOADGEN_BIN overrides)
"""

import json
import os
import socket
import ssl
import subprocess
import threading

import pytest

from conftest import ATRIUM_BIN, free_port

LOADGEN_BIN = os.environ.get("LOADGEN_BIN",
                             os.path.join(os.path.dirname(ATRIUM_BIN), "loadgen"))


def loadgen(*args, timeout=30):
    if not os.access(LOADGEN_BIN, os.X_OK):
        pytest.fail("loadgen %r not found (set LOADGEN_BIN)" % LOADGEN_BIN, pytrace=False)
    return subprocess.run([LOADGEN_BIN] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


def test_rate_and_slices_reach_each_port(origin):
    a, b = origin("a"), origin("b")
    before = (a.reqs(), b.reqs())
    r = loadgen("-p", "%d,%d" % (a.port, b.port), "-u", "/name", "-r", 400, "-d", 1,
                "-s", 0.25, "-c", 4, "-w", 0)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert not doc["overloaded"]
    for t, o, n0 in zip(doc["targets"], (a, b), before):
        assert t["port"] == o.port
        # 1 s per port at 400/s, every scheduled request answered, all 2xx
        assert t["scheduled"] == 400 and t["completed"] == 400, t
        assert t["errors"] == 0 and t["non2xx"] == 0, t
        assert o.reqs() - n0 == 400
        assert 0 < t["p50_us"] <= t["p99_us"] <= t["max_us"]


def test_non_2xx_are_counted(origin):
    o = origin()
    r = loadgen("-p", o.port, "-u", "/status/503", "-r", 100, "-d", 0.5, "-c", 2, "-w", 0)
    assert r.returncode == 0, r.stderr
    t = json.loads(r.stdout)["targets"][0]
    assert t["completed"] == 50 and t["non2xx"] == 50, t


def run_against(handle, *args, wrap=None):
    """loadgen against a server on a free port whose every accepted connection goes to
    handle(sock) in a thread of its own (wrap(sock) first, if given: TLS); returns
    loadgen's one target."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    port = free_port()
    srv.bind(("127.0.0.1", port))
    srv.listen(64)

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve_one, args=(c,), daemon=True).start()

    def serve_one(c):
        if wrap:
            try:
                c = wrap(c)
            except OSError:
                c.close()
                return
        handle(c)

    threading.Thread(target=serve, daemon=True).start()
    try:
        r = loadgen("-p", port, *args)
    finally:
        srv.close()
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["targets"][0]


def test_broken_answers_are_errors_and_connections_reopened():
    """A server that answers without Content-Length and closes: every request is an
    error, and loadgen keeps going on new connections."""
    accepted = []

    def handle(c):
        accepted.append(1)
        try:
            c.recv(4096)
            c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nno length")
        except OSError:
            pass
        c.close()

    t = run_against(handle, "-r", 50, "-d", 0.4, "-c", 2, "-w", 0)
    assert t["scheduled"] == 20 and t["completed"] == 0 and t["errors"] == 20, t
    assert len(accepted) >= 20


def test_server_closing_idle_connections_is_not_an_error():
    """A server with a short keep-alive timeout closes connections between requests:
    loadgen opens a new one and counts the close, with no error and no request lost
    (it once pushed such a connection on its idle stack a second time, overrunning it)."""
    def handle(c):
        c.settimeout(0.02)  # keep-alive timeout: 20 ms
        try:
            while c.recv(4096):
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except OSError:  # the timeout too
            pass
        c.close()

    t = run_against(handle, "-r", 20, "-d", 1, "-c", 2, "-w", 0)
    assert t["scheduled"] == 20 and t["completed"] == 20, t
    assert t["errors"] == 0 and t["non2xx"] == 0, t
    assert t["idle_closed"] >= 10, t
    assert 0 < t["p50_us"] <= t["p99_us"] <= t["max_us"] < 2e6, t


def test_request_lost_to_the_keep_alive_race_is_sent_again_once():
    """The server closes a reused connection as the request arrives, without a byte of
    answer (the keep-alive race, made certain): loadgen sends the request again on a new
    connection, as browsers do. Only once: a request that fails on a connection opened
    for it is an error, or a dead server would be retried forever."""
    def handle(c):
        try:
            if c.recv(4096):
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            c.recv(4096)            # the second request: closed unanswered
        except OSError:
            pass
        c.close()

    t = run_against(handle, "-r", 50, "-d", 0.4, "-c", 1, "-w", 0)
    assert t["scheduled"] == 20 and t["completed"] == 20, t
    assert t["errors"] == 0 and t["retried"] == 19, t

    def refuse(c):
        c.recv(4096)
        c.close()

    t = run_against(refuse, "-r", 50, "-d", 0.4, "-c", 1, "-w", 0)
    assert t["scheduled"] == 20 and t["errors"] == 20 and t["retried"] == 20, t


def test_bad_arguments_and_refused_connect():
    assert loadgen("-p", "0", "-r", 10, "-d", 1).returncode == 2
    assert loadgen("-p", "80,x", "-r", 10, "-d", 1).returncode == 2
    assert loadgen("-p", "8080", "-r", -1, "-d", 1).returncode == 2
    r = loadgen("-p", free_port(), "-r", 10, "-d", 1)
    assert r.returncode == 2 and b"connect" in r.stderr


def keep_alive(c):
    """Answer every request on c with a 2-byte body; close when the client asks to."""
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                data = c.recv(4096)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            if b"connection: close" in head.lower():
                return
    except OSError:
        pass
    finally:
        c.close()


def test_closed_loop_keeps_every_connection_busy():
    """-r 0: each connection sends its next request as soon as the answer is in."""
    t = run_against(keep_alive, "-r", 0, "-d", 0.5, "-c", 2, "-w", 0)
    assert t["completed"] > 50 and t["completed"] == t["answered"] == t["scheduled"], t
    assert t["errors"] == 0 and t["non2xx"] == 0, t


def test_new_connection_per_request():
    """-n: every request on a connection of its own, sent with Connection: close; loadgen
    waits for the server's close before it takes the next."""
    accepted = []

    def handle(c):
        accepted.append(1)
        keep_alive(c)

    t = run_against(handle, "-n", "-r", 50, "-d", 0.4, "-c", 2, "-w", 0)
    assert t["scheduled"] == 20 and t["completed"] == 20 and t["errors"] == 0, t
    assert len(accepted) == 20


@pytest.fixture
def tls_server_ctx(tmp_path):
    crt, key = str(tmp_path / "ec.pem"), str(tmp_path / "ec.key")
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", key,
                    "-out", crt], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    return ctx     # sends session tickets: loadgen must count them and never use them


def test_tls_full_handshakes_are_never_resumed(tls_server_ctx):
    """-t -n: a full TLS 1.3 handshake per request (X25519), none resumed,
    the server's session tickets counted and dropped."""
    wrap = lambda c: tls_server_ctx.wrap_socket(c, server_side=True)  # noqa: E731
    t = run_against(keep_alive, "-t", "-n", "-r", 50, "-d", 0.4, "-c", 2, "-w", 0, wrap=wrap)
    assert t["completed"] == 20 and t["errors"] == 0, t
    assert t["handshakes"] == 20 and t["resumed"] == 0 and t["tickets"] >= 20, t
    # (this server prefers AES-256 to what loadgen offers first: the server chooses)
    assert t["tls"].startswith("TLSv1.3 TLS_AES_") and " X25519 ecdsa" in t["tls"], t
    t = run_against(keep_alive, "-t", "-V", "1.2", "-n", "-r", 50, "-d", 0.2, "-c", 2, "-w", 0,
                    wrap=wrap)
    assert t["completed"] == 10 and t["handshakes"] == 10 and t["resumed"] == 0, t
    assert t["tls"].startswith("TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256 X25519"), t


def test_tls_keep_alive(tls_server_ctx):
    """-t without -n: one handshake per connection, at the start, then requests on it."""
    wrap = lambda c: tls_server_ctx.wrap_socket(c, server_side=True)  # noqa: E731
    t = run_against(keep_alive, "-t", "-r", 50, "-d", 0.4, "-c", 2, "-w", 0, wrap=wrap)
    assert t["completed"] == 20 and t["errors"] == 0 and t["idle_closed"] == 0, t
    assert t["handshakes"] == 2 and t["resumed"] == 0, t
