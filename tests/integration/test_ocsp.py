"""OCSP with real peers (pki.py's CAs and `openssl ocsp` responders).

Stapling: `openssl s_client -status` sees the response Atrium fetched from
the certificate's AIA responder; a responder down at start means no staple
and a warning, then a staple once it is up (the retry); a reload keeps the
staple without asking the responder again; `stapling FILE` staples a file
and refuses one that does not verify or is not good, as FILE:LINE:COL.

Client certificates: client_verify required refuses a client without one;
a good one reaches a CGI script as SSL_CLIENT_VERIFY=SUCCESS and
SSL_CLIENT_S_DN; with client_ocsp on, a revoked certificate fails the
handshake (certificate_revoked), a good one passes, a second handshake is
answered from the cache (the responder is stopped in between), a responder
that is down fails closed by default and passes with client_ocsp_fail open.
"""

import re
import socket
import ssl
import subprocess

import pytest

from conftest import Reader, free_port, read_response, request_bytes, run_atrium, wait_until
from pki import Pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.root = p.ca("root", ocsp_port=free_port())
    p.srv = p.server(p.root, "srv", ["example.test"])
    p.bad = p.server(p.root, "bad", ["example.test"])
    p.revoke(p.bad)
    p.clients = p.ca("clients", ocsp_port=free_port())
    p.alice = p.client(p.clients, "alice")
    p.carol = p.client(p.clients, "carol")
    p.dave = p.client(p.clients, "dave")
    p.bob = p.client(p.clients, "bob")
    p.revoke(p.bob)
    return p


def s_client_status(port):
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername",
                        "example.test", "-status"], input=b"", capture_output=True, timeout=20)
    return r.stdout.decode(errors="replace")


def stapled_good(out):
    return "OCSP Response Status: successful" in out and "Cert Status: good" in out


def staple_conf(cert, stapling="on", extra=""):
    return """
listen 127.0.0.1:{{port}} tls;
%s
host example.test {
    tls { certificate %s; key %s; stapling %s; }
    route / { return 200 ok; }
}
""" % (extra, cert.chain, cert.key, stapling)


def test_stapling_serves_a_fetched_good_response(atrium, pki):
    with pki.start_ocsp(pki.root):
        a = atrium(staple_conf(pki.srv))
        # fetched before the first client: the very first handshake has it
        out = s_client_status(a.port)
        assert stapled_good(out), out
        assert re.search(r"stapling: host example.test certificate .*srv.chain.pem: OCSP "
                         r"response from http://127.0.0.1:\d+/: good until", a.error_log)
        # a reload keeps the certificate's staple: no new fetch needed
        fetches = a.error_log.count("OCSP response from")
    assert a.reload()
    out = s_client_status(a.port)
    assert stapled_good(out), out
    assert a.error_log.count("OCSP response from") == fetches


def test_responder_down_at_start_staples_once_it_is_up(atrium, pki):
    a = atrium(staple_conf(pki.srv))
    assert "OCSP response: no response sent" in s_client_status(a.port)
    assert re.search(r"\[warn\].*stapling: .*OCSP fetch from .* failed: .*not stapling",
                     a.error_log), a.error_log
    with pki.start_ocsp(pki.root):
        assert wait_until(lambda: "good until" in a.error_log, 15), a.error_log
        out = s_client_status(a.port)
        assert stapled_good(out), out


def test_refresh_before_next_update_keeps_the_last_good_one_when_the_responder_fails(atrium,
                                                                                   pki):
    """Responses valid for one minute: the refresh comes halfway (30 s); with the
    responder gone by then, the fetch fails and the last good response is still
    stapled, with a warning saying until when."""
    with pki.start_ocsp(pki.root, nmin=1):
        a = atrium(staple_conf(pki.srv))
        assert stapled_good(s_client_status(a.port))
    assert wait_until(lambda: "keeping the last good response until" in a.error_log, 45), \
        a.error_log[-2000:]
    out = s_client_status(a.port)
    assert stapled_good(out), out


def test_a_revoked_certificate_is_not_stapled(atrium, pki):
    with pki.start_ocsp(pki.root):
        a = atrium(staple_conf(pki.bad))
        assert "OCSP response: no response sent" in s_client_status(a.port)
        assert "says the certificate is revoked; not stapling" in a.error_log


def response_file(pki, cert, tmp_path, name):
    """An OCSP response for cert signed by its CA, made offline."""
    req, resp = tmp_path / (name + ".req"), tmp_path / (name + ".der")
    ca = cert.ca
    subprocess.run(["openssl", "ocsp", "-issuer", str(ca.cert), "-cert", str(cert.cert),
                    "-no_nonce", "-reqout", str(req)], check=True, capture_output=True)
    subprocess.run(["openssl", "ocsp", "-index", str(ca.dir / "index.txt"), "-rsigner",
                    str(ca.cert), "-rkey", str(ca.key), "-CA", str(ca.cert), "-reqin", str(req),
                    "-respout", str(resp), "-ndays", "1"], check=True, capture_output=True)
    return resp


