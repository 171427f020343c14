"""The FastCGI backend against a real php-fpm: the CGI variables PHP sees,
request bodies, response headers, connection reuse (FCGI_KEEP_CONN), queueing
under max_conns, a crashing pool, chunked bodies spooled, unix sockets, and
FastCGI STDERR in the error log."""

import hashlib
import json
import time

import pytest

from conftest import (Background, Conn, Reader, RssSampler, bytes_sha256, connect, gen_blocks,
                      get, http_request, open_fds, raw_ex, read_response, request_bytes, wait_until)
from gateways import PHP_DOCROOT, fastcgi_conf, tcp_established_to
from gateways import php_fpm  # noqa: F401  (pytest fixture)

RSS_LIMIT_KB = 16 * 1024


def php_json(r):
    assert r.status == 200, r
    try:
        return r.json()
    except ValueError:
        raise AssertionError("PHP did not answer JSON: %r" % (r,))


# ---------------------------------------------------------------- CGI variables

def test_get_server_variables(atrium, php_fpm):
    fpm = php_fpm()
    a = atrium(fastcgi_conf(fpm))
    r = get(a.port, "/php/env.php?a=1&b=two", headers=[("X-Custom", "hello"),
                                                       ("Proxy", "http://evil.example")])
    doc = php_json(r)
    s = doc["server"]
    assert doc["script"] == "env.php", doc
    assert s["SCRIPT_NAME"] == "/php/env.php", s
    assert s["SCRIPT_FILENAME"] == "%s/php/env.php" % PHP_DOCROOT, s
    assert s["DOCUMENT_ROOT"] == str(PHP_DOCROOT), s
    assert s["QUERY_STRING"] == "a=1&b=two", s
    assert s["REQUEST_URI"] == "/php/env.php?a=1&b=two", s
    assert s["REQUEST_METHOD"] == "GET", s
    assert s["SERVER_PROTOCOL"] == "HTTP/1.1", s
    assert s["REMOTE_ADDR"] == "127.0.0.1", s
    assert s["SERVER_PORT"] == str(a.port), s
    assert s.get("GATEWAY_INTERFACE") == "CGI/1.1", s
    h = doc["http"]
    assert h.get("HTTP_X_CUSTOM") == "hello", h
    assert h.get("HTTP_HOST") == "example.test", h
    assert "HTTP_PROXY" not in h, "httpoxy: the Proxy header reached PHP: %r" % h


def test_path_info_is_split_at_the_script(atrium, php_fpm):
    """/php/env.php/extra/path runs env.php with PATH_INFO /extra/path, as Apache
    and nginx's fastcgi_split_path_info do (DokuWiki's /doku.php/page URLs); a
    path with no file on it stays whole (php-fpm answers 404)."""
    fpm = php_fpm()
    a = atrium(fastcgi_conf(fpm))
    doc = php_json(get(a.port, "/php/env.php/extra/path?x=1"))
    s = doc["server"]
    assert doc["script"] == "env.php", doc
    assert s["SCRIPT_NAME"] == "/php/env.php", s
    assert s["PATH_INFO"] == "/extra/path", s
    assert s["SCRIPT_FILENAME"] == "%s/php/env.php" % PHP_DOCROOT, s
    assert s["PATH_TRANSLATED"] == "%s/extra/path" % PHP_DOCROOT, s
    assert s["PHP_SELF"] == "/php/env.php/extra/path", s
    assert s["REQUEST_URI"] == "/php/env.php/extra/path?x=1", s
    # a plain script: no PATH_INFO
    s = php_json(get(a.port, "/php/env.php"))["server"]
    assert "PATH_INFO" not in s and "PATH_TRANSLATED" not in s, s
    # nothing on the path is a file
    assert get(a.port, "/php/nothing.php/x").status == 404


