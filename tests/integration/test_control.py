"""The runtime API: `control PATH;` and `atrium ctl COMMAND`, driven as an operator
would, against real origins and under load (wrk). A drained server gets no new
request once the drain is answered and no request fails meanwhile; changes made
at run time are reported as differing from the file and outlive reloads that leave
their server alone; every refusal says why and exits 1."""

import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import get, proxy_conf, run_atrium, wait_until


@pytest.fixture
def sockdir():
    # unix socket paths are short (108 bytes): not under pytest's long tmp_path
    d = tempfile.mkdtemp(prefix="atr-ctl-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def start(atrium, sockdir, servers, extra="", upstream_extra="", workers=2):
    sock = os.path.join(sockdir, "atrium.sock")
    conf = "workers %d;\ncontrol %s;\n%s\n" % (workers, sock, extra) + \
        proxy_conf(servers, upstream_extra=upstream_extra,
                   hosts_extra="    route /atrium-status { status; }")
    a = atrium(conf)
    a.sock = sock
    return a


def ctl(a, *words, ok=True):
    r = run_atrium(["-c", str(a.conf_path), "ctl"] + list(words))
    if ok:
        assert r.returncode == 0, (words, r.stdout, r.stderr)
    return r


def servers_table(a, upstream="app"):
    """{server: {column: value}} from `show servers`."""
    out = ctl(a, "show", "servers", upstream).stdout.splitlines()
    head = out[0].split()
    rows = {}
    for line in out[1:]:
        cells = line.split(None, len(head) - 1)
        rows[cells[1]] = dict(zip(head, cells))
    return rows


def hits(port, n):
    """The X-Origin of n requests in a row."""
    seen = {}
    for _ in range(n):
        r = get(port, "/name")
        assert r.status == 200, r
        seen[r.get("x-origin")] = seen.get(r.get("x-origin"), 0) + 1
    return seen


def test_the_socket_is_private_and_show_commands_answer(atrium, origin, sockdir):
    A, B = origin("A"), origin("B")
    a = start(atrium, sockdir, [A, (B.port, "weight=2")])
    st = os.stat(a.sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    hits(a.port, 6)

    info = dict(l.split(" ", 1) for l in ctl(a, "show", "info").stdout.splitlines())
    assert info["pid"] == str(a.pid) and info["generation"] == "1"
    assert info["last_reload_error"] == "-" and info["workers"] == "2"

    ups = ctl(a, "show", "upstreams").stdout.splitlines()
    assert ups[0].split()[:4] == ["upstream", "protocol", "balance", "servers"]
    assert ups[1].split()[:6] == ["app", "http", "round_robin", "2", "2", "0"]

    rows = servers_table(a)
    assert rows[A.addr]["state"] == "up" and rows[A.addr]["weight"] == "1"
    assert rows[B.addr]["weight"] == "2" and rows[B.addr]["changed"] == "-"
    assert int(rows[A.addr]["requests"]) + int(rows[B.addr]["requests"]) == 6

    help_text = ctl(a, "help").stdout
    for verb in ("drain", "disable", "enable", "set weight", "add server", "remove server",
                 "reload", "reopen", "show changes"):
        assert verb in help_text


def test_refusals_say_why_and_exit_1(atrium, origin, sockdir):
    A, B = origin("A"), origin("B")
    a = start(atrium, sockdir, [A, B])
    cases = [
        (["drain", "nope", A.addr], "no upstream 'nope' (upstreams: app)"),
        (["drain", "app", "127.0.0.1:1"], "upstream app has no server '127.0.0.1:1'"),
        (["set", "weight", "app", A.addr, "0"], "invalid weight '0'"),
        (["set", "weight", "app", A.addr, "1001"], "invalid weight '1001'"),
        (["add", "server", "app", "example.com:80"], "'example.com:80' is not an address"),
        (["add", "server", "app", "127.0.0.1:9", "wieght=2"], "unknown server parameter 'wieght=2'"),
        (["add", "server", "app", A.addr], "already has server"),
        (["frobnicate"], "unknown command 'frobnicate'"),
        (["show", "servers", "x", "y"], "usage: show servers [UPSTREAM]"),
    ]
    for words, msg in cases:
        r = ctl(a, *words, ok=False)
        assert r.returncode == 1 and r.stdout == "", (words, r.stdout, r.stderr)
        assert r.stderr.startswith("error: ") and msg in r.stderr, (words, r.stderr)
    ctl(a, "remove", "server", "app", A.addr)
    r = ctl(a, "remove", "server", "app", B.addr, ok=False)
    assert r.returncode == 1 and "last of upstream app: drain or disable it instead" in r.stderr
    r = ctl(a, "drain", "app", A.addr, ok=False)
    assert "was removed at run time" in r.stderr
    # nothing of it changed what runs: A is out, B serves
    assert hits(a.port, 4) == {"B": 4}


def test_a_second_atrium_cannot_take_the_socket_and_ctl_needs_one(atrium, origin, sockdir):
    A = origin("A")
    a = start(atrium, sockdir, [A])
    b = atrium("control %s;\n" % a.sock + proxy_conf([A]), start=False)
    r = run_atrium(["-c", str(b.conf_path)], timeout=20)
    assert r.returncode == 1 and "another process answers on it" in r.stderr, r.stderr
    assert ctl(a, "show", "info").returncode == 0  # the first one still answers

    c = atrium(proxy_conf([A]), start=False)
    r = run_atrium(["-c", str(c.conf_path), "ctl", "show", "info"])
    assert r.returncode == 1 and "has no 'control PATH;'" in r.stderr
    r = run_atrium(["-S", a.sock, "ctl", "show", "info"])  # -S: no config needed
    assert r.returncode == 0 and "generation 1" in r.stdout
    # a client that connects and says nothing holds up no one
    s = socket.socket(socket.AF_UNIX)
    s.connect(a.sock)
    assert ctl(a, "show", "upstreams").returncode == 0
    s.close()


def wrk(port, seconds, conns):
    return subprocess.Popen(["wrk", "-t2", "-c%d" % conns, "-d%ds" % seconds, "--timeout", "5s",
                             "http://127.0.0.1:%d/name" % port],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wrk_clean(p):
    out, _ = p.communicate(timeout=90)
    m = re.search(r"(\d+) requests in", out)
    assert p.returncode == 0 and m and int(m.group(1)) > 0, out
    assert "Socket errors" not in out and "Non-2xx" not in out, out
    return int(m.group(1))


def test_drain_under_load_fails_nothing_and_no_new_request_reaches_the_server(
        atrium, origin, sockdir):
    A, B = origin("A"), origin("B")
    a = start(atrium, sockdir, [A, B])
    conns = 16
    load = wrk(a.port, 6, conns)
    assert wait_until(lambda: B.reqs() > 200, 5), "no load reached B"
    r = ctl(a, "drain", "app", B.addr)
    assert r.stdout.strip() == "ok: upstream app: server %s draining" % B.addr
    at_drain = B.reqs()
    # requests placed before the answer may still arrive: at most one per connection
    time.sleep(1.0)
    settled = B.reqs()
    assert settled - at_drain <= conns, (at_drain, settled)
    time.sleep(1.5)
    assert B.reqs() == settled, "B got new requests after the drain"
    rows = servers_table(a)
    assert rows[B.addr]["state"] == "draining" and rows[B.addr]["in_flight"] == "0"
    text = get(a.port, "/atrium-status").body.decode()  # scrapers see it too
    assert re.search(r'^atrium_upstream_draining\{upstream="app",protocol="http",server="%s"\} 1$'
                     % re.escape(B.addr), text, re.M), text
    assert rows[B.addr]["changed"] == "drained"
    a_before = A.reqs()
    assert wrk_clean(load) > 0
    assert A.reqs() > a_before  # the load went on, on A
    # back in service: B takes requests again
    ctl(a, "enable", "app", B.addr)
    assert hits(a.port, 10).get("B", 0) >= 4
    assert ctl(a, "show", "changes").stdout.splitlines()[1:] == []


def test_disable_stops_health_checks_and_enable_restores(atrium, origin, sockdir):
    A, B = origin("A"), origin("B")
    a = start(atrium, sockdir, [A, B], workers=1,
              upstream_extra="health_check path=/name interval=200ms;")
    assert wait_until(lambda: B.reqs() >= 2, 5)
    ctl(a, "disable", "app", B.addr)
    assert hits(a.port, 8) == {"A": 8}
    time.sleep(0.3)  # a probe already out finishes
    before = B.reqs()
    time.sleep(1.0)
    assert B.reqs() == before, "B is still probed while disabled"
    assert servers_table(a)[B.addr]["state"] == "disabled"
    ctl(a, "enable", "app", B.addr)
    assert wait_until(lambda: B.reqs() > before, 5), "probes did not come back"
    assert hits(a.port, 8) == {"A": 4, "B": 4}


def test_set_weight_and_back_to_the_file(atrium, origin, sockdir):
    A, B = origin("A"), origin("B")
    a = start(atrium, sockdir, [A, B], workers=1)
    assert hits(a.port, 10) == {"A": 5, "B": 5}
    r = ctl(a, "set", "weight", "app", A.addr, "4")
    assert r.stdout.strip() == "ok: upstream app: server %s weight 4" % A.addr
    seen = hits(a.port, 50)
    assert seen == {"A": 40, "B": 10}, seen
    assert servers_table(a)[A.addr]["changed"] == "weight 4 (file: 1)"
    ctl(a, "set", "weight", "app", A.addr, "file")
    assert servers_table(a)[A.addr]["changed"] == "-"
    assert hits(a.port, 10) == {"A": 5, "B": 5}


def test_add_and_remove_servers_at_run_time(atrium, origin, sockdir):
    A, B, C = origin("A"), origin("B"), origin("C")
    a = start(atrium, sockdir, [A, B], workers=1)
    r = ctl(a, "add", "server", "app", C.addr, "weight=2")
    assert r.stdout.strip() == "ok: upstream app: server %s added" % C.addr
    assert hits(a.port, 40) == {"A": 10, "B": 10, "C": 20}
    assert servers_table(a)[C.addr]["changed"] == "added"
    ctl(a, "remove", "server", "app", A.addr)
    assert hits(a.port, 30) == {"B": 10, "C": 20}
    changes = ctl(a, "show", "changes").stdout.splitlines()[1:]
    assert changes == ["app %s added" % C.addr, "app %s removed" % A.addr]
    ctl(a, "add", "server", "app", A.addr)  # a removed file server comes back as the file says
    ctl(a, "remove", "server", "app", C.addr)  # an added one is forgotten
    assert ctl(a, "show", "changes").stdout.splitlines()[1:] == []
    assert hits(a.port, 10) == {"A": 5, "B": 5}


def test_changes_outlive_reloads_until_the_file_changes_their_server(atrium, origin, sockdir):
    A, B, C = origin("A"), origin("B"), origin("C")
    a = start(atrium, sockdir, [A, B], workers=1)
    ctl(a, "drain", "app", B.addr)
    ctl(a, "set", "weight", "app", A.addr, "3")
    ctl(a, "add", "server", "app", C.addr)
    before = ctl(a, "show", "changes").stdout

    # a reload that leaves the servers alone keeps every change
    text = a.conf_text.replace("route / {", "route /other/ { return 204; }\n    route / {")
    assert a.reload(text)
    assert ctl(a, "show", "changes").stdout == before
    assert servers_table(a)[B.addr]["state"] == "draining"
    assert hits(a.port, 8) == {"A": 6, "C": 2}

    # the file changes B: the file wins for B, the rest stays
    assert a.reload(a.conf_text.replace("server %s;" % B.addr, "server %s weight=2;" % B.addr))
    changes = ctl(a, "show", "changes").stdout.splitlines()[1:]
    assert changes == ["app %s weight 3 (file: 1)" % A.addr, "app %s added" % C.addr]
    assert servers_table(a)[B.addr]["state"] == "up"
    assert "the change made at run time is dropped: the config changed the server" in a.error_log

    # the file gains C: the added one is the file's now
    assert a.reload(a.conf_text.replace("server %s weight=2;" % B.addr,
                                        "server %s weight=2;\n    server %s;" % (B.addr, C.addr)))
    changes = ctl(a, "show", "changes").stdout.splitlines()[1:]
    assert changes == ["app %s weight 3 (file: 1)" % A.addr]
    assert "the config has the server now" in a.error_log


def test_ctl_reload_reports_the_error_and_keeps_the_generation(atrium, origin, sockdir):
    A = origin("A")
    a = start(atrium, sockdir, [A])
    good = a.conf_text
    a.conf_path.write_text(good + "bogus_directive on;\n")
    r = ctl(a, "reload", ok=False)
    assert r.returncode == 1
    assert re.search(r"^error: reload failed, generation 1 keeps running: .*atrium\.conf:\d+:\d+: "
                     r"unknown directive 'bogus_directive'", r.stderr), r.stderr
    info = ctl(a, "show", "info").stdout
    assert "generation 1\n" in info and "reloads_failed 1\n" in info
    assert re.search(r"last_reload_error \d{4}-\d\d-\d\dT[\d:]+Z .*unknown directive", info), info
    assert get(a.port, "/name").status == 200
    a.conf_path.write_text(good)
    assert ctl(a, "reload").stdout.strip() == "ok: generation 2 active"
    assert "generation 2\n" in ctl(a, "show", "info").stdout


def test_ctl_reopen_reopens_the_logs(atrium, origin, sockdir):
    A = origin("A")
    a = start(atrium, sockdir, [A])
    os.rename(a.error_log_path, str(a.error_log_path) + ".1")
    assert ctl(a, "reopen").stdout.strip() == "ok: log files reopened"
    assert wait_until(lambda: "log files reopened" in a.error_log, 5)


def test_a_reload_moves_or_closes_the_socket(atrium, origin, sockdir):
    A = origin("A")
    a = start(atrium, sockdir, [A])
    other = os.path.join(sockdir, "other.sock")
    assert a.reload(a.conf_text.replace(a.sock, other))
    assert not os.path.exists(a.sock) and os.path.exists(other)
    assert "generation 2\n" in ctl(a, "show", "info").stdout  # found through the new config
    # a socket that cannot be opened: the reload goes on, the socket stays, the log says why
    missing = os.path.join(sockdir, "nodir", "x.sock")
    assert a.reload(a.conf_text.replace(other, missing))
    assert "control %s: no such file or directory; the control socket stays as it was" % missing \
        in a.error_log
    assert run_atrium(["-S", other, "ctl", "show", "info"]).returncode == 0
    assert a.reload(a.conf_text.replace("control %s;" % missing, ""))
    assert not os.path.exists(other)
    # at start, it is an error like any other
    b = atrium("control %s;\n" % missing + proxy_conf([A]), start=False)
    r = run_atrium(["-c", str(b.conf_path)])
    assert r.returncode == 1 and re.search(r"atrium\.conf:\d+:9: control .*: no such file or "
                                           r"directory", r.stderr), r.stderr
    r = run_atrium(["-t", "-c", str(b.conf_path)])
    assert r.returncode == 1 and "control: cannot listen on %s" % missing in r.stderr, r.stderr


def test_a_drained_server_keeps_no_idle_connection(atrium, origin, sockdir):
    A, B = origin("A"), origin("B")
    a = start(atrium, sockdir, [A, B], workers=2)

    def established(o):
        out = subprocess.run(["ss", "-Htn", "state", "established", "dst", o.addr],
                             capture_output=True, text=True).stdout
        return len(out.splitlines())
    hits(a.port, 20)
    assert established(B) > 0  # pooled for the next request
    ctl(a, "drain", "app", B.addr)
    assert wait_until(lambda: established(B) == 0, 5), established(B)
    assert established(A) > 0  # the other upstream member keeps its pool
    hits(a.port, 6)
    assert established(B) == 0


def test_control_state_keeps_the_changes_for_a_restart(atrium, origin, sockdir):
    A, B, C = origin("A"), origin("B"), origin("C")
    state = os.path.join(sockdir, "state")
    a = start(atrium, sockdir, [A, B], workers=1, extra="control_state %s;" % state)
    ctl(a, "drain", "app", B.addr)
    ctl(a, "add", "server", "app", C.addr, "weight=2", "max_conns=50")
    ctl(a, "set", "weight", "app", A.addr, "2")
    before = ctl(a, "show", "changes").stdout

    def restart(text=None):
        assert a.stop() == 0
        a.stopped = False
        if text is not None:
            a.write_config(text)
        a.start()
    restart()
    assert ctl(a, "show", "changes").stdout == before
    assert servers_table(a)[B.addr]["state"] == "draining"
    assert hits(a.port, 8) == {"A": 4, "C": 4}
    # the file changed B while Atrium was stopped: the file wins for B, the rest stays
    restart(a.conf_text.replace("server %s;" % B.addr, "server %s weight=3;" % B.addr))
    changes = ctl(a, "show", "changes").stdout.splitlines()[1:]
    assert changes == ["app %s added" % C.addr, "app %s weight 2 (file: 1)" % A.addr], changes
    assert "the change made at run time is dropped: the config changed the server" in a.error_log
    assert B.addr not in open(state).read()  # and the file no longer holds it
    # a file it cannot write: the change is made, and the answer says it is not kept
    os.mkdir(state + ".new")
    r = ctl(a, "drain", "app", A.addr)
    assert r.stdout.startswith("ok: ") and "warning: not kept in control_state %s" % state \
        in r.stdout, r.stdout
    os.rmdir(state + ".new")
    # a line it did not write is skipped and named; the others are kept
    with open(state, "a") as f:
        f.write("nonsense\n")
    restart()
    assert "control_state %s:" % state in a.error_log and "not a change atrium wrote" in a.error_log
    assert "app %s added" % C.addr in ctl(a, "show", "changes").stdout
