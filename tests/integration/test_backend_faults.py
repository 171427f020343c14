"""Backends that misbehave in ways the test origin cannot: a scripted raw backend
(one thread per connection) per test. Each case is a bug that was found and fixed:

- bytes a backend sends after a complete response, when the response ended exactly
  where a full read of the backend buffer ended, were read as the next request's
  response (same client pipelining, or a queued request of another client);
- a backend write that had to wait left the send deadline armed after it finished:
  a slow but steady upload got 504 "request send timeout";
- a stalled backend during an upload (Atrium stops reading the client: backpressure)
  was blamed on the client: 408 instead of the backend's 504;
- the idempotent retry on a stale pooled connection gave its server slot to a queued
  request and then failed with 502.

Run: ATRIUM_BIN=... python3 -m pytest tests/integration/test_backend_faults.py
"""

import socket
import struct
import threading
import time

from conftest import (Background, connect, free_port, get, http_request, proxy_conf, raw_ex,
                      read_all, status_of, wait_until)


class RawBackend:
    """Accepts connections and runs handle(conn, state) for each in a thread."""

    def __init__(self, handle):
        self.handle = handle
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
                n = self.conns
            threading.Thread(target=self._run, args=(c, n), daemon=True).start()

    def _run(self, c, n):
        try:
            self.handle(c, n)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_head(c, buf=b""):
    """(head, rest) of the next request on c, or (None, b"") at EOF."""
    while b"\r\n\r\n" not in buf:
        d = c.recv(65536)
        if not d:
            return None, b""
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head, rest


def each_head(c):
    """The heads of the requests on c, one by one, until EOF (bodies are not read)."""
    buf = b""
    while True:
        head, buf = read_head(c, buf)
        if head is None:
            return
        yield head


def content_length(head):
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def conf_for(port, upstream_extra="", server_extra="", main_extra=""):
    return "\n".join([
        main_extra,
        "upstream app {",
        "    server 127.0.0.1:%d%s;" % (port, server_extra),
        "    " + upstream_extra,
        "}",
        "host * { route / { proxy app; } }",
    ])


# ---------------------------------------------------------------- field lines

def field_lines(head):
    """The field lines of a head, as bytes, in order."""
    return head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]


def test_field_lines_go_out_canonical_however_they_came_in(atrium):
    """Lines already written "Name: value" go out as the bytes they were, the
    others are rewritten (no OWS but the one space), and dropped fields in
    between split the copies without losing or doubling a byte: both ways."""
    seen = []

    def answer(c, n):
        for head in each_head(c):
            seen.append(head)
            c.sendall(b"HTTP/1.1 200 OK\r\nR1: a\r\nR2:b\r\nR3:  c \t\r\nR4: d\r\n"
                      b"Connection: x-gone\r\nX-Gone: 1\r\nR5: e\r\nContent-Length: 2\r\n"
                      b"R6: f\r\nR7:\r\nR8: h\r\n\r\nok")

    with RawBackend(answer) as be:
        a = atrium(conf_for(be.port))
        r = raw_ex(a.port, b"GET /x HTTP/1.1\r\nHost: h\r\nA: 1\r\nB:2\r\nC:  3 \t\r\n"
                           b"D: 4\r\nConnection: x-drop, close\r\nX-Drop: y\r\nE: 5\r\n"
                           b"F:\r\nG: 7\r\n\r\n", timeout=5)
    assert r.data.endswith(b"\r\n\r\nok"), r.data
    got = [l for l in field_lines(r.data)
           if l[:1] == b"R" or l.split(b":")[0].lower() == b"x-gone"]
    assert got == [b"R1: a", b"R2: b", b"R3: c", b"R4: d", b"R5: e", b"R6: f", b"R7: ",
                   b"R8: h"], got
    assert len(seen) == 1
    ours = (b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"x-drop", b"connection")
    sent = [l for l in field_lines(seen[0] + b"\r\n\r\n")
            if l.split(b":")[0].lower() in ours]
    assert sent == [b"A: 1", b"B: 2", b"C: 3", b"D: 4", b"E: 5", b"F: ", b"G: 7"], sent


# ---------------------------------------------------------------- stray bytes

