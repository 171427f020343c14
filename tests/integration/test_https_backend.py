"""`protocol https` upstreams against a real nginx (Debian's, OpenSSL 3) as
the HTTPS backend: verification on by default (chain and name), the name
sent and checked (tls_server_name, else the server's host), 502 with a log
line that says why when the backend's certificate does not verify, pooled
TLS connections, sessions resumed on new connections, and a client
certificate for a backend that wants mutual TLS."""

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import free_port, get, wait_port, wait_until
from pki import Pki

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 128; }}
http {{
    log_format tls '$connection $connection_requests $ssl_session_reused $ssl_protocol '
                   '"$ssl_client_s_dn" $request_uri';
    access_log {dir}/access.log tls;
    keepalive_requests 1000;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name backend.test;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_tickets on;
        {extra}
        location / {{ return 200 "nginx-tls $ssl_protocol $request_uri\\n"; }}
    }}
}}
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.root = p.ca("root")
    p.backend = p.server(p.root, "backend", ["backend.test"])
    p.stranger_ca = p.ca("stranger")
    p.clients = p.ca("clients")
    p.proxy = p.client(p.clients, "atrium-proxy")
    return p


class Nginx:
    def __init__(self, dir, pki, extra=""):
        if not Path(NGINX).exists():
            pytest.skip("nginx is not installed")
        self.dir = Path(dir)
        self.port = free_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=self.dir, port=self.port, cert=pki.backend.chain,
                                          key=pki.backend.key, extra=extra))
        self.proc = subprocess.Popen([NGINX, "-p", str(self.dir), "-e", str(self.dir / "error.log"),
                                      "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port, 10, self.proc, "nginx")

    def access(self, want=0):
        """The access log's lines split in fields, once it has at least `want` (nginx
        writes a line after it has sent the response)."""
        path = self.dir / "access.log"
        wait_until(lambda: path.exists() and len(path.read_text().splitlines()) >= want, 5)
        return [l.split() for l in path.read_text().splitlines()] if path.exists() else []

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def nginx(tmp_path, pki):
    started = []

    def start(extra=""):
        n = Nginx(tmp_path / ("nginx%d" % len(started)), pki, extra)
        started.append(n)
        return n
    yield start
    for n in started:
        n.stop()


def conf(n, pki, extra="", trust=None):
    return """
upstream secure {
    protocol https;
    server 127.0.0.1:%d;
    tls_trust %s;
    %s
}
host * { route / { proxy secure; } }
""" % (n.port, trust or pki.root.cert, extra)


def test_verified_backend_pooled_connections(atrium, nginx, pki):
    n = nginx()
    a = atrium(conf(n, pki, "tls_server_name backend.test;"))
    for i in range(5):
        r = get(a.port, "/r%d" % i)
        assert r.status == 200 and r.body == b"nginx-tls TLSv1.3 /r%d\n" % i
    conns = {line[0] for line in n.access(5)}
    assert len(conns) == 1, n.access()  # one pooled TLS connection served all five


def test_sessions_resume_on_new_connections(atrium, nginx, pki):
    n = nginx()
    a = atrium(conf(n, pki, "tls_server_name backend.test; keepalive 0;"))
    for i in range(4):
        assert get(a.port, "/n%d" % i).status == 200
    lines = n.access(4)
    assert len({l[0] for l in lines}) == 4  # a new connection each time
    assert [l[2] for l in lines] == [".", "r", "r", "r"], lines


def test_untrusted_certificate_gets_502_and_says_why(atrium, nginx, pki):
    n = nginx()
    a = atrium(conf(n, pki, "tls_server_name backend.test;", trust=pki.stranger_ca.cert))
    r = get(a.port, "/")
    assert r.status == 502
    assert "certificate verify failed" in a.error_log, a.error_log[-2000:]
    assert not (n.dir / "access.log").exists() or n.access() == []  # nothing reached nginx


def test_name_mismatch_gets_502(atrium, nginx, pki):
    n = nginx()
    a = atrium(conf(n, pki, "tls_server_name wrong.test;"))
    assert get(a.port, "/").status == 502
    assert "certificate verify failed" in a.error_log
    # the default name is the server's host as written: 127.0.0.1 is not in the certificate
    b = atrium(conf(n, pki))
    assert get(b.port, "/").status == 502


def test_verification_off(atrium, nginx, pki):
    n = nginx()
    a = atrium(conf(n, pki, "tls_verify off;", trust=pki.stranger_ca.cert))
    assert get(a.port, "/").status == 200


def test_client_certificate_for_mutual_tls(atrium, nginx, pki):
    n = nginx("ssl_client_certificate %s; ssl_verify_client on;" % pki.clients.cert)
    with_cert = atrium(conf(n, pki, "tls_server_name backend.test; tls_client_certificate %s; "
                            "tls_client_key %s;" % (pki.proxy.cert, pki.proxy.key)))
    r = get(with_cert.port, "/mtls")
    assert r.status == 200
    assert "CN=atrium-proxy" in " ".join(n.access(1)[-1])
    without = atrium(conf(n, pki, "tls_server_name backend.test;"))
    assert get(without.port, "/").status == 400  # nginx: no required SSL certificate was sent


def test_bad_trust_file_is_a_config_error(tmp_path, pki):
    from conftest import run_atrium
    c = tmp_path / "c.conf"
    c.write_text("listen 127.0.0.1:%d;\nupstream s {\n    protocol https;\n    server 127.0.0.1:1;\n"
                 "    tls_trust %s;\n}\nhost * { route / { proxy s; } }\n"
                 % (free_port(), tmp_path / "none.pem"))
    r = run_atrium(["-t", "-c", str(c)])
    assert r.returncode != 0
    assert r.stderr.startswith("%s:5:15: tls_trust %s: No such file" % (c, tmp_path / "none.pem"))


def test_health_check_over_tls(atrium, nginx, pki):
    """An https upstream's health check is made over TLS with the upstream's
    verification: a trusted backend passes, an untrusted one fails and says why."""
    n = nginx()
    a = atrium(conf(n, pki, "tls_server_name backend.test; "
                    "health_check path=/healthz interval=100ms fails=2 passes=1;"))
    assert wait_until(lambda: any("/healthz" in l[-1] for l in n.access(1)), 5)
    assert "fails its health check" not in a.error_log, a.error_log[-2000:]
    assert get(a.port, "/x").status == 200
    a.reload(conf(n, pki, "tls_server_name backend.test; "
                  "health_check path=/healthz interval=100ms fails=2 passes=1;",
                  trust=pki.stranger_ca.cert))
    assert wait_until(lambda: "fails its health check (GET /healthz: certificate verify failed"
                      in a.error_log, 5), a.error_log[-2000:]
    assert get(a.port, "/x").status == 503
