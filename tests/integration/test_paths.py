"""What a backend is asked for agrees with what was routed: routes match whole
path segments whatever their kind; a target whose encoding a backend may read
otherwise than the router (an encoded '/', an encoded dot segment, a '#') is
refused with 400 unless `ambiguous_paths allow`; and `proxy NAME PREFIX`
replaces the route's prefix in the forwarded path (nginx's proxy_pass with a
URI), for HTTP and FastCGI backends alike. The origin's /echo/... answers with
the request target it received."""

import json

from conftest import get, raw_ex
from gateways import PHP_DOCROOT, php_fpm  # noqa: F401  (pytest fixture)


def raw(port, target):
    return raw_ex(port, b"GET " + target.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")


def target_seen(port, target):
    """The request target the origin received for a client's target."""
    r = raw(port, target)
    assert r.status == 200, (target, r)
    return json.loads(r.data.split(b"\r\n\r\n", 1)[1])["target"]


def test_proxy_prefix_replaces_the_route_prefix(atrium, origin):
    o = origin("A")
    a = atrium("""
upstream app { server %s; }
host * {
    route /app/ { proxy app /; }
    route /api { proxy app /echo/v2/; }
    route /echo/ { proxy app; }
}""" % o.addr)
    assert target_seen(a.port, "/app/echo") == "/echo"
    assert target_seen(a.port, "/app/echo/a%20b?q=%2f&r") == "/echo/a%20b?q=%2f&r"  # query as sent
    assert target_seen(a.port, "/app/echo/x/../y") == "/echo/y"   # normalised ...
    assert target_seen(a.port, "/app//echo") == "/echo"
    assert target_seen(a.port, "/app/%65cho/%7e") == "/echo/~"   # ... and re-encoded
    assert target_seen(a.port, "/app/echo/%25%3f%23") == "/echo/%25%3F%23"
    assert get(a.port, "/app/").body == b"A"                      # /app/ -> /
    assert target_seen(a.port, "/api") == "/echo/v2/"
    assert target_seen(a.port, "/api/users") == "/echo/v2/users"
    # without a prefix the target goes as received
    assert target_seen(a.port, "/echo/%41/./b") == "/echo/%41/./b"
    assert "proxy app /;" in a.conf_text


def test_routes_match_whole_segments(atrium, origin):
    o = origin("A")
    a = atrium("""
upstream app { server %s; }
host * {
    route /public { proxy app /; }
    route / { return 404 "not public"; }
}""" % o.addr)
    assert get(a.port, "/public").body == b"A"
    assert target_seen(a.port, "/public/echo") == "/echo"
    r = get(a.port, "/publicsecret")
    assert (r.status, r.body) == (404, b"not public"), r


def test_ambiguous_encodings_are_refused(atrium, origin):
    o = origin("A")
    conf = """
upstream app { server %s; }
host * {
    route /echo/ { proxy app; }
    route / { return 403 "private"; }
}""" % o.addr
    a = atrium(conf)
    for target in ("/secret%2f..%2fecho/x", "/echo%2Fx", "/x/%2e%2e/echo/x", "/x/.%2e/echo/x",
                   "/echo/%2e/x", "/echo/x#frag"):
        assert raw(a.port, target).status == 400, target
    # dots that make no dot segment, and an escaped slash in the query, are fine
    assert target_seen(a.port, "/echo/%2e%2ehidden") == "/echo/%2e%2ehidden"
    assert target_seen(a.port, "/echo/x?a=%2f") == "/echo/x?a=%2f"
    assert o.stats()["bad_requests"] == 0
    # the documented switch: routed as decoded (the /echo/ route, not "private"),
    # forwarded as written (the origin does not resolve "%2e%2e": 404 from it)
    a.reload("ambiguous_paths allow;\n" + conf)
    r = raw(a.port, "/x/%2e%2e/echo/x")
    assert r.status == 404 and b"X-Origin: A" in r.data, r


def test_fastcgi_route_with_a_prefix(atrium, php_fpm):
    """`route /blog/ { proxy php /; root DIR; }`: the script is found under the
    root by the rewritten path."""
    fpm = php_fpm()
    a = atrium("""
upstream php { protocol fastcgi; server %s; }
host * { route /blog/ { proxy php /; root %s/php; } }""" % (fpm.addr, PHP_DOCROOT))
    r = get(a.port, "/blog/env.php/more?q=1")
    assert r.status == 200, r
    s = json.loads(r.body)["server"]
    assert s["SCRIPT_NAME"] == "/env.php", s
    assert s["SCRIPT_FILENAME"] == "%s/php/env.php" % PHP_DOCROOT, s
    assert s["PATH_INFO"] == "/more", s
    assert s["REQUEST_URI"] == "/blog/env.php/more?q=1", s  # what the client asked for
