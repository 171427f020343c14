"""Bodies stream both ways with backpressure and bounded memory, and are
re-serialised canonically (no chunk extensions reach the origin)."""

import hashlib
import socket
import time

from conftest import (Conn, Reader, RssSampler, bytes_sha256, connect, gen_blocks, get,
                      proxy_conf, raw_ex, read_all, read_response, request_bytes, sha256_hex,
                      wait_until)

BIG = 256 << 20
RSS_LIMIT_KB = 16 * 1024


def warm(a):
    for _ in range(3):
        assert get(a.port, "/name").status == 200


def test_upload_256m_chunked_bounded_memory(atrium, origin):
    o = origin("A")
    a = atrium(proxy_conf([o], main_extra="body_timeout 30s;"))
    warm(a)
    with RssSampler(a) as rss, connect(a.port, timeout=30.0) as s:
        s.sendall(request_bytes("POST", "/sha256", headers=[
            ("Transfer-Encoding", "chunked"), ("Connection", "close")]))
        h = hashlib.sha256()
        for blk in gen_blocks(BIG, "up"):
            h.update(blk)
            s.sendall(b"%x\r\n" % len(blk) + blk + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        r = read_response(Reader(s))
    assert r.status == 200, r
    assert r.text() == h.hexdigest() == bytes_sha256(BIG, "up")
    assert r.get("X-Body-Len") == str(BIG)
    assert rss.growth_kb < RSS_LIMIT_KB, "RSS grew by %d KiB" % rss.growth_kb
    assert len(rss.samples) > 3


def test_download_256m_slow_reader_bounded_memory(atrium, origin):
    o = origin("A")
    a = atrium(proxy_conf([o], main_extra="send_timeout 30s;"))
    warm(a)
    with RssSampler(a) as rss, connect(a.port, timeout=30.0) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        s.sendall(request_bytes("GET", "/bytes?n=%d&seed=down" % BIG,
                                headers=[("Connection", "close")]))
        rd = Reader(s)
        head = read_response(rd, "HEAD")          # head only; the body is read here
        assert head.status == 200 and head.get("Content-Length") == str(BIG), head
        h = hashlib.sha256()
        n = len(rd.buf)
        h.update(bytes(rd.buf))
        deadline = time.monotonic() + 180
        while n < BIG and time.monotonic() < deadline:
            d = s.recv(256 * 1024)
            if not d:
                break
            n += len(d)
            h.update(d)
            time.sleep(0.001)
    assert n == BIG, "got %d of %d bytes" % (n, BIG)
    assert h.hexdigest() == bytes_sha256(BIG, "down")
    assert rss.growth_kb < RSS_LIMIT_KB, "RSS grew by %d KiB" % rss.growth_kb


def test_upload_content_length_32m(atrium, origin):
    o = origin("A")
    a = atrium(proxy_conf([o]))
    n = 32 << 20
    with connect(a.port, timeout=30.0) as s:
        s.sendall(request_bytes("POST", "/echo", headers=[
            ("Content-Length", str(n)), ("Connection", "close")]))
        for blk in gen_blocks(n, "cl"):
            s.sendall(blk)
        doc = read_response(Reader(s)).json()
    assert doc["body_len"] == n
    assert doc["body_sha256"] == bytes_sha256(n, "cl")


def test_chunked_download_exact(atrium, origin):
    o = origin("A")
    a = atrium(proxy_conf([o]))
    n = 8 * 1024 * 1024 + 12345
    with Conn(a.port, timeout=30.0) as c:
        r = c.request("GET", "/bytes?n=%d&seed=ch&chunked=1" % n)
        assert r.status == 200 and len(r.body) == n
        assert sha256_hex(r.body) == bytes_sha256(n, "ch")
        assert c.request("GET", "/name").body == b"A"     # framing kept in sync


def test_chunk_extensions_never_reach_origin(atrium, origin):
    """Reliability 0.3: de-chunk, drop extensions, re-frame with exactly one of
    Content-Length or Transfer-Encoding: chunked."""
    o = origin("A")
    a = atrium(proxy_conf([o]))
    body = (b"5;name=value\r\nhello\r\n"
            b"1;a;b=\"q;x\"\r\n \r\n"
            b"000006;ext\r\nworld!\r\n"
            b"0;last=1\r\n\r\n")
    r = raw_ex(a.port, request_bytes("POST", "/echo", headers=[
        ("Transfer-Encoding", "chunked"), ("Connection", "close")]) + body, timeout=5.0)
    doc = r.responses()[0].json()
    assert doc["body_sha256"] == sha256_hex(b"hello world!")
    assert doc["body_len"] == 12
    assert doc["chunk_exts"] == [], doc
    framing = [(k.lower(), v) for k, v in doc["headers"]
               if k.lower() in ("content-length", "transfer-encoding")]
    assert framing in ([("content-length", "12")], [("transfer-encoding", "chunked")]), framing
    assert o.stats()["bad_requests"] == 0


def test_client_aborts_upload(atrium, origin):
    """A client that vanishes mid-body leaves Atrium healthy and the origin
    with a broken (never completed) request."""
    o = origin("A")
    a = atrium(proxy_conf([o]))
    for _ in range(3):
        with connect(a.port) as s:
            s.sendall(request_bytes("POST", "/sha256", headers=[("Content-Length", str(8 << 20))]))
            for blk in gen_blocks(1 << 20, "abort"):
                s.sendall(blk)
    r = get(a.port, "/name")
    assert (r.status, r.body) == (200, b"A")
    assert a.alive()


def test_client_aborts_download(atrium, origin):
    o = origin("A")
    a = atrium(proxy_conf([o]))
    warm(a)
    with RssSampler(a) as rss:
        for _ in range(3):
            with connect(a.port) as s:
                s.sendall(request_bytes("GET", "/bytes?n=%d" % (64 << 20)))
                got = 0
                while got < (1 << 20):
                    d = s.recv(65536)
                    assert d
                    got += len(d)
    for _ in range(3):
        r = get(a.port, "/name")
        assert (r.status, r.body) == (200, b"A")
    assert o.stats()["inflight"] == 0 or wait_until(lambda: o.stats()["inflight"] == 0, 5.0), \
        "the backend transfer was not aborted"
    assert rss.growth_kb < RSS_LIMIT_KB


def test_many_small_chunks(atrium, origin):
    o = origin("A")
    a = atrium(proxy_conf([o]))
    parts = [bytes([65 + i % 26]) * (1 + i % 7) for i in range(3000)]
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    r = raw_ex(a.port, request_bytes("POST", "/sha256", headers=[
        ("Transfer-Encoding", "chunked"), ("Connection", "close")]) + body, timeout=10.0)
    resp = r.responses()[0]
    assert resp.text() == sha256_hex(b"".join(parts))


def test_chunked_body_split_at_its_framing(atrium, origin):
    """Reads that carry only chunk framing (a size line, a CRLF) are consumed like
    the data around them: the body arrives whole however TCP splits it (it used to
    be re-read as data: 400)."""
    o = origin()
    a = atrium(proxy_conf([o]))
    for pieces in ([b"5\r\nhello\r\n", b"3\r\n", b"abc\r\n0\r\n\r\n"],
                   [b"5\r\nhello", b"\r\n", b"3\r\nabc\r\n", b"0\r\n", b"\r\n"]):
        with connect(a.port) as s:
            s.sendall(b"POST /sha256 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      b"Connection: close\r\n\r\n")
            for p in pieces:
                time.sleep(0.15)
                s.sendall(p)
            r = read_all(s, timeout=5)
        assert r.status == 200, r.data[:200]
        assert r.data.endswith(hashlib.sha256(b"helloabc").hexdigest().encode()), r.data[-100:]
