"""tools/bench --fastcgi and --cgi: Atrium and nginx as FastCGI clients of the
same php-fpm, and Atrium's `cgi` against Apache httpd's mod_cgid running the
same compiled program."""

import json
import os
import re
import shutil
import subprocess

from .core import *  # noqa: F401,F403  (the shared helpers and constants)
from .core import _read_stat  # noqa: F401

FCGI_PATH = "/php/hello.php"
FCGI_BODY = b"hello"
CGI_PATH = "/cgi-bin/hello"
CGI_BODY = b"hello\n"
TARGET_FCGI_CPU_RATIO = 1.0     # atrium cpu/req <= nginx, both in front of the same php-fpm
TARGET_CGI_RPS_RATIO = 1.0      # atrium req/s >= Apache (mod_cgid), same CGI program
APACHE_MODULES = "/usr/lib/apache2/modules"
MODE_MEDIAN_KEYS = ("foreign_cpu", "requests", "rps", "p50_ms", "p99_ms", "cpu_ticks",
                    "cpu_us_per_req", "core_us_per_req", "fpm_cpu_ticks", "fpm_us_per_req",
                    "fpm_conns", "ok_rps", "tree_us_per_req")

CGI_SOURCE = r"""#include <stdio.h>

int main(void)
{
    fputs("Content-Type: text/plain\r\n\r\nhello\n", stdout);
    return 0;
}
"""


def unprivileged_group():
    """Group for the php-fpm pool and Apache when we run as root: nogroup, else nobody's."""
    import grp
    import pwd
    try:
        return grp.getgrnam("nogroup").gr_name
    except KeyError:
        try:
            return grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
        except KeyError:
            return "nobody"


def probe_body(port, path, expect):
    """One GET; a short description of a problem, or None if 200 with exactly `expect`."""
    import http.client
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            c.request("GET", path, headers={"User-Agent": "atrium-bench"})
            r = c.getresponse()
            body = r.read()
        finally:
            c.close()
    except (OSError, http.client.HTTPException) as e:
        return "probe GET %s failed: %s: %s" % (path, type(e).__name__, e)
    if r.status != 200 or body != expect:
        return "probe GET %s got status %d and body %r (expected 200 and %r)" % (
            path, r.status, body[:80], expect)
    return None


def time_wait_sockets(port):
    """TCP sockets in TIME_WAIT with port at either end (IPv4). A closed connection leaves one
    on the side that closed first, for 60 s: the difference over a run counts the connections
    closed during it."""
    n = 0
    hexport = ":%04X" % port
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split(None, 4)
                if len(parts) > 3 and parts[3] == "06" and \
                        (parts[1].endswith(hexport) or parts[2].endswith(hexport)):
                    n += 1
    except OSError:
        return None
    return n


def fpm_config(tmp, port, children):
    user = ""
    if os.geteuid() == 0:
        # php-fpm refuses root pools (without -R); nobody must read the docroot.
        user = "user = nobody\ngroup = %s\n" % unprivileged_group()
    return """[global]
pid = {tmp}/php-fpm.pid
error_log = {tmp}/error.log
log_level = notice
daemonize = no

[bench]
{user}listen = 127.0.0.1:{port}
listen.backlog = 511
pm = static
pm.max_children = {children}
pm.max_requests = 0
catch_workers_output = no
clear_env = yes
""".format(tmp=tmp, user=user, port=port, children=children)


def atrium_fastcgi_config(tmp, port, fpm_port, docroot, children):
    return """workers 1;
error_log {tmp}/error.log warn;
access_log off;
listen 127.0.0.1:{port};
upstream php {{ protocol fastcgi; server 127.0.0.1:{fport} max_conns={n}; keepalive {n}; }}
host * {{ route /php/ {{ proxy php; root {docroot}; }} }}
""".format(tmp=tmp, port=port, fport=fpm_port, n=children, docroot=docroot)


# Debian's /etc/nginx/fastcgi_params, inline so that the bench does not depend on it.
NGINX_FASTCGI_PARAMS = """QUERY_STRING $query_string
REQUEST_METHOD $request_method
CONTENT_TYPE $content_type
CONTENT_LENGTH $content_length
SCRIPT_NAME $fastcgi_script_name
REQUEST_URI $request_uri
DOCUMENT_URI $document_uri
DOCUMENT_ROOT $document_root
SERVER_PROTOCOL $server_protocol
REQUEST_SCHEME $scheme
HTTPS $https if_not_empty
GATEWAY_INTERFACE CGI/1.1
SERVER_SOFTWARE nginx/$nginx_version
REMOTE_ADDR $remote_addr
REMOTE_PORT $remote_port
SERVER_ADDR $server_addr
SERVER_PORT $server_port
SERVER_NAME $server_name
REDIRECT_STATUS 200
SCRIPT_FILENAME $document_root$fastcgi_script_name"""


