"""Fixtures and helpers for Atrium's integration tests.

Run:  ATRIUM_BIN=/path/to/atrium /usr/bin/python3 -m pytest -q tests/integration

- `origin(name)`       starts tests/origin/origin.py on a free port (factory fixture).
- `atrium(conf, **kw)` renders a config, starts `ATRIUM_BIN -c FILE` in the
                       foreground and waits until its listen port accepts.
  Config text uses {{name}} placeholders: {{port}} (the main listen port),
  {{dir}} (the instance's directory), plus any keyword given. If the text has
  no `workers`, `error_log` or `listen` directive the fixture prepends
  `workers 1;`, `error_log {{dir}}/error.log debug;`, `listen 127.0.0.1:{{port}};`.
- Teardown (nginx-tests style): the process must still be alive unless the test
  stopped it, must exit 0 on SIGTERM, and neither its error log nor its stderr
  may hold [crit], [alert] or a sanitizer report.

Every socket has a timeout and every wait is bounded: nothing can hang.
"""

import contextlib
import hashlib
import http.client
import importlib.util
import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ORIGIN_PY = HERE.parent / "origin" / "origin.py"
PYTHON = "/usr/bin/python3"
ATRIUM_BIN = os.environ.get("ATRIUM_BIN", "/work/main/build/atrium")

# The origin module is imported for its shared byte generator and WebSocket codec.
_spec = importlib.util.spec_from_file_location("atrium_test_origin", ORIGIN_PY)
origin_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(origin_mod)
gen_blocks = origin_mod.gen_blocks
bytes_sha256 = origin_mod.bytes_sha256
ws_frame = origin_mod.ws_frame
ws_mask = origin_mod.ws_mask
WS_GUID = origin_mod.WS_GUID

# Lines that must never appear in the error log or on stderr.
BAD_LOG_RE = re.compile(r"\[crit\]|\[alert\]|AddressSanitizer|runtime error:|LeakSanitizer")
# The line Atrium logs once a reloaded generation serves.
RELOAD_OK_RE = re.compile(r"reload: generation \d+ active")
# The line Atrium logs once it is fully up (signal handlers installed). The
# fixture waits for it (at most 2 s) after the port accepts, so that tests that
# signal right away are not hit by the startup race; test_signals checks that
# race on its own.
STARTED_RE = re.compile(r"\bstarted\b")


# ---------------------------------------------------------------- ports

_used_ports = set()


def free_port():
    """A port nobody listens on, outside the ephemeral range (32768-60999)
    so that no outgoing connection can be sitting on it when we bind later."""
    rnd = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(2000):
        p = rnd.randrange(20000, 32000)
        if p in _used_ports:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            s.close()
        _used_ports.add(p)
        return p
    raise RuntimeError("no free port")


