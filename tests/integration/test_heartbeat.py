"""Heartbeats (issue 12, docs/heartbeat.md): Apache's format in both directions.

Over loopback (unicast, the machine's own namespace): beats from this test
(Apache's exact datagrams, with port= to tell two origins on 127.0.0.1 apart)
drive `balance heartbeat`; with `heartbeat_key`, forged, replayed, malformed and
oversized beats change nothing and are each counted; a sender that stops
counting after 10 s; mod_heartmonitor's storage file; our own beats (ready and
busy from the workers, signed with the key); tools/hbagent reporting a real
php-fpm pool.

Inside network namespaces this test creates (a bridge namespace and one veth
per node, a 224.0.0.0/4 route in each; never the machine's interfaces): Debian's
apache2 with mod_heartbeat as senders with different thread counts driving
Atrium's choice over multicast, Apache's mod_heartmonitor reading Atrium's
beats, and an Apache that stops beating.
"""

import collections
import hashlib
import hmac
import http.server
import importlib.machinery
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from test_balance_methods import Slow  # a server that answers in 50 ms
from conftest import (ATRIUM_BIN, STARTED_RE, Atrium, Background, free_port, get, proxy_conf,
                      run_atrium, wait_until)
from gateways import php_fpm  # noqa: F401  (pytest fixture)

HERE = Path(__file__).resolve().parent
HBAGENT = HERE.parent.parent / "tools" / "hbagent"
APACHE = "/usr/sbin/apache2"
APACHE_MODULES = "/usr/lib/apache2/modules"
PYTHON = "/usr/bin/python3"

_loader = importlib.machinery.SourceFileLoader("hbagent", str(HBAGENT))
_spec = importlib.util.spec_from_loader("hbagent", _loader)
hbagent = importlib.util.module_from_spec(_spec)
_loader.exec_module(hbagent)

KEY = b"a-shared-secret-of-32-bytes-long"


# ---------------------------------------------------------------- helpers

def free_udp_port():
    while True:
        p = free_port()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
        finally:
            s.close()


class Beats:
    """Datagrams to a heartbeat_listen address, from 127.0.0.1."""

    def __init__(self, port):
        self.dest = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(self, msg):
        self.sock.sendto(msg if isinstance(msg, bytes) else msg.encode(), self.dest)

    def close(self):
        self.sock.close()


def metrics(port, path="/status"):
    """The status page as {'name{labels}': value}."""
    r = get(port, path)
    assert r.status == 200, r
    out = {}
    for line in r.body.decode().splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = int(float(v))
    return out


def server_metric(name, server):
    return '%s{upstream="app",protocol="http",server="%s"}' % (name, server)


def beats_total(result):
    return 'atrium_heartbeat_beats_total{result="%s"}' % result


def names(port, n):
    return collections.Counter(get(port, "/name").body.decode() for _ in range(n))


def hb_conf(origins, main_extra):
    return proxy_conf(origins, balance="heartbeat", main_extra=main_extra,
                      hosts_extra="    route /status { status; }")


class Pair:
    """Origins A and B behind `balance heartbeat`, Atrium's monitor on a loopback
    port, and a socket to send beats from 127.0.0.1."""

    def __init__(self, atrium, origin, extra):
        self.a, self.b = origin("A"), origin("B")
        self.hbp = free_udp_port()
        self.at = atrium(hb_conf([self.a, self.b], "heartbeat_listen 127.0.0.1:%d; %s"
                                 % (self.hbp, extra)))
        self.beats = Beats(self.hbp)

    def metric(self, name, o):
        return server_metric(name, "127.0.0.1:%d" % o.port)


@pytest.fixture
def pair(atrium, origin):
    made = []

    def factory(extra=""):
        made.append(Pair(atrium, origin, extra))
        return made[-1]

    yield factory
    for p in made:
        p.beats.close()


# ---------------------------------------------------------------- over loopback

