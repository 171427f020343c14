"""A throw-away PKI for the TLS integration tests: CAs, server and client
certificates, revocation and an `openssl ocsp` responder. Standard library
plus the `openssl` CLI (run as a separate process, never linked).

    pki = Pki(tmp_path)
    ca = pki.ca("root", ocsp_port=free_port())     # ECDSA P-256; key="rsa-2048" for RSA
    srv = pki.server(ca, "srv", ["a.test", "b.test"], key="rsa-2048")
    srv.cert, srv.key, srv.chain                   # paths; chain = leaf + CA
    old = pki.server(ca, "old", ["a.test"], expired=True)
    cca = pki.ca("clients", ocsp_port=free_port())
    alice, bob = pki.client(cca, "alice"), pki.client(cca, "bob")
    pki.revoke(bob)
    responder = pki.start_ocsp(cca)                # serves cca's index on its ocsp_port
    ...
    responder.stop()                               # or: with pki.start_ocsp(cca): ...

Each CA is an `openssl ca` directory (index, serial), so revocation is the
real index entry the responder reads. A CA created with ocsp_port puts
http://127.0.0.1:PORT/ in the AIA of every certificate it issues. Revoke
before start_ocsp: whether a running responder rereads its index depends on
the openssl version.
"""

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

OPENSSL = "openssl"
KEYS = {
    "ecdsa-p256": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "rsa-2048": ["-newkey", "rsa:2048"],
}
DAYS = "3650"

CA_CNF = """[ca]
default_ca = ca_default
[ca_default]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/issued
serial = $dir/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[policy_any]
commonName = supplied
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
"""


def openssl(*args, cwd=None):
    """Runs the openssl CLI; raises with its stderr when it fails."""
    r = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


@dataclass
class Ca:
    name: str
    dir: Path
    cert: Path
    key: Path
    cnf: Path
    ocsp_port: Optional[int]

    @property
    def ocsp_url(self):
        return f"http://127.0.0.1:{self.ocsp_port}/" if self.ocsp_port else None


@dataclass
class Cert:
    name: str
    cert: Path
    key: Path
    chain: Path        # leaf then the CA certificate
    serial: str        # hex, as `openssl x509 -serial` prints it
    ca: Ca


class Responder:
    """An `openssl ocsp` responder process; stop() ends it (idempotent)."""

    def __init__(self, proc, port, log):
        self.proc, self.port, self.log = proc, port, log

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Pki:
    """Creates everything under `dir` (a pytest tmp_path, say)."""

    def __init__(self, dir):
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)

    def ca(self, name, key="ecdsa-p256", ocsp_port=None):
        """A self-signed root CA named CN=name, valid 10 years."""
        d = self.dir / name
        (d / "issued").mkdir(parents=True)
        (d / "index.txt").write_text("")
        (d / "serial").write_text("1000\n")
        cnf = d / "ca.cnf"
        cnf.write_text(CA_CNF.format(dir=d))
        cert, k = d / "ca.pem", d / "ca.key"
        openssl("req", "-x509", *KEYS[key], "-nodes", "-keyout", str(k), "-out", str(cert),
                "-days", DAYS, "-subj", f"/CN={name}", "-config", str(cnf),
                "-extensions", "v3_ca")
        return Ca(name, d, cert, k, cnf, ocsp_port)

    def server(self, ca, name, dns_names: List[str], key="ecdsa-p256", expired=False, days=DAYS):
        """A server certificate (serverAuth) for dns_names, issued by ca."""
        san = ", ".join(f"DNS:{n}" for n in dns_names)
        return self._issue(ca, name, key, f"extendedKeyUsage = serverAuth\n"
                           f"subjectAltName = {san}\n", expired, days)

    def client(self, ca, name, key="ecdsa-p256", expired=False):
        """A client certificate (clientAuth) with CN=name, issued by ca."""
        return self._issue(ca, name, key, "extendedKeyUsage = clientAuth\n", expired)

    def revoke(self, cert, reason="keyCompromise"):
        """Marks cert revoked in its CA's index (what the responder answers)."""
        openssl("ca", "-batch", "-config", str(cert.ca.cnf), "-keyfile", str(cert.ca.key),
                "-cert", str(cert.ca.cert), "-revoke", str(cert.cert), "-crl_reason", reason)

    def start_ocsp(self, ca, ndays=1, timeout=10.0, nmin=None):
        """Starts `openssl ocsp` for ca's index on 127.0.0.1:ca.ocsp_port, signing
        with the CA key itself (responses valid ndays days, or nmin minutes);
        returns once the port accepts."""
        log = ca.dir / "ocsp.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [OPENSSL, "ocsp", "-index", str(ca.dir / "index.txt"), "-port",
                 str(ca.ocsp_port), "-rsigner", str(ca.cert), "-rkey", str(ca.key),
                 "-CA", str(ca.cert), *(["-nmin", str(nmin)] if nmin else ["-ndays", str(ndays)]),
                 "-ignore_err"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        resp = Responder(proc, ca.ocsp_port, log)
        # Wait for its banner, not for the port: the responder serves one
        # connection at a time, and a probe that connects and says nothing
        # holds it until its read times out.
        deadline = time.monotonic() + timeout
        while b"waiting for OCSP client connections" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                resp.stop()
                raise RuntimeError(f"openssl ocsp did not start: {log.read_text()}")
            time.sleep(0.05)
        return resp

    def _issue(self, ca, name, key, ext, expired, days=DAYS):
        d = ca.dir
        k, csr, cert, chain = (d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem",
                               d / f"{name}.chain.pem")
        ext = ("basicConstraints = critical, CA:false\n"
               "keyUsage = critical, digitalSignature, keyEncipherment\n"
               "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n" + ext)
        if ca.ocsp_url:
            ext += f"authorityInfoAccess = OCSP;URI:{ca.ocsp_url}\n"
        extfile = d / f"{name}.ext"
        extfile.write_text("[leaf]\n" + ext)
        openssl("req", "-new", *KEYS[key], "-nodes", "-keyout", str(k), "-out", str(csr),
                "-subj", f"/CN={name}", "-config", str(ca.cnf))
        # openssl refuses negative -days; openssl ca takes explicit dates instead.
        dates = (["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"] if expired
                 else ["-days", str(days)])
        openssl("ca", "-batch", "-notext", "-config", str(ca.cnf), "-cert", str(ca.cert),
                "-keyfile", str(ca.key), "-in", str(csr), "-out", str(cert), *dates,
                "-extfile", str(extfile), "-extensions", "leaf")
        chain.write_text(cert.read_text() + ca.cert.read_text())
        serial = openssl("x509", "-in", str(cert), "-noout", "-serial").strip().split("=")[1]
        return Cert(name, cert, k, chain, serial, ca)


def ocsp_query(ca, cert, url=None):
    """Asks a responder about cert the way a client would (`openssl ocsp
    -issuer -cert -url`); returns "good", "revoked" or "unknown"."""
    out = openssl("ocsp", "-issuer", str(ca.cert), "-cert", str(cert.cert), "-CAfile",
                  str(ca.cert), "-url", url or ca.ocsp_url, "-timeout", "5")
    line = next(l for l in out.splitlines() if l.startswith(f"{cert.cert}:"))
    return line.split(":", 1)[1].strip()

