"""Gateway servers for the FastCGI and SCGI tests: php-fpm and uWSGI.

Import the fixtures into a test module to use them:

    from gateways import php_fpm, uwsgi_scgi  # noqa: F401  (pytest fixtures)

- `php_fpm(max_children=4, unix=False, extra="")` starts php-fpm (foreground,
  its own generated config, error log and state dir in tmp_path) listening on a
  free 127.0.0.1 port or, with unix=True, on a unix socket; returns a PhpFpm.
- `uwsgi_scgi(threads=1)` starts uWSGI serving apps/wsgi_app.py over SCGI on a
  free port; returns a Uwsgi.

Both start in their own session so that the whole process group (master and
workers) can be killed by its id; teardown kills whatever is left. Every wait
is bounded.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import free_port, port_open, wait_until

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
PHP_DOCROOT = APPS                      # SCRIPT_FILENAME = root + path: apps/php/x.php
WSGI_APP = APPS / "wsgi_app.py"
PHP_FPM_BIN = os.environ.get("PHP_FPM_BIN", "/usr/sbin/php-fpm8.2")
UWSGI_BIN = os.environ.get("UWSGI_BIN", "/usr/bin/uwsgi")


def unix_open(path, timeout=0.5):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


def tcp_established_to(port):
    """Established TCP connections whose destination port is `port` (the
    client side, i.e. the proxy's connections to the gateway)."""
    out = subprocess.run(["ss", "-Htn", "state", "established", "( dport = :%d )" % port],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    return [l for l in out.stdout.splitlines() if l.strip()]


class _Group:
    """A process started in its own session; its group can be killed by id.
    Its output goes to self.log_path."""

    proc = None

    @property
    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill_group(self, sig=signal.SIGKILL):
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)

    def stop(self):
        if self.proc is None:
            return
        if self._alive():
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        # workers left behind (or a master that ignored SIGTERM)
        self.kill_group(signal.SIGKILL)


# ---------------------------------------------------------------- php-fpm

class PhpFpm(_Group):
    def __init__(self, workdir, max_children=4, unix=False, extra=""):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state = self.dir / "state"          # hold.php's counters and gates
        self.state.mkdir(exist_ok=True)
        self.max_children = max_children
        self.extra = extra
        self.sockdir = None
        if unix:
            # sun_path is short: keep the socket path well under 108 bytes
            self.sockdir = tempfile.mkdtemp(prefix="atr-fpm-")
            self.listen = os.path.join(self.sockdir, "php.sock")
            self.port = None
        else:
            self.port = free_port()
            self.listen = "127.0.0.1:%d" % self.port
        self.conf_path = self.dir / "php-fpm.conf"
        self.log_path = self.dir / "php-fpm.log"
        self.starts = 0

    @property
    def addr(self):
        """The address as written in an Atrium `server` line."""
        return "unix:%s" % self.listen if self.port is None else self.listen

    def conf_text(self):
        return "\n".join([
            "[global]",
            "pid = %s" % (self.dir / "php-fpm.pid"),
            "error_log = %s" % self.log_path,
            "log_level = notice",
            "daemonize = no",
            "",
            "[gw]",
            "user = root",
            "group = root",
            "listen = %s" % self.listen,
            "listen.mode = 0666",
            "listen.backlog = 64",
            "pm = static",
            "pm.max_children = %d" % self.max_children,
            "catch_workers_output = yes",
            "decorate_workers_output = no",
            "clear_env = yes",
            "env[GW_STATE_DIR] = %s" % self.state,
            "php_admin_value[post_max_size] = 200M",
            "php_admin_value[upload_max_filesize] = 200M",
            "php_admin_value[memory_limit] = 512M",
            "php_admin_value[max_execution_time] = 30",
            "php_admin_flag[enable_post_data_reading] = off",
            "php_admin_flag[display_errors] = off",
            "php_admin_flag[log_errors] = on",
            self.extra,
            "",
        ])

    def _accepts(self):
        if self.port is None:
            return unix_open(self.listen, 0.2)
        return port_open(self.port, 0.2)

    def start(self, timeout=10.0):
        self.conf_path.write_text(self.conf_text())
        log = open(self.dir / ("stdout-%d.log" % self.starts), "wb")
        self.starts += 1
        # -n: no php.ini (defaults + the pool's php_admin_*); -R: run as root
        self.proc = subprocess.Popen([PHP_FPM_BIN, "-n", "-R", "-F", "-y", str(self.conf_path)],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=str(self.dir))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("php-fpm exited %s before accepting:\n%s"
                                     % (self.proc.returncode, self.log[-3000:]))
            if self._accepts():
                # the workers (pm static) are forked right after the socket is bound
                wait_until(lambda: len(self.children()) >= self.max_children, 10.0)
                return self
            time.sleep(0.02)
        self.kill_group()
        raise AssertionError("php-fpm does not accept on %s after %.0fs:\n%s"
                             % (self.listen, timeout, self.log[-3000:]))

    def children(self):
        """Pids whose parent is the master."""
        if not self._alive():
            return []
        try:
            with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []

    def kill(self):
        """SIGKILL the master and every worker (a crash of the whole pool)."""
        self.kill_group(signal.SIGKILL)
        gone = wait_until(lambda: not self._accepts(), 5.0)
        assert gone, "php-fpm still accepts after SIGKILL"

    def counter(self, name):
        try:
            return int((self.state / name).read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def open_gate(self, name):
        (self.state / ("gate-" + name)).write_text("1")

    def cleanup(self):
        self.stop()
        if self.sockdir:
            shutil.rmtree(self.sockdir, ignore_errors=True)


@pytest.fixture
def php_fpm(tmp_path):
    started = []

    def factory(max_children=4, unix=False, extra=""):
        last = None
        for attempt in range(3):            # a port taken meanwhile: try another one
            f = PhpFpm(tmp_path / ("fpm%d" % len(started)), max_children, unix, extra)
            started.append(f)
            try:
                return f.start()
            except AssertionError as e:
                last = e
                f.cleanup()
        raise last

    yield factory
    for f in started:
        f.cleanup()


# ---------------------------------------------------------------- uWSGI (SCGI)

class Uwsgi(_Group):
    def __init__(self, workdir, threads=1):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state = self.dir / "state"
        self.state.mkdir(exist_ok=True)
        self.threads = threads
        self.port = free_port()
        self.log_path = self.dir / "uwsgi.log"

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        # uWSGI's SIGTERM path waits ~1 s to bury its worker; nothing graceful is
        # needed from a test server, so the whole group is killed by its id.
        self.kill_group(signal.SIGKILL)

    def start(self, timeout=15.0):
        args = [UWSGI_BIN, "--plugins", "python3", "--scgi-socket", self.addr,
                "--wsgi-file", str(WSGI_APP), "--master", "--processes", "1",
                "--die-on-term", "--need-app", "--buffer-size", "32768"]
        if self.threads > 1:
            args += ["--threads", str(self.threads)]
        env = dict(os.environ, GW_STATE_DIR=str(self.state))
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, cwd=str(self.dir))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("uwsgi exited %s before accepting:\n%s"
                                     % (self.proc.returncode, self.log[-3000:]))
            if port_open(self.port, 0.2):
                return self
            time.sleep(0.02)
        self.kill_group()
        raise AssertionError("uwsgi does not accept on %d after %.0fs:\n%s"
                             % (self.port, timeout, self.log[-3000:]))

    def inflight(self, name):
        return (self.state / ("inflight-" + name)).exists()

    def open_gate(self, name):
        (self.state / ("gate-" + name)).write_text("1")


@pytest.fixture
def uwsgi_scgi(tmp_path):
    started = []

    def factory(threads=1):
        last = None
        for attempt in range(3):
            u = Uwsgi(tmp_path / ("uwsgi%d" % len(started)), threads)
            started.append(u)
            try:
                return u.start()
            except AssertionError as e:
                last = e
                u.stop()
        raise last

    yield factory
    for u in started:
        u.stop()


# ---------------------------------------------------------------- Atrium configs

def fastcgi_conf(fpm, upstream_extra="", server_params="", route_extra="", docroot=PHP_DOCROOT):
    """upstream `php` (FastCGI) and `host * { route /php/ { proxy php; root; index } }`."""
    return "\n".join([
        "upstream php {",
        "    protocol fastcgi;",
        "    server %s%s;" % (fpm.addr, (" " + server_params) if server_params else ""),
        "    " + upstream_extra,
        "}",
        "host * {",
        "    route /php/ { proxy php; root %s; index index.php; %s }" % (docroot, route_extra),
        "}",
    ])


def scgi_conf(app, upstream_extra="", route_extra=""):
    """upstream `pyapp` (SCGI) and `host * { route /py/ { proxy pyapp; } }`."""
    return "\n".join([
        "upstream pyapp {",
        "    protocol scgi;",
        "    server %s;" % app.addr,
        "    " + upstream_extra,
        "}",
        "host * {",
        "    route /py/ { proxy pyapp; %s }" % route_extra,
        "}",
    ])