def test_ready_counts_choose_the_server(pair):
    p = pair()
    a, b, at, beats = p.a, p.b, p.at, p.beats
    ready_a = p.metric("atrium_upstream_heartbeat_ready", a)
    ready_b = p.metric("atrium_upstream_heartbeat_ready", b)
    # no beat yet: the configured weights, both serve
    assert set(names(at.port, 30)) == {"A", "B"}
    beats.send("v=1&ready=0&busy=5&port=%d" % a.port)
    beats.send("v=1&ready=7&busy=0&port=%d" % b.port)
    assert wait_until(lambda: metrics(at.port).get(ready_b) == 7, 5)
    assert names(at.port, 30) == {"B": 30}              # ready=0 takes nothing
    beats.send("v=1&ready=3&busy=1&port=%d" % a.port)
    beats.send("v=1&ready=0&busy=9&port=%d" % b.port)
    assert wait_until(lambda: metrics(at.port).get(ready_a) == 3, 5)
    assert names(at.port, 30) == {"A": 30}
    # ready-weighted: 1 against 99
    beats.send("v=1&ready=1&busy=0&port=%d" % a.port)
    beats.send("v=1&ready=99&busy=0&port=%d" % b.port)
    assert wait_until(lambda: metrics(at.port).get(ready_b) == 99, 5)
    got = names(at.port, 60)
    assert got["B"] > got["A"], got
    # the state survives a reload (by name), and the monitor keeps its table
    assert at.reload()
    m = metrics(at.port)
    assert m[ready_b] == 99 and m[ready_a] == 1, m
    assert at.error_log.count("sender 127.0.0.1 port %d counts" % b.port) == 1
    assert m[beats_total("accepted")] == 6 and m["atrium_heartbeat_senders"] == 2, m


def test_a_slow_server_gets_a_smaller_share_of_the_same_ready(atrium, origin):
    fast = origin("fast")
    slow = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    sport = slow.server_address[1]
    hbp = free_udp_port()
    beats = Beats(hbp)
    try:
        at = atrium(hb_conf([sport, fast], "heartbeat_listen 127.0.0.1:%d;" % hbp))
        for port in (sport, fast.port):   # the same idle capacity on both
            beats.send("v=1&ready=10&busy=0&port=%d" % port)
        fresh = server_metric("atrium_upstream_heartbeat_fresh", "127.0.0.1:%d" % sport)
        assert wait_until(lambda: metrics(at.port).get(fresh) == 1, 5)
        got = names(at.port, 60)
        assert got["fast"] > 3 * got["slow"], got
        assert got["slow"] >= 1, got      # it was tried and measured
    finally:
        beats.close()
        slow.shutdown()
        slow.server_close()


def test_a_beat_with_port_speaks_for_its_server(pair):
    p = pair()
    a, at, beats = p.a, p.at, p.beats
    ra = p.metric("atrium_upstream_heartbeat_ready", a)
    rb = p.metric("atrium_upstream_heartbeat_ready", p.b)
    state = lambda: (lambda m: (m.get(ra), m.get(rb)))(metrics(at.port))  # noqa: E731
    beats.send("v=1&ready=5&busy=0")                  # about every server at 127.0.0.1
    assert wait_until(lambda: state() == (5, 5), 5), state()
    beats.send("v=1&ready=9&busy=0&port=%d" % a.port)   # about A only
    assert wait_until(lambda: state() == (9, 5), 5), state()
    beats.send("v=1&ready=7&busy=0")                  # now about B only
    assert wait_until(lambda: metrics(at.port).get(beats_total("accepted")) == 3, 5)
    assert state() == (9, 7)


