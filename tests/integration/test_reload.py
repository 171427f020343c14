"""SIGHUP reload: new behaviour, bad configs keep the old one, listeners added
and removed, in-flight work finishes, no errors under load (wrk)."""

import re
import subprocess
import time

from conftest import (Background, Conn, connect, free_port, get, port_open, proxy_conf, raw_ex,
                      upstream_conf, wait_until, ws_frame, ws_handshake_request, ws_recv_frame,
                      Reader, read_response)


def conf(origin_, ret, extra_listen=""):
    return """\
listen 127.0.0.1:{{port}};
%s
%s
host * {
    route /ret/ { return 200 "%s"; }
    route / { proxy app; }
}
""" % (extra_listen, upstream_conf([origin_]), ret)


def body_is(port, path, want):
    try:
        return get(port, path).body == want
    except OSError:
        return False


def test_reload_changes_behaviour(atrium, origin):
    o = origin("A")
    a = atrium(conf(o, "v1"))
    assert get(a.port, "/ret/").body == b"v1"
    a.reload(conf(o, "v2"))
    assert wait_until(lambda: body_is(a.port, "/ret/", b"v2"), 10.0), "v2 not served after reload"
    assert get(a.port, "/name").body == b"A"


def test_reload_logs_generation_line(atrium, origin):
    """The suite's reload-done signal: a `reload: generation N active` line."""
    o = origin("A")
    a = atrium(conf(o, "v1"))
    assert a.reload(conf(o, "v2")), "no `reload: generation N active` line after SIGHUP:\n" + a.error_log[-2000:]


def test_idle_keepalive_client_moves_to_new_generation(atrium, origin):
    o = origin("A")
    a = atrium(conf(o, "v1") + "keepalive_timeout 30s;\n")
    with Conn(a.port) as c:
        assert c.request("GET", "/ret/").body == b"v1"
        a.reload(conf(o, "v2") + "keepalive_timeout 30s;\n")
        time.sleep(0.2)
        assert c.request("GET", "/ret/").body == b"v2"


def test_bad_config_keeps_old_generation(atrium, origin):
    o = origin("A")
    a = atrium(conf(o, "v1"))
    good = a.conf_text
    bad = good.replace('return 200 "v1";', 'return 200 "v2";\n    bogus_directive here;')
    bad_line = [i for i, l in enumerate(bad.splitlines(), 1) if "bogus_directive" in l][0]
    a.conf_path.write_text(bad)
    before = len(a.error_log)
    assert a.reload(expect_ok=False), "no FILE:LINE:COL line for the bad config"
    log = a.error_log[before:]
    assert re.search(r"%s:%d:\d+:" % (re.escape(str(a.conf_path)), bad_line), log), log
    for _ in range(5):
        assert get(a.port, "/ret/").body == b"v1"
    assert a.alive()
    # a fixed config after a failed one still applies
    a.reload(conf(o, "v3"))
    assert wait_until(lambda: body_is(a.port, "/ret/", b"v3"), 10.0)


def test_reload_with_an_unopenable_error_log_changes_nothing(atrium, origin):
    """A reload whose error_log cannot be opened is refused with FILE:LINE:COL (it
    was applied, logging on to the old file)."""
    o = origin("A")
    a = atrium(conf(o, "v1"))
    bad = a.conf_text.replace('return 200 "v1";', 'return 200 "v2";')
    bad = "error_log /nonexistent-dir/e.log info;\n" + bad.replace(
        "error_log %s debug;" % a.error_log_path, "")
    a.conf_path.write_text(bad)
    assert a.reload(expect_ok=False), "no FILE:LINE:COL line for the error_log"
    assert "error_log /nonexistent-dir/e.log" in a.error_log
    assert get(a.port, "/ret/").body == b"v1"


def test_failed_listen_closes_only_what_it_opened(atrium, origin):
    """A reload whose first new listener cannot be bound frees the set it was
    building and nothing else (entries not reached yet read as fd 0, and the
    process's standard input was closed)."""
    import os
    import socket
    o = origin("A")
    a = atrium(conf(o, "v1"))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        before = os.readlink("/proc/%d/fd/0" % a.pid)
        text = a.conf_text.replace("listen 127.0.0.1:%d;" % a.port,
                                   "listen 127.0.0.1:%d;\nlisten 127.0.0.1:%d;\nlisten 127.0.0.1:%d;"
                                   % (busy.getsockname()[1], free_port(), a.port))
        a.conf_path.write_text(text)
        assert a.reload(expect_ok=False)
        assert os.readlink("/proc/%d/fd/0" % a.pid) == before
        assert get(a.port, "/ret/").body == b"v1"
    finally:
        busy.close()


def test_reload_adds_and_removes_listener(atrium, origin):
    o = origin("A")
    a = atrium(conf(o, "v1"))
    p2 = free_port()
    a.reload(conf(o, "v2", "listen 127.0.0.1:%d;" % p2))
    assert wait_until(lambda: body_is(p2, "/ret/", b"v2"), 10.0), "new listener does not serve"
    assert get(a.port, "/ret/").body == b"v2"
    a.reload(conf(o, "v3"))
    assert wait_until(lambda: not port_open(p2, 0.2), 10.0), "removed listener still accepts"
    assert get(a.port, "/ret/").body == b"v3"


