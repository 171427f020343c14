"""Hosts and routes: return, static files, host matching, longest prefix."""

import re
import subprocess
from pathlib import Path

import pytest

from conftest import get, raw_ex, run_atrium, upstream_conf


@pytest.fixture
def site(atrium, origin, tmp_path):
    o = origin("A")
    www = tmp_path / "www"
    (www / "static" / "sub").mkdir(parents=True)
    (www / "a.txt").write_text("alias-a\n")
    (www / "static" / "a.txt").write_text("root-a\n")
    (www / "static" / "sub" / "b.txt").write_text("root-b\n")
    (www / "sub").mkdir()
    (www / "sub" / "b.txt").write_text("alias-b\n")
    (tmp_path / "secret.txt").write_text("TOP-SECRET\n")
    a = atrium("""\
%s
host a.example {
    route / { return 200 "host-a"; }
}
host * {
    route /static/ { static %s; }
    route /ret/ { return 200 "hello"; }
    route / { proxy app; }
}
""" % (upstream_conf([o]), www))
    return a, o


def test_return(site):
    a, _ = site
    r = get(a.port, "/ret/anything")
    assert (r.status, r.body, r.get("Content-Length")) == (200, b"hello", "5")


def test_longest_prefix_wins(site):
    a, _ = site
    assert get(a.port, "/ret/").body == b"hello"
    r = get(a.port, "/retx")                          # "/ret/" does not match "/retx"
    assert r.get("X-Origin") == "A", r                # so it was proxied (origin: 404)
    assert get(a.port, "/").body == b"A"


def test_host_matching(site):
    a, _ = site
    assert get(a.port, "/", host="a.example").body == b"host-a"
    assert get(a.port, "/", host="A.EXAMPLE").body == b"host-a"       # case-insensitive
    assert get(a.port, "/", host="a.example:8080").body == b"host-a"  # port ignored
    assert get(a.port, "/", host="b.example").body == b"A"


def test_static_file(site):
    a, _ = site
    r = get(a.port, "/static/a.txt")
    assert r.status == 200
    assert r.body in (b"alias-a\n", b"root-a\n")
    assert r.get("Content-Length") == str(len(r.body))
    r2 = get(a.port, "/static/sub/b.txt")
    assert r2.status == 200 and r2.body in (b"alias-b\n", b"root-b\n")
    assert get(a.port, "/static/missing.txt").status == 404