def test_a_reload_moves_the_monitor_or_keeps_it(pair):
    p = pair()
    at, accepted = p.at, beats_total("accepted")
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    taken = busy.getsockname()[1]
    try:
        # an address that cannot be bound: the reload fails, the running monitor hears on
        conf = at.conf_text
        assert at.reload(conf.replace(":%d;" % p.hbp, ":%d;" % taken), expect_ok=False)
        assert "heartbeat_listen 127.0.0.1:%d: cannot listen: Address already in use" % taken \
            in at.error_log
        p.beats.send("v=1&ready=4&busy=0")
        assert wait_until(lambda: metrics(at.port).get(accepted) == 1, 5)
    finally:
        busy.close()
    # a new address: the old one is let go
    moved = free_udp_port()
    assert at.reload(conf.replace(":%d;" % p.hbp, ":%d;" % moved))
    assert "heartbeat: listening on 127.0.0.1:%d" % moved in at.error_log
    old = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    old.bind(("127.0.0.1", p.hbp))                    # let go: free to bind again
    old.close()
    p.beats.dest = ("127.0.0.1", moved)
    p.beats.send("v=1&ready=5&busy=0")
    assert wait_until(lambda: metrics(at.port).get(accepted) == 2, 5)
    ready = p.metric("atrium_upstream_heartbeat_ready", p.a)
    assert metrics(at.port)[ready] == 5


def signed(msg, key=KEY, ts_ms=None):
    ts = ts_ms if ts_ms is not None else int(time.time() * 1000)
    body = "%s&ts=%d" % (msg, ts)
    return (body + "&mac=" + hmac.new(key, body.encode(), hashlib.sha256).hexdigest()).encode()


def test_forged_and_malformed_beats_change_nothing(pair, tmp_path):
    (tmp_path / "hb.key").write_bytes(KEY + b"\n")
    p = pair("heartbeat_key %s;" % (tmp_path / "hb.key"))
    a, b, at, beats = p.a, p.b, p.at, p.beats
    ready_a = p.metric("atrium_upstream_heartbeat_ready", a)
    ready_b = p.metric("atrium_upstream_heartbeat_ready", b)
    # a stock (unsigned) beat is refused with a key set
    beats.send("v=1&ready=50&busy=0&port=%d" % b.port)
    t0 = int(time.time() * 1000)
    old_b = signed("v=1&ready=50&busy=0&port=%d" % b.port, ts_ms=t0)
    beats.send(old_b)
    beats.send(signed("v=1&ready=0&busy=3&port=%d" % b.port, ts_ms=t0 + 1))
    beats.send(signed("v=1&ready=9&busy=0&port=%d" % a.port, ts_ms=t0))
    assert wait_until(lambda: metrics(at.port).get(beats_total("accepted")) == 3, 5)
    m = metrics(at.port)
    assert m[ready_a] == 9 and m[ready_b] == 0 and m[beats_total("forged")] == 1, m
    assert names(at.port, 20) == {"A": 20}
    # what must change nothing
    good = signed("v=1&ready=0&busy=0&port=%d" % b.port).decode()
    forged = [
        signed("v=1&ready=90&busy=0&port=%d" % b.port, key=b"x" * 32),     # another key
        signed("v=1&ready=90&busy=0&port=%d" % b.port, ts_ms=t0 - 60000),  # stale ts
        good.replace("ready=0", "ready=9").encode(),                        # tampered
        good.split("&mac=")[0].encode(),                                    # mac cut off
    ]
    for f in forged:
        beats.send(f)
    beats.send(old_b)                                             # replayed, valid mac
    beats.send(signed("v=1&ready=90&port=%d" % b.port))           # malformed: no busy
    beats.send(b"v=1&ready=90&busy=0&port=%d&pad=" % b.port + b"x" * 1200)  # oversized
    want = {"forged": 1 + len(forged), "replayed": 1, "malformed": 1, "too_long": 1,
            "accepted": 3}
    assert wait_until(lambda: all(metrics(at.port).get(beats_total(k)) == v
                                  for k, v in want.items()), 5), metrics(at.port)
    m = metrics(at.port)
    assert m[ready_a] == 9 and m[ready_b] == 0, m
    assert names(at.port, 20) == {"A": 20}
    assert "dropped" in at.error_log