def nginx_fastcgi_config(tmp, port, fpm_port, docroot, children, nofile):
    params = "".join("            fastcgi_param %s;\n" % l for l in NGINX_FASTCGI_PARAMS.splitlines())
    return nginx_common(tmp, os.path.join(tmp, "error.log"), nofile, 1024) + """http {{
{temp}    access_log off;
    upstream php {{
        server 127.0.0.1:{fport} max_conns={n};
        keepalive {n};
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {docroot};
        location /php/ {{
            fastcgi_pass php;
            fastcgi_keep_conn on;
{params}        }}
    }}
}}
""".format(temp=nginx_http_temp(tmp), fport=fpm_port, n=children, port=port, docroot=docroot,
           params=params)


def atrium_cgi_config(tmp, port, cgi_dir):
    return """workers 1;
error_log {tmp}/error.log warn;
access_log off;
listen 127.0.0.1:{port};
host * {{ route /cgi-bin/ {{ cgi {cgi}; }} }}
""".format(tmp=tmp, port=port, cgi=cgi_dir)


def apache_config(tmp, port, cgi_dir, threads):
    mods = ""
    for name, so in (("mpm_event_module", "mod_mpm_event.so"),
                     ("authz_core_module", "mod_authz_core.so"),
                     ("mime_module", "mod_mime.so"),
                     ("cgid_module", "mod_cgid.so"),
                     ("alias_module", "mod_alias.so"),
                     ("unixd_module", "mod_unixd.so")):   # built in on Debian
        path = os.path.join(APACHE_MODULES, so)
        if os.path.exists(path):
            mods += "LoadModule %s %s\n" % (name, path)
    user = ""
    if os.geteuid() == 0:
        # Apache refuses to run requests as root; nobody must read and run the program.
        user = "User nobody\nGroup %s\n" % unprivileged_group()
    for sub in ("run", "www"):
        os.makedirs(os.path.join(tmp, sub), exist_ok=True)
    open(os.path.join(tmp, "mime.types"), "w").close()
    return """ServerRoot "{tmp}"
ServerName 127.0.0.1
PidFile {tmp}/apache.pid
DefaultRuntimeDir {tmp}/run
ErrorLog {tmp}/error.log
LogLevel warn
Listen 127.0.0.1:{port}
{mods}{user}TypesConfig {tmp}/mime.types
ScriptSock {tmp}/cgid.sock
DocumentRoot {tmp}/www
Timeout 60
KeepAlive On
MaxKeepAliveRequests 1000
KeepAliveTimeout 120
StartServers 1
ServerLimit 1
ThreadLimit {t}
ThreadsPerChild {t}
MaxRequestWorkers {t}
MinSpareThreads 1
MaxSpareThreads {t}
MaxConnectionsPerChild 0
ScriptAlias /cgi-bin/ {cgi}/
<Directory {cgi}>
    Require all granted
</Directory>
""".format(tmp=tmp, port=port, mods=mods, user=user, cgi=cgi_dir, t=threads)


def ours_sample(server):
    """Like foreign_sample(), for --fastcgi and --cgi: it also counts the children that our
    processes reaped (CGI programs), and with a cgroup, the server's cgroup usage in place
    of its process tree (Apache's mod_cgid ignores SIGCHLD, so its CGI processes are never
    reaped into anyone's cutime)."""
    with open("/proc/stat") as f:
        v = f.readline().split()
    machine = int(v[1]) + int(v[2]) + int(v[3])
    skip = set(tree_pids(server.proc.pid)) if server.cgroup else set()
    ours = 0
    for pid in tree_pids(os.getpid()):
        if pid not in skip:
            st = _read_stat(pid)
            if st:
                ours += st["utime"] + st["stime"] + st["cutime"] + st["cstime"]
    if server.cgroup:
        ours += (cgroup_usage_ns(server.cgroup) or 0) * CLK_TCK / 1e9
    return machine, ours


