"""The client side: request strictness, limits, timeouts, keep-alive, pipelining,
HEAD and Expect. Every rejected request must get the exact status, be the only
response, close the connection, and never reach the origin."""

import hashlib
import re
import socket
import time

import pytest

from conftest import (AtriumFactory, Conn, connect, get, proxy_conf, raw_ex, read_all,
                      request_bytes, start_origin)

LIMITS = """\
max_request_line 1k;
max_header_size 4k;
max_headers 20;
max_body_size 1k;
header_timeout 1s;
keepalive_timeout 750ms;
"""


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    d = tmp_path_factory.mktemp("front")
    o = start_origin("A", str(d))
    f = AtriumFactory(d)
    try:
        a = f(proxy_conf([o], main_extra=LIMITS))
        yield a, o
    finally:
        o.stop()
        f.teardown()


H = b"Host: example.test\r\n"


def post(headers, body=b"", target=b"/echo", version=b"HTTP/1.1"):
    return b"POST " + target + b" " + version + b"\r\n" + H + headers + b"\r\n" + body


def get_req(headers=b"", target=b"/echo", host=H, version=b"HTTP/1.1", method=b"GET"):
    return method + b" " + target + b" " + version + b"\r\n" + host + headers + b"\r\n"


# name -> (request bytes, allowed statuses, whether the origin must see nothing)
CASES = {
    # framing ambiguity (RFC 9112 6.1, 6.3; reliability 2.Q)
    "cl_and_te": (post(b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
                       b"0\r\n\r\nG"), {400}, True),
    "te_and_cl": (post(b"Transfer-Encoding: chunked\r\nContent-Length: 6\r\n",
                       b"0\r\n\r\nG"), {400}, True),
    "dup_cl_same": (post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"), {400}, True),
    "dup_cl_diff": (post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"), {400}, True),
    "cl_abc": (post(b"Content-Length: abc\r\n", b"abc"), {400}, True),
    "cl_negative": (post(b"Content-Length: -1\r\n"), {400}, True),
    "cl_plus": (post(b"Content-Length: +5\r\n", b"hello"), {400}, True),
    "cl_inner_space": (post(b"Content-Length: 5 5\r\n", b"hello"), {400}, True),
    "cl_overflow": (post(b"Content-Length: 99999999999999999999999999\r\n"), {400, 413}, True),
    "te_gzip_chunked": (post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"), {501}, True),
    "te_chunked_gzip": (post(b"Transfer-Encoding: chunked, gzip\r\n", b"0\r\n\r\n"), {400}, True),
    "te_gzip_only": (post(b"Transfer-Encoding: gzip\r\n", b"abc"), {400}, True),
    "te_xchunked": (post(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n"), {400}, True),
    "te_chunked_twice": (post(b"Transfer-Encoding: chunked, chunked\r\n", b"0\r\n\r\n"),
                         {400, 501}, True),
    "te_http10": (post(b"Transfer-Encoding: chunked\r\n", b"0\r\n\r\n", version=b"HTTP/1.0"),
                  {400}, True),
    # header syntax (RFC 9112 5.1, 5.2; RFC 9110 5.1, 5.5)
    "obs_fold": (get_req(b"X-A: 1\r\n  continued\r\n"), {400}, True),
    "space_before_colon_host": (b"GET /echo HTTP/1.1\r\nHost : example.test\r\n\r\n", {400}, True),
    "space_before_colon": (get_req(b"X-A : 1\r\n"), {400}, True),
    "bare_cr_in_value": (get_req(b"X-A: a\rb\r\n"), {400}, True),
    "nul_in_value": (get_req(b"X-A: a\x00b\r\n"), {400}, True),
    "bad_name_at": (get_req(b"X@A: 1\r\n"), {400}, True),
    "bad_name_paren": (get_req(b"X(A: 1\r\n"), {400}, True),
    "bad_name_space": (get_req(b"X A: 1\r\n"), {400}, True),
    "empty_name": (get_req(b": x\r\n"), {400}, True),
    "ws_before_first_header": (b"GET /echo HTTP/1.1\r\n Host: example.test\r\n\r\n", {400}, True),
    # Host (RFC 9112 3.2, 3.2.2; reliability 2.Q)
    "no_host_11": (b"GET /echo HTTP/1.1\r\nX-A: 1\r\n\r\n", {400}, True),
    "two_hosts": (get_req(b"Host: example.test\r\n"), {400}, True),
    "two_hosts_differ": (get_req(b"Host: other.test\r\n"), {400}, True),
    "host_with_space": (get_req(host=b"Host: bad host\r\n"), {400}, True),
    "host_with_slash": (get_req(host=b"Host: a/b\r\n"), {400}, True),
    "absolute_form_host_mismatch": (get_req(target=b"http://other.test/echo"), {400}, True),
    # request line (RFC 9112 3; reliability 2.Q)
    "double_sp": (b"GET  /echo HTTP/1.1\r\n" + H + b"\r\n", {400}, True),
    "space_in_target": (get_req(target=b"/a b"), {400}, True),
    "nul_in_target": (get_req(target=b"/a\x00b"), {400}, True),
    "bad_method_char": (get_req(method=b"GE(T"), {400}, True),
    "bad_version": (get_req(version=b"HTTX/1.1"), {400}, True),
    "http2_version": (get_req(version=b"HTTP/2.0"), {505}, True),
    "http3_version": (get_req(version=b"HTTP/3.0"), {505}, True),
    # chunked framing (RFC 9112 7.1; errata 7633). The head may already be on its
    # way to the origin when the body turns out bad, so the origin is not checked.
    "chunk_size_overflow": (post(b"Transfer-Encoding: chunked\r\n",
                                 b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), {400}, False),
    "chunk_size_bad_char": (post(b"Transfer-Encoding: chunked\r\n", b"5x\r\nhello\r\n0\r\n\r\n"),
                            {400}, False),
    "chunk_size_negative": (post(b"Transfer-Encoding: chunked\r\n", b"-5\r\nhello\r\n0\r\n\r\n"),
                            {400}, False),
    "chunk_size_0x": (post(b"Transfer-Encoding: chunked\r\n", b"0x5\r\nhello\r\n0\r\n\r\n"),
                      {400}, False),
    "chunk_bare_lf": (post(b"Transfer-Encoding: chunked\r\n", b"5\nhello\r\n0\r\n\r\n"),
                      {400}, False),
    "chunk_data_overrun": (post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhelloXX0\r\n\r\n"),
                           {400}, False),
    # limits (RFC 9112 3, RFC 6585 5, RFC 9110 5.4)
    "request_line_too_long": (get_req(target=b"/echo?" + b"a" * 2000), {414}, True),
    "header_too_big": (get_req(b"X-Big: " + b"b" * 5000 + b"\r\n"), {431}, True),
    "head_too_big_many_lines": (get_req(b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 300)
                                                 for i in range(15))), {431}, True),
    "too_many_headers": (get_req(b"".join(b"X-H%d: 1\r\n" % i for i in range(25))), {431}, True),
    "body_too_big_cl": (post(b"Content-Length: 2000\r\n", b"x" * 2000), {413}, True),
    "body_too_big_chunked": (post(b"Transfer-Encoding: chunked\r\n",
                                  b"800\r\n" + b"x" * 2048 + b"\r\n0\r\n\r\n"), {413}, False),
}


@pytest.mark.parametrize("name", list(CASES))
def test_reject(front, name):
    a, o = front
    data, statuses, origin_untouched = CASES[name]
    before = o.reqs()
    r = raw_ex(a.port, data, timeout=3.0)
    assert r.status in statuses, r
    assert len(re.findall(rb"(?m)^HTTP/1\.[01] \d{3}", r.data)) == 1, \
        "exactly one response expected: %r" % r
    assert r.closed, "connection must be closed after %s: %r" % (name, r)
    assert a.alive()
    if origin_untouched:
        assert o.reqs() == before, "the origin received a rejected request"
    # the front door still works
    assert get(a.port, "/name").body == b"A"


# Valid requests near every rule: the strict parser must not reject these.
ACCEPT = {
    "chunked_capitalised": (post(b"Transfer-Encoding: Chunked\r\nConnection: close\r\n",
                                 b"5\r\nhello\r\n0\r\n\r\n"), b"hello"),
    "chunk_size_leading_zeros_upper": (post(b"Transfer-Encoding: chunked\r\nConnection: close\r\n",
                                            b"000A\r\n0123456789\r\n0\r\n\r\n"), b"0123456789"),
    "http10_without_host": (b"POST /echo HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc", b"abc"),
    "empty_line_before_request": (b"\r\n" + post(b"Content-Length: 3\r\nConnection: close\r\n",
                                                 b"abc"), b"abc"),
    "header_value_with_tab_and_obs_text": (post(b"X-A: a\tb\xe9\r\nContent-Length: 3\r\n"
                                                b"Connection: close\r\n", b"abc"), b"abc"),
    "body_at_limit": (post(b"Content-Length: 1024\r\nConnection: close\r\n", b"z" * 1024),
                      b"z" * 1024),
    "many_headers_under_limit": (post(b"".join(b"X-H%d: 1\r\n" % i for i in range(15))
                                      + b"Content-Length: 1\r\nConnection: close\r\n", b"q"), b"q"),
    "long_line_under_limit": (post(b"Content-Length: 1\r\nConnection: close\r\n", b"q",
                                   target=b"/echo?" + b"a" * 900), b"q"),
    "absolute_form_matching_host": (post(b"Content-Length: 1\r\nConnection: close\r\n", b"q",
                                         target=b"http://example.test/echo"), b"q"),
}


@pytest.mark.parametrize("name", list(ACCEPT))
def test_accept(front, name):
    a, o = front
    data, body = ACCEPT[name]
    r = raw_ex(a.port, data, timeout=5.0)
    rs = r.responses()
    assert len(rs) == 1 and rs[0].status == 200, r
    doc = rs[0].json()
    assert doc["body_len"] == len(body)
    assert doc["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert doc["path"] == "/echo"
    assert doc["target"].startswith("/echo"), "origin-form towards the origin: %r" % doc["target"]


def test_header_timeout_408(front):
    """A head that never completes gets 408 and a close (header_timeout 1s)."""
    a, o = front
    before = o.reqs()
    with connect(a.port) as s:
        s.sendall(b"GET /echo HTTP/1.1\r\n")
        r = read_all(s, timeout=6.0)
    assert r.status == 408 and r.closed, r
    assert o.reqs() == before


def test_header_timeout_is_total_not_idle(front):
    """Slowloris: a byte every 200 ms never lets the head finish; header_timeout
    bounds the whole head, so the connection still ends (408) well before 6 s."""
    a, o = front
    with connect(a.port) as s:
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: example.test\r\n")
        s.settimeout(0.2)
        deadline = time.monotonic() + 6.0
        got = b""
        closed = False
        while time.monotonic() < deadline:
            try:
                s.sendall(b"X")
            except OSError:
                closed = True
                break
            try:
                d = s.recv(4096)
                if not d:
                    closed = True
                    break
                got += d
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed = True
                break
        assert closed or got, "the dripping head was allowed to continue for 6 s"
        if not closed:
            r = read_all(s, timeout=3.0)
            got += r.data
            closed = r.closed
        assert closed
        assert got[:12] in (b"", b"HTTP/1.1 408"), got[:100]


def test_idle_connection_closed(front):
    """A connection that never sends a byte is closed (no response needed)."""
    a, _ = front
    with connect(a.port) as s:
        r = read_all(s, timeout=6.0)
    assert r.closed, r
    assert r.data == b"" or r.status == 408, r


def test_keepalive_timeout(front):
    """keepalive_timeout 750ms: an idle keep-alive connection is closed silently."""
    a, _ = front
    with Conn(a.port) as c:
        assert c.request("GET", "/name").status == 200
        assert c.closed_by_peer(timeout=5.0)


def test_pipelining_in_order(front):
    a, _ = front
    reqs = b"".join(request_bytes("GET", "/echo?i=%d" % i) for i in range(3))
    reqs = reqs[:-4] + b"\r\nConnection: close\r\n\r\n"       # close after the third
    r = raw_ex(a.port, reqs, timeout=5.0)
    rs = r.responses()
    assert [x.status for x in rs] == [200, 200, 200], r
    assert [x.json()["query"]["i"] for x in rs] == ["0", "1", "2"]
    assert r.closed


def test_pipelined_requests_answered_after_the_client_half_closes(front):
    """Requests sent whole before a FIN (shutdown(SHUT_WR)) are all answered, in
    order; an incomplete head after them just ends the connection (the second
    request used to be dropped when the first finished after the EOF)."""
    a, _ = front
    for tail in (b"", b"GET /name HTTP/1.1\r\nHo"):
        with connect(a.port) as s:
            s.sendall(request_bytes("GET", "/hold?ms=300") + request_bytes("GET", "/echo?i=2")
                      + tail)
            s.shutdown(socket.SHUT_WR)
            r = read_all(s, timeout=5.0)
        assert [x.status for x in r.responses()] == [200, 200], r.data[:300]
        assert r.responses()[1].json()["query"]["i"] == "2"
        assert r.closed


def test_pipelining_with_bodies(front):
    a, _ = front
    reqs = (request_bytes("POST", "/echo", body=b"one")
            + request_bytes("POST", "/echo", headers=[("Transfer-Encoding", "chunked")])
            + b"3\r\ntwo\r\n0\r\n\r\n"
            + request_bytes("GET", "/echo?last=1", headers=[("Connection", "close")]))
    rs = raw_ex(a.port, reqs, timeout=5.0).responses()
    assert [x.json()["body_sha256"] for x in rs] == [
        hashlib.sha256(b).hexdigest() for b in (b"one", b"two", b"")]


def test_head_has_no_body(front):
    a, _ = front
    reqs = (request_bytes("HEAD", "/bytes?n=5000") + request_bytes("HEAD", "/name")
            + request_bytes("GET", "/name", headers=[("Connection", "close")]))
    r = raw_ex(a.port, reqs, timeout=5.0)
    rs = r.responses(["HEAD", "HEAD", "GET"])
    assert [x.status for x in rs] == [200, 200, 200], r
    assert rs[0].get("Content-Length") == "5000"
    assert rs[1].get("Content-Length") == "1"
    assert rs[2].body == b"A"


def test_expect_100_continue(front):
    a, _ = front
    with Conn(a.port) as c:
        c.send(request_bytes("POST", "/sha256", headers=[
            ("Expect", "100-continue"), ("Content-Length", "11")]))
        first = c.response(keep_1xx=True)          # the client waits for it
        assert first.status == 100, first
        c.send(b"hello world")
        r = c.response()
        assert r.status == 200
        assert r.text() == hashlib.sha256(b"hello world").hexdigest()
        assert c.request("GET", "/name").body == b"A"      # still in sync


def test_expect_too_big_gets_413_without_100(front):
    a, o = front
    before = o.reqs()
    with Conn(a.port) as c:
        c.send(request_bytes("POST", "/sha256", headers=[
            ("Expect", "100-continue"), ("Content-Length", "5000")]))
        r = c.response(keep_1xx=True)
        assert r.status == 413, r
    assert o.reqs() == before


def test_no_100_for_http10(front):
    a, _ = front
    r = raw_ex(a.port, b"POST /sha256 HTTP/1.0\r\nHost: example.test\r\n"
               b"Expect: 100-continue\r\nContent-Length: 3\r\n\r\nabc", timeout=5.0)
    assert r.data.startswith(b"HTTP/1.") and r.status == 200, r
    assert b" 100 " not in r.data.split(b"\r\n")[0]


def test_connection_close_from_client(front):
    a, _ = front
    with Conn(a.port) as c:
        r = c.request("GET", "/name", headers=[("Connection", "close")])
        assert r.status == 200 and "close" in r.tokens("connection")
        assert c.closed_by_peer(timeout=3.0)


@pytest.fixture
def limits_atrium(atrium, origin):
    def make(extra):
        o = origin("A")
        return atrium(proxy_conf([o], main_extra=extra)), o
    return make


def test_body_timeout_408(limits_atrium):
    a, o = limits_atrium("body_timeout 1s;")
    with connect(a.port) as s:
        s.sendall(request_bytes("POST", "/sha256", headers=[("Content-Length", "100")])
                  + b"0123456789")
        r = read_all(s, timeout=6.0)
    assert r.closed, r
    assert r.status == 408, r
    assert get(a.port, "/name").status == 200


def test_keepalive_requests(limits_atrium):
    a, _ = limits_atrium("keepalive_requests 3;")
    with Conn(a.port) as c:
        r1 = c.request("GET", "/name")
        r2 = c.request("GET", "/name")
        assert "close" not in r1.tokens("connection") + r2.tokens("connection")
        r3 = c.request("GET", "/name")
        assert r3.status == 200 and "close" in r3.tokens("connection")
        assert c.closed_by_peer(timeout=3.0)


def test_send_timeout_closes_stuck_reader(limits_atrium):
    """A client that stops reading a big response is cut off after send_timeout."""
    a, _ = limits_atrium("send_timeout 1s;")
    n = 256 << 20
    with connect(a.port, timeout=10.0) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(request_bytes("GET", "/bytes?n=%d" % n))
        time.sleep(4.0)
        got = 0
        s.settimeout(5.0)
        ended = False
        try:
            while True:
                d = s.recv(1 << 20)
                if not d:
                    ended = True
                    break
                got += len(d)
                if got > n:
                    break
        except ConnectionResetError:
            ended = True
        except socket.timeout:
            pass
    assert ended and got < n, "got %d of %d bytes, ended=%s" % (got, n, ended)
    assert get(a.port, "/name").status == 200