def test_post_variables_and_method(atrium, php_fpm):
    fpm = php_fpm()
    a = atrium(fastcgi_conf(fpm))
    r = http_request(a.port, "POST", "/php/env.php", body=b"x=1&y=2",
                     headers=[("Content-Type", "application/x-www-form-urlencoded")])
    s = php_json(r)["server"]
    assert s["REQUEST_METHOD"] == "POST", s
    assert s["CONTENT_LENGTH"] == "7", s
    assert s["CONTENT_TYPE"] == "application/x-www-form-urlencoded", s
    assert s["QUERY_STRING"] == "", s


def test_directory_runs_index_php(atrium, php_fpm):
    fpm = php_fpm()
    a = atrium(fastcgi_conf(fpm))
    doc = php_json(get(a.port, "/php/"))
    s = doc["server"]
    assert doc["script"] == "index.php", doc
    assert s["SCRIPT_NAME"] == "/php/index.php", s
    assert s["SCRIPT_FILENAME"] == "%s/php/index.php" % PHP_DOCROOT, s
    assert s["REQUEST_URI"] == "/php/", s


# ---------------------------------------------------------------- bodies

def test_post_64m_byte_exact_bounded_memory(atrium, php_fpm):
    n = 64 << 20
    fpm = php_fpm()
    a = atrium(fastcgi_conf(fpm, upstream_extra="read_timeout 30s; send_timeout 30s;"))
    for _ in range(3):                                   # warm up the allocator and pool
        assert get(a.port, "/php/env.php").status == 200
    with RssSampler(a) as rss, connect(a.port, timeout=30.0) as s:
        s.sendall(request_bytes("POST", "/php/sha.php", headers=[
            ("Content-Length", str(n)), ("Content-Type", "application/octet-stream"),
            ("Connection", "close")]))
        h = hashlib.sha256()
        for blk in gen_blocks(n, "fcgi"):
            h.update(blk)
            s.sendall(blk)
        r = read_response(Reader(s))
    doc = php_json(r)
    assert doc["len"] == n, doc
    assert doc["sha256"] == h.hexdigest() == bytes_sha256(n, "fcgi"), doc
    assert doc["content_length"] == str(n), doc
    assert len(rss.samples) > 3, rss.samples
    assert rss.growth_kb < RSS_LIMIT_KB, "RSS grew by %d KiB" % rss.growth_kb


