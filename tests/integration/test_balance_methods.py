"""`balance hash KEY` and `balance ewma` through the proxy core: the same key
always reaches the same server and keys spread over all of them, a server that
goes down moves only its own keys; a slow server gets fewer requests under
ewma."""

import http.server
import threading
import time
from collections import Counter

from conftest import get, proxy_conf


def test_hash_by_header_is_sticky_and_moves_only_a_dead_servers_keys(atrium, origin):
    servers = [origin("A"), origin("B"), origin("C")]
    a = atrium(proxy_conf(servers, balance="hash header=X-User",
                          upstream_extra="fail_timeout 30s;"))
    where = {}
    for i in range(60):
        user = "user%d" % i
        got = {get(a.port, "/name", headers=[("X-User", user)]).body for _ in range(3)}
        assert len(got) == 1, (user, got)  # sticky
        where[user] = got.pop()
    assert set(Counter(where.values())) == {b"A", b"B", b"C"}  # spread
    # without the header the client's address is the key: one server for us
    assert len({get(a.port, "/name").body for _ in range(5)}) == 1
    servers[1].stop()
    moved = 0
    for user, before in where.items():
        now = get(a.port, "/name", headers=[("X-User", user)])
        assert now.status == 200
        if before != b"B":
            assert now.body == before, (user, before, now.body)  # others' keys stay
        else:
            moved += 1
            assert now.body in (b"A", b"C")
    assert moved > 0


def test_hash_by_uri(atrium, origin):
    servers = [origin("A"), origin("B"), origin("C")]
    a = atrium(proxy_conf(servers, balance="hash uri"))
    seen = Counter()
    for i in range(40):
        bodies = {get(a.port, "/name?page=%d" % i).body for _ in range(2)}
        assert len(bodies) == 1
        seen[bodies.pop()] += 1
    assert len(seen) == 3


class Slow(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        time.sleep(0.05)
        self.send_response(200)
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"slow")

    def log_message(self, *a):
        pass


def test_ewma_sends_fewer_requests_to_a_slow_server(atrium, origin):
    fast = origin("fast")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        a = atrium(proxy_conf([srv.server_address[1], fast], balance="ewma"))
        counts = Counter()
        for _ in range(60):
            counts[get(a.port, "/name").body] += 1
        assert counts[b"fast"] > 3 * counts[b"slow"], counts
        assert counts[b"slow"] >= 1, counts  # it was tried and measured
    finally:
        srv.shutdown()
        srv.server_close()