def test_a_silent_sender_stops_counting_and_the_storage_file(pair):
    p = pair("heartbeat_storage {{dir}}/hb.dat;")
    a, b, at, beats = p.a, p.b, p.at, p.beats
    stop = threading.Event()

    def beat_a():  # A keeps beating, as a live server does
        while not stop.is_set():
            beats.send("v=1&ready=1&busy=0&port=%d" % a.port)
            stop.wait(0.5)

    t = threading.Thread(target=beat_a, daemon=True)
    t.start()
    fresh_b = p.metric("atrium_upstream_heartbeat_fresh", b)
    storage = at.dir / "hb.dat"
    try:
        beats.send("v=1&ready=1000&busy=2&port=%d" % b.port)     # B beats once, then stops
        assert wait_until(lambda: metrics(at.port).get(fresh_b) == 1, 5)
        got = names(at.port, 20)
        assert got["B"] >= 15, got
        line_b = re.compile(r"^127\.0\.0\.1 &ready=1000&busy=2&lastseen=(\d+)&port=%d$" % b.port,
                            re.M)
        line_a = re.compile(r"^127\.0\.0\.1 &ready=1&busy=0&lastseen=[01]&port=%d$" % a.port, re.M)
        assert wait_until(lambda: storage.exists() and line_b.search(storage.read_text())
                          and line_a.search(storage.read_text()), 5), storage.read_text()
        assert oct(storage.stat().st_mode & 0o777) == "0o444"   # as mod_heartmonitor's
        silent = "sender 127.0.0.1 port %d silent for 10s" % b.port
        assert wait_until(lambda: silent in at.error_log, 20), at.error_log[-2000:]
        assert metrics(at.port)[fresh_b] == 0
        assert names(at.port, 20) == {"A": 20}
        # still in the file (mod_heartmonitor keeps a server 30 s), now 10 s old or more
        assert wait_until(lambda: (lambda m: m and int(m.group(1)) >= 10)(
            line_b.search(storage.read_text())), 3), storage.read_text()
        # a beat brings it back, logged once more
        beats.send("v=1&ready=1000&busy=0&port=%d" % b.port)
        assert wait_until(lambda: metrics(at.port).get(fresh_b) == 1, 5)
        assert at.error_log.count("sender 127.0.0.1 port %d counts" % b.port) == 2
        assert at.error_log.count(silent) == 1
    finally:
        stop.set()
        t.join(5)


def recv_beats(sock, pred, timeout=10.0):
    """Beats from sock until pred(text) holds; returns that beat (or None)."""
    deadline = time.monotonic() + timeout
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            data, _ = sock.recvfrom(2048)
        except socket.timeout:
            continue
        if pred(data.decode()):
            return data.decode()
    return None


def test_our_beats_say_what_the_workers_can_take(atrium, tmp_path):
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    dest = rx.getsockname()[1]
    conf = ("workers 2; max_connections 50; heartbeat_send 127.0.0.1:%d; "
            "heartbeat_interval 200ms;\nhost * { route / { return 200; } }" % dest)
    at = atrium(conf)
    held = []
    try:
        shape = re.compile(r"^v=1&ready=(\d+)&busy=(\d+)$")    # mod_heartbeat's, exactly
        assert recv_beats(rx, lambda m: m == "v=1&ready=100&busy=0"), "no idle beat"
        # two requests in progress (heads half sent), on two connections
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", at.port), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            held.append(s)
        assert recv_beats(rx, lambda m: m == "v=1&ready=98&busy=2"), "no busy beat"
        for s in held:
            s.close()
        held.clear()
        assert recv_beats(rx, lambda m: m == "v=1&ready=100&busy=0"), "not idle again"
        # signed once heartbeat_key is set, verifiable with the key
        (tmp_path / "hb.key").write_bytes(KEY)
        assert at.reload(conf.replace("heartbeat_interval", "heartbeat_key %s; heartbeat_interval"
                                      % (tmp_path / "hb.key")))
        beat = recv_beats(rx, lambda m: "&mac=" in m)
        assert beat, "no signed beat"
        body, mac = beat.split("&mac=")
        assert re.match(r"^v=1&ready=100&busy=0&ts=\d{13}$", body), beat
        assert mac == hmac.new(KEY, body.encode(), hashlib.sha256).hexdigest()
        assert abs(int(body.rsplit("=", 1)[1]) - time.time() * 1000) < 30000
        assert shape.match(body.split("&ts=")[0])
        # a graceful stop says at once that there is no room any more
        assert at.stop() == 0
        assert recv_beats(rx, lambda m: m.startswith("v=1&ready=0&busy=")), "no drain beat"
    finally:
        for s in held:
            s.close()
        rx.close()


