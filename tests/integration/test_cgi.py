"""CGI scripts run through the proxy core (`cgi DIR;` routes): shell, Perl and
compiled C scripts; the exact environment a script gets (and nothing of
Atrium's own); request bodies in both directions without deadlock; Status,
Location, Set-Cookie, bare-LF headers, NPH scripts and local redirects;
404/403 for what is not a runnable script and no way out of the directory;
cgi_timeout killing a runaway script and its whole process group; crashing
and half-written scripts; cgi_max_procs / cgi_queue under load and no zombie
left behind.

Scripts live in apps/cgi/ and are copied into a per-test CGI directory with
the mode each test needs; the C program is compiled there with gcc. Scripts
that a test must find among the running processes get a unique name."""

import hashlib
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import (Background, Reader, connect, free_port, get, http_request, open_fds,
                      raw_ex, read_response, request_bytes, wait_until)

HERE = Path(__file__).resolve().parent
CGI_APPS = HERE / "apps" / "cgi"
MIB = 1 << 20

# Every variable Atrium may set for a script (RFC 3875 meta-variables and the
# usual extensions); anything else, apart from HTTP_* for request headers,
# would have to come from Atrium's own environment.
CGI_VARS = {
    "AUTH_TYPE", "CONTENT_LENGTH", "CONTENT_TYPE", "DOCUMENT_ROOT", "GATEWAY_INTERFACE",
    "HTTPS", "PATH", "PATH_INFO", "PATH_TRANSLATED", "QUERY_STRING", "REDIRECT_STATUS",
    "REMOTE_ADDR", "REMOTE_HOST", "REMOTE_IDENT", "REMOTE_PORT", "REMOTE_USER",
    "REQUEST_METHOD", "REQUEST_SCHEME", "REQUEST_URI", "SCRIPT_FILENAME", "SCRIPT_NAME",
    "SERVER_ADDR", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "SERVER_SOFTWARE",
}


# ---------------------------------------------------------------- helpers

class CgiDir:
    """A CGI directory under tmp_path; scripts are copied in with a chosen mode."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o755)

    def install(self, name, as_name=None, mode=0o755, into=None):
        dest_dir = Path(into) if into else self.path
        dest = dest_dir / (as_name or name)
        shutil.copyfile(CGI_APPS / name, dest)
        os.chmod(dest, mode)
        return dest

    def compile_c(self, src, out):
        dest = self.path / out
        res = subprocess.run(["gcc", "-O1", "-o", str(dest), str(CGI_APPS / src)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=60)
        assert res.returncode == 0, "gcc failed:\n" + res.stdout
        os.chmod(dest, 0o755)
        return dest


@pytest.fixture
def cgi(tmp_path):
    return CgiDir(tmp_path / "www" / "cgi")


def cgi_conf(d, main=""):
    path = d.path if isinstance(d, CgiDir) else Path(d)
    return "%s\nhost * {\n    route /cgi-bin/ { cgi %s; }\n}\n" % (main, path)


def unique(stem, ext=".sh"):
    return "%s_%s%s" % (stem, uuid.uuid4().hex[:12], ext)


def pgrep_count(pattern):
    """`pgrep -c -f pattern`: processes whose command line contains pattern."""
    res = subprocess.run(["pgrep", "-c", "-f", pattern], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, timeout=10)
    assert res.returncode in (0, 1), res.stderr
    return int(res.stdout.strip() or "0")


def proc_stat(pid):
    """(state, ppid) of a process, or None when it does not exist."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = s[s.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def running(pid):
    """The process exists and is not a zombie (an orphan killed with its group
    may stay a zombie of a non-reaping PID 1: that is not Atrium's doing)."""
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def zombies_of(ppid):
    """`ps -eo stat,ppid`: zombie processes whose parent is ppid."""
    res = subprocess.run(["ps", "-eo", "pid=,stat=,ppid="], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, timeout=10)
    assert res.returncode == 0, res.stderr
    out = []
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].startswith("Z") and int(parts[2]) == ppid:
            out.append(int(parts[0]))
    return out


def read_pids(path, n, timeout=5.0):
    """Wait for a script's pid file (written atomically) and return n pids."""
    ok = wait_until(lambda: path.exists(), timeout)
    assert ok, "the script never wrote %s" % path
    pids = [int(x) for x in path.read_text().split()]
    assert len(pids) == n, pids
    return pids


