"""The test origin and the client helpers, checked on their own (no Atrium).

If these fail, every proxy test that relies on them is meaningless.
"""

import hashlib
import os
import threading

from conftest import (Conn, Reader, bytes_sha256, connect, gen_blocks, get, http_request,
                      raw_ex, read_response, request_bytes, ws_accept,
                      ws_frame, ws_handshake_request, ws_recv_frame)


def test_name_and_counters(origin):
    o = origin("A")
    r = get(o.port, "/")
    assert (r.status, r.body, r.get("X-Origin")) == (200, b"A", "A")
    assert get(o.port, "/name").body == b"A"
    st = o.stats()
    assert (st["reqs"], st["conns"]) == (2, 2)
    assert get(o.port, "/reqs").body == b"2"     # control requests are not counted
    with Conn(o.port) as c:
        for _ in range(5):
            assert c.request("GET", "/name").body == b"A"
    assert (o.reqs(), o.conns()) == (7, 3)


def test_echo_content_length_and_chunked(origin):
    o = origin("A")
    body = os.urandom(100000)
    doc = http_request(o.port, "POST", "/echo", body=body, headers=[("X-Z", "1")]).json()
    assert doc["body_len"] == len(body)
    assert doc["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert doc["framing"] == "length"
    assert ["X-Z", "1"] in doc["headers"]
    chunked = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n"
    r = raw_ex(o.port, request_bytes("POST", "/echo", headers=[
        ("Transfer-Encoding", "chunked"), ("Connection", "close")]) + chunked)
    doc = r.responses()[0].json()
    assert doc["body_sha256"] == hashlib.sha256(b"hello world").hexdigest()
    assert doc["chunk_exts"] == ["ext=1"] and doc["trailers"] == [["X-T", "1"]]
    assert doc["framing"] == "chunked"


def test_sha256_and_bytes(origin):
    o = origin("A")
    data = b"".join(gen_blocks(300000, "s"))
    assert len(data) == 300000
    r = http_request(o.port, "POST", "/sha256", body=data)
    assert r.text() == hashlib.sha256(data).hexdigest() == bytes_sha256(300000, "s")
    assert r.get("X-Body-Len") == "300000"
    r = get(o.port, "/bytes?n=300000&seed=s")
    assert r.get("Content-Length") == "300000" and r.body == data
    r = get(o.port, "/bytes?n=300000&seed=s&chunked=1")
    assert r.get("Transfer-Encoding") == "chunked" and r.body == data
    assert bytes_sha256(300000, "s") != bytes_sha256(300000, "t")


def test_pipelining_head_expect(origin):
    o = origin("A")
    reqs = (request_bytes("HEAD", "/bytes?n=1000") + request_bytes("GET", "/name")
            + request_bytes("GET", "/status/503", headers=[("Connection", "close")]))
    r = raw_ex(o.port, reqs)
    rs = r.responses(["HEAD", "GET", "GET"])
    assert [x.status for x in rs] == [200, 200, 503] and r.closed
    assert rs[0].get("Content-Length") == "1000" and rs[0].body == b""
    with Conn(o.port) as c:
        c.send(request_bytes("POST", "/sha256", headers=[("Expect", "100-continue"),
                                                          ("Content-Length", "3")]))
        assert c.response(keep_1xx=True).status == 100
        c.send(b"abc")
        assert c.response().text() == hashlib.sha256(b"abc").hexdigest()


def test_strict_request_parser(origin):
    o = origin("A")
    for bad in (b"GET / HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n",
                b"GET / HTTP/1.1\nHost: x\r\n\r\n",
                b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET / HTTP/1.1\r\n\r\n",
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"):
        r = raw_ex(o.port, bad)
        assert r.status == 400 and r.closed, bad
    assert o.stats()["bad_requests"] == 5


def test_bad_responses(origin):
    o = origin("A")
    for kind in ("cl-te", "dup-cl", "garbage", "obs-fold", "close-early", "partial-head"):
        r = raw_ex(o.port, request_bytes("GET", "/bad/" + kind))
        assert r.closed and r.data, kind
    r = raw_ex(o.port, request_bytes("GET", "/bad/no-response"))
    assert r.closed and r.data == b""


def test_hold_and_inflight(origin):
    o = origin("A")
    ts = [threading.Thread(target=get, args=(o.port, "/hold?ms=300")) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(5)
    assert o.stats()["max_inflight"] == 3


def test_websocket_echo(origin):
    o = origin("A")
    with connect(o.port) as s:
        req, key = ws_handshake_request()
        s.sendall(req)
        rd = Reader(s)
        r = read_response(rd)
        assert r.status == 101 and r.get("Sec-WebSocket-Accept") == ws_accept(key)
        for msg in (b"hi", b"x" * 300, b"y" * 70000):
            s.sendall(ws_frame(1, msg, mask=b"\x01\x02\x03\x04"))
            assert ws_recv_frame(rd) == (True, 1, msg)
        s.sendall(ws_frame(8, b"\x03\xe8", mask=b"abcd"))
        assert ws_recv_frame(rd)[1] == 8


def test_extra_data_and_early_hints(origin):
    o = origin("A")
    with Conn(o.port) as c:
        r = c.request("GET", "/bad/extra-data")
        assert (r.status, r.body) == (200, b"ok")
        assert c.response().body == b"POISON"      # the unrequested second response
    with Conn(o.port) as c:
        c.send(request_bytes("GET", "/early-hints"))
        assert c.response(keep_1xx=True).status == 103
        assert c.response().body == b"after-103"