BUFFER = 16384
HEAD_A = b"HTTP/1.1 200 OK\r\nContent-Length: %05d\r\n\r\n"
BODY_A = BUFFER - len(HEAD_A % 0)   # head + body fill the backend buffer exactly
SMUGGLED = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Smuggled: yes\r\n\r\nPOISON"


def exact_then_extra(c, n):
    """/a: a response of exactly BUFFER bytes, then a whole second response nobody
    asked for, in one send; anything else: 'ok'."""
    for head in each_head(c):
        if head.startswith(b"GET /a "):
            time.sleep(0.3)           # let the pipelined/queued request arrive first
            c.sendall((HEAD_A % BODY_A) + b"A" * BODY_A + SMUGGLED)
        else:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def test_bytes_after_a_full_read_response_are_not_the_next_pipelined_response(atrium):
    with RawBackend(exact_then_extra) as be:
        a = atrium(conf_for(be.port, main_extra="buffer_size 16k;"))
        with connect(a.port) as s:
            s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n"
                      b"Connection: close\r\n\r\n")
            data = read_all(s, timeout=5).data
        assert b"POISON" not in data and b"X-Smuggled" not in data, data[-300:]
        assert data.endswith(b"\r\n\r\nok"), data[-300:]
        assert data.count(b"HTTP/1.1 200 OK") == 2


def test_bytes_after_a_full_read_response_are_not_a_queued_clients_response(atrium):
    with RawBackend(exact_then_extra) as be:
        a = atrium(conf_for(be.port, server_extra=" max_conns=1", upstream_extra="queue 4;",
                            main_extra="buffer_size 16k;"))
        first = Background(get, a.port, "/a")
        time.sleep(0.1)               # /a holds the only slot; /b waits in the queue
        second = Background(get, a.port, "/b")
        ra, rb = first.result(10), second.result(10)
        assert ra.status == 200 and len(ra.body) == BODY_A, ra
        assert (rb.status, rb.body) == (200, b"ok"), rb
        assert rb.get("x-smuggled") is None


# ---------------------------------------------------------------- upload timeouts

def read_body_then_answer(c, n):
    head, rest = read_head(c)
    if head is None:
        return
    want, got = content_length(head), len(rest)
    while got < want:
        d = c.recv(1 << 20)
        if not d:
            return
        got += len(d)
    body = b"got %d" % got
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    time.sleep(1)


def upload(port, total, fast, trickle, gap):
    """POST total bytes: `fast` of them at once, then `trickle`-byte pieces every gap
    seconds, from a thread (the send may block: backpressure); returns the raw
    response read meanwhile."""
    s = connect(port, timeout=15)
    s.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
              % total)

    def send():
        try:
            s.sendall(b"x" * fast)
            sent = fast
            while sent < total:
                time.sleep(gap)
                n = min(trickle, total - sent)
                s.sendall(b"y" * n)
                sent += n
        except OSError:
            pass                      # the proxy answered and closed first

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    data = read_all(s, timeout=15).data
    s.close()
    sender.join(5)
    return data


def test_send_deadline_ends_when_the_backend_takes_the_write(atrium):
    """8 MB at once (a backend write has to wait), then 100 bytes every 0.4 s for
    2.4 s: the backend reads everything as it comes, so no send timeout (1 s)."""
    with RawBackend(read_body_then_answer) as be:
        a = atrium(conf_for(be.port, upstream_extra="send_timeout 1s; read_timeout 10s;",
                            main_extra="body_timeout 5s;"))
        total = 8 * 1024 * 1024 + 600
        data = upload(a.port, total, 8 * 1024 * 1024, 100, 0.4)
        assert status_of(data) == 200, data[:200]
        assert data.endswith(b"got %d" % total), data[-100:]


def stall(c, n):
    read_head(c)
    time.sleep(8)                     # never reads the body


def test_a_backend_that_stops_reading_an_upload_gets_504_not_408(atrium):
    """The client sent its body at once and Atrium stopped reading it (its buffer is
    full, the backend takes nothing): the backend's send_timeout decides (504), not
    the client's body_timeout (408)."""
    with RawBackend(stall) as be:
        a = atrium(conf_for(be.port, upstream_extra="send_timeout 2500ms;",
                            main_extra="body_timeout 1s;"))
        t0 = time.monotonic()
        data = upload(a.port, 8 * 1024 * 1024, 8 * 1024 * 1024, 1, 0)
        assert status_of(data) == 504, data[:200]
        assert time.monotonic() - t0 >= 2.0


