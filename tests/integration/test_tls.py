"""TLS termination (`listen ... tls`, a host's `tls { }` block) driven by real
clients: Python's ssl, curl and `openssl s_client`. SNI picks the host and
its certificate, ECDSA or RSA by what the client can verify; TLS 1.2 and 1.3
only; ALPN http/1.1; 421 when Host names another TLS host; bodies both ways,
keep-alive and pipelining over TLS; gateways see HTTPS and SSL_*; HTTP
backends see X-Forwarded-Proto https; a stalled or garbage handshake costs
one bounded connection; a bad certificate file is a FILE:LINE:COL error and
a reload with it keeps the running generation; a reload swaps certificates
under load without a failed handshake; ticket keys shared by two processes
resume sessions across them."""

import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (Reader, free_port, port_open, read_response, request_bytes, run_atrium,
                      wait_until)
from pki import Pki

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.root = p.ca("root")
    p.ec = p.server(p.root, "ec", ["example.test", "www.example.test"])
    p.rsa = p.server(p.root, "rsa", ["example.test", "www.example.test"], key="rsa-2048")
    p.other = p.server(p.root, "other", ["other.test"])
    p.expired = p.server(p.root, "old", ["example.test"], expired=True)
    return p


def tls_conf(pki, extra="", tls_extra="", port_line="listen 127.0.0.1:{{port}} tls;"):
    return """
%s
%s
upstream app { server {{origin}}; }
host example.test www.example.test {
    tls {
        certificate %s; key %s;
        certificate %s; key %s;
        %s
    }
    route /echo { proxy app; }
    route /sha256 { proxy app; }
    route /bytes { proxy app; }
    route / { return 200 example; }
}
host other.test {
    tls { certificate %s; key %s; }
    route / { return 200 other; }
}
host plain.test { route / { return 200 plain; } }
""" % (port_line, extra, pki.ec.chain, pki.ec.key, pki.rsa.chain, pki.rsa.key, tls_extra,
       pki.other.chain, pki.other.key)


def client_ctx(pki, version=None, alpn=("http/1.1",)):
    ctx = ssl.create_default_context(cafile=str(pki.root.cert))
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def tls_connect(port, pki, sni="example.test", **kw):
    ctx = kw.pop("ctx", None) or client_ctx(pki, **kw)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname=sni)


def tls_get(port, pki, path="/", host="example.test", sni="example.test", headers=(), **kw):
    with tls_connect(port, pki, sni=sni, **kw) as s:
        s.sendall(request_bytes("GET", path, host=host, headers=headers))
        return read_response(Reader(s))


def peer_cn(sock):
    cert = sock.getpeercert()
    return dict(x[0] for x in cert["subject"])["commonName"]


@pytest.fixture
def tls_atrium(atrium, origin, pki):
    o = origin("o1")
    return atrium(tls_conf(pki), origin=o.addr)


def test_sni_picks_host_and_certificate(tls_atrium, pki):
    for sni, host, body, cn in [("example.test", "example.test", b"example", "ec"),
                                ("www.example.test", "www.example.test", b"example", "ec"),
                                ("other.test", "other.test", b"other", "other")]:
        with tls_connect(tls_atrium.port, pki, sni=sni) as s:
            assert peer_cn(s) == cn
            assert s.selected_alpn_protocol() == "http/1.1"
            s.sendall(request_bytes("GET", "/", host=host))
            r = read_response(Reader(s))
            assert r.status == 200 and r.body == body


def test_no_or_unknown_sni_gets_the_first_tls_host(tls_atrium, pki):
    ctx = client_ctx(pki)
    ctx.check_hostname = False
    for sni in (None, "nowhere.test"):
        with tls_connect(tls_atrium.port, pki, sni=sni, ctx=ctx) as s:
            assert peer_cn(s) == "ec"


def test_ecdsa_or_rsa_by_what_the_client_verifies(tls_atrium, pki):
    def served(*args):
        out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % tls_atrium.port,
                              "-servername", "example.test", *args], input=b"",
                             capture_output=True, timeout=20).stdout.decode()
        return [l for l in out.splitlines() if "Server public key" in l or "Peer signature type"
                in l]
    assert "Server public key is 2048 bit" in served("-sigalgs", "RSA-PSS+SHA256")
    assert "Server public key is 256 bit" in served()
    assert "Server public key is 2048 bit" in served("-tls1_2", "-cipher",
                                                     "ECDHE-RSA-AES128-GCM-SHA256")
    assert "Server public key is 256 bit" in served("-tls1_2")


