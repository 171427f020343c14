"""DNS pools (`server NAME:PORT resolve`) against a real DNS server: Debian's
dnsmasq, answering from a hosts directory it re-reads when a file changes,
with a 1 s TTL. Origins listen on 127.0.0.2, .3 and .4 on one port, so each
address of the name is a different origin. The members follow the answers
under load without a failed request; a dead DNS server keeps the last good
answer; a name that never resolved leaves its server down while the rest of
the config works, and `-t` warns about it."""

import os
import re
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import ATRIUM_BIN, ORIGIN_PY, PYTHON, free_port, get, run_atrium, wait_until

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


class Dns:
    """dnsmasq on 127.0.0.1:port answering from hostsdir/ (and nothing else)."""

    def __init__(self, base):
        self.dir = base / "hosts.d"
        self.dir.mkdir(exist_ok=True)
        self.port = free_port()
        self.proc = None
        self.log = base / "dnsmasq.log"

    def set(self, name, *addrs):
        # a new file, then a rename: dnsmasq never reads a half-written one
        tmp = self.dir / (".%s.tmp" % name)
        tmp.write_text("".join("%s %s\n" % (a, name) for a in addrs))
        os.rename(tmp, self.dir / name)

    def start(self):
        self.proc = subprocess.Popen(
            [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
             "--no-hosts", "--hostsdir=%s" % self.dir, "--local-ttl=1", "--port=%d" % self.port,
             "--listen-address=127.0.0.1", "--bind-interfaces", "--user=root",
             "--pid-file=", "--log-facility=%s" % self.log, "--log-queries"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline and self.proc.poll() is None:
            if "started" in (self.log.read_text() if self.log.exists() else ""):
                return
            time.sleep(0.05)
        raise AssertionError("dnsmasq did not start:\n" +
                             (self.log.read_text() if self.log.exists() else ""))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


@pytest.fixture
def dns(tmp_path):
    d = Dns(tmp_path)
    yield d
    d.stop()


@pytest.fixture
def origins(tmp_path):
    """Origins named A, B, C on 127.0.0.2, .3, .4, all on one port."""
    port = free_port()
    procs = []
    for name, host in (("A", "127.0.0.2"), ("B", "127.0.0.3"), ("C", "127.0.0.4")):
        log = open(tmp_path / ("origin-%s.log" % name), "wb")
        p = subprocess.Popen([PYTHON, str(ORIGIN_PY), "--port", str(port), "--name", name,
                              "--host", host], stdout=log, stderr=subprocess.STDOUT)
        procs.append(p)
    deadline = time.time() + 10
    for host in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        while True:
            try:
                socket.create_connection((host, port), 0.5).close()
                break
            except OSError:
                assert time.time() < deadline, "origin on %s did not start" % host
                time.sleep(0.05)
    yield port
    for p in procs:
        p.terminate()
        p.wait(5)


def conf(dns_port, port, extra_servers="", main=""):
    return """
resolver 127.0.0.1:%d;
resolve_ttl_min 1s;
%s
upstream app {
    server app.test:%d resolve;
    %s
}
host * {
    route /atrium-status { status; }
    route / { proxy app; }
}
""" % (dns_port, main, port, extra_servers)


def names(port, n=12):
    return {get(port, "/name").body.decode() for _ in range(n)}


def wrk(port, seconds, conns=32):
    return subprocess.Popen(["wrk", "-t2", "-c%d" % conns, "-d%ds" % seconds, "--timeout", "5s",
                             "http://127.0.0.1:%d/name" % port],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_members_follow_the_answers_under_load_without_a_failed_request(atrium, dns, origins):
    dns.set("app.test", "127.0.0.2", "127.0.0.3")
    dns.start()
    a = atrium(conf(dns.port, origins, main="workers 2;"))
    assert names(a.port) == {"A", "B"}
    # the members are named by the server line and their address
    s = get(a.port, "/atrium-status").body.decode()
    assert 'server="app.test:%d/127.0.0.2:%d"' % (origins, origins) in s, s
    load = wrk(a.port, 9)
    time.sleep(1.5)
    dns.set("app.test", "127.0.0.3", "127.0.0.4")      # A leaves, C comes
    assert wait_until(lambda: "C" in names(a.port, 8) and "A" not in names(a.port, 8), 6), \
        a.error_log[-2000:]
    time.sleep(1.5)
    dns.set("app.test", "127.0.0.4")                    # B leaves too
    assert wait_until(lambda: names(a.port, 8) == {"C"}, 6), a.error_log[-2000:]
    out, _ = load.communicate(timeout=60)
    m = re.search(r"(\d+) requests in", out)
    assert m and int(m.group(1)) > 100, out
    assert "Non-2xx or 3xx responses" not in out, out + a.error_log[-3000:]
    assert "Socket errors" not in out, out + a.error_log[-3000:]
    # the members that left were drained: no connection to them stays open,
    # while the member that stays keeps its pooled ones
    def established(host):
        out = subprocess.run(["ss", "-Htn", "state", "established", "dst", "%s:%d" % (host, origins)],
                             capture_output=True, text=True).stdout
        return len(out.splitlines())
    assert wait_until(lambda: established("127.0.0.2") == 0 and established("127.0.0.3") == 0,
                      5), (established("127.0.0.2"), established("127.0.0.3"))
    assert established("127.0.0.4") > 0

def test_a_dead_dns_server_keeps_the_last_good_answer(atrium, dns, origins):
    dns.set("app.test", "127.0.0.2", "127.0.0.3")
    dns.start()
    a = atrium(conf(dns.port, origins))
    assert names(a.port) == {"A", "B"}
    dns.stop()
    assert wait_until(lambda: "keeping its 2 address(es)" in a.error_log, 10), a.error_log[-2000:]
    time.sleep(2.5)  # several failed lookups
    assert names(a.port) == {"A", "B"}
    assert a.error_log.count("keeping its 2 address(es)") == 1  # logged once per change
    s = get(a.port, "/atrium-status").body.decode()
    assert re.search(r"^atrium_dns_names_failing 1$", s, re.M), s
    assert int(re.search(r"^atrium_dns_failures_total (\d+)$", s, re.M).group(1)) >= 2
    # a reload while the DNS is down keeps the answer (members carried by name)
    assert a.reload()
    assert names(a.port) == {"A", "B"}
    # the DNS comes back with another answer: the members follow
    dns.set("app.test", "127.0.0.4")
    dns.start()
    assert wait_until(lambda: "answers again" in a.error_log, 35), a.error_log[-2000:]
    assert wait_until(lambda: names(a.port, 6) == {"C"}, 5)


def test_a_name_that_never_resolves_leaves_its_server_down(atrium, dns, origins, origin, tmp_path):
    dns.set("other.test", "127.0.0.9")
    dns.start()
    static = origin("S")
    text = conf(dns.port, origins, extra_servers="server %s;" % static.addr)
    # -t warns and succeeds
    p = tmp_path / "t.conf"
    p.write_text("listen 127.0.0.1:%d;\n" % free_port() + text)
    r = run_atrium(["-t", "-c", str(p)])
    assert r.returncode == 0, r.stderr
    assert re.search(r"t\.conf:\d+:\d+: warning: server app\.test:%d: cannot resolve 'app\.test'"
                     % origins, r.stderr), r.stderr
    a = atrium(text)
    assert names(a.port) == {"S"}
    assert "its server stays down until it resolves" in a.error_log
    s = get(a.port, "/atrium-status").body.decode()
    assert 'server="app.test:%d (unresolved)"' % origins in s, s
    # the name appears: it becomes a member
    dns.set("app.test", "127.0.0.2")
    assert wait_until(lambda: names(a.port, 8) == {"S", "A"}, 35), a.error_log[-2000:]
    assert "answers again" in a.error_log


def test_an_upstream_whose_only_name_never_resolved_answers_503(atrium, dns, origins):
    dns.start()
    a = atrium(conf(dns.port, origins))
    r = get(a.port, "/name")
    assert r.status == 503, r


def test_resolver_directive_errors(tmp_path):
    p = tmp_path / "bad.conf"
    p.write_text("listen 127.0.0.1:1;\nresolver 127.0.0.1:53 nope;\n"
                 "host * { route / { return 200; } }\n")
    r = run_atrium(["-t", "-c", str(p)])
    assert r.returncode != 0
    assert "bad.conf:2:23: invalid resolver address 'nope'" in r.stderr, r.stderr


def test_a_large_answer_is_capped_at_resolve_max(atrium, dns, origins):
    """60 addresses (an answer of about 1 KB); resolve_max 50 keeps the first 50
    in address order."""
    dns.set("app.test", *["127.0.1.%d" % i for i in range(1, 61)])
    dns.start()
    a = atrium(conf(dns.port, origins, main="resolve_max 50;"))
    s = get(a.port, "/atrium-status").body.decode()
    members = set(re.findall(r'server="app\.test:%d/(127\.0\.1\.\d+):%d"' % (origins, origins), s))
    assert len(members) == 50, sorted(members)
    assert "127.0.1.1" in members and "127.0.1.60" not in members


def weight_ratio(port, member):
    """atrium_upstream_weight_ratio of a member (its slow_start share)."""
    for line in get(port, "/atrium-status").body.decode().splitlines():
        if line.startswith("atrium_upstream_weight_ratio{") and 'server="%s"' % member in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_member_that_appears_ramps_up_with_slow_start(atrium, dns, origins):
    dns.set("app.test", "127.0.0.2")
    dns.start()
    a = atrium(conf(dns.port, origins).replace(" resolve;", " resolve slow_start=1m;"))
    assert wait_until(lambda: names(a.port, 4) == {"A"}, 6)
    member_a = "app.test:%d/127.0.0.2:%d" % (origins, origins)
    member_b = "app.test:%d/127.0.0.3:%d" % (origins, origins)
    # the first answer is the pool's first members: nothing to ramp up
    assert weight_ratio(a.port, member_a) == 1
    dns.set("app.test", "127.0.0.2", "127.0.0.3")      # B joins the running pool
    assert wait_until(lambda: weight_ratio(a.port, member_b) is not None, 6), a.error_log[-2000:]
    assert weight_ratio(a.port, member_b) < 1
    assert weight_ratio(a.port, member_a) == 1
    got = [get(a.port, "/name").body for _ in range(40)]
    assert got.count(b"B") <= 10, got  # a small share while it ramps, not half


def test_one_address_of_a_dns_line_can_be_drained_and_the_line_as_a_whole(atrium, dns, origins,
                                                                         tmp_path):
    """atrium ctl: a `resolve` line's addresses are drained one by one (as `show servers`
    names them) or all at once (by the line); a new answer keeps what the operator said."""
    import tempfile
    sockdir = tempfile.mkdtemp(prefix="atr-dns-", dir="/tmp")
    sock = os.path.join(sockdir, "c.sock")
    dns.set("app.test", "127.0.0.2", "127.0.0.3")
    dns.start()
    a = atrium(conf(dns.port, origins, main="control %s;" % sock))

    def ctl(*words):
        r = subprocess.run([ATRIUM_BIN, "-S", sock, "ctl"] + list(words), capture_output=True,
                           text=True, timeout=20)
        return r.returncode, r.stdout + r.stderr

    line, b = "app.test:%d" % origins, "app.test:%d/127.0.0.3:%d" % (origins, origins)
    assert ctl("drain", "app", b) == (0, "ok: upstream app: server %s draining\n" % b)
    assert names(a.port) == {"A"}
    rows = ctl("show", "servers", "app")[1]
    assert re.search(r"^app %s draining .* drained$" % re.escape(b), rows, re.M), rows
    dns.set("app.test", "127.0.0.2", "127.0.0.3", "127.0.0.4")  # C joins; B stays drained
    assert wait_until(lambda: names(a.port, 8) == {"A", "C"}, 6), a.error_log[-2000:]
    rc, out = ctl("set", "weight", "app", b, "3")                # weights are per line
    assert rc == 1 and "is one address of %s: this command takes the line" % line in out, out
    assert ctl("drain", "app", line)[0] == 0                     # every address
    rc, out = ctl("enable", "app", b)
    assert rc == 1 and "every address of %s is draining" % line in out, out
    assert ctl("enable", "app", line)[0] == 0
    assert ctl("enable", "app", b)[0] == 0
    assert wait_until(lambda: names(a.port, 12) == {"A", "B", "C"}, 5)
    assert ctl("show", "changes")[1] == "upstream server change\n"
    shutil.rmtree(sockdir, ignore_errors=True)


def test_a_name_a_reload_adds_waits_for_its_first_answer_instead_of_503(atrium, dns, origins,
                                                                       tmp_path):
    """A reload that adds a `resolve` name serves it from its first answer: the
    requests that come before it wait in the queue (as for a full server) rather
    than getting 503 for the time DNS takes. Here the new resolver starts 0.3 s
    after the reload (its port swallowed the first query), so the first lookup's
    retry is what answers."""
    dns.set("app.test", "127.0.0.2")
    dns.start()
    (tmp_path / "late").mkdir()
    late = Dns(tmp_path / "late")
    late.set("late.test", "127.0.0.4")
    a = atrium(conf(dns.port, origins))
    assert names(a.port, 4) == {"A"}
    text = a.conf_text.replace("resolver 127.0.0.1:%d;" % dns.port,
                               "resolver 127.0.0.1:%d;" % late.port)
    text = text.replace("upstream app {", "upstream late { server late.test:%d resolve; }\n"
                        "upstream app {" % origins)
    text = text.replace("route / { proxy app; }", "route /late/ { proxy late /; }\n"
                        "    route / { proxy app; }")
    # the new resolver's port takes queries and says nothing: DNS that is slow to answer
    hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hole.bind(("127.0.0.1", late.port))
    assert a.reload(text)
    got = {}

    def ask():
        t0 = time.time()
        r = get(a.port, "/late/name", timeout=10)
        got["status"], got["body"], got["s"] = r.status, r.body, time.time() - t0
    th = threading.Thread(target=ask)
    th.start()
    try:
        time.sleep(0.3)
        hole.close()
        late.start()  # c-ares's second try (after 1 s) reaches it
        th.join(15)
        assert got.get("status") == 200 and got["body"] == b"C", (got, a.error_log[-2000:])
        assert got["s"] > 0.25  # it did wait for the answer
        assert names(a.port, 4) == {"A"}  # app kept its members (the old answer, served stale)
    finally:
        hole.close()
        late.stop()
