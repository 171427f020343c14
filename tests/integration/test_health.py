"""Active health checks (`health_check` in an upstream) against a real server
whose /healthz starts failing and recovers: it is taken out after `fails`
failed checks (no request reaches it), put back after `passes`, each change
logged once; a server that does not answer the check in time fails it too;
the directive's errors are FILE:LINE:COL."""

import http.server
import threading
import time

from conftest import free_port, get, proxy_conf, run_atrium, wait_until


class Toggle(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    health = 200
    delay = 0.0

    def do_GET(self):
        if self.path == "/":
            time.sleep(Toggle.delay)
            code, body = Toggle.health, b"health"
        else:
            code, body = 200, b"B"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_a_failing_health_check_takes_a_server_out_and_back(atrium, origin):
    a_srv = origin("A")
    b = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Toggle)
    threading.Thread(target=b.serve_forever, daemon=True).start()
    Toggle.health, Toggle.delay = 200, 0.0
    try:
        at = atrium(proxy_conf([a_srv, b.server_address[1]], upstream_extra=(
            "health_check path=/ interval=100ms timeout=300ms fails=2 passes=2;")))
        assert {get(at.port, "/name").body for _ in range(6)} == {b"A", b"B"}
        Toggle.health = 503
        assert wait_until(lambda: "fails its health check" in at.error_log, 5), at.error_log
        assert {get(at.port, "/name").body for _ in range(8)} == {b"A"}, at.error_log[-2000:]
        Toggle.health = 200
        assert wait_until(lambda: "passes its health check again" in at.error_log, 5)
        assert {get(at.port, "/name").body for _ in range(6)} == {b"A", b"B"}
        assert at.error_log.count("fails its health check") == 1  # logged once per change
        # a server that answers its check too late fails it as well
        Toggle.delay = 0.6
        assert wait_until(lambda: at.error_log.count("fails its health check") == 2, 5)
        assert "timed out" in at.error_log
        assert {get(at.port, "/name").body for _ in range(6)} == {b"A"}
        Toggle.delay = 0.0
        # the state survives a reload by the server's name
        assert at.reload()
        assert {get(at.port, "/name").body for _ in range(4)} == {b"A"}
    finally:
        b.shutdown()
        b.server_close()


def test_health_check_errors(tmp_path):
    for arg, col in (("path=healthz", 49), ("interval=5ms", 49), ("fails=0", 49), ("bogus=1", 49)):
        c = tmp_path / "c.conf"
        c.write_text("listen 127.0.0.1:%d;\nupstream app { server 127.0.0.1:1; health_check %s; }\n"
                     "host * { route / { proxy app; } }\n" % (free_port(), arg))
        r = run_atrium(["-t", "-c", str(c)])
        assert r.returncode != 0
        assert r.stderr.startswith("%s:2:%d: invalid health_check parameter '%s'" % (c, col, arg)), \
            r.stderr