def test_versions_and_suites(tls_atrium, pki):
    for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        with tls_connect(tls_atrium.port, pki, version=v) as s:
            assert s.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                   ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[v]
            if v == ssl.TLSVersion.TLSv1_2:
                assert "GCM" in s.cipher()[0] or "CHACHA20" in s.cipher()[0]
    for old in ("-tls1", "-tls1_1"):
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % tls_atrium.port,
                            old, "-cipher", "ALL:@SECLEVEL=0"], input=b"", capture_output=True,
                           timeout=20)
        assert r.returncode != 0
    # CBC and static RSA suites are not offered under TLS 1.2
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % tls_atrium.port,
                        "-tls1_2", "-cipher", "AES128-SHA:ECDHE-RSA-AES128-SHA"], input=b"",
                       capture_output=True, timeout=20)
    assert r.returncode != 0
    assert tls_atrium.alive()


def test_alpn_without_http11_is_refused(tls_atrium, pki):
    with pytest.raises(ssl.SSLError):
        tls_connect(tls_atrium.port, pki, alpn=("h2",)).close()
    with tls_connect(tls_atrium.port, pki, alpn=None) as s:  # no ALPN at all is fine
        assert s.selected_alpn_protocol() is None


def test_host_naming_another_tls_host_gets_421(tls_atrium, pki):
    r = tls_get(tls_atrium.port, pki, host="other.test", sni="example.test")
    assert r.status == 421
    # a host without TLS of its own may be reached on any TLS connection
    r = tls_get(tls_atrium.port, pki, host="plain.test", sni="example.test")
    assert r.status == 200 and r.body == b"plain"


def test_proxy_over_tls_forwards_https(tls_atrium, pki):
    r = tls_get(tls_atrium.port, pki, path="/echo")
    assert r.status == 200
    hdrs = {k.lower(): v for k, v in r.json()["headers"]}
    assert hdrs["x-forwarded-proto"] == "https"
    assert "proto=https" in hdrs["forwarded"]


def test_bodies_keepalive_and_pipelining_over_tls(tls_atrium, pki):
    body = os.urandom(3 << 20)
    with tls_connect(tls_atrium.port, pki) as s:
        rd = Reader(s)
        for i in range(20):
            s.sendall(request_bytes("GET", "/", host="example.test"))
            assert read_response(rd).body == b"example"
        s.sendall(request_bytes("POST", "/sha256", host="example.test", body=body))
        r = read_response(rd)
        assert r.status == 200 and r.body.decode() == hashlib.sha256(body).hexdigest()
        s.sendall(request_bytes("GET", "/bytes?n=%d" % (5 << 20), host="example.test"))
        r = read_response(rd)
        assert r.status == 200 and len(r.body) == 5 << 20
        s.sendall(b"".join(request_bytes("GET", "/", host="example.test") for _ in range(10)))
        for _ in range(10):
            assert read_response(rd).body == b"example"


def test_stalled_and_garbage_handshakes_are_bounded(atrium, origin, pki):
    o = origin("o1")
    a = atrium(tls_conf(pki, extra="tls_handshake_timeout 1s;"), origin=o.addr)
    # half a ClientHello; plain HTTP; random bytes. (A client that sends
    # nothing is never accepted: TCP_DEFER_ACCEPT leaves it to the kernel.)
    socks = []
    for data in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                 b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n", os.urandom(4096)):
        s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
        s.sendall(data)
        socks.append((s, time.monotonic()))
    for s, t0 in socks:
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
        assert time.monotonic() - t0 < 4  # closed by Atrium (1 s), not by our timeout
        s.close()
    assert tls_get(a.port, pki).status == 200