def test_chunked_body_spooled_byte_exact_bounded_memory(atrium, php_fpm, tmp_path):
    """FastCGI needs CONTENT_LENGTH up front: a chunked body is spooled to an
    unlinked file in spool_dir, then sent with its length. Memory stays flat,
    no file name is left behind and the spool file is closed afterwards."""
    n = 32 << 20
    spool = tmp_path / "spool"
    spool.mkdir()
    fpm = php_fpm()
    a = atrium("spool_dir %s;\n" % spool
               + fastcgi_conf(fpm, upstream_extra="read_timeout 30s; send_timeout 30s;"))
    for _ in range(3):
        assert get(a.port, "/php/env.php").status == 200
    with RssSampler(a) as rss, connect(a.port, timeout=30.0) as s:
        s.sendall(request_bytes("POST", "/php/sha.php", headers=[
            ("Transfer-Encoding", "chunked"), ("Content-Type", "application/octet-stream"),
            ("Connection", "close")]))
        h = hashlib.sha256()
        for i, blk in enumerate(gen_blocks(n, "spool")):
            h.update(blk)
            ext = b";x=1" if i % 2 else b""              # extensions are dropped, not data
            s.sendall(b"%x%s\r\n" % (len(blk), ext) + blk + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        r = read_response(Reader(s))
    doc = php_json(r)
    assert doc["len"] == n and doc["sha256"] == h.hexdigest(), doc
    assert doc["content_length"] == str(n), doc
    assert rss.growth_kb < RSS_LIMIT_KB, "RSS grew by %d KiB" % rss.growth_kb
    assert list(spool.iterdir()) == []

    def spool_fds():
        return [t for t in open_fds(a.pid).values() if t.startswith(str(spool))]
    # closed once the exchange is over, which may be just after the client has it all
    assert wait_until(lambda: spool_fds() == [], 10.0), spool_fds()


def test_chunked_body_over_max_body_size_413(atrium, php_fpm, tmp_path):
    fpm = php_fpm()
    a = atrium("max_body_size 1k;\n" + fastcgi_conf(fpm))
    r = raw_ex(a.port, request_bytes("POST", "/php/hold.php", headers=[
        ("Transfer-Encoding", "chunked")]) + b"800\r\n" + b"x" * 2048 + b"\r\n0\r\n\r\n",
        timeout=5.0)
    assert r.status == 413, r
    assert fpm.counter("started") == 0, "the request reached PHP"
    # A small chunked body still goes through, and the pool still serves.
    r = raw_ex(a.port, request_bytes("POST", "/php/sha.php", headers=[
        ("Transfer-Encoding", "chunked"), ("Connection", "close")])
        + b"5\r\nhello\r\n0\r\n\r\n", timeout=5.0)
    doc = json.loads(r.responses()[0].body)
    assert doc["len"] == 5 and doc["content_length"] == "5", doc
    assert doc["sha256"] == hashlib.sha256(b"hello").hexdigest(), doc


def test_post_empty_body(atrium, php_fpm):
    fpm = php_fpm()
    a = atrium(fastcgi_conf(fpm))
    doc = php_json(http_request(a.port, "POST", "/php/sha.php", body=b""))
    assert doc["len"] == 0 and doc["content_length"] == "0", doc
    assert doc["sha256"] == hashlib.sha256(b"").hexdigest()


def test_large_response_byte_exact(atrium, php_fpm):
    """8 MiB of PHP output arrives intact (many STDOUT records, each at most 64 KiB - 1)."""
    blocks = 128
    fpm = php_fpm()
    a = atrium(fastcgi_conf(fpm, upstream_extra="keepalive 8;"))
    want = hashlib.sha256()
    for k in range(blocks):
        want.update(b"%08d" % k + b"x" * 65528)
    with Conn(a.port, timeout=20.0) as c:
        for _ in range(2):                       # twice on the same (pooled) backend connection
            r = c.request("GET", "/php/big.php?n=%d" % blocks)
            assert r.status == 200, r
            assert len(r.body) == blocks * 65536, len(r.body)
            assert hashlib.sha256(r.body).hexdigest() == want.hexdigest()
        assert php_json(c.request("GET", "/php/env.php?after=big"))["server"]["QUERY_STRING"] \
            == "after=big"


def test_head_request(atrium, php_fpm):
    """HEAD gets no body, and the client and backend connections stay in sync."""
    fpm = php_fpm()
    a = atrium(fastcgi_conf(fpm, upstream_extra="keepalive 8;"))
    with Conn(a.port) as c:
        for i in range(3):
            h = c.request("HEAD", "/php/big.php?n=2")
            assert h.status == 200 and h.body == b"", h
            r = c.request("GET", "/php/env.php?i=%d" % i)
            doc = php_json(r)
            assert doc["server"]["QUERY_STRING"] == "i=%d" % i, doc
            assert doc["server"]["REQUEST_METHOD"] == "GET", doc


def test_client_gone_mid_request(atrium, php_fpm):
    """A client that disconnects while PHP runs: later requests get their own
    responses, never the abandoned one."""
    fpm = php_fpm(max_children=2)
    a = atrium(fastcgi_conf(fpm, upstream_extra="keepalive 8;"))
    s = connect(a.port)
    s.sendall(request_bytes("GET", "/php/hold.php?ms=1000"))
    assert wait_until(lambda: fpm.counter("cur") == 1, 5.0), "the request never reached PHP"
    s.close()
    for i in range(5):
        doc = php_json(get(a.port, "/php/env.php?during=%d" % i))
        assert doc["server"]["QUERY_STRING"] == "during=%d" % i, doc
    assert wait_until(lambda: fpm.counter("cur") == 0, 5.0), "the abandoned PHP run never ended"
    with Conn(a.port) as c:
        for i in range(6):
            doc = php_json(c.request("GET", "/php/env.php?after=%d" % i))
            assert doc["server"]["QUERY_STRING"] == "after=%d" % i, doc


# ---------------------------------------------------------------- response headers

def test_status_location_and_cookies(atrium, php_fpm):
    fpm = php_fpm()
    a = atrium(fastcgi_conf(fpm))

    r = get(a.port, "/php/headers.php?code=301&location=/php/elsewhere")
    assert r.status == 301, r
    assert r.get("Location") == "/php/elsewhere", r
    cookies = r.get_all("Set-Cookie")
    assert len(cookies) == 3, r
    assert cookies[0].startswith("a=1") and cookies[1].startswith("b=2"), cookies
    assert "path=/php/" in cookies[1].lower() and cookies[2] == "c=3; HttpOnly", cookies
    assert r.get("X-App") == "php", r
    assert r.get("Status") is None, "the CGI Status field leaked to the client: %r" % r
    assert r.body == b"code 301\n", r

    r = get(a.port, "/php/headers.php?code=201")
    assert (r.status, r.body) == (201, b"code 201\n"), r
    assert len(r.get_all("Set-Cookie")) == 3, r

    r = get(a.port, "/php/headers.php?status=404%20Not%20Here")
    assert r.status == 404, r
    assert r.get("Status") is None, r

    r = get(a.port, "/php/headers.php")
    assert (r.status, r.body) == (200, b"code 200\n"), r


# ---------------------------------------------------------------- connection reuse

def test_keepalive_reuses_backend_connections(atrium, php_fpm):
    fpm = php_fpm(max_children=4)
    a = atrium(fastcgi_conf(fpm, upstream_extra="keepalive 8;"))
    pids = set()
    for i in range(20):
        doc = php_json(get(a.port, "/php/env.php?i=%d" % i))
        assert doc["server"]["QUERY_STRING"] == "i=%d" % i
        pids.add(doc["pid"])
    conns = tcp_established_to(fpm.port)
    assert 0 < len(conns) <= 2, "expected 1-2 pooled connections to php-fpm, got:\n%s" % (
        "\n".join(conns))
    assert len(pids) <= 2, pids
    # the pooled connections still work
    with Conn(a.port) as c:
        for i in range(5):
            r = c.request("GET", "/php/env.php?k=%d" % i)
            assert php_json(r)["server"]["QUERY_STRING"] == "k=%d" % i
    assert 0 < len(tcp_established_to(fpm.port)) <= 2


def test_keepalive_0_closes_backend_connections(atrium, php_fpm):
    fpm = php_fpm(max_children=4)
    a = atrium(fastcgi_conf(fpm, upstream_extra="keepalive 0;"))
    for i in range(20):
        assert php_json(get(a.port, "/php/env.php?i=%d" % i))["server"]["QUERY_STRING"] \
            == "i=%d" % i
    left = wait_until(lambda: not tcp_established_to(fpm.port), 10.0)
    assert left, "connections to php-fpm stay open with keepalive 0:\n%s" % (
        "\n".join(tcp_established_to(fpm.port)))


# ---------------------------------------------------------------- queueing

@pytest.mark.parametrize("children", [2, 4])
def test_queue_waits_for_max_conns(atrium, php_fpm, children):
    """max_conns=2 with pm.max_children = 2 (the pool is exactly as big) or 4
    (only Atrium's limit holds PHP to 2): six concurrent slow requests queue in
    Atrium and are all served, none 503, and PHP never runs more than 2 at once.
    Two rounds, so that pooled idle connections are part of the second."""
    fpm = php_fpm(max_children=children)
    a = atrium(fastcgi_conf(fpm, server_params="max_conns=2",
                            upstream_extra="queue 16; queue_timeout 5s; retries 0; "
                                           "read_timeout 10s;"))
    for rnd in range(2):
        bgs = [Background(get, a.port, "/php/hold.php?ms=500&r=%d&i=%d" % (rnd, i),
                          timeout=15.0) for i in range(6)]
        statuses = [b.result(20).status for b in bgs]
        assert statuses == [200] * 6, (rnd, statuses)
    assert fpm.counter("started") == 12
    assert 1 <= fpm.counter("max") <= 2, "php-fpm ran %d requests at once" % fpm.counter("max")


# ---------------------------------------------------------------- failures

def test_fpm_killed_mid_request_then_restarted(atrium, php_fpm):
    fpm = php_fpm(max_children=2)
    a = atrium(fastcgi_conf(fpm, upstream_extra="keepalive 8; fail_timeout 1s; retries 0; "
                                                "read_timeout 10s; connect_timeout 1s;"))
    assert get(a.port, "/php/env.php").status == 200      # leaves a pooled connection
    held = Background(get, a.port, "/php/hold.php?ms=3000", timeout=15.0)
    assert wait_until(lambda: fpm.counter("cur") == 1, 5.0), "the slow request never reached PHP"
    fpm.kill()
    r = held.result(15)
    assert r.status in (502, 504), r
    killed_at = time.monotonic()
    fpm.start()
    # let fail_timeout (1s) pass in case the crash marked the server down
    time.sleep(max(0.0, killed_at + 1.5 - time.monotonic()))
    r = get(a.port, "/php/env.php?after=restart")
    assert r.status == 200, "first request after php-fpm came back: %r" % (r,)
    assert php_json(r)["server"]["QUERY_STRING"] == "after=restart"
    for _ in range(3):
        assert get(a.port, "/php/env.php").status == 200


def test_missing_script_404(atrium, php_fpm):
    """php-fpm answers a missing SCRIPT_FILENAME with 404 (and "Primary script
    unknown" on STDERR); the backend connection stays usable."""
    fpm = php_fpm()
    a = atrium(fastcgi_conf(fpm, upstream_extra="keepalive 8;"))
    with Conn(a.port) as c:
        for i in range(2):
            r = c.request("GET", "/php/missing.php")
            assert r.status == 404, r
            assert php_json(c.request("GET", "/php/env.php?m=%d" % i))["server"]["QUERY_STRING"] \
                == "m=%d" % i
    assert wait_until(lambda: "Primary script unknown" in a.error_log, 10.0), a.error_log[-2000:]


def test_stderr_goes_to_error_log(atrium, php_fpm):
    fpm = php_fpm()
    a = atrium(fastcgi_conf(fpm))
    r = get(a.port, "/php/stderr.php?tag=t1x9")
    assert (r.status, r.body) == (200, b"logged\n"), r
    line = wait_until(lambda: [l for l in a.error_log.splitlines()
                               if "fastcgi stderr" in l and "gw-stderr-marker t1x9" in l], 3.0)
    assert line, "no 'fastcgi stderr' line in the error log:\n" + a.error_log[-2000:]
    assert get(a.port, "/php/env.php").status == 200


# ---------------------------------------------------------------- transport, concurrency

def test_unix_socket(atrium, php_fpm):
    fpm = php_fpm(unix=True)
    assert fpm.addr.startswith("unix:/")
    a = atrium(fastcgi_conf(fpm))
    for path, script in (("/php/env.php?u=1", "env.php"), ("/php/", "index.php")):
        doc = php_json(get(a.port, path))
        assert doc["script"] == script, doc
        assert doc["server"]["SCRIPT_FILENAME"] == "%s/php/%s" % (PHP_DOCROOT, script)
    r = http_request(a.port, "POST", "/php/sha.php", body=b"over a unix socket")
    assert php_json(r)["sha256"] == hashlib.sha256(b"over a unix socket").hexdigest()


def test_fast_request_while_slow_one_held(atrium, php_fpm):
    """One client holds a request in PHP (until a gate file appears); another
    client is answered meanwhile. If Atrium serialised them, the fast request
    would wait for the gate (10 s) and time out after 5 s."""
    fpm = php_fpm(max_children=3)
    a = atrium(fastcgi_conf(fpm))
    held = Background(get, a.port, "/php/hold.php?gate=g1", timeout=20.0)
    try:
        assert wait_until(lambda: fpm.counter("cur") == 1, 5.0), "held request never reached PHP"
        r = get(a.port, "/php/env.php?fast=1", timeout=5.0)
        assert php_json(r)["server"]["QUERY_STRING"] == "fast=1"
        assert fpm.counter("cur") == 1, "the held request finished before its gate opened"
    finally:
        fpm.open_gate("g1")
    r = held.result(15)
    assert php_json(r)["gated"] is True, r
    assert json.loads(get(a.port, "/php/env.php").body)["script"] == "env.php"


def test_health_check_in_fastcgi(atrium, php_fpm):
    """health_check speaks the upstream's protocol: php-fpm's ping.path answers
    the FastCGI probe; a path php-fpm answers 404 takes the server out."""
    fpm = php_fpm(extra="ping.path = /fpm-ping\nping.response = pong")
    a = atrium(fastcgi_conf(fpm, upstream_extra="health_check path=/fpm-ping interval=100ms "
                                                "fails=2 passes=1;"))
    time.sleep(0.6)  # several checks
    assert "fails its health check" not in a.error_log, a.error_log[-2000:]
    assert get(a.port, "/php/env.php").status == 200
    a.reload(fastcgi_conf(fpm, upstream_extra="health_check path=/no-such.php interval=100ms "
                                              "fails=2 passes=1;"))
    assert wait_until(lambda: "fails its health check (GET /no-such.php: status 404)"
                      in a.error_log, 5), a.error_log[-2000:]
    assert get(a.port, "/php/env.php").status == 503


def test_extension_route_and_file_fallback_like_dokuwiki(atrium, php_fpm, tmp_path):
    """A PHP application's usual layout: `route *.php` runs every script (also
    /doku.php/page with its PATH_INFO), `try_files` serves the files that exist
    (a stylesheet, VERSION) and sends the rest to the application."""
    import shutil
    docroot = tmp_path / "wiki"
    docroot.mkdir()
    for name in ("env.php", "_env.php"):
        shutil.copy(PHP_DOCROOT / "php" / name, docroot / name)
    (docroot / "VERSION").write_text("2024-02-06\n")
    (docroot / "lib").mkdir()
    (docroot / "lib" / "style.css").write_text("body{}\n")
    fpm = php_fpm()
    a = atrium("""
upstream php { protocol fastcgi; server %s; }
host * {
    route *.php { proxy php; root %s; }
    route / { proxy php; root %s; index env.php; try_files %s; }
}""" % (fpm.addr, docroot, docroot, docroot))
    r = get(a.port, "/VERSION")
    assert (r.status, r.body) == (200, b"2024-02-06\n"), r
    r = get(a.port, "/lib/style.css")
    assert r.status == 200 and r.body == b"body{}\n" and r.get("content-type") == "text/css", r
    s = php_json(get(a.port, "/env.php/wiki/page"))["server"]
    assert (s["SCRIPT_NAME"], s["PATH_INFO"]) == ("/env.php", "/wiki/page"), s
    # a path that is no file goes to the application's front controller (index)
    s = php_json(get(a.port, "/some/pretty/url"))["server"]
    assert s["SCRIPT_NAME"] == "/env.php" and s["REQUEST_URI"] == "/some/pretty/url", s
    # *.php is a whole name: /x.phpx is no script
    assert php_json(get(a.port, "/x.phpx"))["server"]["REQUEST_URI"] == "/x.phpx"
