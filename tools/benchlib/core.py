"""tools/bench, shared part: processes and cleanup, cgroups, /proc accounting,
wrk, probes, statistics, and the HTTP comparison (Atrium, nginx, HAProxy in
front of one nginx origin)."""

import os
import re
import resource
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
BODY_SIZE = 1024
PATH = "/1k"
ALL_PROXIES = ("atrium", "nginx", "haproxy")

# Targets printed next to the ratios (informational only).
TARGET_CPU_RATIO = 0.8          # atrium cpu/req <= 0.8 x nginx
TARGET_IDLE_BYTES = 1024        # atrium idle bytes per keep-alive connection
TARGET_WORKERS2_RATIO = 1.10    # workers 2 cpu/req within 10% of workers 1

QUIET = False


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# process bookkeeping and cleanup

_procs = []          # subprocess.Popen objects we started (each its own session)
_tmpdirs = []
_cgroups = []        # cgroups we created (--cgi CPU accounting)


def _kill_group(p, sig):
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_proc(p, timeout=5.0):
    """Stop a process we started, with its whole process group."""
    if p is None:
        return
    if p.poll() is None:
        _kill_group(p, signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    # Leftovers in the group (e.g. an nginx worker whose master died) and
    # a process that ignored SIGTERM.
    _kill_group(p, signal.SIGKILL)
    try:
        p.wait(2.0)
    except subprocess.TimeoutExpired:
        pass
    if p in _procs:
        _procs.remove(p)


def cleanup():
    for p in list(_procs):
        stop_proc(p, timeout=3.0)
    for cg in list(_cgroups):
        remove_cgroup(cg)
    for d in list(_tmpdirs):
        shutil.rmtree(d, ignore_errors=True)
        _tmpdirs.remove(d)


def _on_signal(signum, frame):
    log("caught signal %d, cleaning up" % signum)
    cleanup()
    os._exit(128 + signum)


def raise_nofile(want):
    """Raise our RLIMIT_NOFILE towards want (the hard limit too, if allowed: root with
    CAP_SYS_RESOURCE). Children inherit it. Returns the resulting soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    for lim in ((want, max(hard, want)), (min(want, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, lim)
            break
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def make_tmpdir(prefix):
    d = tempfile.mkdtemp(prefix="atrium-bench-" + prefix + "-")
    _tmpdirs.append(d)
    os.chmod(d, 0o755)   # nginx workers run as an unprivileged user and must read it
    return d


def _cgroup_base():
    """(directory to create cgroups in, version) or (None, None)."""
    for base in ("/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/cpu,cpuacct"):
        if os.path.exists(os.path.join(base, "cpuacct.usage")):
            return base, 1
    try:
        with open("/proc/self/cgroup") as f:
            rel = [l.strip()[3:] for l in f if l.startswith("0::")]
        with open("/proc/self/mounts") as f:
            mnts = [l.split()[1] for l in f if l.split()[2:3] == ["cgroup2"]]
    except OSError:
        return None, None
    if rel and mnts:
        return mnts[0] + rel[0].rstrip("/"), 2
    return None, None


def make_cgroup(name):
    """A cgroup of our own for CPU accounting (v1 cpuacct, or v2), or None if we may not."""
    base, ver = _cgroup_base()
    if base is None:
        return None
    path = os.path.join(base, "atrium-bench-%d-%s" % (os.getpid(), name))
    try:
        os.mkdir(path)
    except OSError:
        return None
    _cgroups.append(path)
    if cgroup_usage_ns(path) is None:
        remove_cgroup(path)
        return None
    return path


def cgroup_usage_ns(cg):
    """CPU time (ns) used by every task that has been in cg, reaped or not."""
    try:
        if os.path.exists(os.path.join(cg, "cpuacct.usage")):
            with open(os.path.join(cg, "cpuacct.usage")) as f:
                return int(f.read())
        with open(os.path.join(cg, "cpu.stat")) as f:
            for line in f:
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) * 1000
    except (OSError, ValueError):
        pass
    return None


def cgroup_pids(cg):
    try:
        with open(os.path.join(cg, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


def remove_cgroup(cg):
    """SIGKILL whatever we started that is still in cg (e.g. CGI processes in their own
    sessions), then remove it."""
    for _ in range(50):
        for pid in cgroup_pids(cg):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.rmdir(cg)
            break
        except FileNotFoundError:
            break
        except OSError:
            time.sleep(0.02)
    if cg in _cgroups:
        _cgroups.remove(cg)


def spawn(argv, cpus, nofile, stdout_path, stderr_path, cwd=None, cgroup=None):
    """Start argv in its own session, pinned to cpus, with RLIMIT_NOFILE=nofile
    (and in cgroup, a directory from make_cgroup, if given)."""
    def pre():
        if cgroup:
            try:
                with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
            except OSError:
                pass          # cgroup_usage_ns() then reports nothing for it
        if cpus:
            os.sched_setaffinity(0, cpus)
        if nofile:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            except (ValueError, OSError):
                pass
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)

    out = open(stdout_path, "wb")
    err = open(stderr_path, "wb")
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                             cwd=cwd, preexec_fn=pre, start_new_session=True,
                             close_fds=True)
    finally:
        out.close()
        err.close()
    _procs.append(p)
    return p


def tail(path, n=15):
    try:
        with open(path, "rb") as f:
            data = f.read()[-8192:]
    except OSError:
        return ""
    lines = data.decode("utf-8", "replace").rstrip().splitlines()
    return "\n".join(lines[-n:])


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_accepting(p, port, timeout):
    """Poll connect() until the server accepts; False if it died or timed out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
            # It accepts; make sure it is still our process that is alive.
            time.sleep(0.05)
            return p.poll() is None
        except OSError:
            time.sleep(0.05)
    return False


# --------------------------------------------------------------------------
# /proc sampling over a process tree

def _read_stat(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # comm may contain spaces/parens: split after the last ')'
    rest = data[data.rindex(")") + 2:].split()
    # rest[0] is field 3 (state); field N is rest[N-3]
    return {
        "ppid": int(rest[1]),
        "sid": int(rest[3]),
        "utime": int(rest[11]), "stime": int(rest[12]),
        "cutime": int(rest[13]), "cstime": int(rest[14]),
    }


def tree_pids(root):
    """root plus every descendant (by ppid) and every process in root's session."""
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _read_stat(int(name))
            if st is not None:
                stats[int(name)] = st
    if root not in stats:
        return []
    pids = {root}
    for pid, st in stats.items():
        if st["sid"] == root:
            pids.add(pid)
    changed = True
    while changed:
        changed = False
        for pid, st in stats.items():
            if pid not in pids and st["ppid"] in pids:
                pids.add(pid)
                changed = True
    return sorted(pids)


def foreign_sample():
    """(user+nice+system ticks of the whole machine, ticks of this script and everything
    it started: live processes plus the children it has reaped, such as wrk)."""
    with open("/proc/stat") as f:
        v = f.readline().split()
    machine = int(v[1]) + int(v[2]) + int(v[3])
    me = os.getpid()
    ours = 0
    for pid in tree_pids(me):
        st = _read_stat(pid)
        if st:
            ours += st["utime"] + st["stime"]
            if pid == me:
                ours += st["cutime"] + st["cstime"]
    return machine, ours


def foreign_ticks(before, after):
    """CPU ticks used between two foreign_sample()s by processes that are not ours."""
    return max(0, (after[0] - before[0]) - (after[1] - before[1]))


def tree_cpu_user_sys(root):
    """(user, system) ticks (all threads, plus reaped children's), summed over the tree."""
    user = system = 0
    for pid in tree_pids(root):
        st = _read_stat(pid)
        if st:
            user += st["utime"] + st["cutime"]
            system += st["stime"] + st["cstime"]
    return user, system


def tree_cpu_ticks(root):
    """utime+stime (all threads) plus reaped children's time, summed over the tree."""
    return sum(tree_cpu_user_sys(root))


def host_ticks():
    """(steal, total) ticks over all CPUs, from /proc/stat's first line."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return v[7], sum(v)


def steal_pct(before):
    """Share of CPU time the hypervisor took from this VM since before (host_ticks())."""
    s0, t0 = before
    s1, t1 = host_ticks()
    return 100.0 * (s1 - s0) / max(1, t1 - t0)


def steal_line(pct):
    return ("host steal time during the run: %.0f%% of CPU time%s" % (
        pct, "" if pct < 5 else " (a busy host: CPU/request and latency ratios swing by 10%"
                                " or more between runs; compare runs with little steal)"))


def cpus_busy_ticks(cpus):
    """Busy ticks (everything but idle and iowait, softirq included) of the given CPUs."""
    total = 0
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            parts = line.split()
            if int(parts[0][3:]) in cpus:
                v = [int(x) for x in parts[1:9]]   # user nice system idle iowait irq softirq steal
                total += v[0] + v[1] + v[2] + v[5] + v[6]
    return total


def busy_pct(ticks, seconds, cpus):
    """Busy ticks of cpus over seconds of wall time, as a percentage of those CPUs."""
    if not cpus or seconds <= 0:
        return None
    return 100.0 * ticks / (CLK_TCK * seconds * len(cpus))


def idle_notes(r):
    """Why a result's idle-memory figure may not hold."""
    notes = []
    if r.get("idle_error"):
        notes.append("%s: idle-memory test failed: %s" % (r["proxy"], r["idle_error"]))
    if r.get("idle_errors"):
        notes.append("%s: %d of %d idle connections failed their request"
                     % (r["proxy"], r["idle_errors"], r["idle_conns"]))
    if r.get("idle_conns_held") is not None and r["idle_conns_held"] < r["idle_conns"]:
        notes.append("%s: only %d of %d idle connections were still open when RSS was read"
                     % (r["proxy"], r["idle_conns_held"], r["idle_conns"]))
    return notes


def load_bound_note(r):
    """A result's warning when the load CPU, not the proxy, set the rate, else None."""
    if (r.get("load_busy_pct") or 0) < 95:
        return None
    return ("%s: the load CPU was %.0f%% busy: wrk and the origin, not the proxy, set the rate, "
            "and the proxy's CPU per request includes idling in the gaps"
            % (r["proxy"], r["load_busy_pct"]))


def tree_rss_bytes(root):
    total = 0
    for pid in tree_pids(root):
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


# --------------------------------------------------------------------------
# configs

def nginx_common(tmp, error_log, nofile, conns):
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(tmp, "temp", sub), exist_ok=True)
    return """daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile {nofile};
pid {tmp}/nginx.pid;
error_log {error_log} warn;
events {{ worker_connections {conns}; }}
""".format(tmp=tmp, error_log=error_log, nofile=nofile, conns=conns)


def nginx_http_temp(tmp):
    return """    client_body_temp_path {t}/temp/client_body;
    proxy_temp_path {t}/temp/proxy;
    fastcgi_temp_path {t}/temp/fastcgi;
    uwsgi_temp_path {t}/temp/uwsgi;
    scgi_temp_path {t}/temp/scgi;
""".format(t=tmp)


BODY = ("0123456789abcdef" * 64)[:BODY_SIZE]

# What the origin sends for /1k, either way: the body and the fields nginx puts
# on a static file (Last-Modified, ETag, Accept-Ranges), so the proxies parse
# and forward the same head whichever origin runs.
ORIGIN_FILE = """        location = /1k {{ }}"""
ORIGIN_MEMORY = """        location = /1k {{
            add_header Last-Modified "Sun, 22 Nov 2026 07:17:15 GMT";
            add_header ETag '"6b0296fb-400"';
            add_header Accept-Ranges bytes;
            return 200 "{body}";
        }}"""


def origin_config(tmp, port, nofile, conns, origin="memory", addrs=("127.0.0.1",)):
    """The origin's nginx.conf. `memory` (the default) answers /1k from memory:
    a read and a write per request, so the load CPU runs wrk and the origin
    with room to spare and the proxy is the bottleneck, which is where its CPU
    per request is its own cost (bench.md, "Origin"). `file` serves a static
    file with sendfile and TCP_CORK (five system calls per request), as
    sessions 1-5 measured with: the load CPU then limits the rate, and a proxy
    that finishes sooner idles and pays a wakeup per short gap. addrs: the
    addresses it listens on, the port on each (--pool: one origin that is
    many members); the first must be 127.0.0.1 (origin_accepts, probe)."""
    docroot = os.path.join(tmp, "www")
    os.makedirs(docroot, exist_ok=True)
    with open(os.path.join(docroot, "1k"), "w") as f:
        f.write(BODY)
    location = (ORIGIN_MEMORY if origin == "memory" else ORIGIN_FILE).format(body=BODY)
    return nginx_common(tmp, os.path.join(tmp, "error.log"), nofile, conns) + """http {{
{temp}    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 120s;
    keepalive_requests 100000;
    open_file_cache max=16 inactive=60s;
    open_file_cache_valid 60s;
    server {{
{listen}        root {docroot};
{location}
        location = /_status {{ stub_status; }}
    }}
}}
""".format(temp=nginx_http_temp(tmp), docroot=docroot, location=location,
           listen="".join("        listen %s:%d backlog=4096;\n" % (a, port) for a in addrs))


# Atrium's proxy always keeps the client's Host, adds X-Forwarded-For, -Proto, -Host,
# Forwarded (RFC 7239) and Via to the request and Via to the response. nginx and HAProxy
# do none of that by default; these lines make them send the origin the same request
# (and the client the same response), as an operator's front-door config would, so the
# three do the same work per request.
NGINX_SAME_HEADERS = """            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header Forwarded "for=$remote_addr;host=\\"$http_host\\";proto=$scheme";
            proxy_set_header Via "1.1 nginx";
            add_header Via "1.1 nginx";
"""

HAPROXY_SAME_HEADERS = """    option forwardfor
    http-request set-header X-Forwarded-Proto {scheme}
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request set-header Forwarded "for=%[src];host=\\"%[req.hdr(host)]\\";proto={scheme}"
    http-request add-header Via "1.1 haproxy"
    http-response add-header Via "1.1 haproxy"
"""


def nginx_proxy_config(tmp, port, origin_port, nofile, conns, keepalive):
    return nginx_common(tmp, os.path.join(tmp, "error.log"), nofile, conns) + """http {{
{temp}    access_log off;
    keepalive_timeout 120s;
    keepalive_requests 100000;
    upstream origin {{
        server 127.0.0.1:{oport};
        keepalive {keepalive};
        keepalive_requests 100000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
{same}        }}
    }}
}}
""".format(temp=nginx_http_temp(tmp), port=port, oport=origin_port, keepalive=keepalive,
           same=NGINX_SAME_HEADERS)


def haproxy_config(tmp, port, origin_port, maxconn):
    return """global
    nbthread 1
    maxconn {maxconn}
    pidfile {tmp}/haproxy.pid

defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    timeout http-keep-alive 120s
    http-reuse always

frontend fe
    bind 127.0.0.1:{port}
    maxconn {maxconn}
    default_backend be

backend be
    http-reuse always
{same}    server origin 127.0.0.1:{oport}
""".format(tmp=tmp, port=port, oport=origin_port, maxconn=maxconn,
           same=HAPROXY_SAME_HEADERS.format(scheme="http"))


def atrium_config(port, origin_port, workers, keepalive):
    # error_log goes to stderr, which the bench redirects to a file in the tmp dir.
    # Keep-alive limits as nginx's config above has them, on both sides.
    return """workers {workers};
error_log stderr warn;
access_log off;
keepalive_timeout 120s;
keepalive_requests 100000;
listen 127.0.0.1:{port};
upstream origin {{
    server 127.0.0.1:{oport};
    keepalive {keepalive};
    keepalive_timeout 120s;
    keepalive_requests 100000;
}}
host * {{ route / {{ proxy origin; }} }}
""".format(workers=workers, port=port, oport=origin_port, keepalive=keepalive)


# --------------------------------------------------------------------------
# servers

class Server:
    def __init__(self, name, argv, tmp, port, cpus, nofile):
        self.name = name
        self.argv = argv
        self.tmp = tmp
        self.port = port
        self.cpus = cpus
        self.nofile = nofile
        self.stdout = os.path.join(tmp, "stdout.log")
        self.stderr = os.path.join(tmp, "stderr.log")
        self.proc = None
        self.error = None
        self.cgroup = None

    def start(self, timeout=10.0):
        try:
            self.proc = spawn(self.argv, self.cpus, self.nofile, self.stdout, self.stderr,
                              cgroup=self.cgroup)
        except OSError as e:
            self.error = "cannot exec %s: %s" % (self.argv[0], e)
            return False
        if wait_accepting(self.proc, self.port, timeout):
            return True
        if self.proc.poll() is None:
            why = "did not accept connections on 127.0.0.1:%d within %.0fs" % (self.port, timeout)
        else:
            why = "exited with status %s" % self.proc.returncode
        stop_proc(self.proc)
        msgs = []
        for path in (self.stderr, self.stdout, os.path.join(self.tmp, "error.log")):
            t = tail(path)
            if t:
                msgs.append("  [%s]\n" % os.path.basename(path) +
                            "\n".join("    " + l for l in t.splitlines()))
        self.error = why + ("\n" + "\n".join(msgs) if msgs else " (no output)")
        return False

    def stop(self):
        stop_proc(self.proc)


# --------------------------------------------------------------------------
# HTTP helpers

def _read_response(sock, buf=b""):
    """Read one full HTTP/1.1 response; return (status, body_len, leftover)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before response head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if "content-length" in hdrs:
        n = int(hdrs["content-length"])
        while len(rest) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed in body")
            rest += chunk
        return status, n, rest[n:], hdrs
    if "chunked" in hdrs.get("transfer-encoding", "").lower():
        body_len = 0
        while True:
            while b"\r\n" not in rest:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed in chunked body")
                rest += chunk
            line, _, rest = rest.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            need = size + 2
            while len(rest) < need:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed in chunk")
                rest += chunk
            rest = rest[need:]
            body_len += size
            if size == 0:
                # no trailers expected; the final CRLF was consumed above
                return status, body_len, rest, hdrs
    if status in (204, 304) or 100 <= status < 200:
        return status, 0, rest, hdrs
    raise ConnectionError("response without length (close-delimited)")


def request_bytes(port):
    return ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: atrium-bench\r\n\r\n"
            % (PATH, port)).encode()


def origin_accepts(port):
    """Connections the origin has accepted so far (nginx stub_status), or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /_status HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        m = re.search(rb"server accepts handled requests\s+(\d+)", data)
        return int(m.group(1)) if m else None
    except OSError:
        return None


def probe(port):
    """One request; returns a short description of a problem, or None if 200 + 1 KiB."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(request_bytes(port))
            status, n, _, _ = _read_response(s)
    except (OSError, ValueError, IndexError) as e:
        return "probe request failed: %s" % e
    if status != 200 or n != BODY_SIZE:
        return "probe got status %d with %d body bytes (expected 200, %d)" % (status, n, BODY_SIZE)
    return None


# --------------------------------------------------------------------------
# wrk

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def _ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m|h)$", text)
    if not m:
        return None
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out):
    r = {"requests": None, "rps": None, "p50_ms": None, "p99_ms": None,
         "non2xx": 0, "socket_errors": 0}
    m = re.search(r"^\s*(\d+) requests in ", out, re.M)
    if m:
        r["requests"] = int(m.group(1))
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if m:
        r["rps"] = float(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(r"^\s+%s(?:\.0+)?%%\s+(\S+)" % pct, out, re.M)
        if m:
            r[key] = _ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["socket_errors"] = sum(int(x) for x in m.groups())
    return r


def run_wrk(port, seconds, conns, cpus, tmp, tag, path=PATH):
    argv = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds, "--latency",
            "http://127.0.0.1:%d%s" % (port, path)]
    out = os.path.join(tmp, "wrk-%s.out" % tag)
    err = os.path.join(tmp, "wrk-%s.err" % tag)
    p = spawn(argv, cpus, 65536, out, err)
    try:
        p.wait(seconds + 30)
    except subprocess.TimeoutExpired:
        pass
    rc = p.poll()
    stop_proc(p)
    with open(out, errors="replace") as f:
        text = f.read()
    if rc != 0:
        raise RuntimeError("wrk exited with %s: %s" % (rc, tail(err) or tail(out)))
    return text


# --------------------------------------------------------------------------
# idle keep-alive connections

def rst_close(s):
    """Close with RST (SO_LINGER 0): no TIME_WAIT left behind on 127.0.0.1."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def light_warmup(port, conns=50, reqs=20, wrap=None):
    """A few keep-alive requests, then close: one-time lazy setup happens before
    the RSS baseline, without heating the allocator the way a wrk run does.
    wrap(sock) -> sock, if given, makes each connection a TLS one (--tls)."""
    socks = []
    try:
        for _ in range(conns):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(wrap(s) if wrap else s)
        req = request_bytes(port)
        for _ in range(reqs):
            for s in socks:
                s.sendall(req)
            for s in socks:
                _read_response(s)
    finally:
        for s in socks:
            rst_close(s)


def idle_conn_bytes(server, n, batch=200, wrap=None):
    """RSS growth of server's process tree per used-and-idle keep-alive connection, with
    n of them held. wrap(sock) -> sock, if given, makes each a TLS connection (--tls)."""
    root = server.proc.pid
    # Quiet time before each reading: a proxy may hand freed memory back
    # when idle (Atrium does after half a second); both readings get the same.
    time.sleep(2.0)
    before = tree_rss_bytes(root)
    socks = []
    req = request_bytes(server.port)
    errors = 0
    try:
        for start in range(0, n, batch):
            group = []
            for _ in range(min(batch, n - start)):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(10)
                try:
                    s.connect(("127.0.0.1", server.port))
                    if wrap:
                        s = wrap(s)
                    s.sendall(req)
                except OSError:
                    errors += 1
                    s.close()
                    continue
                group.append(s)
            for s in group:
                try:
                    status, _, _, hdrs = _read_response(s)
                    if status != 200 or hdrs.get("connection", "").lower() == "close":
                        errors += 1
                except socket.timeout:
                    socks.append(s)
                    raise RuntimeError("no response within 10 s on idle connection %d"
                                       % len(socks))
                except (OSError, ValueError, IndexError):
                    errors += 1
                socks.append(s)
        time.sleep(2.0)
        # Connections the proxy closed in the meantime do not count as held.
        held = 0
        for s in socks:
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    continue          # EOF: closed by the proxy
                held += 1             # unexpected bytes, but still open
            except (BlockingIOError, ssl.SSLWantReadError):
                held += 1             # (TLS: nothing, or only a session ticket, to read)
            except OSError:
                pass
        after = tree_rss_bytes(root)
    finally:
        for s in socks:
            rst_close(s)
    if server.proc.poll() is not None:
        raise RuntimeError("proxy died during idle-connection test")
    per = (after - before) / n
    return {"idle_bytes_per_conn": per, "rss_before": before, "rss_after": after,
            "idle_conns": n, "idle_conns_held": held, "idle_errors": errors}


# --------------------------------------------------------------------------
# one proxy

def atrium_missing(args, label):
    """The result row for a missing --atrium binary (logged), or None when it is there."""
    if os.access(args.atrium, os.X_OK):
        return None
    msg = "binary %s not found or not executable" % args.atrium
    log("%s: FAILED TO START: %s" % (label, msg))
    return {"proxy": label, "status": "failed to start", "error": msg}


def record_error(res, label, e, *logs):
    """A run failed: mark res, with the first non-empty tail of logs, and log it."""
    res["status"] = "error"
    res["error"] = "%s: %s" % (type(e).__name__, e)
    for path in logs:
        t = tail(path)
        if t:
            res["error"] += "\n" + t
            break
    log("%s: ERROR: %s" % (label, res["error"]))


def start_server(label, server):
    """Start server: a fresh result row for label, with status "failed to start" (logged)
    when it did not come up."""
    res = {"proxy": label, "status": "ok"}
    log("%s: starting (%s)" % (label, " ".join(server.argv)))
    if not server.start():
        res["status"] = "failed to start"
        res["error"] = server.error
        log("%s: FAILED TO START: %s" % (label, server.error))
    return res


def bench_proxy(label, server, args, load_cpus, origin_port):
    res = start_server(label, server)
    if res["status"] != "ok":
        return res
    try:
        problem = probe(server.port)
        if problem:
            res["warning"] = problem
            log("%s: WARNING: %s" % (label, problem))
        if args.idle_conns > 0:
            # Memory first, on a (nearly) fresh process: after a wrk run the allocator
            # holds freed memory that the idle connections would reuse, which makes
            # the number depend on history (see tools/bench.md).
            log("%s: idle memory with %d keep-alive connections" % (label, args.idle_conns))
            try:
                light_warmup(server.port)
                res.update(idle_conn_bytes(server, args.idle_conns))
            except (OSError, ValueError, IndexError, RuntimeError) as e:
                # e.g. a proxy that accepts but never answers: give up on this test only
                res["idle_bytes_per_conn"] = None
                res["warning"] = ((res["warning"] + "; ") if res.get("warning") else "") + \
                    "idle-memory test failed: %s: %s" % (type(e).__name__, e)
                log("%s: WARNING: %s" % (label, res["warning"]))
                if server.proc.poll() is not None:
                    raise RuntimeError("proxy exited during the idle-memory test (status %s)"
                                       % server.proc.returncode)
        else:
            res["idle_bytes_per_conn"] = None
        if args.warmup > 0:
            log("%s: warm-up %ds" % (label, args.warmup))
            run_wrk(server.port, args.warmup, args.connections, load_cpus, server.tmp, "warmup")
        if server.proc.poll() is not None:
            raise RuntimeError("proxy exited during warm-up (status %s)" % server.proc.returncode)
        log("%s: measuring %ds, %d connections" % (label, args.duration, args.connections))
        a0 = origin_accepts(origin_port)
        f0 = foreign_sample()
        t0 = tree_cpu_ticks(server.proc.pid)
        c0, l0, w0 = cpus_busy_ticks(server.cpus), cpus_busy_ticks(load_cpus), time.monotonic()
        out = run_wrk(server.port, args.duration, args.connections, load_cpus, server.tmp, "run")
        c1, l1, w1 = cpus_busy_ticks(server.cpus), cpus_busy_ticks(load_cpus), time.monotonic()
        t1 = tree_cpu_ticks(server.proc.pid)
        # other processes on the machine compete for the two CPUs: say so
        res["foreign_cpu"] = foreign_ticks(f0, foreign_sample()) / CLK_TCK / args.duration
        a1 = origin_accepts(origin_port)
        # minus 1: our own stub_status request is counted in a1
        res["origin_conns"] = (a1 - a0 - 1) if a0 is not None and a1 is not None else None
        if server.proc.poll() is not None:
            raise RuntimeError("proxy exited during the run (status %s)" % server.proc.returncode)
        w = parse_wrk(out)
        res.update(w)
        res["cpu_ticks"] = t1 - t0
        if w["requests"]:
            res["cpu_us_per_req"] = (t1 - t0) * 1e6 / CLK_TCK / w["requests"]
            if server.cpus and server.cpus.isdisjoint(load_cpus):
                # the proxy is alone on its CPU: this adds the kernel's softirq work
                # (loopback TCP) that /proc/PID/stat does not charge to the process
                res["core_us_per_req"] = (c1 - c0) * 1e6 / CLK_TCK / w["requests"]
                # near 100 %: wrk and the origin, not this proxy, set the rate
                res["load_busy_pct"] = busy_pct(l1 - l0, w1 - w0, load_cpus)
        else:
            res["cpu_us_per_req"] = None
            res["status"] = "no requests completed"
        res["wrk_output"] = out
    except Exception as e:  # keep going with the other proxies
        record_error(res, label, e, server.stderr)
    finally:
        server.stop()
    return res


def make_server(name, args, origin_port, proxy_cpus, nofile, conns, workers=1):
    tmp = make_tmpdir(name)
    port = free_port()
    if name == "nginx":
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(nginx_proxy_config(tmp, port, origin_port, nofile, conns, args.upstream_keepalive))
        argv = [args.nginx, "-p", tmp + "/", "-e", os.path.join(tmp, "error.log"), "-c", conf]
    elif name == "haproxy":
        conf = os.path.join(tmp, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write(haproxy_config(tmp, port, origin_port, conns))
        argv = [args.haproxy, "-db", "-f", conf]
    else:  # "atrium", or "baseline": another Atrium binary (--baseline)
        conf = os.path.join(tmp, "atrium.conf")
        with open(conf, "w") as f:
            f.write(atrium_config(port, origin_port, workers, args.upstream_keepalive))
        argv = [args.baseline if name == "baseline" else args.atrium, "-c", conf]
    return Server(name, argv, tmp, port, proxy_cpus, nofile)


# --------------------------------------------------------------------------
# output

MEDIAN_KEYS = ("foreign_cpu", "requests", "rps", "p50_ms", "p99_ms", "cpu_ticks", "cpu_us_per_req",
               "core_us_per_req", "idle_bytes_per_conn", "rss_before", "rss_after",
               "origin_conns", "idle_conns_held")
SUM_KEYS = ("non2xx", "socket_errors", "idle_errors")


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    if n == 0:
        return None
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def aggregate(rounds, median_keys=MEDIAN_KEYS):
    """One result per proxy: medians (errors: sums) over the rounds that worked."""
    good = [r for r in rounds if r["status"] == "ok"]
    if len(rounds) == 1:
        return rounds[0]
    if not good:
        agg = dict(rounds[0])
    else:
        agg = dict(good[0])
        for key in median_keys:
            vals = [r[key] for r in good if r.get(key) is not None]
            agg[key] = _median(vals) if vals else None
        for key in SUM_KEYS:
            agg[key] = sum(r.get(key) or 0 for r in good)
        if len(good) < len(rounds):
            agg["warning"] = ((agg.get("warning") + "; ") if agg.get("warning") else "") + \
                "%d of %d rounds failed" % (len(rounds) - len(good), len(rounds))
    agg.pop("wrk_output", None)
    agg["rounds"] = [{k: v for k, v in r.items() if k != "wrk_output"} for r in rounds]
    return agg


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def print_table(results):
    cols = ("proxy", "req/s", "cpu_us/req", "p50", "p99", "idle_bytes/conn", "errors",
            "origin_conns", "core_us/req", "load_cpu")
    rows = []
    notes = []
    for r in results:
        if r["status"] != "ok":
            rows.append((r["proxy"], r["status"], "", "", "", "", "", "", "", ""))
            notes.append("%s: %s" % (r["proxy"], r.get("error", r["status"])))
            if r.get("warning"):
                notes.append("%s: %s" % (r["proxy"], r["warning"]))
            continue
        errs = (r.get("non2xx") or 0) + (r.get("socket_errors") or 0)
        rows.append((r["proxy"], fmt(r.get("rps"), ".0f"), fmt(r.get("cpu_us_per_req"), ".1f"),
                     fmt(r.get("p50_ms"), ".3f") + "ms" if r.get("p50_ms") is not None else "-",
                     fmt(r.get("p99_ms"), ".3f") + "ms" if r.get("p99_ms") is not None else "-",
                     fmt(r.get("idle_bytes_per_conn"), ".0f"), str(errs),
                     fmt(r.get("origin_conns"), ".0f"), fmt(r.get("core_us_per_req"), ".1f"),
                     fmt(r.get("load_busy_pct"), ".0f") + "%" if r.get("load_busy_pct") else "-"))
        if errs:
            notes.append("%s: wrk saw %d non-2xx/3xx responses and %d socket errors"
                         % (r["proxy"], r.get("non2xx") or 0, r.get("socket_errors") or 0))
        oc, nreq = r.get("origin_conns"), r.get("requests")
        if oc and nreq and oc > 0.01 * nreq:
            notes.append("%s: the origin accepted %d new connections during the run (%.1f%% of "
                         "requests): upstream keep-alive churn; compare with "
                         "--upstream-keepalive >= --connections" % (r["proxy"], oc, 100.0 * oc / nreq))
        note = load_bound_note(r)
        if note:
            notes.append(note)
        if (r.get("foreign_cpu") or 0) > 0.10:
            notes.append("%s: other processes on this machine used %.0f%% of a CPU during the "
                         "run; these numbers are not reliable" % (r["proxy"], 100 * r["foreign_cpu"]))
        if r.get("warning"):
            notes.append("%s: %s" % (r["proxy"], r["warning"]))
        notes.extend(idle_notes(r))
    print_rows(cols, rows, notes)


def print_rows(headers, rows, notes=()):
    """A table: the first column left-aligned, the others right-aligned, a rule
    under the headers; then the notes, each line after the first indented."""
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i])
                     for i, h in enumerate(headers))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(v.ljust(widths[0]) if i == 0 else v.rjust(widths[i])
                        for i, v in enumerate(row)))
    if notes:
        print()
        for n in notes:
            for i, l in enumerate(n.splitlines()):
                print(("note: " if i == 0 else "      ") + l)