def test_heartbeat_directive_errors(tmp_path):
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    c = tmp_path / "c.conf"
    try:
        c.write_text("listen 127.0.0.1:%d;\nheartbeat_listen 127.0.0.1:%d;\n"
                     "host * { route / { return 200; } }\n" % (free_port(), port))
        r = run_atrium(["-t", "-c", str(c)])
        assert r.returncode != 0
        assert r.stderr.startswith("%s:2:18: heartbeat_listen 127.0.0.1:%d: cannot listen: "
                                   "Address already in use" % (c, port)), r.stderr
    finally:
        busy.close()
    c.write_text("listen 127.0.0.1:%d;\nheartbeat_key %s/none.key;\n"
                 "host * { route / { return 200; } }\n" % (free_port(), tmp_path))
    r = run_atrium(["-t", "-c", str(c)])
    assert r.returncode != 0
    assert r.stderr.startswith("%s:2:15: heartbeat_key '%s/none.key': No such file or directory"
                               % (c, tmp_path)), r.stderr
    # -T writes what -c reads back (it binds heartbeat_listen as a start would: unicast
    # here, multicast groups are joined only inside the namespaces below)
    (tmp_path / "hb.key").write_bytes(KEY)
    hbp = free_udp_port()
    c.write_text("listen 127.0.0.1:%d;\nheartbeat_listen 127.0.0.1:%d;\n"
                 "heartbeat_send 239.0.0.1:27999; heartbeat_interval 500ms;\n"
                 "heartbeat_key %s/hb.key; heartbeat_storage %s/hb.dat; heartbeat_max_servers 64;\n"
                 "upstream app { balance heartbeat; server 10.0.0.1:80; }\n"
                 "host * { route / { proxy app; } }\n" % (free_port(), hbp, tmp_path, tmp_path))
    r = run_atrium(["-T", "-c", str(c)])
    assert r.returncode == 0, r.stderr
    for line in ("heartbeat_listen 127.0.0.1:%d;" % hbp, "heartbeat_send 239.0.0.1:27999;",
                 "heartbeat_interval 500ms;", "heartbeat_key %s/hb.key;" % tmp_path,
                 "heartbeat_storage %s/hb.dat;" % tmp_path, "heartbeat_max_servers 64;",
                 "balance heartbeat;"):
        assert line in r.stdout, r.stdout
    d = tmp_path / "dump.conf"
    d.write_text(r.stdout)
    r2 = run_atrium(["-T", "-c", str(d)])
    assert r2.returncode == 0 and r2.stdout.split("\n", 1)[1] == r.stdout.split("\n", 1)[1]


# ---------------------------------------------------------------- tools/hbagent

