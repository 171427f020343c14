"""`spawn COMMAND children=N;`: an upstream that starts and supervises its own
FastCGI application (php-cgi accepting on the socket Atrium creates): started
before serving, restarted when a child dies, kept across a reload that leaves
it unchanged, replaced when it changes, stopped on shutdown."""

import os
import signal
import subprocess
import time

import pytest

from conftest import get, wait_until

PHP_CGI = "/usr/bin/php-cgi"


def children(marker):
    """PIDs of php-cgi processes started through our uniquely named link."""
    out = subprocess.run(["pgrep", "-f", "^" + marker], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.fixture
def site(tmp_path):
    if not os.path.exists(PHP_CGI):
        pytest.fail("php-cgi is not installed (tools/dev installs it)")
    docroot = tmp_path / "www"
    (docroot / "php").mkdir(parents=True)
    (docroot / "php" / "index.php").write_text('<?php echo "spawned ", getmypid();')
    # A link with a unique name, so pgrep finds only this test's children.
    link = tmp_path / ("php-cgi-%d" % os.getpid())
    os.symlink(PHP_CGI, link)
    return docroot, str(link), tmp_path / "php.sock"


def conf(site, n):
    docroot, link, sock = site
    return """\
upstream php {
    protocol fastcgi;
    server unix:%s;
    spawn %s children=%d;
    keepalive 2;
}
host * { route /php/ { proxy php; root %s; index index.php; } }
""" % (sock, link, n, docroot)


def served(a):
    r = get(a.port, "/php/")
    return r.status == 200 and r.body.startswith(b"spawned ")


def test_spawn_serves_restarts_and_stops(atrium, site):
    link = site[1]
    a = atrium(conf(site, 2))
    assert served(a)
    assert wait_until(lambda: len(children(link)) == 2, 5), children(link)
    victim = children(link)[0]
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: len(children(link)) == 2 and victim not in children(link), 5), \
        "a killed child was not restarted: %r" % children(link)
    for _ in range(5):
        assert served(a)
    assert "exited" in a.error_log
    assert a.stop() == 0
    assert wait_until(lambda: children(link) == [], 5), "children outlived atrium"
    assert not site[2].exists(), "the socket file was left behind"


def test_unchanged_reload_keeps_children_changed_replaces(atrium, site):
    link = site[1]
    a = atrium(conf(site, 2))
    assert served(a)
    assert wait_until(lambda: len(children(link)) == 2, 5)
    before = sorted(children(link))
    a.reload(conf(site, 2))
    time.sleep(0.3)
    assert sorted(children(link)) == before, "an unchanged reload restarted the children"
    a.reload(conf(site, 3))
    assert wait_until(lambda: len(children(link)) == 3 and
                      not set(before) & set(children(link)), 5), children(link)
    for _ in range(5):
        assert served(a)


def test_spawn_socket_in_use_is_a_config_error(atrium, site, tmp_path):
    import socket
    docroot, link, _ = site
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    text = """\
upstream php { protocol fastcgi; server 127.0.0.1:%d; spawn %s; }
host * { route /php/ { proxy php; root %s; } }
""" % (port, link, docroot)
    a = atrium(text, start=False)
    a.conf_path.write_text(a.conf_text if hasattr(a, "conf_text") else text)
    from conftest import run_atrium
    r = run_atrium(["-c", str(a.conf_path)], timeout=10)
    busy.close()
    assert r.returncode == 1, r
    assert "spawn: cannot listen on 127.0.0.1:%d" % port in r.stderr, r.stderr
    assert children(link) == []


def test_failed_reload_leaves_the_running_sets_socket(atrium, site):
    """A reload that changes a unix-socket set and then fails (a listener that cannot
    be bound) changes nothing: the running set's socket file stays and serves (it
    used to be unlinked: every request failed)."""
    import socket
    link, sock = site[1], site[2]
    a = atrium(conf(site, 2))
    assert served(a)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        bad = conf(site, 3) + "listen 127.0.0.1:%d;\n" % busy.getsockname()[1]
        a.reload(bad, expect_ok=False)
        assert sock.exists(), "the running set's socket was removed"
        assert not os.path.exists(str(sock) + ".new")
        for _ in range(3):
            assert served(a)
        assert wait_until(lambda: len(children(link)) == 2, 5), children(link)
    finally:
        busy.close()


def sleepers(tag):
    out = subprocess.run(["pgrep", "-f", "^/bin/sleep " + tag], capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


def sleep_conf(port, tag, n, extra=""):
    return """%s
upstream app { server 127.0.0.1:%d; spawn /bin/sleep %s children=%d; }
host * { route / { proxy app; } }
""" % (extra, port, tag, n)


def test_changed_tcp_set_takes_over_the_socket(atrium):
    """A changed set on the same TCP address reloads (it shares the running set's
    socket; binding it again failed with EADDRINUSE while the old children held it)."""
    from conftest import free_port
    port, tag = free_port(), "1000.%d" % os.getpid()
    a = atrium(sleep_conf(port, tag, 1))
    assert wait_until(lambda: len(sleepers(tag)) == 1, 5)
    old = sleepers(tag)
    a.reload(sleep_conf(port, tag, 2))
    assert wait_until(lambda: len(sleepers(tag)) == 2 and not set(old) & set(sleepers(tag)),
                      5), sleepers(tag)
    assert "Address already in use" not in a.error_log
    assert a.stop() == 0
    assert wait_until(lambda: sleepers(tag) == [], 5)


def test_user_runs_the_children_as_that_user_and_still_stops_them(atrium, tmp_path):
    """With `user nobody`, spawned children run as nobody too (they ran as root, and
    Atrium, no longer root, could not stop them: it never exited); the pid file is
    written before the privilege drop."""
    import pwd
    from conftest import free_port
    nobody = pwd.getpwnam("nobody")
    port, tag = free_port(), "1001.%d" % os.getpid()
    pid_file = tmp_path / "atrium.pid"
    a = atrium(sleep_conf(port, tag, 2, 'user nobody;\npid_file %s;' % pid_file))
    assert wait_until(lambda: len(sleepers(tag)) == 2, 5)
    for pid in sleepers(tag):
        with open("/proc/%d/status" % pid) as f:
            uid = [l.split()[1] for l in f if l.startswith("Uid:")][0]
        assert int(uid) == nobody.pw_uid
    assert pid_file.read_text().strip() == str(a.proc.pid)
    assert a.stop() == 0
    assert wait_until(lambda: sleepers(tag) == [], 5), "children outlived atrium"
