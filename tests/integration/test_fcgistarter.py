"""tools/fcgistarter against a real php-cgi, behind Atrium.

php-cgi serves FastCGI when its fd 0 is a listening socket, which is what
fcgistarter hands each child. The children get two variables:
- PHP_FCGI_CHILDREN=0: each php-cgi serves requests itself and forks no workers,
  so fcgistarter's -N is the whole process count and pgrep can count it;
- PHP_FCGI_MAX_REQUESTS=0: no php-cgi exits after N requests, so the count only
  changes when a test kills one.
php-cgi runs through a symlink with a unique name in the test's tmp dir: `pgrep`
then finds exactly this test's children (never fcgistarter itself, whose command
line holds the name after -c), and teardown kills any that are left.

Run: ATRIUM_BIN=... FCGISTARTER_BIN=... python3 -m pytest tests/integration/test_fcgistarter.py
"""

import os
import signal
import socket
import stat
import subprocess
import time

import pytest

from conftest import free_port, get, open_fds, wait_port, wait_until

FCGISTARTER_BIN = os.environ.get("FCGISTARTER_BIN", "/tmp/b-lead/fcgistarter")
PHP_CGI = "/usr/bin/php-cgi"
INDEX_PHP = '<?php echo "fcgistarter ok " . getmypid();\n'

CONF = """
upstream php { protocol fastcgi; server {{server}}; keepalive 4; }
host * { route /php/ { proxy php; root {{docroot}}; index index.php; } }
"""


class Php:
    """A uniquely named php-cgi, a docroot with php/index.php, and fcgistarter runs."""

    def __init__(self, tmp):
        for what, path in (("fcgistarter", FCGISTARTER_BIN), ("php-cgi", PHP_CGI)):
            if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                pytest.fail("%s binary %r not found or not executable (set FCGISTARTER_BIN)"
                            % (what, path), pytrace=False)
        self.marker = "php_fcgis_%s" % os.urandom(6).hex()
        self.cmd = str(tmp / self.marker)
        os.symlink(os.path.realpath(PHP_CGI), self.cmd)
        self.docroot = tmp / "docroot"
        (self.docroot / "php").mkdir(parents=True)
        (self.docroot / "php" / "index.php").write_text(INDEX_PHP)
        self.log_path = tmp / "fcgistarter.log"
        self.procs = []

    def _popen(self, args, **kw):
        env = dict(os.environ, PHP_FCGI_CHILDREN="0", PHP_FCGI_MAX_REQUESTS="0")
        # Output goes to a file, never a pipe: the children keep stdout/stderr open.
        with open(self.log_path, "ab") as log:
            return subprocess.Popen([FCGISTARTER_BIN, "-c", self.cmd] + [str(a) for a in args],
                                    env=env, stdout=log, stderr=subprocess.STDOUT, **kw)

    def run(self, *args):
        """fcgistarter without -f: must exit at once; returns its exit code."""
        p = self._popen(args)
        self.procs.append(p)
        return p.wait(5)

    def start(self, *args, **kw):
        """fcgistarter -f in the background."""
        p = self._popen(("-f",) + args, **kw)
        self.procs.append(p)
        return p

    def pids(self):
        # -x: the whole command line is the symlink path (no spaces), as for the children.
        r = subprocess.run(["pgrep", "-x", "-f", "[^ ]*/" + self.marker],
                           stdout=subprocess.PIPE, text=True, timeout=5)
        return sorted(int(x) for x in r.stdout.split())

    def wait_count(self, n, timeout=5.0):
        pids = wait_until(lambda: [p for p in [self.pids()] if len(p) == n], timeout)
        assert pids,  "want %d php-cgi children, have %r\n%s" % (
            n, self.pids(), self.log())
        return pids[0]

    def log(self):
        return self.log_path.read_text(errors="replace")

    def teardown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
        for pid in self.pids():
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def php(tmp_path):
    p = Php(tmp_path)
    yield p
    p.teardown()


def assert_serves(a, pids, n=6):
    for _ in range(n):
        r = get(a.port, "/php/")
        assert r.status == 200, r
        text = r.text()
        assert text.startswith("fcgistarter ok "), text
        assert int(text.split()[-1]) in pids, (text, pids)


def stop(proc, timeout=10.0):
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