def test_hbagent_reports_a_php_fpm_pool(atrium, php_fpm, tmp_path):
    fpm = php_fpm(max_children=4, extra="pm.status_path = /fpm-status")
    hbp = free_udp_port()
    key = tmp_path / "hb.key"
    key.write_bytes(KEY + b"\n")
    at = atrium("\n".join([
        "heartbeat_listen 127.0.0.1:%d; heartbeat_key %s;" % (hbp, key),
        "upstream php { balance heartbeat; protocol fastcgi; server %s; }" % fpm.addr,
        "host * { route /status { status; }",
        "         route /php/ { proxy php; root %s; } }" % (HERE / "apps"),
    ]))
    ready = '%s{upstream="php",protocol="fastcgi",server="%s"}' % (
        "atrium_upstream_heartbeat_ready", fpm.addr)

    def agent(*extra):
        return subprocess.run([PYTHON, str(HBAGENT), "--fpm", fpm.addr, "--status-path",
                               "/fpm-status", "--send", "127.0.0.1:%d" % hbp, "--port",
                               str(fpm.port), "--key", str(key), "--once", "--print"] + list(extra),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=10)

    r = agent()
    assert r.returncode == 0, r.stderr
    assert re.match(r"^v=1&ready=4&busy=0&port=%d&ts=\d+&mac=[0-9a-f]{64}$" % fpm.port,
                    r.stdout.strip()), r.stdout
    assert wait_until(lambda: metrics(at.port).get(ready) == 4, 5), metrics(at.port)
    held = [Background(get, at.port, "/php/hold.php?gate=g1&i=%d" % i, timeout=20.0)
            for i in range(2)]
    try:
        assert wait_until(lambda: fpm.counter("cur") == 2, 10)
        r = agent()
        assert r.stdout.startswith("v=1&ready=2&busy=2&"), r.stdout + r.stderr
        assert wait_until(lambda: metrics(at.port).get(ready) == 2, 5), metrics(at.port)
        r = agent("--max-children", "10")           # pm dynamic: room up to max_children
        assert r.stdout.startswith("v=1&ready=8&busy=2&"), r.stdout + r.stderr
    finally:
        fpm.open_gate("g1")
        for h in held:
            assert h.result(20).status == 200
    m = metrics(at.port)
    assert m[beats_total("accepted")] == 3 and m[beats_total("forged")] == 0, m
    # a pool that does not answer the status path: no beat, a reason, exit 1
    r = subprocess.run([PYTHON, str(HBAGENT), "--fpm", fpm.addr, "--status-path", "/nope",
                        "--send", "127.0.0.1:%d" % hbp, "--once"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=10)
    assert r.returncode == 1 and "404" in r.stderr, r.stderr
    assert metrics(at.port)[beats_total("accepted")] == 3


# ---------------------------------------------------------------- namespaces, real Apache

def ns_run(ns, *cmd, check=True, timeout=20):
    return subprocess.run(["ip", "netns", "exec", ns] + list(cmd), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout, check=check)


class Lab:
    """A bridge namespace and one namespace per node on 10.77.0.0/24, each with
    a veth to the bridge and a 224.0.0.0/4 route. Everything is deleted by
    close(), whatever happened."""

    def __init__(self, nodes):
        tag = "atrhb%d" % os.getpid()
        self.br = tag + "-br"
        self.ns = {n: "%s-%s" % (tag, n) for n in nodes}
        self.ip = {n: "10.77.0.%d" % (i + 1) for i, n in enumerate(nodes)}
        self.created = []
        self.apaches = []

    def sh(self, *cmd):
        subprocess.run(list(cmd), check=True, timeout=20, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)

    def up(self):
        self.sh("ip", "netns", "add", self.br)
        self.created.append(self.br)
        self.sh("ip", "-n", self.br, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        self.sh("ip", "-n", self.br, "link", "set", "br0", "up")
        for i, (node, ns) in enumerate(self.ns.items()):
            self.sh("ip", "netns", "add", ns)
            self.created.append(ns)
            self.sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name",
                    "v%d" % i, "netns", self.br)
            self.sh("ip", "-n", self.br, "link", "set", "v%d" % i, "master", "br0", "up")
            self.sh("ip", "-n", ns, "addr", "add", self.ip[node] + "/24", "dev", "eth0")
            self.sh("ip", "-n", ns, "link", "set", "eth0", "up")
            self.sh("ip", "-n", ns, "link", "set", "lo", "up")
            self.sh("ip", "-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
        return self

    def close(self):
        for a in list(self.apaches):
            a.stop()
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], timeout=20)