def test_static_head(site):
    a, _ = site
    r = raw_ex(a.port, b"HEAD /static/a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    resp = r.responses(["HEAD"])
    assert len(resp) == 1 and resp[0].status == 200 and resp[0].body == b""
    assert resp[0].get("Content-Length") in ("8", "7")


@pytest.mark.parametrize("path", [
    "/static/../secret.txt", "/static/../../secret.txt", "/static/%2e%2e/secret.txt",
    "/static/%2e%2e/%2e%2e/secret.txt", "/static/..%2fsecret.txt", "/static/sub/../../secret.txt",
    "/static/%2e%2e%2f%2e%2e%2fsecret.txt",
])
def test_static_no_traversal(site, path):
    a, _ = site
    r = raw_ex(a.port, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.status is not None, r
    assert b"TOP-SECRET" not in r.data, r


def test_static_prefix_without_slash_matches_whole_segments(atrium, tmp_path):
    """`route /pub` maps /pub and /pub/... to its directory, never /pub../x or
    /pubx (the rest was joined to the directory: /pub../secret.txt read the
    file next to it)."""
    root = tmp_path / "pub"
    root.mkdir()
    (root / "x.txt").write_text("in-root\n")
    (root / "index.html").write_text("index\n")
    (tmp_path / "secret.txt").write_text("SECRET-IN-PARENT\n")
    a = atrium("host * { route /pub { static %s; } }" % root)
    assert get(a.port, "/pub/x.txt").body == b"in-root\n"
    assert get(a.port, "/pub/").body == b"index\n"
    r = get(a.port, "/pub")
    assert (r.status, r.get("location")) == (301, "/pub/"), r
    for path in ("/pub../secret.txt", "/pub%2e%2e/secret.txt", "/pubx.txt", "/pub.."):
        r = raw_ex(a.port, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                   b"Connection: close\r\n\r\n")
        assert r.status == 404 and b"SECRET" not in r.data and b"in-root" not in r.data, (path, r)


def test_static_fifo_does_not_block_the_worker(atrium, tmp_path):
    """A FIFO under the root is refused at once (opening it blocked the worker until
    a writer came)."""
    import os
    root = tmp_path / "pub"
    root.mkdir()
    os.mkfifo(root / "fifo")
    (root / "a.txt").write_text("a\n")
    a = atrium("host * { route /pub/ { static %s; } }" % root)
    assert get(a.port, "/pub/fifo", timeout=5).status == 403
    assert get(a.port, "/pub/a.txt", timeout=5).body == b"a\n"


def test_return_204_and_304_have_no_body_or_length(atrium):
    a = atrium('host * { route /n { return 204; } route /m { return 304; } }')
    r = raw_ex(a.port, b"GET /n HTTP/1.1\r\nHost: x\r\n\r\nGET /m HTTP/1.1\r\nHost: x\r\n"
               b"Connection: close\r\n\r\n")
    rs = r.responses()
    assert [x.status for x in rs] == [204, 304], r
    assert b"Content-Length" not in r.data and b"Content-Type" not in r.data, r.data


def test_host_precedence_exact_then_port_then_longest_wildcard(atrium):
    """An exact name beats a wildcard written before it, a name with the request's
    port beats the bare name, the longest wildcard wins, a trailing dot is ignored
    (the first name in file order used to win, and ports never matched)."""
    a = atrium("""\
host *.example.com { route / { return 200 "wild"; } }
host *.a.example.com { route / { return 200 "deeper"; } }
host api.example.com { route / { return 200 "api"; } }
host port.example { route / { return 200 "port"; } }
host port.example:8080 { route / { return 200 "port8080"; } }
host * { route / { return 200 "default"; } }
""")
    for host, want in (("api.example.com", b"api"), ("API.example.com.", b"api"),
                       ("x.a.example.com", b"deeper"), ("b.example.com", b"wild"),
                       ("example.com", b"default"), ("port.example:8080", b"port8080"),
                       ("port.example:9090", b"port"), ("port.example", b"port")):
        assert get(a.port, "/", host=host).body == want, host


def test_long_paths_reach_the_backend(site):
    """A path longer than 4 KiB (within max_request_line) is routed like any other
    (it got 400 from Atrium)."""
    a, _ = site
    r = get(a.port, "/" + "p" * 6000)
    assert r.get("X-Origin") == "A", r          # proxied: the origin answered
    r = get(a.port, "/ret/" + "q" * 6000)
    assert (r.status, r.body) == (200, b"hello")


def test_static_directory_without_slash_redirects(atrium, tmp_path):
    """A directory asked for without its trailing slash gets 301 to the slash form,
    query kept (its index was served under the wrong base for relative links)."""
    root = tmp_path / "pub"
    (root / "sub dir").mkdir(parents=True)
    (root / "sub dir" / "index.html").write_text("sub-index\n")
    a = atrium("host * { route /pub/ { static %s; } }" % root)
    r = get(a.port, "/pub/sub%20dir")
    assert (r.status, r.get("location"), r.body) == (301, "/pub/sub%20dir/", b""), r
    r = get(a.port, "/pub/sub%20dir?x=1&y=2")
    assert (r.status, r.get("location")) == (301, "/pub/sub%20dir/?x=1&y=2"), r
    assert get(a.port, "/pub/sub%20dir/").body == b"sub-index\n"
    r = raw_ex(a.port, b"HEAD /pub/sub%20dir HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /pub/sub%20dir/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    rs = r.responses(["HEAD", "GET"])
    assert [x.status for x in rs] == [301, 200] and rs[1].body == b"sub-index\n", r.data


def test_response_header_rules_reach_every_kind_of_route(atrium, tmp_path):
    """A host's HSTS header and a route's own rules apply to static files, their
    redirects, `return`, `status` and error answers alike; local responses carry
    a Date; a `set` replaces one of Atrium's own fields."""
    import email.utils
    root = tmp_path / "www"
    (root / "dir").mkdir(parents=True)
    (root / "a.txt").write_text("a\n")
    a = atrium("""
host * {
    response_header set Strict-Transport-Security "max-age=31536000";
    route /static/ { static %s; response_header set Server edge; }
    route /ret { return 200 "ok"; response_header add X-R 1; }
    route /metrics { status; }
}""" % root)
    for path, status in (("/static/a.txt", 200), ("/static/dir", 301), ("/static/none", 404),
                         ("/ret", 200), ("/metrics", 200), ("/nowhere", 404)):
        r = get(a.port, path)
        assert r.status == status, (path, r)
        if path != "/nowhere":  # no route: no host rules either
            assert r.get("strict-transport-security") == "max-age=31536000", (path, r)
        assert email.utils.parsedate_to_datetime(r.get("date")) is not None, (path, r)
    r = get(a.port, "/static/a.txt")
    assert r.get("server") == "edge" and r.body == b"a\n", r
    assert get(a.port, "/ret").get("x-r") == "1"


def test_static_validators_conditional_and_range_requests(atrium, tmp_path):
    """ETag and Last-Modified on static files; If-None-Match and
    If-Modified-Since give 304, If-Match 412; a single Range 206 (If-Range
    honoured), an unsatisfiable one 416, several the whole file."""
    root = tmp_path / "www"
    root.mkdir()
    data = bytes(range(256)) * 40
    (root / "f.bin").write_bytes(data)
    a = atrium("host * { route / { static %s; } }" % root)
    r = get(a.port, "/f.bin")
    etag, lm = r.get("etag"), r.get("last-modified")
    assert r.status == 200 and r.body == data and etag.startswith('"'), r
    assert r.get("accept-ranges") == "bytes"
    r = get(a.port, "/f.bin", headers=[("If-None-Match", 'W/"x", ' + etag)])
    assert (r.status, r.body, r.get("etag")) == (304, b"", etag), r
    assert r.get("content-length") is None
    r = get(a.port, "/f.bin", headers=[("If-Modified-Since", lm)])
    assert r.status == 304, r
    r = get(a.port, "/f.bin", headers=[("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")])
    assert r.status == 200 and r.body == data, r
    r = get(a.port, "/f.bin", headers=[("If-None-Match", '"other"'), ("If-Modified-Since", lm)])
    assert r.status == 200, r  # If-None-Match decides when both are sent
    assert get(a.port, "/f.bin", headers=[("If-Match", '"other"')]).status == 412
    r = get(a.port, "/f.bin", headers=[("Range", "bytes=100-199")])
    assert (r.status, r.body) == (206, data[100:200]), r
    assert r.get("content-range") == "bytes 100-199/%d" % len(data)
    r = get(a.port, "/f.bin", headers=[("Range", "bytes=-10")])
    assert (r.status, r.body) == (206, data[-10:]), r
    r = get(a.port, "/f.bin", headers=[("Range", "bytes=%d-" % len(data))])
    assert r.status == 416 and r.get("content-range") == "bytes */%d" % len(data), r
    r = get(a.port, "/f.bin", headers=[("Range", "bytes=0-1,5-6")])
    assert (r.status, r.body) == (200, data), r
    r = get(a.port, "/f.bin", headers=[("Range", "bytes=0-9"), ("If-Range", etag)])
    assert (r.status, r.body) == (206, data[:10]), r
    r = get(a.port, "/f.bin", headers=[("Range", "bytes=0-9"), ("If-Range", '"old"')])
    assert (r.status, r.body) == (200, data), r
    # curl resumes a download the same way
    out = tmp_path / "part"
    out.write_bytes(data[:1000])
    subprocess.run(["curl", "-s", "-C", "-", "-o", str(out),
                    "http://127.0.0.1:%d/f.bin" % a.port], check=True, timeout=10)
    assert out.read_bytes() == data


def test_a_route_with_a_slash_redirects_its_name_without_one(atrium, origin):
    """`route /lib/`: GET /lib answers 301 to /lib/ (query kept), as nginx does,
    whatever the shorter routes would have done with it."""
    o = origin("A")
    a = atrium("""
upstream app { server %s; }
host * {
    route /lib/ { proxy app /; }
    route / { return 404 "root"; }
}""" % o.addr)
    r = get(a.port, "/lib")
    assert (r.status, r.get("location")) == (301, "/lib/"), r
    r = get(a.port, "/lib?x=1")
    assert (r.status, r.get("location")) == (301, "/lib/?x=1"), r
    assert get(a.port, "/lib/").body == b"A"
    assert get(a.port, "/library").body == b"root"


def test_allow_and_deny_by_client_address(atrium, tmp_path):
    """The first allow/deny rule whose network holds the client decides; none:
    allowed. The default config keeps the status page to the machine itself."""
    a = atrium("""
host * {
    route /local { return 200 "local"; allow 127.0.0.1; allow ::1; deny all; }
    route /lan { return 200 "lan"; allow 10.0.0.0/8; deny all; }
    route /open { return 200 "open"; deny 192.0.2.0/24; }
    route /v6only { return 200 "v6"; allow ::/0; deny all; }
}""")
    assert get(a.port, "/local").body == b"local"
    r = get(a.port, "/lan")
    assert r.status == 403, r
    assert get(a.port, "/open").body == b"open"
    assert get(a.port, "/v6only").status == 403  # an IPv4 client: no IPv6 rule matches
    p = tmp_path / "bad.conf"
    p.write_text("listen 127.0.0.1:1;\nhost * { route / { return 200; allow 10.0.0.0/33; } }\n")
    r = run_atrium(["-t", "-c", str(p)])
    assert r.returncode == 1 and "invalid address '10.0.0.0/33' for 'allow'" in r.stderr, r.stderr
    shipped = (Path(__file__).resolve().parent.parent.parent / "conf" / "atrium.conf").read_text()
    assert re.search(r"route /atrium-status \{ status; allow 127\.0\.0\.1; allow ::1; deny all; \}",
                     shipped), "the default config's status route is open"