def test_reload_changes_upstream_members(atrium, origin):
    a_, b_ = origin("A"), origin("B")
    a = atrium(conf(a_, "v1"))
    assert get(a.port, "/name").body == b"A"
    a.reload(conf(b_, "v2"))
    assert wait_until(lambda: body_is(a.port, "/name", b"B"), 10.0)


def test_inflight_request_survives_reload(atrium, origin):
    o = origin("A")
    a = atrium(conf(o, "v1"))
    held = Background(get, a.port, "/hold?ms=1500")
    assert wait_until(lambda: o.stats()["inflight"] == 1, 10.0)
    a.reload(conf(o, "v2"))
    r = held.result(10)
    assert (r.status, r.text()) == (200, "held 1500 A")


def test_drain_timeout_bounds_requests_of_a_replaced_generation(atrium, origin):
    """drain_timeout applies after a reload too: a request still running on the old
    generation is cut when it runs out (it ran on, and kept the old generation and
    its pools alive, for as long as it liked)."""
    o = origin("A")
    a = atrium(proxy_conf([o], main_extra="drain_timeout 1s;"))
    t0 = time.monotonic()
    held = Background(raw_ex, a.port, b"GET /hold?ms=5000 HTTP/1.1\r\nHost: x\r\n\r\n", 10.0)
    time.sleep(0.3)
    a.reload()
    r = held.result(10)
    assert r.closed or r.reset, r
    assert r.status is None, r                  # cut, not answered
    assert time.monotonic() - t0 < 4.0
    assert get(a.port, "/name").status == 200   # the new generation serves
    assert "drain timeout after reload" in a.error_log


def test_new_header_limits_apply_to_kept_connections_and_parsers(atrium, origin):
    """After a reload lowers max_header_size, a kept keep-alive connection and
    parsers reused from before both enforce the new limit (a parser cached from
    the old generation kept the old limit under steady traffic)."""
    o = origin("A")
    a = atrium(proxy_conf([o], main_extra="max_header_size 32k;"))
    big = [("X-Big", "a" * 8000)]
    with Conn(a.port) as busy:
        assert busy.request("GET", "/name", headers=big).status == 200
        held = Background(get, a.port, "/hold?ms=600")   # in flight across the reload
        time.sleep(0.1)
        a.reload(proxy_conf([o], main_extra="max_header_size 4k;"))
        assert held.result(10).status == 200
        for _ in range(8):                               # steady traffic: no idle flush
            assert busy.request("GET", "/name").status == 200
            time.sleep(0.1)
        assert busy.request("GET", "/name", headers=big).status == 431
    for _ in range(3):
        assert get(a.port, "/name", headers=big).status == 431


def test_websocket_survives_reload(atrium, origin):
    o = origin("A")
    a = atrium(conf(o, "v1"))
    with connect(a.port) as s:
        req, key = ws_handshake_request()
        s.sendall(req)
        rd = Reader(s)
        assert read_response(rd).status == 101
        s.sendall(ws_frame(1, b"before", mask=b"abcd"))
        assert ws_recv_frame(rd) == (True, 1, b"before")
        a.reload(conf(o, "v2"))
        s.sendall(ws_frame(1, b"after", mask=b"abcd"))
        assert ws_recv_frame(rd) == (True, 1, b"after")


def test_reloads_under_load_no_errors(atrium, origin):
    """wrk -t2 -c20 -d8s while 10 reloads happen (one with a bad config):
    no socket errors and no non-2xx/3xx responses."""
    o1, o2 = origin("A"), origin("B")

    def cfg(i):
        return ("workers 2;\n" + proxy_conf(
            [o1, o2], route_extra="response_header set X-Gen %d;" % i))

    a = atrium(cfg(0))
    wrk = subprocess.Popen(["wrk", "-t2", "-c20", "-d8s", "--timeout", "5s",
                            "http://127.0.0.1:%d/name" % a.port],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.0)
        for i in range(1, 11):
            t0 = time.monotonic()
            if i == 5:
                a.conf_path.write_text(a.conf_text.replace("host * {", "host * {\n    nope;"))
                a.reload(expect_ok=False, timeout=0.5)
            else:
                a.reload(cfg(i), timeout=0.5)
            assert a.alive()
            time.sleep(max(0.0, 0.6 - (time.monotonic() - t0)))
        out, _ = wrk.communicate(timeout=30)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait(5)
    assert wrk.returncode == 0, out
    m = re.search(r"(\d+) requests in", out)
    assert m and int(m.group(1)) > 0, out
    assert "Socket errors" not in out, out
    assert "Non-2xx or 3xx responses" not in out, out
    assert get(a.port, "/name").get("X-Gen") == "10"