class Apache:
    """Debian's apache2 in a namespace, with its own config and files."""

    def __init__(self, lab, node, name, body):
        self.lab, self.node, self.name = lab, node, name
        self.dir = Path(tempfile.mkdtemp(prefix="atr-hb-apache-"))
        os.chmod(self.dir, 0o755)                     # the children run as www-data
        (self.dir / "htdocs").mkdir(mode=0o755)
        (self.dir / "run").mkdir()
        os.chmod(self.dir / "run", 0o777)             # mod_heartmonitor writes there as www-data
        (self.dir / "htdocs" / "name").write_text(name)
        self.conf = self.dir / "httpd.conf"
        self.conf.write_text("\n".join([
            "ServerRoot %s" % self.dir,
            "PidFile %s/run/httpd.pid" % self.dir,
            "DefaultRuntimeDir %s/run" % self.dir,
            "Mutex file:%s/run" % self.dir,
            "LoadModule mpm_event_module %s/mod_mpm_event.so" % APACHE_MODULES,
            "LoadModule authz_core_module %s/mod_authz_core.so" % APACHE_MODULES,
            "User www-data", "Group www-data", "ServerName %s" % name,
            "ErrorLog %s/error.log" % self.dir, "LogLevel info",
            "DocumentRoot %s/htdocs" % self.dir,
            "<Directory %s/htdocs>" % self.dir, "  Require all granted", "</Directory>",
            body, ""]))
        self.pidfile = self.dir / "run" / "httpd.pid"

    def start(self):
        ns_run(self.lab.ns[self.node], APACHE, "-f", str(self.conf), "-k", "start")
        self.lab.apaches.append(self)
        assert wait_until(self.pidfile.exists, 10), self.log()
        return self

    def log(self):
        p = self.dir / "error.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self):
        try:
            pid = int(self.pidfile.read_text())
        except (OSError, ValueError):
            pid = None
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            wait_until(lambda: not os.path.exists("/proc/%d" % pid), 10)
        if self in self.lab.apaches:
            self.lab.apaches.remove(self)
        shutil.rmtree(self.dir, ignore_errors=True)


def apache_sender(lab, node, name, threads, port=8080):
    """An Apache with mod_heartbeat: ready = its idle threads (ThreadsPerChild)."""
    return Apache(lab, node, name, "\n".join([
        "LoadModule status_module %s/mod_status.so" % APACHE_MODULES,
        "LoadModule heartbeat_module %s/mod_heartbeat.so" % APACHE_MODULES,
        "Listen %s:%d" % (lab.ip[node], port),
        "StartServers 1", "ServerLimit 1", "ThreadLimit %d" % threads,
        "ThreadsPerChild %d" % threads, "MaxRequestWorkers %d" % threads,
        "MinSpareThreads 1", "MaxSpareThreads %d" % threads,
        "WatchdogInterval 1", "HeartbeatAddress 239.0.0.1:27999"])).start()


def apache_monitor(lab, node, port=8081):
    """An Apache with mod_heartmonitor writing its flat file (HeartbeatMaxServers 0)."""
    a = Apache(lab, node, "monitor", "")
    a.storage = a.dir / "run" / "hb.dat"
    a.conf.write_text(a.conf.read_text() + "\n".join([
        "LoadModule heartmonitor_module %s/mod_heartmonitor.so" % APACHE_MODULES,
        "Listen %s:%d" % (lab.ip[node], port), "HeartbeatListen 239.0.0.1:27999",
        "HeartbeatMaxServers 0", "HeartbeatStorage %s" % a.storage, ""]))
    return a.start()


class NsAtrium(Atrium):
    """Atrium started inside a namespace; asked through ns_run there."""

    def __init__(self, workdir, port, vars, ns):
        super().__init__(workdir, port, vars)
        self.ns = ns

    def start(self, wait_ports=None, wait_started=True):
        self.stderr_file = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, ATRIUM_BIN, "-c",
                                      str(self.conf_path)], stdout=self.stderr_file,
                                     stderr=subprocess.STDOUT, cwd=str(self.dir))
        assert wait_until(lambda: STARTED_RE.search(self.error_log) or not self.alive(), 10)
        assert self.alive(), self.error_log + self.stderr
        return self

    def names(self, n):
        code = ("import http.client, collections, json\nc = collections.Counter()\n"
                "for i in range(%d):\n"
                "    h = http.client.HTTPConnection('127.0.0.1', %d, timeout=10)\n"
                "    h.request('GET', '/name'); r = h.getresponse()\n"
                "    c['%%d %%s' %% (r.status, r.read().decode())] += 1; h.close()\n"
                "print(json.dumps(c))" % (n, self.port))
        import json
        return collections.Counter(json.loads(ns_run(self.ns, PYTHON, "-c", code).stdout))

    def metrics(self):
        code = ("import http.client\nh = http.client.HTTPConnection('127.0.0.1', %d, timeout=5)\n"
                "h.request('GET', '/status'); print(h.getresponse().read().decode())" % self.port)
        out = {}
        for line in ns_run(self.ns, PYTHON, "-c", code).stdout.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = int(float(v))
        return out