def measure_server(label, server, args, load_cpus, path, expect, conns, backend=None,
                   conn_count=None):
    """Start server, probe it, warm up and measure one wrk run; always stops it.
    backend: a running Server (php-fpm) whose CPU is measured alongside (informational).
    conn_count: returns a counter of closed backend connections (read around the run)."""
    res = start_server(label, server)
    if res["status"] != "ok":
        return res
    try:
        if server.cgroup and server.proc.pid not in cgroup_pids(server.cgroup):
            log("%s: could not join cgroup %s; CPU from /proc only" % (label, server.cgroup))
            server.cgroup = None
        res["cpu_source"] = "cgroup" if server.cgroup else "proc"
        problem = probe_body(server.port, path, expect)
        if problem:
            res["warning"] = problem
            log("%s: WARNING: %s" % (label, problem))
        if args.warmup > 0:
            log("%s: warm-up %ds" % (label, args.warmup))
            run_wrk(server.port, args.warmup, conns, load_cpus, server.tmp, "warmup", path)
        if server.proc.poll() is not None:
            raise RuntimeError("server exited during warm-up (status %s)" % server.proc.returncode)
        if backend is not None and backend.proc.poll() is not None:
            raise RuntimeError("%s exited during warm-up (status %s)"
                               % (backend.name, backend.proc.returncode))
        log("%s: measuring %ds, %d connections" % (label, args.duration, conns))
        k0 = conn_count() if conn_count else None
        f0 = ours_sample(server)
        g0 = cgroup_usage_ns(server.cgroup) if server.cgroup else None
        t0 = tree_cpu_ticks(server.proc.pid)
        b0 = tree_cpu_ticks(backend.proc.pid) if backend is not None else 0
        c0 = cpus_busy_ticks(server.cpus)
        out = run_wrk(server.port, args.duration, conns, load_cpus, server.tmp, "run", path)
        c1 = cpus_busy_ticks(server.cpus)
        b1 = tree_cpu_ticks(backend.proc.pid) if backend is not None else 0
        t1 = tree_cpu_ticks(server.proc.pid)
        g1 = cgroup_usage_ns(server.cgroup) if server.cgroup else None
        res["foreign_cpu"] = foreign_ticks(f0, ours_sample(server)) / CLK_TCK / args.duration
        if conn_count:
            k1 = conn_count()
            res["fpm_conns"] = (k1 - k0) if k0 is not None and k1 is not None else None
        if server.proc.poll() is not None:
            raise RuntimeError("server exited during the run (status %s)" % server.proc.returncode)
        if backend is not None and backend.proc.poll() is not None:
            raise RuntimeError("%s exited during the run (status %s)"
                               % (backend.name, backend.proc.returncode))
        w = parse_wrk(out)
        res.update(w)
        res["cpu_ticks"] = t1 - t0
        if backend is not None:
            res["fpm_cpu_ticks"] = b1 - b0
        if w["requests"]:
            res["ok_rps"] = w["rps"] * (w["requests"] - w["non2xx"]) / w["requests"] \
                if w["rps"] is not None else None
            res["tree_us_per_req"] = (t1 - t0) * 1e6 / CLK_TCK / w["requests"]
            if g0 is not None and g1 is not None:
                res["cpu_us_per_req"] = (g1 - g0) / 1e3 / w["requests"]
            else:
                res["cpu_us_per_req"] = res["tree_us_per_req"]
            if backend is not None:
                res["fpm_us_per_req"] = (b1 - b0) * 1e6 / CLK_TCK / w["requests"]
            if server.cpus and server.cpus.isdisjoint(load_cpus):
                res["core_us_per_req"] = (c1 - c0) * 1e6 / CLK_TCK / w["requests"]
        else:
            res["cpu_us_per_req"] = None
            res["status"] = "no requests completed"
        res["wrk_output"] = out
    except Exception as e:  # keep going with the other server
        record_error(res, label, e, server.stderr, os.path.join(server.tmp, "error.log"))
    finally:
        server.stop()
    return res


def _file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


# warn and worse, in the error logs of nginx and Atrium ([warn]), Apache ([cgid:error])
# and php-fpm (WARNING:)
LOG_PROBLEM = r"\[(?:[a-z_]+:)?(?:warn|error|crit|alert|emerg)\]|\b(?:WARNING|ERROR|ALERT):"