# ---------------------------------------------------------------- stale retry

def close_on_second_request(c, n):
    """Answers the first request on a connection; on the second, waits a little and
    closes without a word: a keep-alive connection the server dropped."""
    for count, _ in enumerate(each_head(c), 1):
        if count >= 2:
            time.sleep(0.3)
            return
        time.sleep(0.1)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def test_stale_retry_keeps_its_slot_when_others_are_queued(atrium):
    with RawBackend(close_on_second_request) as be:
        a = atrium(conf_for(be.port, server_extra=" max_conns=1",
                            upstream_extra="queue 4; queue_timeout 10s;"))
        assert get(a.port, "/1").status == 200          # leaves a pooled connection
        second = Background(get, a.port, "/2")          # reuses it: stale, retried
        time.sleep(0.1)
        third = Background(get, a.port, "/3")           # queued behind /2
        r2, r3 = second.result(10), third.result(10)
        assert (r2.status, r2.body) == (200, b"ok"), r2
        assert (r3.status, r3.body) == (200, b"ok"), r3


# ---------------------------------------------------------------- early answer

def early_answer_then_wait(c, n):
    """Answers at once with 4 MiB of a chunked body (no end), then only drains
    what the proxy sends."""
    read_head(c)
    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    block = b"10000\r\n" + b"x" * 65536 + b"\r\n"
    for _ in range(64):
        c.sendall(block)
    while c.recv(65536):
        pass


def test_a_stalled_body_is_timed_after_an_early_answer_was_written(atrium):
    """The client sends 1000 of 1,000,000 body bytes, reads the early answer slowly
    (the write waits: send_timeout runs, body_timeout does not), then stops sending:
    body_timeout must run again once the write is done (the connection stayed open
    for good)."""
    with RawBackend(early_answer_then_wait) as be:
        a = atrium(conf_for(be.port, upstream_extra="send_timeout 30s; read_timeout 30s;",
                            main_extra="body_timeout 1500ms; send_timeout 30s;"))
        s = connect(a.port, timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"z" * 1000)
        time.sleep(2)                 # not reading: the proxy's write to us waits
        t0 = time.monotonic()
        r = read_all(s, timeout=10)   # read everything; the body never comes
        s.close()
        assert r.data.startswith(b"HTTP/1.1 200"), r.data[:100]
        assert r.closed or r.reset, "the connection stayed open"
        assert time.monotonic() - t0 < 8


# ---------------------------------------------------------------- FastCGI

def fcgi_read_request(c):
    """Records of one FastCGI request up to its STDIN terminator: (params_len, stdin)."""
    buf, params, stdin = b"", 0, bytearray()
    while True:
        while len(buf) < 8:
            d = c.recv(65536)
            if not d:
                return None
            buf += d
        _, rtype, _, clen, plen = struct.unpack(">BBHHB", buf[:7])
        while len(buf) < 8 + clen + plen:
            d = c.recv(1 << 20)
            if not d:
                return None
            buf += d
        content, buf = buf[8:8 + clen], buf[8 + clen + plen:]
        if rtype == 4:
            params += clen
        elif rtype == 5:
            if clen == 0:
                return params, bytes(stdin)
            stdin += content


def fcgi_reply(c, body):
    out = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body
    rec = lambda t, data: struct.pack(">BBHHBx", 1, t, 1, len(data), 0) + data
    c.sendall(rec(6, out) + rec(6, b"") + rec(3, b"\0" * 8))


def fcgi_strict(c, n):
    """Answers only once STDIN has ended, like an application that reads its input
    to the end; says how many body bytes it got."""
    while True:
        req = fcgi_read_request(c)
        if req is None:
            return
        fcgi_reply(c, b"stdin %d" % len(req[1]))


def fcgi_conf(port, extra=""):
    return """%s
upstream app { protocol fastcgi; server 127.0.0.1:%d; read_timeout 3s; }
host * { route / { proxy app; } }
""" % (extra, port)