def test_stapling_file_is_verified_at_load(atrium, pki, tmp_path):
    good = response_file(pki, pki.srv, tmp_path, "good")
    a = atrium(staple_conf(pki.srv, stapling=good))
    assert stapled_good(s_client_status(a.port))
    garbage = tmp_path / "garbage.der"
    garbage.write_bytes(b"\x30\x03\x0a\x01\x00")
    cases = [(response_file(pki, pki.bad, tmp_path, "revoked"), pki.bad, "is revoked, not good"),
             (good, pki.bad, "stapling %s: " % good),  # another certificate's response
             (garbage, pki.srv, "stapling %s: " % garbage)]
    for resp, cert, msg in cases:
        conf = tmp_path / "bad.conf"
        conf.write_text("listen 127.0.0.1:%d tls;\nhost * {\n    tls { certificate %s; key %s;"
                        " stapling %s; }\n    route / { return 200; }\n}\n"
                        % (free_port(), cert.chain, cert.key, resp))
        r = run_atrium(["-t", "-c", str(conf)])
        assert r.returncode != 0 and msg in r.stderr, r.stderr
        assert re.match(r"%s:3:\d+: stapling " % re.escape(str(conf)), r.stderr), r.stderr


# ---- client certificates ----

def client_conf(pki, tmp_path, tls_extra=""):
    cgi = tmp_path / "cgi"
    cgi.mkdir(exist_ok=True)
    script = cgi / "env.sh"
    script.write_text("#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nenv\n")
    script.chmod(0o755)
    return """
listen 127.0.0.1:{{port}} tls;
host example.test {
    tls { certificate %s; key %s; client_certificate %s; %s }
    route /cgi/ { cgi %s; }
}
""" % (pki.srv.chain, pki.srv.key, pki.clients.cert, tls_extra, cgi)


def client_get(port, pki, cert=None, version=None):
    """GET /cgi/env.sh with cert (or none): the CGI environment, or the
    ssl error text when the handshake is refused."""
    ctx = ssl.create_default_context(cafile=str(pki.root.cert))
    if version:
        ctx.maximum_version = version
    if cert:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    try:
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                             server_hostname="example.test") as s:
            s.sendall(request_bytes("GET", "/cgi/env.sh", host="example.test"))
            r = read_response(Reader(s))
    except (ssl.SSLError, ConnectionError, OSError) as e:
        return "refused: %s" % e
    if r is None or r.status != 200:
        return "refused: %r" % (r,)
    return dict(l.split("=", 1) for l in r.body.decode().splitlines() if "=" in l)


def test_client_certificates_required_and_seen_by_gateways(atrium, pki, tmp_path):
    a = atrium(client_conf(pki, tmp_path))
    assert isinstance(client_get(a.port, pki), str)
    env = client_get(a.port, pki, pki.alice)
    assert env["SSL_CLIENT_VERIFY"] == "SUCCESS"
    assert env["SSL_CLIENT_S_DN"] == "CN=alice"
    assert env["SSL_CLIENT_I_DN"] == "CN=clients"
    # a certificate from a CA the host does not take
    assert isinstance(client_get(a.port, pki, pki.srv), str)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_client_ocsp_refuses_revoked_and_caches_good(atrium, pki, tmp_path, version):
    a = atrium(client_conf(pki, tmp_path, "client_ocsp on;"))
    with pki.start_ocsp(pki.clients):
        got = client_get(a.port, pki, pki.bob, version)
        assert isinstance(got, str), got
        if version == ssl.TLSVersion.TLSv1_2:
            assert "CERTIFICATE_REVOKED" in got.upper(), got
        assert "client certificate /CN=bob: OCSP revoked" in a.error_log
        env = client_get(a.port, pki, pki.alice, version)
        assert env["SSL_CLIENT_VERIFY"] == "SUCCESS", env
    # the responder is gone: alice is answered from the cache, bob still refused
    env = client_get(a.port, pki, pki.alice, version)
    assert env["SSL_CLIENT_VERIFY"] == "SUCCESS", (env, a.error_log[-2000:])
    assert isinstance(client_get(a.port, pki, pki.bob, version), str)
    assert "client certificate /CN=alice: OCSP good (cached)" in a.error_log
    assert "no OCSP answer" not in a.error_log


def test_client_ocsp_responder_down_fails_closed_or_open(atrium, pki, tmp_path):
    closed = atrium(client_conf(pki, tmp_path, "client_ocsp on;"))
    got = client_get(closed.port, pki, pki.carol)
    assert isinstance(got, str), got
    assert "refused (client_ocsp_fail closed)" in closed.error_log
    opened = atrium(client_conf(pki, tmp_path, "client_ocsp on; client_ocsp_fail open;"))
    env = client_get(opened.port, pki, pki.dave)
    assert env["SSL_CLIENT_VERIFY"] == "SUCCESS", env
    assert "allowed (client_ocsp_fail open)" in opened.error_log


def test_client_certificates_follow_sni_to_a_host_that_is_not_the_default(atrium, pki, tmp_path):
    conf = client_conf(pki, tmp_path, "client_ocsp on;").replace(
        "listen 127.0.0.1:{{port}} tls;\n",
        "listen 127.0.0.1:{{port}} tls;\nhost other.test {\n    tls { certificate %s; key %s; }"
        "\n    route / { return 200 other; }\n}\n" % (pki.srv.chain, pki.srv.key))
    a = atrium(conf)
    assert isinstance(client_get(a.port, pki), str)  # example.test still asks for one
    with pki.start_ocsp(pki.clients):
        assert isinstance(client_get(a.port, pki, pki.bob), str)
        assert client_get(a.port, pki, pki.alice)["SSL_CLIENT_S_DN"] == "CN=alice"