def env_of(r):
    assert r.status == 200, r
    assert r.get("content-type") == "application/json", r
    try:
        return r.json()
    except ValueError:
        raise AssertionError("env.pl did not answer JSON: %r" % (r,))


def status_counts(results):
    out = {}
    for st in results:
        out[st] = out.get(st, 0) + 1
    return out


# ---------------------------------------------------------------- languages

def test_shell_perl_and_compiled_c_scripts_answer(atrium, cgi):
    cgi.install("hello.sh")
    cgi.install("hello.pl")
    cgi.compile_c("hello_c.c", "hello_c")
    a = atrium(cgi_conf(cgi))
    for path, body in (("/cgi-bin/hello.sh", b"shell ok"), ("/cgi-bin/hello.pl", b"perl ok"),
                       ("/cgi-bin/hello_c", b"C ok")):
        r = get(a.port, path)
        assert r.status == 200, (path, r)
        assert r.body == body, (path, r)
        assert r.get("content-type") == "text/plain", (path, r)


def test_fast_scripts_that_ignore_stdin_always_answer(atrium, cgi):
    """Scripts that exit at once without reading stdin (RFC 3875 4.2: a script
    need not read its body) still answer, whether or not Atrium had written
    to the pipe before they exited: no 502 for a GET (nothing to write) nor
    for a small POST body nobody reads. 8 clients x 25 requests."""
    cgi.install("hello.sh")
    cgi.install("hello.pl")
    a = atrium(cgi_conf(cgi))

    def client(path, method):
        out = []
        for _ in range(25):
            body = b"hello" if method == "POST" else None
            r = http_request(a.port, method, path, body=body, timeout=15.0)
            out.append((method, r.status, r.body))
        return out

    jobs = [Background(client, "/cgi-bin/hello.sh" if i % 2 else "/cgi-bin/hello.pl",
                       "POST" if i % 4 >= 2 else "GET")
            for i in range(8)]
    results = [x for j in jobs for x in j.result(60.0)]
    bad = [x for x in results if x[1] != 200 or x[2] not in (b"shell ok", b"perl ok")]
    assert not bad, "%d of %d requests failed, e.g. %r" % (len(bad), len(results), bad[:3])


# ---------------------------------------------------------------- environment

def test_environment_variable_by_variable(atrium, cgi, monkeypatch):
    # Atrium's own environment holds a secret: no script may see it.
    monkeypatch.setenv("ATRIUM_SECRET", "1")
    monkeypatch.setenv("HOME", "/root")
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("HTTP_PROXY", "http://from-atrium-env.invalid")
    cgi.install("env.pl")
    a = atrium(cgi_conf(cgi))
    target = "/cgi-bin/env.pl/a/b?x=1&y=%41+b&&z"
    r = http_request(a.port, "GET", target, host="example.test:%d" % a.port, headers=[
        ("X-Custom", "hello"), ("Proxy", "x"), ("Authorization", "Basic dXNlcjpwYXNz"),
        ("X_Under", "sneaky")])
    e = env_of(r)
    assert e.get("GATEWAY_INTERFACE") == "CGI/1.1", e
    assert e.get("SERVER_PROTOCOL") == "HTTP/1.1", e
    assert e.get("REQUEST_METHOD") == "GET", e
    assert e.get("QUERY_STRING") == "x=1&y=%41+b&&z", e
    assert e.get("SCRIPT_NAME") == "/cgi-bin/env.pl", e
    assert e.get("PATH_INFO") == "/a/b", e
    assert e.get("SCRIPT_FILENAME") == "%s/env.pl" % cgi.path, e
    root = e.get("DOCUMENT_ROOT")
    assert root and root.startswith("/"), e
    assert e["SCRIPT_FILENAME"].startswith(root.rstrip("/") + "/"), e
    assert e.get("REQUEST_URI") == target, e
    assert e.get("REMOTE_ADDR") == "127.0.0.1", e
    assert e.get("REMOTE_PORT", "").isdigit() and 0 < int(e["REMOTE_PORT"]) < 65536, e
    assert e.get("SERVER_PORT") == str(a.port), e
    assert e.get("SERVER_NAME") == "example.test", e
    assert e.get("PATH") == "/usr/local/bin:/usr/bin:/bin", e
    assert "CONTENT_LENGTH" not in e and "CONTENT_TYPE" not in e, e
    assert e.get("HTTP_X_CUSTOM") == "hello", e
    assert e.get("HTTP_HOST") == "example.test:%d" % a.port, e
    # httpoxy, credentials, underscore names and hop-by-hop fields stay out.
    assert "HTTP_PROXY" not in e, "httpoxy: %r" % e.get("HTTP_PROXY")
    assert "HTTP_AUTHORIZATION" not in e, e
    assert not [k for k in e if "UNDER" in k.upper()], e
    http_vars = {k for k in e if k.startswith("HTTP_")}
    assert http_vars == {"HTTP_HOST", "HTTP_X_CUSTOM"}, sorted(http_vars)
    # Nothing from Atrium's own environment.
    for k in ("ATRIUM_SECRET", "HOME", "LANG", "USER", "PWD", "SHELL", "LOGNAME", "TERM"):
        assert k not in e, "%s leaked into the script's environment: %r" % (k, e)
    extra = sorted(k for k in e if k not in CGI_VARS and not k.startswith("HTTP_"))
    assert not extra, "variables that are not CGI variables: %r" % extra