def _problem_lines(path, offset=0, pattern=LOG_PROBLEM):
    """Distinct messages of warn level or worse in a log since offset: at most 3, the most
    frequent first, each with its count."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read(4 << 20).decode("utf-8", "replace")
    except OSError:
        return []
    counts = {}
    for line in text.splitlines():
        m = re.search(pattern, line)
        if m:
            msg = line[m.start():].strip()
            counts[msg] = counts.get(msg, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    return ["%s (%d times)" % (msg, n) if n > 1 else msg for msg, n in top]


def _add_log_warning(res, what, lines):
    if lines:
        res["warning"] = ((res["warning"] + "; ") if res.get("warning") else "") + \
            what + ": " + " | ".join(lines)


def print_mode_table(results, cols):
    """cols: (header, key, format, suffix); the first column is the server name."""
    rows = []
    notes = []
    for r in results:
        if r["status"] != "ok":
            rows.append([r["proxy"], r["status"]] + [""] * (len(cols) - 1))
            notes.append("%s: %s" % (r["proxy"], r.get("error", r["status"])))
            if r.get("warning"):
                notes.append("%s: %s" % (r["proxy"], r["warning"]))
            continue
        row = [r["proxy"]]
        for _, key, spec, suffix in cols:
            if key == "errors":
                row.append(str((r.get("non2xx") or 0) + (r.get("socket_errors") or 0)))
            else:
                v = r.get(key)
                row.append("-" if v is None else format(v, spec) + suffix)
        rows.append(row)
        errs = (r.get("non2xx") or 0) + (r.get("socket_errors") or 0)
        if errs:
            notes.append("%s: wrk saw %d non-2xx/3xx responses and %d socket errors"
                         % (r["proxy"], r.get("non2xx") or 0, r.get("socket_errors") or 0))
        if (r.get("foreign_cpu") or 0) > 0.10:
            notes.append("%s: other processes on this machine used %.0f%% of a CPU during the "
                         "run; these numbers are not reliable" % (r["proxy"], 100 * r["foreign_cpu"]))
        fc, nreq = r.get("fpm_conns"), r.get("requests")
        if fc and nreq and fc > 0.01 * nreq:
            notes.append("%s: %d connections to php-fpm were closed during the run (%.1f%% of "
                         "requests): upstream keep-alive churn" % (r["proxy"], fc, 100.0 * fc / nreq))
        if r.get("warning"):
            notes.append("%s: %s" % (r["proxy"], r["warning"]))
    print_rows(["server"] + [c[0] for c in cols], rows, notes)


def mode_ratios(a, b, ref, mode, items):
    """items: (key, name, target, op). Ratios atrium/ref of one mode."""
    out = []
    if not (ok(a) and ok(b)):
        for key, name, target, op in items:
            if target is not None:
                out.append(("atrium/%s %s %s" % (ref, mode, name),
                            "atrium/%s %s %s ratio: - (a run failed)" % (ref, mode, name),
                            None, target))
        return out
    for key, name, target, op in items:
        v = ratio(a.get(key), b.get(key))
        line = "atrium/%s %s %s ratio: %s" % (ref, mode, name, fmt(v, ".2f"))
        if target is not None:
            line += " (target %s %s)" % (op, target)
        out.append(("atrium/%s %s %s" % (ref, mode, name), line, v, target))
    return out


def run_rounds(args, names, one):
    """one(name) -> result; every name args.rounds times, order rotated; aggregated."""
    per = {n: [] for n in names}
    for rnd in range(args.rounds):
        if args.rounds > 1:
            log("round %d of %d" % (rnd + 1, args.rounds))
        k = rnd % len(names)
        for name in names[k:] + names[:k]:
            per[name].append(one(name))
    return [aggregate(per[n], MODE_MEDIAN_KEYS) for n in names if per[n]]


def emit_mode(args, mode, config, results, ratios, title, subtitle, cols):
    if args.json:
        doc = {"mode": mode, "config": config,
               "results": [{k: v for k, v in r.items() if k != "wrk_output"} for r in results],
               "ratios": {k: {"value": v, "target": t} for k, _, v, t in ratios}}
        print(json.dumps(doc, indent=2))
        return
    print(title)
    print(subtitle)
    print()
    print_mode_table(results, cols)
    if ratios:
        print()
        for _, line, _, _ in ratios:
            print(line)


def main_fastcgi(args, proxy_cpus, load_cpus, pinning, nofile):
    if not os.access(args.php_fpm, os.X_OK):
        log("php-fpm not found at %s (apt-get install php8.2-fpm)" % args.php_fpm)
        return 2
    n = args.connections      # = pm.max_children = max_conns = keepalive: no proxy needs a queue
    www = make_tmpdir("php-www")
    os.makedirs(os.path.join(www, "php"), mode=0o755)
    with open(os.path.join(www, "php", "hello.php"), "w") as f:
        f.write('<?php echo "hello";')
    os.chmod(os.path.join(www, "php", "hello.php"), 0o644)
    ftmp = make_tmpdir("php-fpm")
    fconf = os.path.join(ftmp, "php-fpm.conf")
    fpm_argv = [args.php_fpm, "-F", "-y", fconf, "-p", ftmp]
    log("fastcgi: php-fpm (pm static, %d children); %s" % (n, pinning))

    def one(name):
        # A fresh php-fpm, on a fresh port: the TIME_WAIT count below sees only this proxy.
        fport = free_port()
        with open(fconf, "w") as f:
            f.write(fpm_config(ftmp, fport, n))
        fpm = Server("php-fpm", fpm_argv, ftmp, fport, load_cpus, nofile)
        elog = os.path.join(ftmp, "error.log")
        eoff = _file_size(elog)
        log("%s: starting php-fpm on 127.0.0.1:%d (%s)" % (name, fport, " ".join(fpm_argv)))
        if not fpm.start():
            log("%s: php-fpm FAILED TO START: %s" % (name, fpm.error))
            return {"proxy": name, "status": "failed to start", "error": "php-fpm: " + fpm.error}
        try:
            missing = name == "atrium" and atrium_missing(args, name)
            if missing:
                return missing
            tmp = make_tmpdir(name + "-fcgi")
            port = free_port()
            if name == "nginx":
                conf = os.path.join(tmp, "nginx.conf")
                with open(conf, "w") as f:
                    f.write(nginx_fastcgi_config(tmp, port, fport, www, n, nofile))
                argv = [args.nginx, "-p", tmp + "/", "-e", os.path.join(tmp, "error.log"),
                        "-c", conf]
            else:
                conf = os.path.join(tmp, "atrium.conf")
                with open(conf, "w") as f:
                    f.write(atrium_fastcgi_config(tmp, port, fport, www, n))
                argv = [args.atrium, "-c", conf]
            server = Server(name, argv, tmp, port, proxy_cpus, nofile)
            res = measure_server(name, server, args, load_cpus, FCGI_PATH, FCGI_BODY, n,
                                 backend=fpm, conn_count=lambda: time_wait_sockets(fport))
            _add_log_warning(res, "error log", _problem_lines(os.path.join(tmp, "error.log")))
            _add_log_warning(res, "php-fpm error log", _problem_lines(elog, eoff))
            return res
        finally:
            fpm.stop()

    results = run_rounds(args, ["atrium", "nginx"], one)
    by = {r["proxy"]: r for r in results}
    ratios = mode_ratios(by.get("atrium"), by.get("nginx"), "nginx", "fastcgi",
                         (("cpu_us_per_req", "cpu_per_req", TARGET_FCGI_CPU_RATIO, "<="),
                          ("rps", "req_per_s", None, None),
                          ("p50_ms", "p50", None, None),
                          ("p99_ms", "p99", None, None)))
    config = {"duration_s": args.duration, "warmup_s": args.warmup, "connections": n,
              "wrk_threads": 1, "rounds": args.rounds, "path": FCGI_PATH,
              "fpm_children": n, "max_conns": n, "keepalive": n, "pinning": pinning,
              "atrium": args.atrium, "php_fpm": args.php_fpm, "clk_tck": CLK_TCK}
    emit_mode(args, "fastcgi", config, results, ratios,
              "Atrium bench --fastcgi: GET %s via proxy -> php-fpm 127.0.0.1 (pm static, %d "
              "children; max_conns %d, keepalive %d)" % (FCGI_PATH, n, n, n),
              "wrk -t1 -c%d -d%ds --latency (+%ds warm-up); %s; php-fpm restarted for each "
              "proxy; %s" % (n, args.duration, args.warmup, pinning,
                             "1 round" if args.rounds == 1 else "%d rounds, medians" % args.rounds),
              (("req/s", "rps", ".0f", ""), ("cpu_us/req", "cpu_us_per_req", ".1f", ""),
               ("p50", "p50_ms", ".3f", "ms"), ("p99", "p99_ms", ".3f", "ms"),
               ("errors", "errors", "", ""), ("fpm_conns", "fpm_conns", ".0f", ""),
               ("fpm_us/req", "fpm_us_per_req", ".1f", ""),
               ("core_us/req", "core_us_per_req", ".1f", "")))
    return 0


def main_cgi(args, proxy_cpus, load_cpus, pinning, nofile):
    if not os.access(args.apache, os.X_OK):
        log("Apache not found at %s (apt-get install apache2)" % args.apache)
        return 2
    gcc = shutil.which("gcc") or shutil.which("cc")
    if not gcc:
        log("gcc not found: it compiles the CGI program")
        return 2
    ctmp = make_tmpdir("cgi")
    cgi_dir = os.path.join(ctmp, "cgi-bin")
    os.makedirs(cgi_dir, mode=0o755)
    src = os.path.join(ctmp, "hello.c")
    with open(src, "w") as f:
        f.write(CGI_SOURCE)
    prog = os.path.join(cgi_dir, "hello")
    cc = subprocess.run([gcc, "-O2", "-o", prog, src], stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if cc.returncode != 0:
        log("cannot compile the CGI program: %s" % cc.stdout.decode("utf-8", "replace"))
        return 2
    os.chmod(prog, 0o755)
    n = args.connections
    threads = max(25, n)      # Apache: one child process, a thread per connection
    log("cgi: %s (%s)" % (prog, pinning))

    def one(name):
        missing = name == "atrium" and atrium_missing(args, name)
        if missing:
            return missing
        tmp = make_tmpdir(name + "-cgi")
        port = free_port()
        if name == "apache":
            conf = os.path.join(tmp, "apache2.conf")
            with open(conf, "w") as f:
                f.write(apache_config(tmp, port, cgi_dir, threads))
            argv = [args.apache, "-DFOREGROUND", "-f", conf]
        else:
            conf = os.path.join(tmp, "atrium.conf")
            with open(conf, "w") as f:
                f.write(atrium_cgi_config(tmp, port, cgi_dir))
            argv = [args.atrium, "-c", conf]
        server = Server(name, argv, tmp, port, proxy_cpus, nofile)
        # A cgroup counts the CGI processes too, reaped or not (see ours_sample).
        server.cgroup = make_cgroup(name)
        if server.cgroup is None:
            log("%s: no cgroup for CPU accounting; cpu_us/req from /proc misses CGI "
                "processes nobody reaps (Apache's)" % name)
        elog = os.path.join(tmp, "error.log")
        try:
            res = measure_server(name, server, args, load_cpus, CGI_PATH, CGI_BODY, n)
        finally:
            if server.cgroup:
                remove_cgroup(server.cgroup)
        _add_log_warning(res, "error log", _problem_lines(elog))
        return res

    results = run_rounds(args, ["atrium", "apache"], one)
    by = {r["proxy"]: r for r in results}
    ratios = mode_ratios(by.get("atrium"), by.get("apache"), "apache", "cgi",
                         (("rps", "req_per_s", TARGET_CGI_RPS_RATIO, ">="),
                          ("ok_rps", "ok_req_per_s", None, None),
                          ("cpu_us_per_req", "cpu_per_req", None, None),
                          ("core_us_per_req", "core_per_req", None, None),
                          ("p50_ms", "p50", None, None),
                          ("p99_ms", "p99", None, None)))
    config = {"duration_s": args.duration, "warmup_s": args.warmup, "connections": n,
              "wrk_threads": 1, "rounds": args.rounds, "path": CGI_PATH,
              "atrium_workers": 1, "apache_processes": 1, "apache_threads": threads,
              "pinning": pinning, "atrium": args.atrium, "apache": args.apache,
              "clk_tck": CLK_TCK}
    emit_mode(args, "cgi", config, results, ratios,
              "Atrium bench --cgi: GET %s (compiled C CGI program) via Atrium `cgi` vs Apache "
              "mod_cgid" % CGI_PATH,
              "wrk -t1 -c%d -d%ds --latency (+%ds warm-up); Atrium workers 1, Apache 1 process x "
              "%d threads; %s; %s" % (n, args.duration, args.warmup, threads, pinning,
                                      "1 round" if args.rounds == 1 else
                                      "%d rounds, medians" % args.rounds),
              (("req/s", "rps", ".0f", ""), ("ok_req/s", "ok_rps", ".0f", ""),
               ("cpu_us/req", "cpu_us_per_req", ".1f", ""),
               ("p50", "p50_ms", ".3f", "ms"), ("p99", "p99_ms", ".3f", "ms"),
               ("errors", "errors", "", ""), ("core_us/req", "core_us_per_req", ".1f", "")))
    return 0
