"""The SCGI backend against uWSGI running a WSGI app: the environ the app
sees (PATH_INFO, QUERY_STRING, HTTP_* and what must not become HTTP_*),
request bodies, response status and headers, one connection per request, and
concurrency."""

import hashlib
import json
import time

from conftest import (Background, Conn, bytes_sha256, gen_blocks, get, http_request, raw_ex,
                      request_bytes, wait_until)
from gateways import scgi_conf, tcp_established_to
from gateways import uwsgi_scgi  # noqa: F401  (pytest fixture)


def app_json(r):
    assert r.status == 200, r
    try:
        return r.json()
    except ValueError:
        raise AssertionError("the WSGI app did not answer JSON: %r" % (r,))


def test_get_environ(atrium, uwsgi_scgi):
    app = uwsgi_scgi()
    a = atrium(scgi_conf(app))
    r = get(a.port, "/py/x?y=1", headers=[("X-Custom", "hello"), ("Proxy", "http://evil"),
                                          ("Accept", "a/b"), ("Accept", "c/d")])
    doc = app_json(r)
    env, http = doc["environ"], doc["http"]
    assert env["PATH_INFO"] == "/py/x", env
    assert env.get("SCRIPT_NAME", "") == "", env
    assert env["QUERY_STRING"] == "y=1", env
    assert env["REQUEST_METHOD"] == "GET", env
    assert env.get("CONTENT_LENGTH") == "0", env          # SCGI: always present, first
    assert env.get("SCGI") == "1", env
    assert env.get("SERVER_PROTOCOL") == "HTTP/1.1", env
    assert env.get("REMOTE_ADDR") == "127.0.0.1", env
    assert env.get("SERVER_PORT") == str(a.port), env
    assert http.get("HTTP_X_CUSTOM") == "hello", http
    assert http.get("HTTP_HOST") == "example.test", http
    assert http.get("HTTP_ACCEPT") == "a/b, c/d", http
    assert "HTTP_PROXY" not in http, "httpoxy: the Proxy header reached the app: %r" % http
    assert doc["body_len"] == 0


def test_path_info_is_decoded(atrium, uwsgi_scgi):
    app = uwsgi_scgi()
    a = atrium(scgi_conf(app))
    env = app_json(get(a.port, "/py/a%20b/c%2Bd?q=%20"))["environ"]
    assert env["PATH_INFO"] == "/py/a b/c+d", env
    assert env["QUERY_STRING"] == "q=%20", env


def test_post_1m_byte_exact(atrium, uwsgi_scgi):
    n = 1 << 20
    app = uwsgi_scgi()
    a = atrium(scgi_conf(app))
    body = b"".join(gen_blocks(n, "scgi"))
    r = http_request(a.port, "POST", "/py/upload", body=body,
                     headers=[("Content-Type", "application/octet-stream")], timeout=20.0)
    doc = app_json(r)
    assert doc["environ"]["REQUEST_METHOD"] == "POST"
    assert doc["environ"]["CONTENT_LENGTH"] == str(n), doc["environ"]
    assert doc["environ"].get("CONTENT_TYPE") == "application/octet-stream", doc["environ"]
    assert doc["body_len"] == n, doc
    assert doc["body_sha256"] == bytes_sha256(n, "scgi") == hashlib.sha256(body).hexdigest()
    assert "HTTP_CONTENT_LENGTH" not in doc["http"] and "HTTP_CONTENT_TYPE" not in doc["http"]


def test_large_response_byte_exact(atrium, uwsgi_scgi):
    """8 MiB without Content-Length: the response ends when the app closes."""
    blocks = 128
    app = uwsgi_scgi()
    a = atrium(scgi_conf(app))
    want = hashlib.sha256()
    for k in range(blocks):
        want.update(b"%08d" % k + b"x" * 65528)
    with Conn(a.port, timeout=20.0) as c:
        for _ in range(2):
            r = c.request("GET", "/py/big?n=%d" % blocks)
            assert r.status == 200, r
            assert len(r.body) == blocks * 65536, len(r.body)
            assert hashlib.sha256(r.body).hexdigest() == want.hexdigest()
        r = c.request("GET", "/py/after?big=1")
        assert app_json(r)["environ"]["QUERY_STRING"] == "big=1"


