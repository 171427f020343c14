"""WebSocket upgrade through the proxy (RFC 6455 echo origin)."""

from conftest import (Reader, connect, get, proxy_conf, read_all, read_response, ws_accept,
                      ws_frame, ws_handshake_request, ws_recv_frame)

MASK = b"\x11\x22\x33\x44"


def handshake(port):
    s = connect(port, timeout=10.0)
    req, key = ws_handshake_request()
    s.sendall(req)
    rd = Reader(s)
    r = read_response(rd)
    return s, rd, r, key


def test_websocket_echo(atrium, origin):
    o = origin("A")
    a = atrium(proxy_conf([o]))
    s, rd, r, key = handshake(a.port)
    with s:
        assert r.status == 101, r
        assert "websocket" in r.tokens("upgrade")
        assert "upgrade" in r.tokens("connection")
        assert r.get("Sec-WebSocket-Accept") == ws_accept(key)
        for msg in (b"hello", "\u00e9t\u00e9 \u2603".encode() * 40, b"z" * 70000):
            s.sendall(ws_frame(1, msg, mask=MASK))
            assert ws_recv_frame(rd) == (True, 1, msg)
        # close handshake, then the tunnel ends
        s.sendall(ws_frame(8, b"\x03\xe8", mask=MASK))
        fin, op, payload = ws_recv_frame(rd)
        assert op == 8 and payload == b"\x03\xe8"
        assert read_all(s, timeout=5.0).closed
    assert get(a.port, "/name").body == b"A"


def test_websocket_ping_binary_fragments(atrium, origin):
    o = origin("A")
    a = atrium(proxy_conf([o]))
    s, rd, r, key = handshake(a.port)
    with s:
        assert r.status == 101
        s.sendall(ws_frame(9, b"ping!", mask=MASK))
        assert ws_recv_frame(rd) == (True, 10, b"ping!")
        s.sendall(ws_frame(2, bytes(range(256)) * 4, mask=MASK))
        assert ws_recv_frame(rd) == (True, 2, bytes(range(256)) * 4)
        # a fragmented message, sent in one write
        s.sendall(ws_frame(1, b"frag-", fin=False, mask=MASK) + ws_frame(0, b"ment", mask=MASK))
        assert ws_recv_frame(rd) == (False, 1, b"frag-")
        assert ws_recv_frame(rd) == (True, 0, b"ment")


def test_websocket_and_http_side_by_side(atrium, origin):
    o = origin("A")
    a = atrium(proxy_conf([o]))
    s, rd, r, key = handshake(a.port)
    with s:
        assert r.status == 101
        for i in range(5):
            assert get(a.port, "/name").body == b"A"
            s.sendall(ws_frame(1, b"m%d" % i, mask=MASK))
            assert ws_recv_frame(rd) == (True, 1, b"m%d" % i)