def test_garbage_after_the_handshake_closes_only_that_connection(tls_atrium, pki):
    s = tls_connect(tls_atrium.port, pki)
    # write bytes that are not a TLS record on the raw socket under the TLS one
    fd = socket.socket(fileno=os.dup(s.fileno()))
    fd.sendall(b"\x17\x03\x03\x00\x05hello-not-encrypted" + os.urandom(100))
    fd.close()
    s.settimeout(5)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        s.sendall(request_bytes("GET", "/", host="example.test"))
        if not s.recv(1):
            raise ConnectionError("closed")
    s.close()
    assert tls_get(tls_atrium.port, pki).status == 200


def test_bad_certificate_files_are_config_errors(tmp_path, pki):
    cases = [
        (str(tmp_path / "missing.pem"), str(pki.ec.key), "certificate %s: No such file" %
         (tmp_path / "missing.pem")),
        (str(pki.ec.chain), str(pki.rsa.key), "key %s does not match certificate" % pki.rsa.key),
        (str(pki.expired.chain), str(pki.expired.key), "certificate %s: expired" %
         pki.expired.chain),
        (str(pki.ec.key), str(pki.ec.key), "certificate %s:" % pki.ec.key),
    ]
    for cert, key, msg in cases:
        conf = tmp_path / "bad.conf"
        conf.write_text("listen 127.0.0.1:%d tls;\nhost * {\n    tls { certificate %s; key %s; }\n"
                        "    route / { return 200; }\n}\n" % (free_port(), cert, key))
        r = run_atrium(["-t", "-c", str(conf)])
        assert r.returncode != 0
        assert msg in r.stderr, r.stderr
        assert r.stderr.startswith(str(conf) + ":3:"), r.stderr


def test_reload_with_a_bad_certificate_keeps_serving(tls_atrium, pki, tmp_path):
    bad = tls_conf(pki).replace(str(pki.ec.key), str(tmp_path / "nope.key"))
    assert tls_atrium.reload(bad, expect_ok=False)
    assert "nope.key" in tls_atrium.error_log
    assert tls_get(tls_atrium.port, pki).body == b"example"


def test_reload_swaps_certificates_under_load_without_a_failed_handshake(atrium, origin, pki,
                                                                          tmp_path):
    o = origin("o1")
    new = pki.server(pki.root, "new", ["example.test"])
    a = atrium(tls_conf(pki), origin=o.addr)
    stop, seen, errors = threading.Event(), set(), []

    def load():
        while not stop.is_set():
            try:
                with tls_connect(a.port, pki) as s:
                    seen.add(peer_cn(s))
                    s.sendall(request_bytes("GET", "/", host="example.test"))
                    assert read_response(Reader(s)).status == 200
            except Exception as e:  # noqa: BLE001 - every failure counts
                errors.append(repr(e))
    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    swapped = tls_conf(pki).replace(str(pki.ec.chain), str(new.chain)).replace(
        str(pki.ec.key), str(new.key))
    assert a.reload(swapped)
    assert wait_until(lambda: "new" in seen, 10)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(10)
    assert not errors, errors[:5]
    assert seen == {"ec", "new"}


def test_gateways_see_https_and_ssl_variables(atrium, pki, tmp_path):
    cgi = tmp_path / "cgi"
    cgi.mkdir()
    script = cgi / "env.sh"
    script.write_text("#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nenv\n")
    script.chmod(0o755)
    a = atrium("""
listen 127.0.0.1:{{port}} tls;
host * {
    tls { certificate %s; key %s; }
    route /cgi/ { cgi %s; }
}
""" % (pki.ec.chain, pki.ec.key, cgi))
    r = tls_get(a.port, pki, path="/cgi/env.sh")
    env = dict(l.split("=", 1) for l in r.body.decode().splitlines() if "=" in l)
    assert env["HTTPS"] == "on" and env["REQUEST_SCHEME"] == "https"
    assert env["SSL_PROTOCOL"] == "TLSv1.3"
    assert env["SSL_CIPHER"].startswith("TLS_")
    assert env["SSL_TLS_SNI"] == "example.test"
    assert env["SSL_SESSION_RESUMED"] == "Initial"
    assert env["SSL_CLIENT_VERIFY"] == "NONE"