def test_environment_get_without_path_info_and_post(atrium, cgi):
    cgi.install("env.pl")
    a = atrium(cgi_conf(cgi))
    e = env_of(get(a.port, "/cgi-bin/env.pl"))
    assert "PATH_INFO" not in e, e
    assert e.get("QUERY_STRING") == "", e
    assert e.get("SCRIPT_NAME") == "/cgi-bin/env.pl", e
    assert e.get("REQUEST_URI") == "/cgi-bin/env.pl", e
    assert e.get("SERVER_NAME") == "example.test", e
    assert "CONTENT_LENGTH" not in e and "CONTENT_TYPE" not in e, e

    r = http_request(a.port, "POST", "/cgi-bin/env.pl?q=1", body=b"x=1&y=2",
                     headers=[("Content-Type", "application/x-www-form-urlencoded")])
    e = env_of(r)
    assert e.get("REQUEST_METHOD") == "POST", e
    assert e.get("CONTENT_LENGTH") == "7", e
    assert e.get("CONTENT_TYPE") == "application/x-www-form-urlencoded", e
    assert e.get("QUERY_STRING") == "q=1", e
    assert "HTTP_CONTENT_LENGTH" not in e and "HTTP_CONTENT_TYPE" not in e, e


def test_addresses_on_wildcard_specific_and_ipv6_listeners(atrium, cgi):
    # SERVER_ADDR is the address the client reached (asked of the socket on a
    # wildcard listener, known from the listener otherwise); REMOTE_ADDR and
    # REMOTE_PORT are the client's, IPv6 included.
    cgi.install("env.pl")
    wild, v6 = free_port(), free_port()
    a = atrium(cgi_conf(cgi, "listen 127.0.0.1:{{port}};\nlisten 0.0.0.0:%d;\nlisten [::1]:%d;"
                        % (wild, v6)), wait_ports=None)

    def env_via(family, addr, port):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect((addr, port))
            local = s.getsockname()
            s.sendall(request_bytes("GET", "/cgi-bin/env.pl", headers=[("Connection", "close")]))
            return env_of(read_response(Reader(s))), local

    e, local = env_via(socket.AF_INET, "127.0.0.1", a.port)
    assert e["SERVER_ADDR"] == "127.0.0.1" and e["SERVER_PORT"] == str(a.port), e
    assert e["REMOTE_ADDR"] == local[0] and e["REMOTE_PORT"] == str(local[1]), (e, local)
    e, local = env_via(socket.AF_INET, "127.0.0.2", wild)
    assert e["SERVER_ADDR"] == "127.0.0.2" and e["SERVER_PORT"] == str(wild), e
    assert e["REMOTE_ADDR"] == local[0] and e["REMOTE_PORT"] == str(local[1]), (e, local)
    e, local = env_via(socket.AF_INET6, "::1", v6)
    assert e["SERVER_ADDR"] == "::1" and e["REMOTE_ADDR"] == "::1", e
    assert e["REMOTE_PORT"] == str(local[1]), (e, local)


