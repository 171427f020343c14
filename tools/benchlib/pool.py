"""tools/bench --pool: issue 12's two pool targets, each an interleaved run of Atrium
instances that differ only in their upstream (the same binary, the same CPU pinning, the
same wrk slices and loadgen rate as the default mode, tools/benchlib/interleave.py).

1. "dns": a 50-member DNS pool whose answer changes every second (`server pool.test:PORT
   resolve;`, answered by dnsmasq from a hosts directory with a 1 s TTL; the bench moves a
   window of 50 addresses over 60 by one address a second) against 50 static `server`
   lines. The cost of following the answer (the control loop's lookups, the workers'
   new member sets, the draining and new connections) shows as CPU per request.
2. "size": 1,000 static members against 3, per balance method (--pool-balance): how the
   per-request cost grows with the member count.
3. "defaults" (issue 13, not run unless asked: --pool-parts defaults): an upstream with
   nothing but its server line, every default in force, against a tuned one (keepalive
   and keepalive_requests raised on both sides, as the bench's own config has them), at
   --connections clients: a default that falls off a cliff under load shows here.

Every member is the same nginx origin, reached through its own loopback address (it
listens on 127.0.0.2-61 and 127.0.X.Y as well as 127.0.0.1): every address of 127/8 is
local on Linux, so nothing leaves the machine. See tools/bench.md, "Pools (issue 12)".
"""

import json
import os
import re
import shutil
import socket
import threading
import time

from benchlib.core import (CLK_TCK, PATH, Server, foreign_sample, foreign_ticks, free_port, log,
                           make_tmpdir, origin_accepts, print_rows, probe, spawn, start_server,
                           stop_proc, tail, tree_pids)
from benchlib.interleave import loadgen_path, measure, pair_ratio, print_ratio

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
DNS_NAME = "pool.test"
DNS_SIZE = 50                                               # members in each answer
DNS_ADDRS = tuple("127.0.0.%d" % i for i in range(2, 62))   # 60 the window moves over
SMALL = 3
TARGET_DNS_RATIO = 1.05      # dns50/static50 CPU per request (issue 12), quoted only
BALANCES = ("round_robin", "least_conn", "random2", "ewma", "hash")
PARTS = ("dns", "size", "defaults")
TARGET_DEFAULTS_RATIO = 1.05  # default/tuned CPU per request (issue 13), quoted only


