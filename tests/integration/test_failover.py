"""A dead server must not cost requests that another server could serve: one of
three origins is killed (SIGKILL) under load; a request whose connect is
refused, or whose connection dies before any byte of the response (a pooled
one or a fresh one), moves to another server within `retries`, and no client
sees an error while a healthy server remains. A request with a body that was
sent is not sent again."""

import re
import signal
import socket
import subprocess
import threading
import time

from conftest import get, http_request, proxy_conf


def wrk(port, seconds, conns=64, path="/name"):
    return subprocess.Popen(["wrk", "-t2", "-c%d" % conns, "-d%ds" % seconds, "--timeout", "5s",
                             "http://127.0.0.1:%d%s" % (port, path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wrk_result(p):
    try:
        out, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    m = re.search(r"(\d+) requests in", out)
    assert p.returncode == 0 and m and int(m.group(1)) > 0, out
    return out


def test_killing_one_of_three_origins_under_load_fails_no_request(atrium, origin):
    servers = [origin("A"), origin("B"), origin("C")]
    a = atrium("workers 2;\n" + proxy_conf(servers))
    load = wrk(a.port, 8)
    time.sleep(3)
    servers[1].proc.send_signal(signal.SIGKILL)
    out = wrk_result(load)
    assert "Non-2xx or 3xx responses" not in out, out + a.error_log[-3000:]
    assert "Socket errors" not in out, out + a.error_log[-3000:]
    # the dead server is taken out, and the others serve: marked down by a refused
    # connect, or ejected first by outlier detection when the resets of its pooled
    # connections came five in a row (which comes first depends on timing)
    dead = "server 127.0.0.1:%d " % servers[1].port
    assert dead + "marked down" in a.error_log or dead + "ejected" in a.error_log, \
        a.error_log[-3000:]
    names = {get(a.port, "/name").body for _ in range(6)}
    assert names == {b"A", b"C"}


def test_a_fresh_connection_dying_before_the_response_moves_on(atrium, origin):
    """The server accepts and closes without answering (a dying process): an
    idempotent request goes to the next server; a POST whose body went out does
    not go again (502)."""
    good = origin("good")
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead.listen(64)
    dead_port = dead.getsockname()[1]
    stop = threading.Event()

    def accept_and_close():
        dead.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = dead.accept()
            except OSError:
                continue
            c.recv(65536)
            c.close()
    t = threading.Thread(target=accept_and_close, daemon=True)
    t.start()
    try:
        a = atrium(proxy_conf([dead_port, good], upstream_extra="keepalive 0;"))
        # round robin starts with the dying server: the POST's body went out to
        # it, so the POST is not sent again
        r = http_request(a.port, "POST", "/name", body=b"x" * 100)
        assert r.status == 502, r
        assert good.reqs() == 0
        # an idempotent request moves on to the next server
        for _ in range(6):
            r = get(a.port, "/name")
            assert r.status == 200 and r.body == b"good", r
        b = atrium(proxy_conf([dead_port, good], upstream_extra="keepalive 0;"))
        r = get(b.port, "/name")  # the first pick is the dying server: moved on
        assert r.status == 200 and r.body == b"good", r
        assert "backend closed without a response" in b.error_log
        assert "trying the next one" in b.error_log
    finally:
        stop.set()
        t.join(2)
        dead.close()