@pytest.fixture
def lab():
    if not os.path.exists(APACHE) or not os.path.exists(APACHE_MODULES + "/mod_heartbeat.so"):
        pytest.skip("Debian's apache2 is not installed (tools/dev installs it)")
    lab = Lab(["mon", "s1", "s2"])
    try:
        yield lab.up()
    finally:
        lab.close()


def test_apache_senders_drive_the_choice_and_apache_reads_ours(lab, atrium):
    s1 = apache_sender(lab, "s1", "s1", threads=10)
    s2 = apache_sender(lab, "s2", "s2", threads=40)
    mon = apache_monitor(lab, "s1")
    d = atrium.base / "ns-atrium"
    d.mkdir()
    at = NsAtrium(d, 8080, dict(port=8080, dir=d), lab.ns["mon"])
    atrium.instances.append(at)                       # torn down (and checked) with the others
    at.write_config("\n".join([
        "workers 2; max_connections 50;",
        "heartbeat_listen 239.0.0.1:27999; heartbeat_send 239.0.0.1:27999;",
        "heartbeat_storage {{dir}}/hb.dat;",
        "upstream app { balance heartbeat; server %s:8080; server %s:8080; }"
        % (lab.ip["s1"], lab.ip["s2"]),
        "host * { route /status { status; } route / { proxy app; } }"]))
    at.start()
    r1 = server_metric("atrium_upstream_heartbeat_ready", "%s:8080" % lab.ip["s1"])
    r2 = server_metric("atrium_upstream_heartbeat_ready", "%s:8080" % lab.ip["s2"])
    # Apache's beats over multicast: ready = its idle threads
    assert wait_until(lambda: (lambda m: m.get(r1) == 10 and m.get(r2) == 40)(at.metrics()), 10), \
        at.metrics()
    at.names(40)   # every worker measures both servers once before counting
    got = at.names(400)
    assert set(got) == {"200 s1", "200 s2"}, got
    assert got["200 s2"] > 2 * got["200 s1"], got     # 40 idle threads against 10
    # Atrium's storage file, byte for byte mod_heartmonitor's lines
    storage = d / "hb.dat"
    text = lambda: storage.read_text() if storage.exists() else ""  # noqa: E731
    assert wait_until(lambda: re.search(r"^10\.77\.0\.3 &ready=40&busy=\d+&lastseen=\d+&port=80$",
                                        text(), re.M), 5), text()
    # Apache's mod_heartmonitor reads our beats: 2 workers x 50 connections
    ours = re.compile(r"^10\.77\.0\.1 &ready=(\d+)&busy=(\d+)&lastseen=\d+&port=80$", re.M)
    assert wait_until(lambda: mon.storage.exists() and ours.search(mon.storage.read_text()), 15), \
        (mon.storage.read_text() if mon.storage.exists() else "no file") + mon.log()
    ready, busy = map(int, ours.search(mon.storage.read_text()).groups())
    assert 95 <= ready <= 100 and busy <= 5, (ready, busy)
    # an Apache that stops beating stops counting after 10 s: all to the other
    s1.stop()
    assert wait_until(lambda: "sender %s silent for 10s" % lab.ip["s1"] in at.error_log, 20), \
        at.error_log[-2000:]
    assert at.names(30) == {"200 s2": 30}
    assert at.metrics()["atrium_heartbeat_senders"] == 2          # s2 and Atrium itself
    s2.stop()
    mon.stop()