def big_addrs(n):
    """n loopback addresses 127.0.1.1, ..., 127.0.1.250, 127.0.2.1, ... (no .0, no .255)."""
    return ["127.0.%d.%d" % (1 + i // 250, 1 + i % 250) for i in range(n)]


# --------------------------------------------------------------------------
# configs

def pool_config(port, servers, balance, keepalive, dns_port):
    """An Atrium with one upstream of the given `server` arguments. Every instance gets the
    resolver lines, which cost nothing without a `resolve` server, and `info` logging, which
    is how the bench counts the answer changes dns50 applied. header_timeout: loadgen opens
    every instance's connections at its start, and with 6 instances in 2 s slices the last
    one's first requests come after Atrium's default 10 s for a first request head, which
    closes them (the connections would be reopened, and counted, mid-run)."""
    return """workers 1;
error_log stderr info;
access_log off;
header_timeout 120s;
keepalive_timeout 120s;
keepalive_requests 100000;
resolver 127.0.0.1:{dns_port};
resolve_ttl_min 1s;
resolve_max 64;
listen 127.0.0.1:{port};
upstream pool {{
    balance {balance};
{servers}    keepalive {keepalive};
    keepalive_timeout 120s;
    keepalive_requests 100000;
}}
host * {{ route / {{ proxy pool; }} }}
""".format(dns_port=dns_port, port=port, balance=balance, keepalive=keepalive,
           servers="".join("    server %s;\n" % s for s in servers))


def make_pool_server(name, args, servers, balance, dns_port, cpus, nofile):
    tmp = make_tmpdir(name)
    port = free_port()
    conf = os.path.join(tmp, "atrium.conf")
    with open(conf, "w") as f:
        f.write(pool_config(port, servers, balance, args.upstream_keepalive, dns_port))
    s = Server(name, [args.atrium, "-c", conf], tmp, port, cpus, nofile)
    s.members = len(servers) if not any(x.endswith(" resolve") for x in servers) else DNS_SIZE
    s.balance = balance
    return s


# --------------------------------------------------------------------------
# dnsmasq and the answer that moves

class Dnsmasq:
    """dnsmasq on 127.0.0.1:port answering DNS_NAME from hostsdir/ only, with a 1 s TTL;
    it re-reads a file of the directory when it changes (inotify)."""

    def __init__(self, binary, cpus):
        self.binary = binary
        self.cpus = cpus
        self.tmp = make_tmpdir("dnsmasq")
        self.dir = os.path.join(self.tmp, "hosts.d")
        os.mkdir(self.dir)
        self.log = os.path.join(self.tmp, "dnsmasq.log")
        self.port = free_port()
        self.proc = None

    def set(self, addrs):
        # a new file, then a rename: dnsmasq never reads a half-written one (and it
        # ignores dotfiles, so the temporary name is not read at all)
        tmp = os.path.join(self.dir, ".%s.tmp" % DNS_NAME)
        with open(tmp, "w") as f:
            f.write("".join("%s %s\n" % (a, DNS_NAME) for a in addrs))
        os.rename(tmp, os.path.join(self.dir, DNS_NAME))

    def start(self):
        argv = [self.binary, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                "--no-hosts", "--hostsdir=%s" % self.dir, "--local-ttl=1", "--local=/test/",
                "--port=%d" % self.port, "--listen-address=127.0.0.1", "--bind-interfaces",
                "--pid-file=", "--log-facility=%s" % self.log, "--log-queries"]
        if os.geteuid() == 0:
            argv.append("--user=root")   # else it drops to nobody, who cannot read tmp/
        log("dnsmasq: starting on 127.0.0.1:%d (%s)" % (self.port, " ".join(argv)))
        self.proc = spawn(argv, self.cpus, 4096, os.path.join(self.tmp, "stdout.log"),
                          os.path.join(self.tmp, "stderr.log"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            if "started" in self.log_text():
                return None
            time.sleep(0.05)
        return "dnsmasq did not start: %s" % (tail(self.log) or
                                              tail(os.path.join(self.tmp, "stderr.log")))

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def counts(self):
        """(A and AAAA queries for DNS_NAME received, times a file of the directory was read)"""
        text = self.log_text()
        return (len(re.findall(r"query\[(?:A|AAAA)\] %s " % re.escape(DNS_NAME), text)),
                len(re.findall(r"read %s" % re.escape(self.dir), text)))

    def stop(self):
        stop_proc(self.proc)


class Rotator(threading.Thread):
    """Every `period` seconds, moves the answer's window of DNS_SIZE addresses over
    DNS_ADDRS by one: one address leaves, the next one comes."""

    def __init__(self, dns, period=1.0):
        super().__init__(daemon=True)
        self.dns = dns
        self.period = period
        self.k = 0
        self.done = threading.Event()

    @staticmethod
    def answer(k):
        return [DNS_ADDRS[(k + i) % len(DNS_ADDRS)] for i in range(DNS_SIZE)]

    def run(self):
        due = time.monotonic() + self.period
        while not self.done.wait(max(0.0, due - time.monotonic())):
            self.k += 1
            self.dns.set(self.answer(self.k))
            due += self.period

    def stop(self):
        self.done.set()
        self.join(5)


def applied_changes(server):
    """How many new answers for DNS_NAME the instance took (its `info` log line per change)."""
    try:
        with open(server.stderr, errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    return len(re.findall(r"resolve %s\S*: \d+ address\(es\), was" % re.escape(DNS_NAME), text))


# --------------------------------------------------------------------------
# accounting

def backend_conns(root, port):
    """Established TCP connections from the process tree of root to port (any address):
    the backend connections the instance holds, pooled or busy."""
    inodes = set()
    for pid in tree_pids(root):
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(int(link[8:-1]))
    n = 0
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                p = line.split()
                if p[3] == "01" and int(p[2].rsplit(":", 1)[1], 16) == port \
                        and int(p[9]) in inodes:
                    n += 1
    except OSError:
        return None
    return n


def tree_cpu_ns(root):
    """CPU time (ns) of every thread in root's process tree, from schedstat: finer than
    /proc's 10 ms ticks, for the little an idle instance uses."""
    total = 0
    for pid in tree_pids(root):
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for tid in tids:
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total


IDLE_S = 5


def idle_cost(servers, seconds):
    """Each server's CPU in ms per second over `seconds` without requests (dns50 still
    follows the answer: that is the cost of the changes alone)."""
    c0 = {s.name: tree_cpu_ns(s.proc.pid) for s in servers}
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    return {s.name: (tree_cpu_ns(s.proc.pid) - c0[s.name]) / 1e6 / wall for s in servers}


def check_origin(addrs, port):
    """None if a connection to port on each of addrs (some of them) is accepted."""
    for a in addrs:
        try:
            socket.create_connection((a, port), timeout=2).close()
        except OSError as e:
            return "origin does not accept on %s:%d: %s" % (a, port, e)
    return None


def run_group(title, servers, args, load_cpus, oport, lg, pairs, during=None):
    """Start servers, run interleave.measure() over them with the origin's accepted
    connections counted per slice, stop them. during: (start, stop) callables around the
    measurement. Returns the group's document, or raises."""
    started = []
    try:
        for s in servers:
            if start_server(s.name, s)["status"] != "ok":
                raise RuntimeError("%s did not start: %s" % (s.name, s.error))
            started.append(s)
            problem = probe(s.port)
            if problem:
                raise RuntimeError("%s: %s" % (s.name, problem))
        log("%s: %s" % (title, ", ".join("%s (%d members, %s)" % (s.name, s.members, s.balance)
                                         for s in servers)))
        if during:
            during[0]()
        log("CPU of the idle instances over %d s" % IDLE_S)
        idle = idle_cost(servers, IDLE_S)
        f0, w0 = foreign_sample(), time.monotonic()
        try:
            results, per_cycle, rate, lat = measure(
                servers, args, load_cpus, lg,
                counters=lambda: {"origin_conns": origin_accepts(oport)})
            # backend connections held after both steps, with the instances idle
            held = {s.name: backend_conns(s.proc.pid, oport) for s in servers}
        finally:
            if during:
                during[1]()
        foreign = foreign_ticks(f0, foreign_sample()) / CLK_TCK / (time.monotonic() - w0)
    finally:
        for s in started:
            s.stop()
    cycles = max(1, args.duration // max(1, args.slice))
    by = {s.name: s for s in servers}
    for r in results:
        s = by[r["proxy"]]
        r["members"], r["balance"] = s.members, s.balance
        if "origin_conns" in r:
            r["origin_conns"] -= cycles      # our own stub_status request, once per slice
        r["backend_conns_held"] = held.get(s.name)
        r["idle_cpu_ms_per_s"] = idle[s.name]
        r["error_log_problems"] = problem_lines(s.stderr)
    doc = {"title": title, "rate": rate, "foreign_cpu": round(foreign, 3),
           "loadgen_overloaded": lat["overloaded"], "results": results, "cycles": per_cycle, "ratios": {}}
    for num, ref, target in pairs:
        doc["ratios"]["%s/%s" % (num, ref)] = pair_ratio(results, per_cycle, num, ref, target)
    return doc


def problem_lines(path):
    """Error-log lines of warn level and above (the first few)."""
    try:
        with open(path, errors="replace") as f:
            lines = [l.rstrip() for l in f
                     if re.search(r"\[(warn|error|crit|alert|emerg)\]", l)]
    except OSError:
        return []
    return lines[:5] + (["... %d more" % (len(lines) - 5)] if len(lines) > 5 else [])


# --------------------------------------------------------------------------
# the two parts

def part_dns(args, oport, proxy_cpus, load_cpus, nofile, lg):
    dns = Dnsmasq(args.dnsmasq, load_cpus)
    dns.set(Rotator.answer(0))
    err = dns.start()
    if err:
        raise RuntimeError(err)
    rot = Rotator(dns)
    try:
        static = make_pool_server("static50", args, ["%s:%d" % (a, oport) for a in
                                                     Rotator.answer(0)],
                                  "round_robin", dns.port, proxy_cpus, nofile)
        dyn = make_pool_server("dns50", args, ["%s:%d resolve" % (DNS_NAME, oport)],
                               "round_robin", dns.port, proxy_cpus, nofile)
        counts = {}

        def begin():
            counts["before"] = (applied_changes(dyn), dns.counts())
            rot.start()

        def end():
            rot.stop()
            counts["after"] = (applied_changes(dyn), dns.counts())
        doc = run_group("1. a %d-member DNS pool whose answer changes every second, against "
                        "%d static members" % (DNS_SIZE, DNS_SIZE), [static, dyn], args,
                        load_cpus, oport, lg, [("dns50", "static50", TARGET_DNS_RATIO)],
                        (begin, end))
    finally:
        if rot.is_alive():
            rot.stop()
        dns.stop()
    (c0, (q0, r0)), (c1, (q1, r1)) = counts["before"], counts["after"]
    doc["dns"] = {"answers_written": rot.k, "changes_applied": c1 - c0 if c0 is not None else None,
                  "queries": q1 - q0, "dnsmasq_reads": r1 - r0}
    return doc


def part_size(args, oport, proxy_cpus, load_cpus, nofile, lg):
    big = big_addrs(args.pool_members)
    servers, pairs = [], []
    for bal in args.pool_balance:
        for n in (SMALL, args.pool_members):
            servers.append(make_pool_server("%s-%d" % (bal, n), args,
                                            ["%s:%d" % (a, oport) for a in big[:n]],
                                            bal, 53, proxy_cpus, nofile))
        pairs.append(("%s-%d" % (bal, args.pool_members), "%s-%d" % (bal, SMALL), None))
    return run_group("2. %d static members against %d" % (args.pool_members, SMALL), servers,
                     args, load_cpus, oport, lg, pairs)


def part_defaults(args, oport, proxy_cpus, load_cpus, nofile, lg):
    origin = "127.0.0.1:%d" % oport
    tuned = make_pool_server("tuned", args, [origin], "round_robin", 53, proxy_cpus, nofile)
    default = make_pool_server("default", args, [origin], "round_robin", 53, proxy_cpus, nofile)
    with open(default.argv[-1], "w") as f:   # the shipped defaults: only what must be said
        f.write("workers 1;\nerror_log stderr warn;\nlisten 127.0.0.1:%d;\n"
                "upstream pool { server %s; }\nhost * { route / { proxy pool; } }\n"
                % (default.port, origin))
    return run_group("3. every default against a tuned upstream, %d clients" % args.connections,
                     [tuned, default], args, load_cpus, oport, lg,
                     [("default", "tuned", TARGET_DEFAULTS_RATIO)])


# --------------------------------------------------------------------------
# output

def print_group(doc):
    print(doc["title"])
    cols = ("instance", "members", "balance", "req/s", "cpu_us/req", "user_us/req", "load_cpu",
            "errors", "new_origin_conns", "cpu_us/req@rate", "user@rate", "p50@rate", "p99@rate",
            "errors@rate", "backend_conns")
    rows = []
    for r in doc["results"]:
        f = r["fixed_rate"]
        rows.append((r["proxy"], str(r["members"]), r["balance"], "%.0f" % r["rps"],
                     "%.1f" % r["cpu_us_per_req"] if r["cpu_us_per_req"] else "-",
                     "%.1f" % r["user_us_per_req"] if r.get("user_us_per_req") else "-",
                     "%.0f%%" % r["load_busy_pct"] if r.get("load_busy_pct") else "-",
                     str(r["errors"]),
                     str(r["origin_conns"]) if r.get("origin_conns") is not None else "-",
                     "%.1f" % f["cpu_us_per_req"] if f["cpu_us_per_req"] else "-",
                     "%.1f" % f["user_us_per_req"] if f.get("user_us_per_req") else "-",
                     "%.0fus" % f["p50_us"], "%.0fus" % f["p99_us"],
                     str(f["errors"] + f["non2xx"]),
                     str(r["backend_conns_held"]) if r["backend_conns_held"] is not None
                     else "-"))
    print_rows(cols, rows)
    print()
    for pair, r in doc["ratios"].items():
        print_ratio(pair, r, doc["rate"])
    print("CPU without requests, %d s before the load: %s" % (IDLE_S, ", ".join(
        "%s %.2f ms/s" % (r["proxy"], r["idle_cpu_ms_per_s"]) for r in doc["results"])))
    d = doc.get("dns")
    if d:
        print("answer changes: the bench wrote %d new answers (one a second); dns50 applied %s "
              "(its error log); dnsmasq got %d queries for %s (A and AAAA, UDP and TCP) and "
              "re-read the hosts file %d times" % (d["answers_written"], d["changes_applied"], d["queries"],
                                      DNS_NAME, d["dnsmasq_reads"]))
    for r in doc["results"]:
        f = r["fixed_rate"]
        if r["errors"] or f["errors"] or f["non2xx"]:
            print("%s: ERRORS: %d in the CPU step (wrk: non-2xx and socket errors), %d failed "
                  "and %d non-2xx at the fixed rate" % (r["proxy"], r["errors"], f["errors"],
                                                       f["non2xx"]))
        if f.get("idle_closed") or f.get("retried"):
            print("%s: closed %d idle keep-alive connections during the fixed-rate step, %d as a "
                  "request went out" % (r["proxy"], f["idle_closed"] + f["retried"], f["retried"]))
        for l in r["error_log_problems"]:
            print("%s error log: %s" % (r["proxy"], l))
        if (r.get("load_busy_pct") or 0) >= 95:
            print("%s: the load CPU was %.0f%% busy: wrk and the origin set the rate"
                  % (r["proxy"], r["load_busy_pct"]))
    if doc["foreign_cpu"] > 0.05:
        print("note: other processes on this machine used %.0f%% of a CPU during this part "
              "(interleaving spreads it over the instances alike, but their CPU and req/s "
              "figures move with it)" % (100 * doc["foreign_cpu"]))
    if doc["loadgen_overloaded"]:
        print("note: loadgen's backlog overflowed: an instance could not keep up with the rate")
    print()


def print_pool(doc, pinning):
    c = doc["config"]
    print("Atrium bench --pool (issue 12): GET %s via Atrium (workers 1) -> one nginx origin on "
          "many loopback addresses; %s" % (PATH, pinning))
    print("CPU: wrk -t1 -c%d in %ds slices, %ds per instance; fixed rate: loadgen, same slices "
          "(rate: half the group's lowest req/s unless --rate); upstream keepalive %d per member"
          % (c["connections"], c["slice_s"], c["seconds_per_instance"], c["keepalive"]))
    print("new_origin_conns: connections the origin accepted during the instance's wrk slices; "
          "backend_conns: connections to the origin the instance held after both steps")
    print()
    for g in doc["groups"]:
        if "error" in g:
            print("%s: FAILED: %s" % (g["title"], g["error"]))
            print()
        else:
            print_group(g)


# --------------------------------------------------------------------------

def main_pool(args, oport, proxy_cpus, load_cpus, nofile, pinning):
    """Both parts (args.pool_parts) against the origin on oport. (rc, document)."""
    lg = loadgen_path(args)
    if not os.access(lg, os.X_OK):
        log("%s not found: build it with meson (it is built next to atrium)" % lg)
        return 2, None
    if not os.access(args.atrium, os.X_OK):
        log("Atrium binary %s not found or not executable" % args.atrium)
        return 2, None
    addrs = origin_addrs(args)
    problem = check_origin(sorted({addrs[0], addrs[min(1, len(addrs) - 1)], addrs[-1]}), oport)
    if problem:
        log(problem)
        return 2, None
    doc = {"config": {"slice_s": max(1, args.slice), "seconds_per_instance": args.duration,
                      "connections": args.connections, "keepalive": args.upstream_keepalive,
                      "members": args.pool_members, "balance": args.pool_balance,
                      "atrium": args.atrium, "pinning": pinning, "clk_tck": CLK_TCK},
           "groups": []}
    for part, fn, title in (("dns", part_dns, "1. DNS pool"), ("size", part_size, "2. sizes"),
                            ("defaults", part_defaults, "3. defaults")):
        if part not in args.pool_parts:
            continue
        try:
            doc["groups"].append(fn(args, oport, proxy_cpus, load_cpus, nofile, lg))
        except (RuntimeError, OSError, ValueError, KeyError) as e:
            log("%s: FAILED: %s: %s" % (title, type(e).__name__, e))
            doc["groups"].append({"title": title, "error": "%s: %s" % (type(e).__name__, e)})
    ok = [g for g in doc["groups"] if "error" not in g]
    return (0 if ok else 2), doc


def origin_conns(args):
    """worker_connections for the origin: its listening sockets (nginx gives each a
    connection) and every instance's pooled connections (up to one per member and
    client connection for the large pools), with room to spare."""
    n = len(origin_addrs(args)) + 1024
    if "dns" in args.pool_parts:
        n += 4 * (DNS_SIZE + args.connections)
    if "size" in args.pool_parts:
        n += len(args.pool_balance) * (2 * args.pool_members + 2 * args.connections)
    return max(4096, n)


def origin_addrs(args):
    """The addresses the origin listens on for args.pool_parts."""
    addrs = ["127.0.0.1"]
    if "dns" in args.pool_parts:
        addrs += DNS_ADDRS
    if "size" in args.pool_parts:
        addrs += big_addrs(args.pool_members)
    return addrs


def emit(doc, args, pinning):
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print_pool(doc, pinning)