def test_fastcgi_request_without_body_ends_its_stdin(atrium):
    """A GET's STDIN stream is terminated too (an empty STDIN record): an application
    that reads its input to the end used to wait for it until read_timeout (504)."""
    with RawBackend(fcgi_strict) as be:
        a = atrium(fcgi_conf(be.port))
        for _ in range(2):            # the second on the kept connection
            r = get(a.port, "/x")
            assert (r.status, r.body) == (200, b"stdin 0"), r
        r = http_request(a.port, "POST", "/x", body=b"abc")
        assert (r.status, r.body) == (200, b"stdin 3"), r


def fcgi_slow_reader(c, n):
    time.sleep(1.0)                   # the body piles up in Atrium's input buffer
    fcgi_strict(c, n)


def test_fastcgi_body_after_a_huge_head_is_framed_not_fatal(atrium):
    """An input buffer grown for a 6 MB head, then filled with body while the
    application is slow: the body goes out in records of at most 64 KiB (a larger
    piece reached the record encoder and aborted the whole process)."""
    with RawBackend(fcgi_slow_reader) as be:
        a = atrium(fcgi_conf(be.port, "max_header_size 8m; max_body_size 64m;"))
        pad = "".join("X_Pad_%d: %s\r\n" % (i, "p" * 65000) for i in range(95))
        body = 16 << 20
        with connect(a.port, timeout=30) as s:
            s.sendall(("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s"
                       "Connection: close\r\n\r\n" % (body, pad)).encode())
            s.sendall(b"b" * body)
            r = read_all(s, timeout=20)
        assert r.status == 200, r.data[:200]
        assert r.responses()[0].body == b"stdin %d" % body, r.data[-100:]
        assert a.alive()


# ---------------------------------------------------------------- reset

def reset_mid_close_delimited_body(c, n):
    read_head(c)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npartial-body")
    time.sleep(0.2)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST


def test_a_reset_never_ends_a_close_delimited_body(atrium):
    """A body delimited by the backend's close ends only with a clean close: after a
    reset the client sees a cut transfer (no last chunk, connection closed), never
    a complete one (a reset used to count as the end)."""
    with RawBackend(reset_mid_close_delimited_body) as be:
        a = atrium(conf_for(be.port))
        with connect(a.port) as s:
            s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            r = read_all(s, timeout=5)
        assert r.data.startswith(b"HTTP/1.1 200"), r.data[:100]
        assert b"partial-body" in r.data
        assert not r.data.endswith(b"0\r\n\r\n"), r.data[-60:]
        assert r.closed or r.reset, "the connection stayed open as if the body were complete"


def no_status_line(c, n):
    head, _ = read_head(c)
    if b"/status" in head.split(b"\r\n")[0]:
        c.sendall(b"Status: 404 Nope\r\nContent-Length: 2\r\n\r\nno")
    else:
        c.sendall(b"X-Foo: bar\r\nContent-Length: 6\r\n\r\nnoline")


def test_an_http_backend_answer_without_a_status_line_is_502(atrium):
    """CGI-style header blocks are for gateway protocols: an HTTP server's answer
    without a status line is invalid (it was turned into a 200, or the 404 its
    Status field named)."""
    with RawBackend(no_status_line) as be:
        a = atrium(conf_for(be.port))
        assert get(a.port, "/x").status == 502
        assert get(a.port, "/status").status == 502


def fcgi_body_anyway(c, n):
    """Always sends a body, even to HEAD: the gateway must drop it."""
    while True:
        req = fcgi_read_request(c)
        if req is None:
            return
        rec = lambda t, data: struct.pack(">BBHHBx", 1, t, 1, len(data), 0) + data
        c.sendall(rec(6, b"Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"))
        time.sleep(0.05)              # the end comes in a later read
        c.sendall(rec(6, b"") + rec(3, b"\0" * 8))


