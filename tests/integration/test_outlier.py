"""Passive outlier detection (`outlier` in an upstream) and `slow_start`,
through the real binary: a server that answers 500s is ejected after
`consecutive` of them in a row and comes back once the ejection ends; one that
hangs is ejected after its response timeouts; ejection never takes the whole
pool (the max_ejected share, and a server still used when nothing else is
left); each change is logged once and shown on the status page; a server that
joins with slow_start gets a share of the requests that grows over its window.

Counts, not speeds: every wait polls for a state (a log line, a metric), and
the requests are sequential on one worker, so the counts are exact."""

import http.server
import re
import threading
import time

from conftest import get, proxy_conf, wait_until

SAMPLE_RE = re.compile(r'^([a-z_]+)\{(.*)\} (\S+)$')


class Toggle(http.server.BaseHTTPRequestHandler):
    """A backend whose answer the test switches: `code` for every request,
    after `delay` seconds. Each server gets its own subclass."""
    protocol_version = "HTTP/1.1"
    code, delay, name = 200, 0.0, "T"

    def do_GET(self):
        time.sleep(type(self).delay)
        body = type(self).name.encode()
        try:
            self.send_response(type(self).code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # Atrium gave up on a hanging answer
            pass

    def log_message(self, *a):
        pass


def toggle(name):
    cls = type("Toggle" + name, (Toggle,), {"name": name, "code": 200, "delay": 0.0})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), cls)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    srv.cls = cls
    srv.port = srv.server_address[1]
    return srv


def stop(*servers):
    for s in servers:
        s.shutdown()
        s.server_close()


def metric(port, name, server_port):
    """The value of a per-server sample for 127.0.0.1:server_port."""
    text = get(port, "/_status").body.decode()
    for line in text.splitlines():
        m = SAMPLE_RE.match(line)
        if m and m.group(1) == name and 'server="127.0.0.1:%d"' % server_port in m.group(2):
            return float(m.group(3))
    raise AssertionError("no %s for port %d in\n%s" % (name, server_port, text))


STATUS = "route /_status { status; }"


def answers(port, n):
    return [(r.status, r.body) for r in (get(port, "/name") for _ in range(n))]


def test_a_server_answering_500s_is_ejected_and_comes_back(atrium, origin):
    a = origin("A")
    b = toggle("B")
    try:
        at = atrium(proxy_conf([a, (b.port, "slow_start=1m")], hosts_extra=STATUS,
                               upstream_extra="outlier consecutive=3 interval=1s max_interval=4s "
                                              "errors=5xx;"))
        assert sorted(answers(at.port, 4)) == [(200, b"A"), (200, b"A"), (200, b"B"), (200, b"B")]
        b.cls.code = 500
        got = answers(at.port, 20)
        # round robin alternates: B answers 3 times in a row, then is left out
        assert got.count((500, b"B")) == 3, got
        assert got.count((200, b"A")) == 17, got
        assert "server 127.0.0.1:%d ejected for 1000ms: 3 failures in a row" % b.port \
            in at.error_log, at.error_log[-2000:]
        assert metric(at.port, "atrium_upstream_ejected", b.port) == 1
        assert metric(at.port, "atrium_upstream_ejections_total", b.port) == 1
        assert metric(at.port, "atrium_upstream_ejected", a.port) == 0
        # healthy again: once the ejection ends it gets requests, and "back" is logged once
        b.cls.code = 200
        assert wait_until(lambda: get(at.port, "/name").body == b"B", 15)
        assert wait_until(lambda: "is back from its ejection" in at.error_log, 5)
        assert metric(at.port, "atrium_upstream_ejected", b.port) == 0
        # it came back with slow_start: the ramp has begun, not finished
        assert 0 < metric(at.port, "atrium_upstream_weight_ratio", b.port) < 1
        assert metric(at.port, "atrium_upstream_weight_ratio", a.port) == 1
        answers(at.port, 10)
        assert at.error_log.count("ejected for") == 1
        assert at.error_log.count("is back from its ejection") == 1
        # failing again: ejected again, counted
        b.cls.code = 503
        assert wait_until(lambda: (answers(at.port, 4), at.error_log.count("ejected for"))[1] == 2,
                          15)
        assert metric(at.port, "atrium_upstream_ejections_total", b.port) == 2
    finally:
        stop(b)


def test_an_applications_500s_do_not_eject_by_default(atrium, origin):
    """errors=gateway (the default) counts 502, 503, 504 and failed exchanges:
    a 500 is the application's answer about one request, not the server's
    health."""
    a = origin("A")
    b = toggle("B")
    b.cls.code = 500
    try:
        at = atrium(proxy_conf([a, b.port], hosts_extra=STATUS,
                               upstream_extra="outlier consecutive=2 interval=1m;"))
        got = answers(at.port, 20)
        assert got.count((500, b"B")) == 10, got
        assert "ejected" not in at.error_log
        b.cls.code = 503
        got = answers(at.port, 20)
        assert got.count((503, b"B")) == 2, got  # then it is out
        assert metric(at.port, "atrium_upstream_ejected", b.port) == 1
    finally:
        stop(b)


