"""tests/integration/pki.py checked on its own (no Atrium): the certificates
say what was asked for, and its OCSP responder answers good and revoked, so
the TLS tests that rely on it cannot silently rot."""

import subprocess

from conftest import free_port
from pki import Pki, ocsp_query, openssl


def text(cert):
    return openssl("x509", "-in", str(cert.cert), "-noout", "-text")


def verify(ca, cert, *extra):
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca.cert), *extra, str(cert.cert)],
                          capture_output=True, text=True)


def test_certificates(tmp_path):
    pki = Pki(tmp_path)
    ca = pki.ca("root", ocsp_port=20000)
    rsa_ca = pki.ca("rsaroot", key="rsa-2048")
    srv = pki.server(ca, "srv", ["a.test", "b.test"], key="rsa-2048")
    ec = pki.server(rsa_ca, "ec", ["c.test"])
    old = pki.server(ca, "old", ["a.test"], expired=True)
    assert verify(ca, srv).returncode == 0
    assert verify(rsa_ca, ec).returncode == 0
    t = text(srv)
    assert "DNS:a.test, DNS:b.test" in t and "TLS Web Server Authentication" in t
    assert "OCSP - URI:http://127.0.0.1:20000/" in t and "rsaEncryption" in t
    assert "id-ecPublicKey" in text(ec) and "OCSP - URI" not in text(ec)
    assert "rsaEncryption" in openssl("x509", "-in", str(rsa_ca.cert), "-noout", "-text")
    assert srv.chain.read_text() == srv.cert.read_text() + ca.cert.read_text()
    r = verify(ca, old)
    assert r.returncode != 0 and "expired" in r.stdout + r.stderr
    assert openssl("x509", "-in", str(old.cert), "-noout", "-enddate").strip() == \
        "notAfter=Jan  2 00:00:00 2020 GMT"


def test_ocsp_responder(tmp_path):
    pki = Pki(tmp_path)
    cca = pki.ca("clients", ocsp_port=free_port())
    alice, bob = pki.client(cca, "alice"), pki.client(cca, "bob")
    assert "TLS Web Client Authentication" in text(alice)
    assert alice.serial != bob.serial
    pki.revoke(bob)
    with pki.start_ocsp(cca) as responder:
        assert ocsp_query(cca, alice) == "good"
        assert ocsp_query(cca, bob) == "revoked"
        assert responder.proc.poll() is None
    assert responder.proc.poll() is not None