def test_fastcgi_body_to_head_is_discarded(atrium):
    """RFC 3875 §4.3.2: a body the application sends to a HEAD request is discarded
    (it gave 502, or a cut connection)."""
    with RawBackend(fcgi_body_anyway) as be:
        a = atrium(fcgi_conf(be.port))
        with connect(a.port) as s:
            s.sendall(b"HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            r = read_all(s, timeout=5)
        rs = r.responses(["HEAD", "GET"])
        assert [x.status for x in rs] == [200, 200], r.data
        assert rs[0].body == b"" and rs[1].body == b"hello"


def http10_answer(c, n):
    read_head(c)
    c.sendall(b"HTTP/1.0 200 OK\r\nVia: 1.0 inner\r\nContent-Length: 2\r\n\r\nok")


def test_response_via_names_the_version_it_came_with(atrium):
    """Via on a response says which protocol version it was received with (an
    HTTP/1.0 backend's answer was marked 1.1), after the earlier hops'."""
    with RawBackend(http10_answer) as be:
        a = atrium(conf_for(be.port))
        r = get(a.port, "/x")
        assert r.status == 200 and r.get("via").startswith("1.0 inner, 1.0 "), r.headers


# ---------------------------------------------------------------- tunnels

def push_only_tunnel(c, n):
    """Switches protocols, then only sends: 10 small frames 0.3 s apart."""
    read_head(c)
    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
              b"Upgrade: websocket\r\n\r\n")
    for i in range(10):
        time.sleep(0.3)
        c.sendall(b"\x81\x01" + bytes([48 + i]))
    time.sleep(0.5)


def test_a_tunnel_the_server_pushes_on_is_not_idle(atrium):
    """Bytes the server pushes keep a tunnel alive: a client that only listens for
    3 s is not cut by a 1 s body_timeout (it was: only client bytes counted)."""
    with RawBackend(push_only_tunnel) as be:
        a = atrium(conf_for(be.port, main_extra="body_timeout 1s;"))
        with connect(a.port, timeout=10) as s:
            s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                      b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            r = read_all(s, timeout=8)
        head, _, frames = r.data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), r.data[:200]
        assert frames == b"".join(b"\x81\x01" + bytes([48 + i]) for i in range(10)), frames


def answer_then_reset(c, n):
    """Answers one request and resets the connection right behind the answer."""
    head, _ = read_head(c)
    if head is None:
        return
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_write_to_a_reset_pooled_connection_is_retried(atrium):
    """A pipelined GET takes the pooled connection at once, before the reset behind
    the first answer is read; the write fails, and the request goes again on a new
    connection (checking whether it had a body looked at the already consumed head
    and crashed the worker)."""
    with RawBackend(answer_then_reset) as be:
        a = atrium(conf_for(be.port))
        for _ in range(5):
            r = raw_ex(a.port, b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
                       b"GET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=5)
            assert [x.status for x in r.responses()] == [200, 200], r.data
            assert a.alive()


# ---------------------------------------------------------------- HEAD framing

def head_chunked(c, n):
    """HEAD: the head a chunked GET answer would have, and no body; GET: 'ok'."""
    for head in each_head(c):
        if head.startswith(b"HEAD "):
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: head\r\n\r\n")
        else:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def test_head_answer_keeps_chunked_framing_field_and_has_no_body(atrium):
    """RFC 9110 9.3.2: a HEAD answer carries the fields a GET would get; the
    backend's Transfer-Encoding: chunked went missing. No body (not even the
    last chunk) may follow, or the keep-alive connection goes out of step."""
    with RawBackend(head_chunked) as be:
        a = atrium(conf_for(be.port))
        with connect(a.port) as s:
            s.sendall(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n"
                      b"Connection: close\r\n\r\n")
            data = read_all(s, timeout=5).data
        first, _, rest = data.partition(b"\r\n\r\n")
        assert b"X-Kind: head" in first, data
        assert b"\r\ntransfer-encoding: chunked" in first.lower(), first
        assert rest.startswith(b"HTTP/1.1 200 OK\r\n"), rest[:80]   # nothing in between
        assert rest.endswith(b"\r\n\r\nok"), rest[-80:]


def test_error_log_lines_name_the_client_and_the_request(atrium):
    """A line about a request says who asked what: the worker, the client's
    address and the request line."""
    a = atrium(proxy_conf([free_port()], upstream_extra="retries 0;"))
    assert get(a.port, "/some/path?q=1").status == 502
    assert wait_until(lambda: 'w1 127.0.0.1 "GET /some/path?q=1": upstream app: ' in a.error_log,
                      5), a.error_log[-2000:]