def test_tcp_supervised_restart_and_stop(atrium, php):
    port = free_port()
    r, w = os.pipe()                   # an fd fcgistarter inherits: no child may keep it
    try:
        sp = php.start("-p", port, "-i", "127.0.0.1", "-N", 2, pass_fds=(r,))
        wait_port(port, proc=sp, what="fcgistarter")
        pids = php.wait_count(2)
        pipe = os.readlink("/proc/self/fd/%d" % r)
    finally:
        os.close(r)
        os.close(w)
    for pid in pids:
        assert os.getsid(pid) == pid, "child %d is not a session leader" % pid
        fds = open_fds(pid)
        assert fds[0].startswith("socket:"), fds
        assert pipe not in fds.values(), "child %d inherited fd %d: %r" % (pid, r, fds)

    a = atrium(CONF, server="127.0.0.1:%d" % port, docroot=php.docroot)
    assert_serves(a, pids)

    os.kill(pids[0], signal.SIGKILL)
    assert wait_until(lambda: pids[0] not in php.pids(), 10.0), php.pids()
    now = php.wait_count(2, timeout=3.0)               # restarted after 100 ms
    assert pids[1] in now, (pids, now)
    assert "child %d killed by signal 9; restarting in 100 ms" % pids[0] in php.log(), php.log()
    assert sp.poll() is None
    assert_serves(a, now)

    # Atrium still holds keep-alive connections, and php-cgi finishes a connection
    # before it honours SIGTERM: fcgistarter's SIGKILL after 5 s is what ends it.
    t0 = time.monotonic()
    assert stop(sp) == 0, php.log()
    assert time.monotonic() - t0 < 8.0
    assert php.pids() == [], php.log()


def test_unix_socket_stale_replaced_mode_0660(atrium, php, tmp_path):
    path = str(tmp_path / "php.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)                   # a socket file nobody listens on any more
    stale.close()

    sp = php.start("-u", path)
    assert wait_until(lambda: _unix_accepts(path), 5.0), php.log()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660, oct(os.stat(path).st_mode)
    pids = php.wait_count(1)
    a = atrium(CONF, server="unix:" + path, docroot=php.docroot)
    assert_serves(a, pids)

    # A live socket is not replaced.
    assert php.run("-u", path) == 1
    assert "fcgistarter: cannot listen on %s: Address already in use" % path in php.log()
    assert php.pids() == pids

    # With Atrium gone first the children are idle and go on SIGTERM alone.
    assert a.stop() == 0
    t0 = time.monotonic()
    assert stop(sp) == 0, php.log()
    assert time.monotonic() - t0 < 2.0, php.log()
    assert php.pids() == [], php.log()
    assert not os.path.exists(path)


def _unix_accepts(path):
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(path)
            return True
        except OSError:
            return False


def test_detached_children_keep_serving(atrium, php):
    port = free_port()
    t0 = time.monotonic()
    assert php.run("-p", port, "-i", "127.0.0.1", "-N", 2) == 0, php.log()
    assert time.monotonic() - t0 < 2.0
    pids = php.wait_count(2)
    for pid in pids:
        assert os.getsid(pid) == pid
    a = atrium(CONF, server="127.0.0.1:%d" % port, docroot=php.docroot)
    assert_serves(a, pids)


def test_port_in_use(php):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert php.run("-p", port, "-i", "127.0.0.1", "-N", 2) == 1
    assert ("fcgistarter: cannot listen on 127.0.0.1:%d: Address already in use\n" % port
            in php.log()), php.log()
    assert php.pids() == []


@pytest.mark.parametrize("args", [
    [], ["-c"], ["-N", "2"], ["-p", "0"], ["-p", "65536"], ["-p", "9x"], ["-N", "0"],
    ["-p", "9000", "-u", "/tmp/x.sock"], ["-u", "/tmp/x.sock", "-i", "127.0.0.1"],
    ["-p", "9000", "extra"], ["-x"],
])
def test_usage_errors(args):
    if not os.access(FCGISTARTER_BIN, os.X_OK):
        pytest.fail("fcgistarter %r not found (set FCGISTARTER_BIN)" % FCGISTARTER_BIN,
                    pytrace=False)
    # -c first only where the case is not about -c itself.
    full = args if not args or args[0] in ("-c", "-x") else ["-c", PHP_CGI] + args
    r = subprocess.run([FCGISTARTER_BIN] + full, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=5)
    assert r.returncode == 2, (full, r)
    assert "Usage: fcgistarter -c command -p port" in r.stderr, r.stderr
    assert r.stdout == ""


def test_help():
    if not os.access(FCGISTARTER_BIN, os.X_OK):
        pytest.fail("fcgistarter %r not found (set FCGISTARTER_BIN)" % FCGISTARTER_BIN,
                    pytrace=False)
    r = subprocess.run([FCGISTARTER_BIN, "-h"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=5)
    assert r.returncode == 0 and "Usage: fcgistarter" in r.stdout and r.stderr == "", r