def test_chunked_request_body_spooled(atrium, uwsgi_scgi):
    """SCGI puts CONTENT_LENGTH first: a chunked body is spooled, then sent
    with its length."""
    app = uwsgi_scgi()
    a = atrium(scgi_conf(app))
    body = b"".join(b"%06d" % i for i in range(20000))     # 120000 bytes in 3 chunks
    parts = [body[:1], body[1:70000], body[70000:]]
    raw = b"".join(b"%x\r\n" % len(p) + p + b"\r\n" for p in parts) + b"0\r\n\r\n"
    r = raw_ex(a.port, request_bytes("POST", "/py/upload", headers=[
        ("Transfer-Encoding", "chunked"), ("Connection", "close")]) + raw, timeout=10.0)
    assert r.status == 200, r
    doc = json.loads(r.responses()[0].body)
    assert doc["environ"]["CONTENT_LENGTH"] == str(len(body)), doc
    assert doc["body_len"] == len(body), doc
    assert doc["body_sha256"] == hashlib.sha256(body).hexdigest(), doc
    assert app_json(get(a.port, "/py/after"))["environ"]["PATH_INFO"] == "/py/after"


def test_response_status_and_headers(atrium, uwsgi_scgi):
    app = uwsgi_scgi()
    a = atrium(scgi_conf(app))
    r = get(a.port, "/py/respond?status=201+Created")
    assert r.status == 201, r
    assert r.get("X-App") == "wsgi", r
    assert r.get_all("Set-Cookie") == ["a=1", "b=2; Path=/py/"], r
    assert r.get("Status") is None, r
    assert r.body == b"responded 201 Created", r
    r = get(a.port, "/py/respond?status=418+I%27m+a+teapot")
    assert r.status == 418 and r.body == b"responded 418 I'm a teapot", r


def test_underscore_headers_never_reach_the_app(atrium, uwsgi_scgi):
    """X_Foo would become HTTP_X_FOO just like X-Foo: such fields are dropped."""
    app = uwsgi_scgi()
    a = atrium(scgi_conf(app))
    http = app_json(get(a.port, "/py/h", headers=[("X_Foo", "spoofed")]))["http"]
    assert "HTTP_X_FOO" not in http, http
    assert not any("spoofed" in v for v in http.values()), http
    http = app_json(get(a.port, "/py/h", headers=[("X_Foo", "spoofed"), ("X-Foo", "real")]))["http"]
    assert http.get("HTTP_X_FOO") == "real", http
    http = app_json(get(a.port, "/py/h", headers=[("X-Foo", "real"), ("X_Foo", "spoofed")]))["http"]
    assert http.get("HTTP_X_FOO") == "real", http


def test_one_connection_per_request(atrium, uwsgi_scgi):
    """SCGI has no connection reuse: requests on one client connection all
    succeed, and no connection to the app is left open (even with keepalive)."""
    app = uwsgi_scgi()
    a = atrium(scgi_conf(app, upstream_extra="keepalive 8;"))
    with Conn(a.port) as c:
        for i in range(10):
            r = c.request("GET", "/py/seq?i=%d" % i)
            assert app_json(r)["environ"]["QUERY_STRING"] == "i=%d" % i
    left = wait_until(lambda: not tcp_established_to(app.port), 10.0)
    assert left, "connections to the SCGI app stay open:\n%s" % (
        "\n".join(tcp_established_to(app.port)))


def test_fast_request_while_slow_one_held(atrium, uwsgi_scgi):
    """One request waits in the app for a gate file; another client is answered
    meanwhile (uWSGI runs 2 threads). Serialised, the fast request would wait
    for the gate (10 s) and time out after 5 s."""
    app = uwsgi_scgi(threads=2)
    a = atrium(scgi_conf(app))
    held = Background(get, a.port, "/py/hold?gate=g1", timeout=20.0)
    try:
        assert wait_until(lambda: app.inflight("g1"), 5.0), "held request never reached the app"
        r = get(a.port, "/py/fast?n=1", timeout=5.0)
        assert app_json(r)["environ"]["QUERY_STRING"] == "n=1"
        assert app.inflight("g1"), "the held request finished before its gate opened"
    finally:
        app.open_gate("g1")
    assert app_json(held.result(15))["gated"] is True
    assert get(a.port, "/py/after").status == 200


def test_health_check_in_scgi(atrium, uwsgi_scgi):
    """health_check speaks SCGI to an SCGI upstream: the application's answer
    (its status) decides."""
    app = uwsgi_scgi()
    a = atrium(scgi_conf(app, upstream_extra="health_check path=/respond interval=100ms "
                                             "fails=2 passes=1;"))
    time.sleep(0.6)
    assert "fails its health check" not in a.error_log, a.error_log[-2000:]
    assert get(a.port, "/py/respond").status == 200
    a.reload(scgi_conf(app, upstream_extra="health_check path=/respond?status=500+Oops "
                                           "interval=100ms fails=2 passes=1;"))
    assert wait_until(lambda: "status 500" in a.error_log, 5), a.error_log[-2000:]
    assert get(a.port, "/py/respond").status == 503