# ---------------------------------------------------------------- bodies

def test_post_1mib_byte_exact(atrium, cgi):
    cgi.install("sha.pl")
    a = atrium(cgi_conf(cgi))
    body = os.urandom(MIB)
    r = http_request(a.port, "POST", "/cgi-bin/sha.pl", body=body, timeout=20.0,
                     headers=[("Content-Type", "application/octet-stream")])
    assert r.status == 200, r
    assert r.text() == "len=%d sha256=%s content_length=%d" % (
        MIB, hashlib.sha256(body).hexdigest(), MIB), r


def test_chunked_post_spooled_with_content_length(atrium, cgi, tmp_path):
    # A script learns the body length from CONTENT_LENGTH only: the chunked
    # body is spooled first. A spool_dir that is gone by then gives 500.
    cgi.install("sha.pl")
    spool = tmp_path / "spool"
    spool.mkdir()
    a = atrium(cgi_conf(cgi, "spool_dir %s;" % spool))
    body = os.urandom(MIB + 17)
    raw = b"".join(b"%x\r\n" % len(body[i:i + 65536]) + body[i:i + 65536] + b"\r\n"
                   for i in range(0, len(body), 65536)) + b"0\r\n\r\n"
    r = raw_ex(a.port, request_bytes("POST", "/cgi-bin/sha.pl", headers=[
        ("Transfer-Encoding", "chunked"), ("Connection", "close")]) + raw, timeout=20.0)
    resp = r.responses()[0]
    assert resp.status == 200, r
    assert resp.text() == "len=%d sha256=%s content_length=%d" % (
        len(body), hashlib.sha256(body).hexdigest(), len(body)), resp
    spool.rmdir()
    r = raw_ex(a.port, request_bytes("POST", "/cgi-bin/sha.pl", headers=[
        ("Transfer-Encoding", "chunked"), ("Connection", "close")]) + b"1\r\nx\r\n0\r\n\r\n",
        timeout=10.0)
    assert r.status == 500, r
    assert "cannot create a temporary file" in a.error_log
    assert get(a.port, "/cgi-bin/sha.pl").status == 200


def test_client_leaving_mid_spool_leaves_no_file_open(atrium, cgi, tmp_path):
    cgi.install("sha.pl")
    spool = tmp_path / "spool"
    spool.mkdir()
    a = atrium(cgi_conf(cgi, "spool_dir %s;" % spool))

    def spool_fds():
        return [t for t in open_fds(a.pid).values() if t.startswith(str(spool))]

    s = connect(a.port)
    s.sendall(request_bytes("POST", "/cgi-bin/sha.pl", headers=[
        ("Transfer-Encoding", "chunked")]) + b"10000\r\n" + b"x" * 30000)
    assert wait_until(lambda: len(spool_fds()) == 1, 5.0), spool_fds()
    s.close()                                        # gone before the body ended
    assert wait_until(lambda: spool_fds() == [], 5.0), spool_fds()
    assert list(spool.iterdir()) == []
    assert get(a.port, "/cgi-bin/sha.pl").status == 200


def test_script_reading_stdin_to_eof_gets_eof(atrium, cgi):
    """After the request body, the script's stdin is closed: a script reading
    to EOF (cat, wc, ...) finishes instead of waiting for cgi_timeout."""
    cgi.install("eof.sh")
    a = atrium(cgi_conf(cgi, "cgi_timeout 3s;"))
    for n in (0, 5, 256 * 1024):
        r = http_request(a.port, "POST", "/cgi-bin/eof.sh", body=b"e" * n, timeout=15.0)
        assert r.status == 200, ("body of %d bytes" % n, r)
        assert r.text() == "read=%d" % n, ("body of %d bytes" % n, r)
    assert get(a.port, "/cgi-bin/eof.sh").text() == "read=0"


def _write_first_exchange(port, body):
    """POST body to writefirst.pl, sending from a thread while the response is
    read, so that the client itself can never be the cause of a deadlock."""
    with connect(port, timeout=20.0) as s:
        head = request_bytes("POST", "/cgi-bin/writefirst.pl", headers=[
            ("Content-Type", "application/octet-stream"), ("Connection", "close")], body=body)
        sender = Background(s.sendall, head)
        r = read_response(Reader(s))
        sender.result(20.0)
        return r


