"""error_log (and access_log) to syslog (issue 14): the real binary sends RFC 3164
messages to a unix datagram socket and to UDP, read here by Python receivers and
by BusyBox's syslogd as a real peer; a missing server never stops Atrium serving.

Each message is checked whole: <PRI> (facility * 8 + severity), the date, the
HOST field (UDP only), TAG[PID]: and the "[level] message" text.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import free_port, get, run_atrium, wait_until

HEADER_RE = re.compile(r"^<(\d+)>([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?:(\S+) )?([\w.-]+)\[(\d+)\]: (.*)$",
                       re.S)
LOCAL3, DAEMON, LOCAL7 = 19, 3, 23
SEV = {"crit": 2, "error": 3, "warn": 4, "notice": 5, "info": 6, "debug": 7}


class Receiver:
    """A syslog server: a bound datagram socket, its messages parsed."""

    def __init__(self, family, addr):
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind(addr)
        self.sock.settimeout(0.05)
        self.msgs = []

    def drain(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, BlockingIOError):
                return
            m = HEADER_RE.match(data.decode(errors="replace"))
            assert m, "not an RFC 3164 message: %r" % data
            pri, date, host, tag, pid, text = m.groups()
            self.msgs.append(dict(pri=int(pri), host=host, tag=tag, pid=int(pid), text=text,
                                  raw=data))

    def find(self, needle, timeout=10.0):
        """The first message whose text holds needle, waiting for it."""
        def look():
            self.drain()
            return next((m for m in self.msgs if needle in m["text"]), None)
        return wait_until(look, timeout)

    def close(self):
        self.sock.close()


@pytest.fixture
def sockdir():
    d = tempfile.mkdtemp(prefix="atr-sl-")  # short: sun_path holds 108 bytes
    yield Path(d)
    shutil.rmtree(d)


def unix_receiver(path):
    return Receiver(socket.AF_UNIX, str(path))


def dead_upstream_conf(log, extra=""):
    """A route to a port nobody listens on (a 502 and warn lines), and one that answers."""
    return """