def port_open(port, timeout=0.5):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(port, timeout=10.0, proc=None, what="process"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError("%s exited with %s before listening on %d"
                                 % (what, proc.returncode, port))
        if port_open(port, 0.2):
            return
        time.sleep(0.02)
    raise AssertionError("%s does not accept on port %d after %.1fs" % (what, port, timeout))


def wait_until(pred, timeout=5.0, interval=0.02):
    """Poll pred() until it is truthy or timeout; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# ---------------------------------------------------------------- raw sockets

def open_fds(pid):
    """fd -> target for a live process. The process may be opening and closing files
    while we look: an fd gone between the listing and the readlink is skipped."""
    fds = {}
    for f in os.listdir("/proc/%d/fd" % pid):
        try:
            fds[int(f)] = os.readlink("/proc/%d/fd/%s" % (pid, f))
        except FileNotFoundError:
            pass
    return fds


def connect(port, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s


class RawResult:
    def __init__(self, data, closed, reset, timed_out):
        self.data, self.closed, self.reset, self.timed_out = data, closed, reset, timed_out

    @property
    def status(self):
        return status_of(self.data)

    def responses(self, methods=None):
        return parse_responses(self.data, methods)

    def __repr__(self):
        return "RawResult(closed=%s reset=%s timed_out=%s data=%r)" % (
            self.closed, self.reset, self.timed_out, self.data[:300])


def read_all(sock, timeout=3.0, limit=64 << 20):
    """Read until the peer closes or timeout passes with no end. Returns RawResult."""
    sock.settimeout(0.2)
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        if time.monotonic() >= deadline:
            return RawResult(bytes(buf), False, False, True)
        try:
            d = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return RawResult(bytes(buf), True, True, False)
        if not d:
            return RawResult(bytes(buf), True, False, False)
        buf += d
        if len(buf) > limit:
            return RawResult(bytes(buf), False, False, False)


def raw_ex(port, data, timeout=3.0):
    """Send raw bytes in one write; read everything until close or timeout."""
    with connect(port, timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_all(s, timeout)


def raw(port, data, timeout=3.0):
    return raw_ex(port, data, timeout).data


def status_of(data):
    """Status of the first final (non-1xx) response in data, or None."""
    try:
        rs = parse_responses(data, None, allow_partial=True)
    except ValueError:
        rs = []
    for r in rs:
        return r.status
    m = re.match(rb"HTTP/\d\.\d (\d{3})", data)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------- response parsing

class Response:
    def __init__(self, version, status, reason, headers, body, informational):
        self.version, self.status, self.reason = version, status, reason
        self.headers = headers            # [(name, value)] in order
        self.body = body
        self.informational = informational  # 1xx statuses seen before this one
        self.complete = True

    def get(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def get_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def tokens(self, name):
        return [t.strip().lower() for v in self.get_all(name) for t in v.split(",") if t.strip()]

    def text(self):
        return self.body.decode("latin-1")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %s %s headers=%r body=%r>" % (self.status, self.reason,
                                                        self.headers, self.body[:200])


class Reader:
    """Buffered reader over a blocking socket (with timeout) or over bytes."""

    def __init__(self, sock=None, data=b""):
        self.sock = sock
        self.buf = bytearray(data)
        self.eof = sock is None

    def _fill(self):
        if self.eof:
            return False
        try:
            d = self.sock.recv(262144)
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def line(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                out = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return out
            if not self._fill():
                raise ValueError("EOF inside a line: %r" % bytes(self.buf[:200]))

    def exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise ValueError("EOF after %d of %d body bytes" % (len(self.buf), n))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def rest(self):
        while self._fill():
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def at_eof(self):
        return not self.buf and (self.eof or not self._fill())


def read_response(reader, method="GET", keep_1xx=False):
    """Parse one response (skipping 1xx unless keep_1xx) from a Reader."""
    info = []
    while True:
        line = reader.line()
        m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?\r?\n$", line)
        if not m:
            raise ValueError("bad status line %r" % line[:200])
        version, status = m.group(1).decode(), int(m.group(2))
        reason = (m.group(3) or b"").decode("latin-1")
        headers = []
        while True:
            h = reader.line()
            if h in (b"\r\n", b"\n"):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers.append((k, v.strip()))
        if 100 <= status < 200 and status != 101:
            info.append(status)
            if keep_1xx:
                return Response(version, status, reason, headers, b"", [])
            continue
        break
    r = Response(version, status, reason, headers, b"", info)
    te = r.tokens("transfer-encoding")
    cl = r.get("content-length")
    if method == "HEAD" or status in (101, 204, 304):
        return r
    if te and te[-1] == "chunked":
        body = bytearray()
        while True:
            size = int(reader.line().split(b";")[0].strip(), 16)
            if size == 0:
                while reader.line() not in (b"\r\n", b"\n"):
                    pass
                break
            body += reader.exact(size)
            reader.exact(2)
        r.body = bytes(body)
    elif cl is not None:
        r.body = reader.exact(int(cl))
    else:
        r.body = reader.rest()
    return r


def parse_responses(data, methods=None, allow_partial=False):
    """All responses in a byte string; methods lists the request methods in order."""
    rd = Reader(data=data)
    out = []
    i = 0
    while rd.buf:
        m = methods[i] if methods and i < len(methods) else "GET"
        try:
            out.append(read_response(rd, m))
        except ValueError:
            if allow_partial:
                break
            raise
        i += 1
    return out


def request_bytes(method, path, host="example.test", headers=(), body=None, version="HTTP/1.1"):
    lines = ["%s %s %s" % (method, path, version)]
    if host is not None:
        lines.append("Host: " + host)
    lines += ["%s: %s" % (k, v) for k, v in headers]
    if body is not None and not any(k.lower() in ("content-length", "transfer-encoding")
                                    for k, _ in headers):
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def http_request(port, method="GET", path="/", host="example.test", headers=(), body=None,
                 timeout=10.0, version="HTTP/1.1"):
    """One request on a new connection (Connection: close), parsed response."""
    hs = list(headers)
    if not any(k.lower() == "connection" for k, _ in hs):
        hs.append(("Connection", "close"))
    with connect(port, timeout) as s:
        s.sendall(request_bytes(method, path, host, hs, body, version))
        return read_response(Reader(s), method)


def get(port, path="/", **kw):
    return http_request(port, "GET", path, **kw)


class Conn:
    """A persistent raw client connection: send requests, read responses."""

    def __init__(self, port, timeout=10.0):
        self.sock = connect(port, timeout)
        self.reader = Reader(self.sock)

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method="GET", path="/", host="example.test", headers=(), body=None):
        self.send(request_bytes(method, path, host, headers, body))
        return read_response(self.reader, method)

    def response(self, method="GET", keep_1xx=False):
        return read_response(self.reader, method, keep_1xx)

    def closed_by_peer(self, timeout=3.0):
        """True if the peer closes (EOF/RST) within timeout with no more bytes."""
        self.sock.settimeout(timeout)
        try:
            return self.reader.at_eof()
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(10.0)

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# ---------------------------------------------------------------- origin

class Origin:
    def __init__(self, name, port, proc, log):
        self.name, self.port, self.proc, self.log = name, port, proc, log

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def stats(self):
        return json.loads(get(self.port, "/stats", host="origin").body)

    def reqs(self):
        return self.stats()["reqs"]

    def conns(self):
        return self.stats()["conns"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_origin(name, logdir, port=None):
    last = None
    for _ in range(5):
        p = port or free_port()
        log = open(os.path.join(logdir, "origin-%s-%d.log" % (name, p)), "wb")
        proc = subprocess.Popen([PYTHON, str(ORIGIN_PY), "--port", str(p), "--name", name],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_port(p, 10, proc, "origin %s" % name)
            return Origin(name, p, proc, log.name)
        except AssertionError as e:
            last = e
            with contextlib.suppress(Exception):
                proc.kill()
                proc.wait(5)
            if port:
                break
    raise last


@pytest.fixture
def origin(tmp_path):
    started = []

    def factory(name="origin", port=None):
        o = start_origin(name, str(tmp_path), port)
        started.append(o)
        return o

    yield factory
    for o in started:
        o.stop()


# ---------------------------------------------------------------- atrium

def need_binary():
    if not (os.path.isfile(ATRIUM_BIN) and os.access(ATRIUM_BIN, os.X_OK)):
        pytest.fail("Atrium binary %r not found or not executable (set ATRIUM_BIN)"
                    % ATRIUM_BIN, pytrace=False)


def render(text, **kw):
    def sub(m):
        if m.group(1) not in kw:
            raise KeyError("config placeholder {{%s}} has no value" % m.group(1))
        return str(kw[m.group(1)])
    return re.sub(r"\{\{(\w+)\}\}", sub, text)


def has_directive(text, name):
    return re.search(r"(?m)^\s*%s\b" % re.escape(name), text) is not None


def run_atrium(args, timeout=20):
    need_binary()
    return subprocess.run([ATRIUM_BIN] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, text=True)


class Atrium:
    def __init__(self, workdir, port, vars):
        self.dir = Path(workdir)
        self.port = port
        self.vars = vars
        self.conf_path = self.dir / "atrium.conf"
        self.error_log_path = self.dir / "error.log"
        self.stderr_path = self.dir / "stderr.log"
        self.proc = None
        self.stopped = False
        self.exit_code = None

    # config
    def render(self, text, **kw):
        v = dict(self.vars)
        v.update(kw)
        text = render(text, **v)
        pre = []
        if not has_directive(text, "workers"):
            pre.append("workers 1;")
        if not has_directive(text, "error_log"):
            pre.append("error_log %s debug;" % self.error_log_path)
        if not has_directive(text, "listen"):
            pre.append("listen 127.0.0.1:%d;" % self.port)
        return "\n".join(pre + [text]) + "\n"

    def write_config(self, text, **kw):
        self.vars.update(kw)
        self.conf_text = self.render(text)
        self.conf_path.write_text(self.conf_text)
        return self.conf_text

    def start(self, wait_ports=None, wait_started=True):
        need_binary()
        self.stderr_file = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([ATRIUM_BIN, "-c", str(self.conf_path)],
                                     stdout=self.stderr_file, stderr=subprocess.STDOUT,
                                     cwd=str(self.dir))
        try:
            for p in wait_ports or [self.port]:
                wait_port(p, 10, self.proc, "atrium")
        except AssertionError as e:
            self.kill()
            raise AssertionError("%s\n--- stderr:\n%s\n--- error log:\n%s"
                                 % (e, self.stderr[-3000:], self.error_log[-3000:]))
        if wait_started and str(self.error_log_path) in self.conf_text:  # the log we read
            wait_until(lambda: STARTED_RE.search(self.error_log), 10.0)
        return self

    @property
    def pid(self):
        return self.proc.pid

    @property
    def error_log(self):
        try:
            return self.error_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def sanitized(self):
        """True for an AddressSanitizer build (its allocator keeps freed memory in
        quarantine, so RSS says nothing about what Atrium gives back)."""
        with open("/proc/%d/maps" % self.pid) as f:
            return "libasan" in f.read()

    def rss_kb(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self, text=None, expect_ok=True, timeout=10.0, **kw):
        """Optionally rewrite the config, SIGHUP, and wait for the outcome:
        the `reload: generation N active` line (or, for a bad config, a FILE:LINE:COL
        line naming the config) appears in the error log, or timeout passes
        (a fixed wait when Atrium logs no such line). Returns True if the
        expected log line was seen."""
        if text is not None:
            self.write_config(text, **kw)
        before = len(self.error_log)
        self.send_signal(signal.SIGHUP)
        if expect_ok:
            pat = RELOAD_OK_RE
        else:
            pat = re.compile(r"%s:\d+:\d+:" % re.escape(str(self.conf_path)))
        seen = wait_until(lambda: pat.search(self.error_log[before:]), timeout)
        assert self.alive(), "atrium died on SIGHUP:\n" + self.error_log[-3000:]
        return bool(seen)

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Signal, wait for exit, return the exit code (-N for a signal)."""
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError("atrium did not exit %.0fs after signal %d"
                                     % (timeout, sig))
        self.exit_code = self.proc.returncode
        return self.exit_code

    def kill(self):
        self.stopped = True
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def check_logs(self):
        bad = [l for l in (self.error_log + "\n" + self.stderr).splitlines()
               if BAD_LOG_RE.search(l)]
        assert not bad, "error log / stderr has bad lines:\n" + "\n".join(bad[:30])

    def teardown(self):
        if self.proc is None:
            return
        problems = []
        if not self.stopped:
            if not self.alive():
                problems.append("atrium died during the test (exit %s)" % self.proc.returncode)
            else:
                try:
                    rc = self.stop()
                    if rc != 0:
                        problems.append("atrium exited %s on SIGTERM" % rc)
                except AssertionError as e:
                    problems.append(str(e))
        self.kill()
        try:
            self.check_logs()
        except AssertionError as e:
            problems.append(str(e))
        if problems:
            raise AssertionError("\n".join(problems) + "\n--- stderr tail:\n"
                                 + self.stderr[-2000:] + "\n--- error log tail:\n"
                                 + self.error_log[-2000:])


class AtriumFactory:
    def __init__(self, base):
        self.base = Path(base)
        self.instances = []

    def __call__(self, conf, start=True, wait_ports=None, port=None, wait_started=True, **kw):
        d = self.base / ("atrium%d" % len(self.instances))
        d.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        a = Atrium(d, port, dict(port=port, dir=d))
        self.instances.append(a)
        a.write_config(conf, **kw)
        if start:
            a.start(wait_ports, wait_started)
        return a

    def teardown(self):
        errors = []
        for a in self.instances:
            try:
                a.teardown()
            except AssertionError as e:
                errors.append(str(e))
        if errors:
            pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def atrium(tmp_path):
    f = AtriumFactory(tmp_path)
    yield f
    f.teardown()


# ---------------------------------------------------------------- misc helpers

def upstream_conf(servers, balance="round_robin", extra="", name="app"):
    """An upstream block; servers are Origin objects, ports, or (port, params)."""
    lines = ["upstream %s {" % name, "    balance %s;" % balance]
    for s in servers:
        params = ""
        if isinstance(s, tuple):
            s, params = s
        port = s.port if isinstance(s, Origin) else s
        lines.append("    server 127.0.0.1:%d%s;" % (port, (" " + params) if params else ""))
    if extra:
        lines.append("    " + extra)
    lines.append("}")
    return "\n".join(lines)


def proxy_conf(servers, balance="round_robin", upstream_extra="", route_extra="",
               main_extra="", hosts_extra=""):
    """A whole config: one upstream `app` and `host * { route / { proxy app; } }`."""
    return "\n".join([
        main_extra,
        upstream_conf(servers, balance, upstream_extra),
        "host * {",
        hosts_extra,
        "    route / { proxy app; %s }" % route_extra,
        "}",
    ])


class RssSampler:
    """Samples a process's VmRSS every interval seconds in a thread."""

    def __init__(self, atrium, interval=0.1):
        self.atrium, self.interval = atrium, interval
        self.samples = []
        self._stop = threading.Event()
        self.baseline = atrium.rss_kb()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            with contextlib.suppress(OSError, ValueError):
                self.samples.append(self.atrium.rss_kb())
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join(5)

    @property
    def growth_kb(self):
        return max(self.samples or [self.baseline]) - self.baseline


class Background:
    """Run fn(*args) in a thread; .result() re-raises its exception."""

    def __init__(self, fn, *args, **kw):
        self._res = self._exc = None
        self._t = threading.Thread(target=self._run, args=(fn, args, kw), daemon=True)
        self._t.start()

    def _run(self, fn, args, kw):
        try:
            self._res = fn(*args, **kw)
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            self._exc = e

    def result(self, timeout=30.0):
        self._t.join(timeout)
        if self._t.is_alive():
            raise AssertionError("background request still running after %.0fs" % timeout)
        if self._exc:
            raise self._exc
        return self._res


def sha256_hex(b):
    return hashlib.sha256(b).hexdigest()


def ws_handshake_request(path="/ws", host="example.test", key=None):
    key = key or "dGhlIHNhbXBsZSBub25jZQ=="
    return request_bytes("GET", path, host, [
        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")]), key


def ws_accept(key):
    import base64
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def ws_recv_frame(reader):
    b0, b1 = reader.exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(reader.exact(2), "big")
    elif n == 127:
        n = int.from_bytes(reader.exact(8), "big")
    mask = reader.exact(4) if b1 & 0x80 else None
    data = reader.exact(n)
    if mask:
        data = ws_mask(data, mask)
    return bool(b0 & 0x80), b0 & 0x0F, data


def http_client(port, timeout=10.0):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)


__all__ = [n for n in dir() if not n.startswith("_")]