def test_script_writes_1mib_before_reading_1mib_body_no_deadlock(atrium, cgi):
    cgi.install("writefirst.pl")
    a = atrium(cgi_conf(cgi))
    bodies = [os.urandom(MIB) for _ in range(10)]
    jobs = [Background(_write_first_exchange, a.port, b) for b in bodies]
    for b, job in zip(bodies, jobs):
        r = job.result(40.0)
        assert r.status == 200, r
        expect = b"o" * MIB + ("|len=%d sha256=%s" % (MIB, hashlib.sha256(b).hexdigest())).encode()
        assert len(r.body) == len(expect), (len(r.body), r.body[-120:])
        assert r.body == expect, r.body[-120:]


# ---------------------------------------------------------------- response heads

def test_status_and_set_cookies_passed_on(atrium, cgi):
    cgi.install("status.sh")
    a = atrium(cgi_conf(cgi))
    res = raw_ex(a.port, request_bytes("GET", "/cgi-bin/status.sh",
                                       headers=[("Connection", "close")]), timeout=5.0)
    assert res.data.startswith(b"HTTP/1.1 201 Created\r\n"), res
    (r,) = res.responses()
    assert r.status == 201, r
    assert r.get_all("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly", "c=3"], r
    assert r.get("x-script") == "status", r
    assert r.get("status") is None, "the CGI Status field reached the client: %r" % r
    assert r.body == b"created", r


def test_location_with_full_url_is_302(atrium, cgi):
    cgi.install("absloc.sh")
    a = atrium(cgi_conf(cgi))
    r = get(a.port, "/cgi-bin/absloc.sh")
    assert r.status == 302, r
    assert r.get("location") == "http://elsewhere.test/landing?x=1", r


def test_bare_lf_header_lines(atrium, cgi):
    cgi.install("lf.sh")
    a = atrium(cgi_conf(cgi))
    r = get(a.port, "/cgi-bin/lf.sh")
    assert r.status == 200, r
    assert r.get("content-type") == "text/plain", r
    assert r.get("x-lf") == "yes", r
    assert r.body == b"lf body\n", r


def test_nph_script_status_line(atrium, cgi):
    cgi.install("nph-x.sh")
    a = atrium(cgi_conf(cgi))
    r = get(a.port, "/cgi-bin/nph-x.sh")
    assert r.status == 202, r
    assert r.get("x-nph") == "yes", r
    assert r.body == b"nph ok", r
    # a status line and a Status field: 502 (it went out as 200 with a stray Status)
    cgi.install("nph-two.sh")
    assert get(a.port, "/cgi-bin/nph-two.sh").status == 502


def test_local_redirect_and_redirect_loop(atrium, cgi):
    for n in ("redir.sh", "other.sh", "selfloop.sh", "hello.sh"):
        cgi.install(n)
    a = atrium(cgi_conf(cgi))
    r = get(a.port, "/cgi-bin/redir.sh")
    assert r.status == 200, r
    assert r.get("location") is None, r
    assert r.text() == "other PATH_INFO=/p METHOD=GET SCRIPT_NAME=/cgi-bin/other.sh", r

    r = get(a.port, "/cgi-bin/selfloop.sh", timeout=15.0)
    assert r.status == 500, r
    assert get(a.port, "/cgi-bin/hello.sh").body == b"shell ok"


def test_a_redirect_with_other_headers_goes_to_the_client(atrium, cgi):
    """Location with a Set-Cookie is no local redirect (RFC 3875 6.2.2 allows one
    only when Location is the sole header): 302 with every header, the cookie kept."""
    cgi.install("redir-cookie.sh")
    a = atrium(cgi_conf(cgi))
    r = get(a.port, "/cgi-bin/redir-cookie.sh")
    assert r.status == 302, r
    assert r.get("location") == "/cgi-bin/other.sh/p", r
    assert r.get("set-cookie") == "session=abc; Path=/", r