error_log %s;
%s
upstream dead { server 127.0.0.1:%d; }
host * {
    route /dead { proxy dead; }
    route /atrium-status { status; }
    route / { return 200 "ok"; }
}
""" % (log, extra, free_port())


def test_error_and_access_log_to_a_unix_socket(atrium, sockdir):
    rx = unix_receiver(sockdir / "log")
    try:
        a = atrium(dead_upstream_conf(
            "syslog:server=unix:%s/log,facility=local3,tag=atrtest info" % sockdir,
            "access_log syslog:server=unix:%s/log,tag=acc combined;" % sockdir))
        started = rx.find("started")
        assert started and started["pri"] == LOCAL3 * 8 + SEV["notice"], rx.msgs
        assert started["tag"] == "atrtest" and started["pid"] == a.pid
        assert started["host"] is None  # the local daemon adds its own
        assert re.fullmatch(r"\[notice\] atrium \S+ started: 1 worker\(s\), generation 1",
                            started["text"]), started

        assert get(a.port, "/dead").status == 502
        warn = rx.find("no server left to try")
        assert warn["pri"] == LOCAL3 * 8 + SEV["warn"] and warn["pid"] == a.pid
        assert re.fullmatch(r'\[warn\] w1 127\.0\.0\.1 "GET /dead": upstream dead: no server left '
                            r'to try -> 502', warn["text"]), warn
        acc = rx.find('"GET /dead HTTP/1.1" 502')
        assert acc["pri"] == LOCAL7 * 8 + SEV["info"] and acc["tag"] == "acc"
        assert not acc["raw"].endswith(b"\n")

        # A bad reload is an [error] line, FILE:LINE:COL and all.
        good = a.conf_path.read_text()
        a.conf_path.write_text(good + "\nbogus_directive 1;\n")
        a.send_signal(signal.SIGHUP)
        err = rx.find("bogus_directive")
        assert err["pri"] == LOCAL3 * 8 + SEV["error"], err
        assert "%s:" % a.conf_path in err["text"]

        # SIGUSR1 is harmless: a fresh socket to the same server.
        a.conf_path.write_text(good)
        a.send_signal(signal.SIGUSR1)
        assert rx.find("log files reopened")["pri"] == LOCAL3 * 8 + SEV["notice"]
        assert get(a.port, "/").status == 200
        assert rx.find('"GET / HTTP/1.1" 200')
        assert not [m for m in rx.msgs if m["text"].startswith(("[debug]", "[crit]", "[alert]"))]
    finally:
        rx.close()


def test_error_log_to_udp_then_reload_to_a_unix_socket(atrium, sockdir):
    udp = Receiver(socket.AF_INET, ("127.0.0.1", 0))
    unix = unix_receiver(sockdir / "log")
    try:
        port = udp.sock.getsockname()[1]
        a = atrium(dead_upstream_conf("syslog:server=127.0.0.1:%d,tag=atrudp info" % port))
        started = udp.find("started")
        assert started["pri"] == DAEMON * 8 + SEV["notice"] and started["pid"] == a.pid
        assert started["host"] == socket.gethostname().split(".")[0]  # RFC 3164: HOST over the network
        assert get(a.port, "/dead").status == 502
        assert udp.find("no server left to try")["pri"] == DAEMON * 8 + SEV["warn"]

        # Reload moves the log: the new sink is opened first, then swapped.
        text = a.conf_path.read_text().replace(
            "syslog:server=127.0.0.1:%d,tag=atrudp info" % port,
            "syslog:server=unix:%s/log,facility=local3,tag=atrunix,nohostname debug" % sockdir)
        a.conf_path.write_text(text)
        a.send_signal(signal.SIGHUP)
        active = unix.find("reload: generation 2 active")
        assert active and active["tag"] == "atrunix" and active["host"] is None
        assert get(a.port, "/dead").status == 503  # the server is still marked down
        assert unix.find('"GET /dead": upstream dead: no server available -> 503')
        udp.drain()
        assert not [m for m in udp.msgs if "generation 2 active" in m["text"]]
    finally:
        udp.close()
        unix.close()


def test_missing_socket_does_not_stop_serving(atrium, sockdir):
    """No server at the path: every request is still answered, the lines are
    dropped and counted; once a server binds there, lines arrive again and the
    drops are reported."""
    path = sockdir / "later"
    a = atrium(dead_upstream_conf("syslog:server=unix:%s,tag=atrmiss debug" % path))
    for _ in range(20):
        assert get(a.port, "/").status == 200
        assert get(a.port, "/dead").status in (502, 503)  # 503 once it is marked down
    text = get(a.port, "/atrium-status").body.decode()  # the drops are counted for scrapers
    m = re.search(r'^atrium_log_lines_dropped_total\{log="error"\} (\d+)$', text, re.M)
    assert m and int(m.group(1)) >= 20, text
    rx = unix_receiver(path)
    try:
        def line_arrives():
            get(a.port, "/dead")  # each 502 logs a warn line
            return rx.find("upstream dead: no server", timeout=0.2)
        assert wait_until(line_arrives, 10.0)
        report = rx.find("dropped while syslog did not take them")
        assert report["pri"] == DAEMON * 8 + SEV["warn"]
        assert int(re.search(r"error_log: (\d+) lines? dropped", report["text"]).group(1)) >= 20
    finally:
        rx.close()


def test_syslog_spelling_is_checked_with_its_position(tmp_path):
    conf = tmp_path / "a.conf"
    conf.write_text("listen 127.0.0.1:%d;\nerror_log syslog:tag=x,facility=local9 info;\n"
                    "host * { route / { return 200; } }\n" % free_port())
    r = run_atrium(["-t", "-c", str(conf)])
    assert r.returncode == 1
    assert r.stderr.startswith("%s:2:33: unknown syslog facility 'local9' (expected kern, " % conf), \
        r.stderr
    conf.write_text(conf.read_text().replace("facility=local9", "server=localhost:514"))
    r = run_atrium(["-t", "-c", str(conf)])
    assert r.returncode == 1 and "%s:2:31: expected an IP address" % conf in r.stderr, r.stderr

    # A good one loads, -T spells it out in full, and that loads again.
    conf.write_text(conf.read_text().replace("server=localhost:514", "server=unix:/dev/log"))
    r = run_atrium(["-T", "-c", str(conf)])
    assert r.returncode == 0, r.stderr
    assert "error_log syslog:server=unix:/dev/log,facility=daemon,tag=x info;\n" in r.stdout
    dumped = tmp_path / "dumped.conf"
    dumped.write_text(r.stdout)
    r2 = run_atrium(["-T", "-c", str(dumped)])
    assert r2.returncode == 0 and r2.stdout.split("\n", 1)[1] == r.stdout.split("\n", 1)[1]


@pytest.fixture
def busybox_syslogd(sockdir):
    """BusyBox's syslogd writing to a file, bound at SOCKDIR/log: Debian's build
    has no -p, so it runs in a mount namespace where SOCKDIR is /dev."""
    if shutil.which("busybox") is None or shutil.which("unshare") is None:
        pytest.skip("busybox is not installed (tools/dev installs it)")
    if os.getuid() != 0:
        pytest.skip("needs root for a private mount namespace")
    out = sockdir / "messages"
    proc = subprocess.Popen(
        ["unshare", "-m", "sh", "-c", "mount --make-rprivate / && mount --bind %s /dev && "
         "exec busybox syslogd -n -O %s" % (sockdir, out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: (sockdir / "log").is_socket() or proc.poll() is not None, 10)
        assert proc.poll() is None, proc.stderr.read()
        yield sockdir / "log", out
    finally:
        proc.terminate()
        proc.wait(10)


def test_busybox_syslogd_as_the_peer(atrium, busybox_syslogd):
    path, out = busybox_syslogd
    a = atrium(dead_upstream_conf("syslog:server=unix:%s,facility=local3,tag=atrbb info" % path,
                                  "access_log syslog:server=unix:%s combined;" % path))
    assert get(a.port, "/dead").status == 502

    def lines():
        return out.read_text(errors="replace") if out.exists() else ""
    # busybox writes "DATE HOST FACILITY.LEVEL TAG[PID]: MESSAGE" from our PRI.
    # "started" follows the listeners by up to a few ms (the control loop polls the
    # workers), so the request's lines may come first: wait for all three
    assert wait_until(lambda: "no server left to try" in lines() and "/dead HTTP" in lines()
                      and "] atrium " in lines(), 10), lines()
    text = lines()
    pid = a.pid
    assert re.search(r" local3\.notice atrbb\[%d\]: \[notice\] atrium \S+ started" % pid, text), text
    assert re.search(r' local3\.warn atrbb\[%d\]: \[warn\] w1 127\.0\.0\.1 "GET /dead": upstream '
                     r'dead: no server left to try -> 502$' % pid, text, re.M), text
    assert re.search(r' local7\.info atrium\[%d\]: 127\.0\.0\.1 - - \[[^]]+\] "GET /dead HTTP/1\.1" '
                     r'502 \d+ "-" "[^"]*"$' % pid, text, re.M), text