def test_failures_are_counted_across_workers(atrium, origin):
    a = origin("A")
    b = toggle("B")
    b.cls.code = 502
    try:
        at = atrium(proxy_conf([a, b.port], main_extra="workers 2;", hosts_extra=STATUS,
                               upstream_extra="outlier consecutive=4 interval=1m;"))
        # each request is a new connection, landing on either worker: counted per
        # worker, B's failures would mostly split and take more than 4 to eject it;
        # counted together, exactly 4 reach a client
        got = answers(at.port, 40)
        assert got.count((502, b"B")) == 4, got
        assert got.count((200, b"A")) == 36, got
        assert at.error_log.count("ejected for 60000ms: 4 failures in a row") == 1
        assert metric(at.port, "atrium_upstream_ejections_total", b.port) == 1
    finally:
        stop(b)


def test_a_hanging_server_is_ejected_after_its_timeouts(atrium, origin):
    a = origin("A")
    b = toggle("B")
    try:
        at = atrium(proxy_conf([a, b.port], hosts_extra=STATUS, upstream_extra=(
            "read_timeout 300ms; outlier consecutive=2 interval=1m;")))
        assert sorted(answers(at.port, 2)) == [(200, b"A"), (200, b"B")]
        b.cls.delay = 3.0
        got = answers(at.port, 12)
        assert [s for s, _ in got].count(504) == 2, got  # two timeouts, then left out
        assert got.count((200, b"A")) == 10, got
        assert "ejected for 60000ms: 2 failures in a row" in at.error_log
        assert metric(at.port, "atrium_upstream_ejected", b.port) == 1
    finally:
        b.cls.delay = 0.0
        stop(b)


def test_ejection_never_takes_the_whole_pool(atrium, origin):
    b, c = toggle("B"), toggle("C")
    b.cls.code = c.cls.code = 500
    try:
        at = atrium(proxy_conf([b.port, c.port], hosts_extra=STATUS,
                               upstream_extra="outlier consecutive=2 interval=1m errors=5xx;"))
        got = answers(at.port, 20)
        # one of the two goes (50% of 2); the other keeps every request
        assert at.error_log.count("ejected for") == 1, at.error_log[-2000:]
        assert all(s == 500 for s, _ in got), got
        ejected = [p for p in (b.port, c.port)
                   if metric(at.port, "atrium_upstream_ejected", p) == 1]
        assert len(ejected) == 1
        kept = c if ejected == [b.port] else b
        assert {r for r in got[-10:]} == {(500, kept.cls.name.encode())}, got
    finally:
        stop(b, c)


def test_an_ejected_server_still_serves_when_nothing_else_is_left(atrium, origin):
    b = toggle("B")
    b.cls.code = 500
    dead = toggle("D")
    dead_port = dead.port
    stop(dead)  # a port that refuses
    try:
        at = atrium(proxy_conf([b.port, dead_port], hosts_extra=STATUS, upstream_extra=(
            "retries 1; fail_timeout 1m; outlier consecutive=2 interval=1m max_ejected=50% "
            "errors=5xx;")))
        got = answers(at.port, 10)
        assert "ejected for 60000ms" in at.error_log, at.error_log[-2000:]
        assert metric(at.port, "atrium_upstream_ejected", b.port) == 1
        assert metric(at.port, "atrium_upstream_down", dead_port) == 1
        # B is ejected and the other is down: B still gets every request, no 503
        assert got[-5:] == [(500, b"B")] * 5, got
    finally:
        stop(b)


def test_one_server_and_outlier_off_are_never_ejected(atrium, origin):
    b = toggle("B")
    b.cls.code = 500
    try:
        for extra in ("outlier consecutive=1 max_ejected=100% errors=5xx;", "outlier off;"):
            at = atrium(proxy_conf([b.port], upstream_extra=extra))
            assert answers(at.port, 6) == [(500, b"B")] * 6
            assert "ejected" not in at.error_log
            at.stop()
    finally:
        stop(b)


def test_slow_start_share_grows_over_the_window(atrium, origin):
    a, b = origin("A"), origin("B")
    conf = proxy_conf([a], hosts_extra=STATUS)
    at = atrium(conf)
    assert answers(at.port, 2) == [(200, b"A")] * 2
    # B joins by a reload with slow_start: it starts with a small share
    assert at.reload(proxy_conf([a, (b, "slow_start=12s")], hosts_extra=STATUS))
    ratio = lambda: metric(at.port, "atrium_upstream_weight_ratio", b.port)  # noqa: E731

    def batch():
        return [body for _, body in answers(at.port, 40)].count(b"B")

    first = batch()
    assert ratio() < 1
    assert wait_until(lambda: ratio() >= 0.5, 30, 0.05)
    middle = batch()
    assert wait_until(lambda: ratio() == 1, 30, 0.1)
    last = batch()
    assert last == 20  # full weight: round robin alternates
    assert first < middle <= last, (first, middle, last)
    assert first <= 10, first  # at most a quarter while the ramp starts