def ok(r):
    return r is not None and r["status"] == "ok"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def compute_ratios(by):
    out = []   # (key, text-line, value, target)
    a = by.get("atrium")
    for ref in ("nginx", "haproxy"):
        b = by.get(ref)
        if not (ok(a) and ok(b)):
            continue
        for key, name, target, op in (("cpu_us_per_req", "cpu_per_req",
                                       TARGET_CPU_RATIO if ref == "nginx" else None, "<="),
                                      ("p99_ms", "p99", None, None),
                                      ("p50_ms", "p50", None, None),
                                      ("rps", "req_per_s", None, None)):
            v = ratio(a.get(key), b.get(key))
            line = "atrium/%s %s ratio: %s" % (ref, name, fmt(v, ".2f"))
            if target is not None:
                line += " (target %s %s)" % (op, target)
            out.append(("atrium/%s %s" % (ref, name), line, v, target))
    if ok(a):
        v = a.get("idle_bytes_per_conn")
        out.append(("atrium idle_bytes_per_conn",
                    "atrium idle conn bytes: %s (target <= %d)" % (fmt(v, ".0f"), TARGET_IDLE_BYTES),
                    v, TARGET_IDLE_BYTES))
    w2 = by.get("atrium-w2")
    if ok(a) and ok(w2):
        v = ratio(w2.get("cpu_us_per_req"), a.get("cpu_us_per_req"))
        out.append(("atrium workers2/workers1 cpu_per_req",
                    "atrium workers2/workers1 cpu_per_req ratio: %s (target <= %.2f)"
                    % (fmt(v, ".2f"), TARGET_WORKERS2_RATIO), v, TARGET_WORKERS2_RATIO))
    elif w2 is not None:
        out.append(("atrium workers2/workers1 cpu_per_req",
                    "atrium workers2/workers1 cpu_per_req ratio: - (a run failed)", None,
                    TARGET_WORKERS2_RATIO))
    return out


# --------------------------------------------------------------------------
# --fastcgi and --cgi: Atrium against nginx (FastCGI to php-fpm) and Apache (CGI)