def s_client_session(port, sess, out=True):
    """One connection with openssl s_client, saving (out) or offering the session."""
    args = ["openssl", "s_client", "-ign_eof", "-connect", "127.0.0.1:%d" % port, "-servername",
            "example.test", "-tls1_3", "-sess_out" if out else "-sess_in", str(sess)]
    r = subprocess.run(args, input=b"GET / HTTP/1.1\r\nHost: example.test\r\n"
                       b"Connection: close\r\n\r\n", capture_output=True, timeout=20)
    text = r.stdout.decode(errors="replace")
    return "Reused, TLSv1.3" in text


def test_ticket_keys_shared_by_two_processes_resume_across_them(atrium, origin, pki, tmp_path):
    keys = tmp_path / "ticket.keys"
    keys.write_text("\n".join(subprocess.run(["openssl", "rand", "-base64", "80"],
                                             capture_output=True, text=True).stdout.replace(
        "\n", "") for _ in range(2)) + "\n")
    o = origin("o1")
    conf = tls_conf(pki, extra="tls_ticket_keys %s;" % keys)
    a = atrium(conf, origin=o.addr)
    b = atrium(conf, origin=o.addr)
    sess = tmp_path / "sess.pem"
    assert not s_client_session(a.port, sess, out=True)
    assert s_client_session(b.port, sess, out=False), "a ticket from A must resume on B"
    # a process with its own keys cannot
    c = atrium(tls_conf(pki), origin=o.addr)
    assert not s_client_session(c.port, sess, out=False)


def test_ticket_key_file_errors(tmp_path, pki):
    for text, msg in [("not base64!\n", "line 1: not base64"),
                      ("aGVsbG8=\n", "line 1: a key is 80 bytes"),
                      ("", "no key")]:
        keys = tmp_path / "k"
        keys.write_text(text)
        conf = tmp_path / "c.conf"
        conf.write_text("tls_ticket_keys %s;\nlisten 127.0.0.1:%d;\nhost * { route / { return 200; } }\n"
                        % (keys, free_port()))
        r = run_atrium(["-t", "-c", str(conf)])
        assert r.returncode != 0 and msg in r.stderr, r.stderr
        assert r.stderr.startswith("%s:1:17: tls_ticket_keys %s" % (conf, keys)), r.stderr


def test_in_memory_ticket_keys_survive_a_reload(tls_atrium, pki, tmp_path):
    sess = tmp_path / "sess.pem"
    s_client_session(tls_atrium.port, sess, out=True)
    assert tls_atrium.reload()
    assert s_client_session(tls_atrium.port, sess, out=False)


def s_client_tls12_id(port, sess, out):
    """A TLS 1.2 connection without tickets: resumption can only be by session ID."""
    args = ["openssl", "s_client", "-ign_eof", "-connect", "127.0.0.1:%d" % port, "-servername",
            "example.test", "-tls1_2", "-no_ticket", "-sess_out" if out else "-sess_in", str(sess)]
    t0 = time.monotonic()
    r = subprocess.run(args, input=b"GET / HTTP/1.1\r\nHost: example.test\r\n"
                       b"Connection: close\r\n\r\n", capture_output=True, timeout=20)
    text = r.stdout.decode(errors="replace")
    assert "HTTP/1.1 200" in text, text[-2000:]
    return "Reused, TLSv1.2" in text, time.monotonic() - t0


def test_session_ids_resume_on_every_worker_with_the_shared_cache(atrium, origin, pki, tmp_path):
    o = origin("o1")
    a = atrium("workers 2;\n" + tls_conf(pki, extra="tls_session_cache shared 1m;"),
               origin=o.addr)
    sess = tmp_path / "s.pem"
    assert not s_client_tls12_id(a.port, sess, True)[0]
    # connections land on either worker (SO_REUSEPORT): every one resumes
    assert all(s_client_tls12_id(a.port, sess, False)[0] for _ in range(8))
    off = atrium(tls_conf(pki, extra="tls_session_cache off;"), origin=o.addr)
    s_client_tls12_id(off.port, sess, True)
    assert not s_client_tls12_id(off.port, sess, False)[0]