def test_head_redirected_locally_to_a_static_file_gets_no_body(atrium, cgi, tmp_path):
    """The redirect is served as a GET, but the client asked HEAD: no body (the static
    file's bytes went out and the next response on the connection was out of step)."""
    cgi.install("redir-static.sh")
    pub = tmp_path / "pub"
    pub.mkdir()
    (pub / "a.txt").write_text("hello\n")
    a = atrium("host * {\n    route /cgi-bin/ { cgi %s; }\n    route /pub/ { static %s; }\n}\n"
               % (cgi.path, pub))
    r = raw_ex(a.port, b"HEAD /cgi-bin/redir-static.sh HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /pub/a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=5)
    rs = r.responses(["HEAD", "GET"])
    assert [x.status for x in rs] == [200, 200], r.data
    assert rs[0].body == b"" and rs[1].body == b"hello\n", r.data


# ---------------------------------------------------------------- what is not a script

def test_missing_directory_and_non_executable(atrium, cgi):
    cgi.install("hello.sh")
    sub = cgi.path / "sub"
    sub.mkdir()
    cgi.install("hello.sh", into=sub)
    noexec = cgi.install("outside.sh", as_name="noexec.sh", mode=0o644)
    a = atrium(cgi_conf(cgi))
    for path, want in (("/cgi-bin/nope.sh", 404), ("/cgi-bin/nope.sh/extra", 404),
                       ("/cgi-bin/sub/nope.sh", 404),
                       ("/cgi-bin/sub", 403), ("/cgi-bin/sub/", 403), ("/cgi-bin/", 403),
                       ("/cgi-bin/noexec.sh", 403), ("/cgi-bin/noexec.sh/x", 403)):
        r = get(a.port, path)
        assert r.status == want, (path, r)
        assert b"OUTSIDE RAN" not in r.body, (path, r)
    assert not Path(str(noexec) + ".ran").exists(), "the non-executable script ran"
    r = get(a.port, "/cgi-bin/sub/hello.sh")
    assert r.status == 200 and r.body == b"shell ok", r


def test_traversal_never_runs_outside_the_directory(atrium, cgi):
    outside = cgi.install("outside.sh", into=cgi.path.parent)      # www/outside.sh, 0755
    (cgi.path / "sub").mkdir()
    cgi.install("hello.sh")
    marker = Path(str(outside) + ".ran")
    a = atrium(cgi_conf(cgi))
    targets = [
        "/cgi-bin/../outside.sh",
        "/cgi-bin/%2e%2e/outside.sh",
        "/cgi-bin/%2E%2E/outside.sh",
        "/cgi-bin/.%2e/outside.sh",
        "/cgi-bin/..%2foutside.sh",
        "/cgi-bin/%2e%2e%2foutside.sh",
        "/cgi-bin/sub/../../outside.sh",
        "/cgi-bin/sub/%2e%2e/%2e%2e/outside.sh",
        "/cgi-bin/hello.sh/../../outside.sh",
        "/cgi-bin/..",
        "/cgi-bin/%2e%2e",
        "http://example.test/cgi-bin/../outside.sh",
    ]
    for t in targets:
        res = raw_ex(a.port, request_bytes("GET", t, headers=[("Connection", "close")]),
                     timeout=5.0)
        assert res.status in (400, 404), (t, res)
        assert b"OUTSIDE RAN" not in res.data, (t, res)
        assert not marker.exists(), "%s ran a script outside the CGI directory" % t
    assert get(a.port, "/cgi-bin/hello.sh").status == 200


# ---------------------------------------------------------------- timeouts and kills

def test_runaway_script_504_and_killed(atrium, cgi):
    name = unique("spin")
    cgi.install("spin.sh", as_name=name)
    cgi.install("hello.sh")
    a = atrium(cgi_conf(cgi, "cgi_timeout 1s;"))
    r = get(a.port, "/cgi-bin/" + name, timeout=15.0)
    assert r.status == 504, r
    gone = wait_until(lambda: pgrep_count(name) == 0, 5.0, 0.1)
    assert gone, "%d process(es) of %s still running after the 504" % (pgrep_count(name), name)
    assert get(a.port, "/cgi-bin/hello.sh").status == 200


def test_timeout_kills_the_whole_process_group(atrium, cgi):
    name = unique("group")
    script = cgi.install("group.sh", as_name=name)
    a = atrium(cgi_conf(cgi, "cgi_timeout 1s;"))
    job = Background(get, a.port, "/cgi-bin/" + name, timeout=15.0)
    script_pid, child_pid = read_pids(Path(str(script) + ".pids"), 2)
    assert running(child_pid), "the background sleep did not start"
    r = job.result(20.0)
    assert r.status == 504, r
    gone = wait_until(lambda: not running(script_pid) and not running(child_pid), 5.0, 0.05)
    assert gone, "still running after the 504: script %s=%s, its child sleep %s=%s" % (
        script_pid, proc_stat(script_pid), child_pid, proc_stat(child_pid))
    assert pgrep_count(name) == 0


def test_what_a_script_leaves_in_its_group_is_stopped_when_it_exits(atrium, cgi):
    """A script that answers and exits but leaves `sleep &` holding its output:
    the left-over gets SIGTERM when the script exits, so the response ends at once
    (it hung until cgi_timeout) and the slot comes back (the left-overs ran on
    outside cgi_max_procs)."""
    name = unique("leftover")
    script = cgi.install("leftover.sh", as_name=name)
    a = atrium(cgi_conf(cgi, "cgi_timeout 20s; cgi_max_procs 1;"))
    pid_file = Path(str(script) + ".pid")
    for _ in range(3):
        t0 = time.monotonic()
        r = get(a.port, "/cgi-bin/" + name, timeout=15.0)
        assert (r.status, r.body) == (200, b"answered"), r
        assert time.monotonic() - t0 < 10, "the response waited for the left-over"
        (pid,) = read_pids(pid_file, 1)
        assert wait_until(lambda: not running(pid), 5.0, 0.05), proc_stat(pid)
        pid_file.unlink()
    assert pgrep_count(name) == 0


def test_script_ignoring_sigterm_is_killed(atrium, cgi):
    name = unique("stubborn")
    script = cgi.install("stubborn.sh", as_name=name)
    a = atrium(cgi_conf(cgi, "cgi_timeout 1s;"))
    job = Background(get, a.port, "/cgi-bin/" + name, timeout=15.0)
    (pid,) = read_pids(Path(str(script) + ".pid"), 1)
    r = job.result(20.0)
    assert r.status == 504, r
    # SIGTERM is ignored: SIGKILL must follow (2 s later by contract).
    gone = wait_until(lambda: not running(pid) and pgrep_count(name) == 0, 8.0, 0.1)
    assert gone, "a script ignoring SIGTERM survives: %s (%d processes)" % (
        proc_stat(pid), pgrep_count(name))


def test_stop_while_a_reaped_scripts_stderr_is_still_open(atrium, cgi):
    # The script exits at once but a grandchild in its own session holds its
    # stderr: Atrium stops with the child reaped and its stderr pipe open,
    # and must free everything (ASan's leak check runs at teardown).
    name = unique("detach")
    script = cgi.install("detach.sh", as_name=name)
    a = atrium(cgi_conf(cgi))
    try:
        r = get(a.port, "/cgi-bin/" + name)
        assert r.status == 200 and r.body == b"detached", r
        (pid,) = read_pids(Path(str(script) + ".pid"), 1)
        assert a.stop() == 0
        a.check_logs()
    finally:
        if "pid" in locals():
            os.kill(pid, 9)


# ---------------------------------------------------------------- broken scripts

def test_crashing_and_half_written_scripts_502(atrium, cgi):
    for n in ("segv.sh", "partial.sh", "hello.sh"):
        cgi.install(n)
    a = atrium(cgi_conf(cgi))
    for path in ("/cgi-bin/segv.sh", "/cgi-bin/partial.sh", "/cgi-bin/segv.sh"):
        r = get(a.port, path, timeout=15.0)
        assert r.status == 502, (path, r)
        assert get(a.port, "/cgi-bin/hello.sh").body == b"shell ok", path
    assert a.alive()


# ---------------------------------------------------------------- limits

def test_200_concurrent_requests_at_most_max_procs(atrium, cgi):
    name = unique("slow", ".pl")
    cgi.install("slow.pl", as_name=name)
    # Four workers: the limit counts the children of all of them.
    a = atrium(cgi_conf(cgi, "workers 4;\ncgi_max_procs 16;\ncgi_queue 256;"))
    samples = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(pgrep_count(name))
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        jobs = [Background(get, a.port, "/cgi-bin/" + name, timeout=30.0) for _ in range(200)]
        results = []
        for j in jobs:
            try:
                r = j.result(60.0)
                results.append((r.status, r.body))
            except (OSError, ValueError, AssertionError) as e:
                results.append(("error", repr(e)))
    finally:
        stop.set()
        sampler.join(10)
    bad = [x for x in results if x != (200, b"slow ok")]
    assert not bad, "%d of 200 did not get 200: %r" % (len(bad), bad[:5])
    assert samples, "no samples"
    assert max(samples) <= 16, "up to %d scripts at once (cgi_max_procs 16)" % max(samples)
    assert max(samples) > 1, "never more than one script at once: %r" % samples[:50]
    clean = wait_until(lambda: pgrep_count(name) == 0 and not zombies_of(a.pid), 5.0, 0.05)
    assert clean, "left behind: %d script processes, zombies of atrium %r" % (
        pgrep_count(name), zombies_of(a.pid))


def test_queue_overflow_503_no_hang(atrium, cgi):
    name = unique("slowq", ".pl")
    cgi.install("slow.pl", as_name=name)
    a = atrium(cgi_conf(cgi, "cgi_max_procs 2;\ncgi_queue 4;\ncgi_timeout 10s;"))

    def timed():
        t0 = time.monotonic()
        r = get(a.port, "/cgi-bin/%s?1.2" % name, timeout=15.0)
        return r.status, time.monotonic() - t0

    jobs = [Background(timed) for _ in range(20)]
    results = [j.result(30.0) for j in jobs]
    counts = status_counts(st for st, _ in results)
    assert set(counts) <= {200, 503}, counts
    assert counts.get(503, 0) >= 10, "2 running + 4 queued of 20: %r" % counts
    assert counts.get(200, 0) >= 2, counts
    slow_503 = [round(t, 2) for st, t in results if st == 503 and t >= 1.0]
    assert not slow_503, "503s that waited for a script (sleeps 1.2 s): %r" % slow_503
    gone = wait_until(lambda: pgrep_count(name) == 0 and not zombies_of(a.pid), 5.0, 0.05)
    assert gone, (pgrep_count(name), zombies_of(a.pid))


def test_stderr_lines_are_rate_limited(atrium, cgi):
    # 400 stderr lines in one burst with stderr_log_rate 20: about 20 reach
    # the log; the rest are counted and the count is logged with the next
    # line that gets through (here a second request a little later).
    loud = cgi.path / "loud.sh"
    loud.write_text("#!/bin/sh\ni=0\nwhile [ $i -lt 400 ]; do echo \"e$i\" >&2; "
                    "i=$((i+1)); done\nprintf 'Content-Type: text/plain\\r\\n\\r\\nloud'\n")
    loud.chmod(0o755)
    one = cgi.path / "one.sh"
    one.write_text("#!/bin/sh\necho last-line >&2\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok'\n")
    one.chmod(0o755)
    a = atrium(cgi_conf(cgi, "stderr_log_rate 20;"))
    assert get(a.port, "/cgi-bin/loud.sh").body == b"loud"
    logged = lambda: len(re.findall(r"cgi stderr: e\d+$", a.error_log, re.M))
    assert wait_until(lambda: logged() >= 20, 5.0), a.error_log[-2000:]
    time.sleep(1.2)                                 # the bucket refills
    assert get(a.port, "/cgi-bin/one.sh").body == b"ok"
    assert wait_until(lambda: "cgi stderr: last-line" in a.error_log, 5.0), a.error_log[-2000:]
    # A note comes with every line that gets through after a drop (the bucket
    # refills while the script is still writing).
    dropped = [int(x) for x in re.findall(
        r"application stderr: (\d+) line\(s\) not logged \(stderr_log_rate 20 ", a.error_log)]
    assert dropped, a.error_log[-2000:]
    n_logged = logged()
    assert 20 <= n_logged <= 40, n_logged
    assert n_logged + sum(dropped) >= 400, (n_logged, dropped)