@pytest.fixture
def memcached():
    if not shutil.which("memcached"):
        pytest.skip("memcached is not installed")
    procs = []

    def start():
        port = free_port()
        p = subprocess.Popen(["memcached", "-p", str(port), "-l", "127.0.0.1", "-U", "0",
                              "-u", "root", "-m", "16"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        procs.append(p)
        assert wait_until(lambda: port_open(port), 5)
        return port, p
    yield start
    for p in procs:
        p.kill()
        p.wait(5)


def test_session_ids_resume_across_processes_through_memcached(atrium, origin, pki, tmp_path,
                                                               memcached):
    o = origin("o1")
    (m1, _), (m2, p2) = memcached(), memcached()
    conf = tls_conf(pki, extra="tls_session_cache memcached 127.0.0.1:%d 127.0.0.1:%d;"
                    % (m1, m2))
    a = atrium(conf, origin=o.addr)
    b = atrium(conf, origin=o.addr)
    for i in range(6):  # several sessions: their IDs hash to both servers
        sess = tmp_path / ("s%d.pem" % i)
        assert not s_client_tls12_id(a.port, sess, True)[0]
        assert s_client_tls12_id(b.port, sess, False)[0], "a session made on A resumes on B"
    # a dead memcached costs a full handshake, never a stalled one
    p2.kill()
    p2.wait(5)
    for i in range(6):
        sess = tmp_path / ("d%d.pem" % i)
        reused, took = s_client_tls12_id(a.port, sess, True)
        assert not reused and took < 5
        s_client_tls12_id(b.port, sess, False)
    assert a.alive() and b.alive()


def test_testssl_rates_nothing_high_or_critical(atrium, origin, pki, tmp_path):
    """testssl.sh (Debian's) against the default TLS settings. The certificate is
    a CA-issued one with an OCSP URL, so that only Atrium's settings are judged."""
    testssl = shutil.which("testssl") or shutil.which("testssl.sh")
    if testssl is None:
        pytest.skip("testssl.sh is not installed")
    ca = pki.ca("testssl-root", ocsp_port=free_port())
    cert = pki.server(ca, "testssl", ["example.test"], days=365)
    a = atrium("""
listen 127.0.0.1:{{port}} tls;
host example.test {
    tls { certificate %s; key %s; }
    route / { return 200 ok; }
}
""" % (cert.chain, cert.key))
    out = tmp_path / "testssl.json"
    r = subprocess.run([testssl, "--quiet", "--warnings", "off", "--color", "0", "--add-ca",
                        str(ca.cert), "--jsonfile", str(out), "--ip", "127.0.0.1",
                        "https://example.test:%d" % a.port], capture_output=True, timeout=600)
    findings = json.loads(out.read_text())
    bad = [(f["severity"], f["id"], f["finding"]) for f in findings
           if f["severity"] in ("HIGH", "CRITICAL")]
    assert not bad, bad
    assert any(f["id"] == "TLS1_3" and "offered" in f["finding"] for f in findings)
    assert r.returncode is not None


def test_close_sends_close_notify(tls_atrium, pki):
    """A connection Atrium closes ends with close_notify: a client reading to the
    end (an HTTP/1.0 response) can tell the end from a cut."""
    r = subprocess.run(["openssl", "s_client", "-ign_eof", "-msg", "-connect",
                        "127.0.0.1:%d" % tls_atrium.port, "-servername", "example.test"],
                       input=b"GET / HTTP/1.0\r\nHost: example.test\r\n\r\n",
                       capture_output=True, timeout=20)
    out = r.stdout.decode(errors="replace")
    assert "HTTP/1.1 200" in out
    assert "<<< TLS 1.3, Alert [length 0002], warning close_notify" in out, out[-1500:]


def test_curl(tls_atrium, pki):
    """curl (GnuTLS or OpenSSL, whichever Debian's links) over TLS 1.2 and 1.3:
    verified, ALPN http/1.1, keep-alive across two URLs on one connection."""
    for version in ("--tlsv1.2", "--tlsv1.3"):
        r = subprocess.run(["curl", "-sv", version, "--cacert", str(pki.root.cert), "--resolve",
                            "example.test:%d:127.0.0.1" % tls_atrium.port,
                            "https://example.test:%d/" % tls_atrium.port,
                            "https://example.test:%d/echo" % tls_atrium.port],
                           capture_output=True, timeout=30)
        err = r.stderr.decode(errors="replace")
        assert r.returncode == 0, err[-2000:]
        assert r.stdout.startswith(b"example")
        assert "ALPN: server accepted http/1.1" in err
        assert "Re-using existing connection" in err
