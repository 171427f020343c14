"""Packaging (issue 14): what `meson install` puts in place, and the Debian
package built from the tree, started the way its unit file says.

Nothing is installed into this machine's root: `meson install --destdir` and
`dpkg-deb -x` write into temporary directories, and the extracted binary runs
with the extracted config, its paths moved into the temporary root.

- The install comes from the build directory of ATRIUM_BIN (whatever prefix it
  was set up with), or from a fresh `meson setup --prefix=/usr` of ATRIUM_SRC
  when ATRIUM_BIN is not in a meson build directory.
- A second, unoptimised build is installed into a prefix the test owns (no
  destdir) so that its binary's default config, a build setting, is a real
  path: a bare `atrium -t` must check the installed config.
- The package is built with `dpkg-buildpackage -us -uc -b` from a copy of the
  tree (the files git knows, committed or not), bounded by BUILD_TIMEOUT,
  extracted, and run twice: as root from the unit's command lines (start,
  reopen, reload, stop), and as nobody with only the unit's capability
  (setpriv plays User= and AmbientCapabilities=).

Run: ATRIUM_BIN=build/atrium ATRIUM_SRC=. python3 -m pytest tests/integration/test_packaging.py
"""

import json
import os
import random
import re
import shlex
import shutil
import signal
import stat
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import ATRIUM_BIN, BAD_LOG_RE, STARTED_RE, free_port, get, wait_port, wait_until

SRC = Path(os.environ.get("ATRIUM_SRC", Path(__file__).resolve().parents[2]))
BUILD_TIMEOUT = 600  # a plain build of the package takes about 20 s here


def run(cmd, timeout=120, **kw):
    """Run cmd; fail with its output if it exits non-zero."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, "%s: exit %d\n%s\n%s" % (cmd, r.returncode, r.stdout[-3000:],
                                                     r.stderr[-3000:])
    return r


def need(*tools):
    for t in tools:
        if shutil.which(t) is None:
            pytest.skip("%s is not installed (tools/dev installs it)" % t)


def find_unit(root):
    """The unit wherever the install put it (systemd's directory, or PREFIX's)."""
    units = sorted(root.glob("**/systemd/system/atrium.service"))
    assert len(units) == 1, "atrium.service in %s: %s" % (root, units)
    return units[0]


def unit_values(unit, key):
    """Every value of KEY= in the unit, in order."""
    return [l.split("=", 1)[1].strip() for l in unit.read_text().splitlines()
            if l.startswith(key + "=")]


# ---------------------------------------------------------------- meson install

@pytest.fixture(scope="module")
def meson_root(tmp_path_factory):
    """(destdir, install options) of a `meson install` of the tree."""
    need("meson", "ninja")
    tmp = tmp_path_factory.mktemp("meson-install")
    build = Path(ATRIUM_BIN).resolve().parent
    if not (build / "build.ninja").is_file():
        build = tmp / "build"
        run(["meson", "setup", str(build), str(SRC), "--prefix=/usr"], timeout=120)
    root = tmp / "root"
    run(["meson", "install", "-C", str(build), "--destdir", str(root)], timeout=BUILD_TIMEOUT)
    opts = json.loads(run(["meson", "introspect", "--buildoptions", str(build)]).stdout)
    return root, {o["name"]: o["value"] for o in opts}


def test_meson_install_puts_every_file_in_place(meson_root):
    root, o = meson_root
    at = lambda *p: root / os.path.join(o["prefix"], *p).lstrip("/")
    expected = [
        at(o["sbindir"], "atrium"),
        at(o["bindir"], "fcgistarter"),
        at(o["mandir"], "man8", "atrium.8"),
        at(o["mandir"], "man5", "atrium.conf.5"),
        at(o["mandir"], "man1", "fcgistarter.1"),
        at(o["sysconfdir"], "atrium", "atrium.conf"),
        at(o["sysconfdir"], "logrotate.d", "atrium"),
        at(o["datadir"], "atrium", "www", "index.html"),
        at(o["datadir"], "doc", "atrium", "config.md"),
    ]
    missing = [str(p) for p in expected if not p.is_file()]
    assert not missing, "not installed: %s" % missing
    assert all(os.access(p, os.X_OK) for p in expected[:2])  # the two programs
    unit = find_unit(root)
    # The unit runs the binary where it was installed, on the installed config.
    start = unit_values(unit, "ExecStart")[0]
    assert start == "%s -c %s" % (os.path.join(o["prefix"], o["sbindir"], "atrium"),
                                  os.path.join(o["prefix"], o["sysconfdir"], "atrium",
                                               "atrium.conf"))
    # The installed config points at the installed page, not at a source tree.
    conf = at(o["sysconfdir"], "atrium", "atrium.conf").read_text()
    www = os.path.join(o["prefix"], o["datadir"], "atrium", "www")
    assert "static %s;" % www in conf and "static www;" not in conf


def help_default(binary):
    """The configuration BINARY reads without -c, as its --help prints it."""
    out = run([str(binary), "--help"]).stdout
    m = re.search(r"^  -c, --config FILE  configuration file \(default (.+)\)$", out, re.M)
    assert m, out
    return m.group(1)


def test_installed_binary_defaults_to_the_installed_config(meson_root):
    root, o = meson_root
    conf = os.path.join(o["prefix"], o["sysconfdir"], "atrium", "atrium.conf")
    # A build that names its own default (tools/dev: the tree's) keeps it; the
    # build option's default is where the install put the config.
    want = o["default_config"] or conf
    assert help_default(root / os.path.join(o["prefix"], o["sbindir"], "atrium").lstrip("/")) == want


@pytest.fixture(scope="module")
def prefix_install(tmp_path_factory):
    """A `meson install` into a prefix the test owns (no destdir): the installed
    binary then finds its installed config at its real path."""
    need("meson", "ninja")
    tmp = tmp_path_factory.mktemp("prefix-install")
    prefix, build = tmp / "prefix", tmp / "build"
    # Unoptimised: this build is about paths. The unit goes under the prefix
    # too (systemd.pc would say the machine's own directory).
    run(["meson", "setup", str(build), str(SRC), "--prefix=%s" % prefix, "-Db_lto=false",
         "-Doptimization=0", "-Dsystemdunitdir=%s" % (prefix / "lib/systemd/system")],
        timeout=BUILD_TIMEOUT)
    run(["meson", "install", "-C", str(build)], timeout=BUILD_TIMEOUT)
    installed = json.loads(run(["meson", "introspect", "--installed", str(build)]).stdout)
    outside = [p for p in installed.values() if not p.startswith(str(prefix) + "/")]
    assert not outside, "installed outside the prefix: %s" % outside
    return prefix


def test_bare_t_checks_the_installed_config(prefix_install):
    """`atrium -t` with no -c, from anywhere, checks PREFIX/etc/atrium/atrium.conf
    (it used to look for conf/atrium.conf in the working directory)."""
    prefix = prefix_install
    conf = prefix / "etc" / "atrium" / "atrium.conf"
    binary = prefix / "sbin" / "atrium"
    assert help_default(binary) == str(conf)
    (prefix / "var" / "log" / "atrium").mkdir(parents=True)  # the unit's LogsDirectory=
    # The unit's RuntimeDirectory= (the control socket, the pid file) is always
    # /run/atrium: moved under the prefix, as localize() does for the package.
    (prefix / "run").mkdir()
    text = conf.read_text()
    assert "/run/atrium/" in text
    conf.write_text(text.replace("/run/atrium/", "%s/run/" % prefix))
    r = subprocess.run([str(binary), "-t"], capture_output=True, text=True, timeout=60, cwd="/")
    assert r.returncode == 0, r.stderr
    assert "atrium: configuration %s is ok" % conf in r.stderr, r.stderr
    dump = run([str(binary), "-T"], cwd="/").stdout
    assert dump.startswith("# effective configuration of %s\n" % conf), dump[:200]
    assert "static %s;" % (prefix / "share" / "atrium" / "www") in dump

    # An edit to the installed file is what a bare -t sees.
    conf.write_text(conf.read_text() + "\nbogus_directive 1;\n")
    r = subprocess.run([str(binary), "-t"], capture_output=True, text=True, timeout=60, cwd="/")
    assert r.returncode == 1 and r.stderr.startswith("%s:" % conf), r.stderr


def man(page):
    """The page rendered at 80 columns; man's --warnings output must be empty."""
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
    r = run(["man", "--warnings", "-l", str(page)], env=env)
    assert r.stderr == "", "%s: groff warnings:\n%s" % (page, r.stderr)
    return r.stdout


def test_man_pages_render_without_warnings(meson_root):
    need("man")
    root, o = meson_root
    mandir = root / os.path.join(o["prefix"], o["mandir"]).lstrip("/")
    prog = man(mandir / "man8" / "atrium.8")
    for word in ("-c file", "-t, --test", "-T, --dump", "-s signal", "-v, --version",
                 "-h, --help", "SIGHUP", "SIGTERM", "SIGINT", "SIGUSR1", "EXIT STATUS",
                 "/etc/atrium/atrium.conf", "atrium.conf(5)"):
        assert word in prog, "atrium(8) does not mention %r" % word
    for word in ("-c command", "-u path", "-N num", "-f", "EXIT STATUS"):
        assert word in man(mandir / "man1" / "fcgistarter.1"), word
    conf = man(mandir / "man5" / "atrium.conf.5")
    # Every directive of the reference's tables has its entry in the page.
    ref = (SRC / "docs" / "config.md").read_text() + (SRC / "docs" / "tls.md").read_text()
    names = {n for n in re.findall(r"^\| \[?`([a-z_]+)`", ref, re.M)
             if not n.startswith("atrium_")}  # the status page's metrics
    names |= {"root", "cgi", "spawn", "include"}  # sections of their own, not in a table
    assert len(names) > 60
    missing = sorted(n for n in names if not re.search(r"\b%s\b" % n, conf))
    assert not missing, "atrium.conf(5) lacks %s" % missing


def test_logrotate_snippet_parses(meson_root):
    need("logrotate")
    root, o = meson_root
    snippet = root / os.path.join(o["prefix"], o["sysconfdir"], "logrotate.d",
                                  "atrium").lstrip("/")
    text = snippet.read_text()
    assert "USR1" in text and "-s reopen" in text
    r = run(["logrotate", "--debug", "--state", str(root / "logrotate.state"), str(snippet)])
    assert "error" not in r.stdout + r.stderr, r.stdout + r.stderr


# ---------------------------------------------------------------- the Debian package

def tree_files():
    """The files of the tree as git sees them, uncommitted changes included."""
    r = run(["git", "-C", str(SRC), "ls-files", "-z", "--cached", "--others",
             "--exclude-standard"])
    return [f for f in r.stdout.split("\0") if f and (SRC / f).is_file()]


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    """(the .deb, its extracted root) built from a copy of the tree."""
    need("dpkg-buildpackage", "dh", "fakeroot", "git")
    tmp = tmp_path_factory.mktemp("deb")
    tree = tmp / "src" / "atrium"  # the .deb lands in its parent
    for f in tree_files():
        (tree / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(SRC / f, tree / f)
    r = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=tree,
                       capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert r.returncode == 0, "dpkg-buildpackage failed:\n%s\n%s" % (r.stdout[-4000:],
                                                                     r.stderr[-4000:])
    debs = [p for p in (tmp / "src").glob("atrium_*.deb")]
    assert len(debs) == 1, debs
    root = tmp / "root"
    run(["dpkg-deb", "-x", str(debs[0]), str(root)])
    return debs[0], root


def test_deb_holds_the_install_and_its_dependencies(deb):
    path, root = deb
    for f in ("usr/sbin/atrium", "usr/bin/fcgistarter", "etc/atrium/atrium.conf",
              "etc/logrotate.d/atrium", "usr/share/atrium/www/index.html",
              "usr/share/man/man8/atrium.8.gz", "usr/share/man/man5/atrium.conf.5.gz",
              "usr/share/man/man1/fcgistarter.1.gz",
              "usr/share/doc/atrium/config.md"):
        assert (root / f).is_file(), f
    find_unit(root)
    # The packaged binary reads the packaged config without -c.
    assert help_default(root / "usr/sbin/atrium") == "/etc/atrium/atrium.conf"
    depends = run(["dpkg-deb", "-f", str(path), "Depends"]).stdout
    # BoringSSL lives in a private directory found through the rpath: shlibdeps
    # must still have turned it into a dependency.
    for p in ("android-libboringssl", "libuv1", "libc-ares2", "adduser"):
        assert p in depends, depends
    control = Path(run(["mktemp", "-d"]).stdout.strip())
    try:
        run(["dpkg-deb", "-e", str(path), str(control)])
        assert "/etc/atrium/atrium.conf" in (control / "conffiles").read_text()
        postinst = (control / "postinst").read_text()
        assert "adduser --system" in postinst and "atrium.service" in postinst
    finally:
        shutil.rmtree(control)


def rooted(unit_text, root):
    """The unit with the package's own executables moved into ROOT."""
    return re.sub(r"(?<=[= ])(/usr/s?bin/)", str(root) + r"\1", unit_text)


def test_deb_unit_verifies(deb, tmp_path):
    need("systemd-analyze")
    _, root = deb
    unit = tmp_path / "atrium.service"
    unit.write_text(rooted(find_unit(root).read_text(), root))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    # systemd's SIGKILL must not cut the drain short.
    conf = (root / "etc/atrium/atrium.conf").read_text()
    drain = int(re.search(r"^drain_timeout (\d+)s;", conf, re.M).group(1))
    stop = int(re.fullmatch(r"(\d+)s", unit_values(unit, "TimeoutStopSec")[0]).group(1))
    assert stop > drain
    assert unit_values(unit, "ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert unit_values(unit, "KillSignal") == ["SIGTERM"]


def localize(root, tmp, port=None):
    """Make the extracted config runnable from ROOT as root would run it:
    the unit's LogsDirectory and RuntimeDirectory become directories in TMP,
    absolute paths into the package move into ROOT, the listener to a free
    port. Returns (port, the directory map)."""
    unit = find_unit(root)
    dirs = {"/var/log/" + unit_values(unit, "LogsDirectory")[0]: tmp / "log",
            "/run/" + unit_values(unit, "RuntimeDirectory")[0]: tmp / "run"}
    for d in dirs.values():
        d.mkdir()
    conf_path = root / "etc/atrium/atrium.conf"
    text = conf_path.read_text()
    for system, local in dirs.items():
        assert system in text, "the config does not use %s" % system
        text = text.replace(system + "/", str(local) + "/")

    def into_root(m):
        p = m.group(0)
        return str(root) + p if (root / p.lstrip("/")).exists() else p
    text = re.sub(r"(?<= )/(usr|etc)/[^\s;]+", into_root, text)
    port = port or free_port()
    assert text.count("listen 127.0.0.1:8080;") == 1
    text = text.replace("listen 127.0.0.1:8080;", "listen 127.0.0.1:%d;" % port)
    conf_path.write_text(text)
    return port, dirs


def command(unit, key, root, **subst):
    """KEY='s command line of the unit, its package paths moved into ROOT."""
    line = rooted(key + "=" + unit_values(unit, key)[0], root).split("=", 1)[1]
    for k, v in subst.items():
        line = line.replace("$" + k, v)
    return [str(root) + a if a.startswith("/etc/") else a for a in shlex.split(line)]


def test_deb_serves_the_default_page_as_its_unit_starts_it(deb, tmp_path):
    _, root = deb
    port, dirs = localize(root, tmp_path)
    unit = find_unit(root)
    run(command(unit, "ExecStartPre", root))  # atrium -t, as systemd would first
    argv = command(unit, "ExecStart", root)
    assert argv[0] == str(root / "usr/sbin/atrium")
    out = open(tmp_path / "stdout.log", "wb")
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd="/")
    log, access = dirs["/var/log/atrium"] / "error.log", dirs["/var/log/atrium"] / "access.log"
    try:
        wait_port(port, 10, proc, "the packaged atrium")
        assert wait_until(lambda: log.exists() and STARTED_RE.search(log.read_text()), 5)
        r = get(port, "/")
        assert r.status == 200 and b"<h1>Atrium is running</h1>" in r.body
        assert get(port, "/healthz").body == b"ok"
        assert wait_until(lambda: access.exists() and '"GET / HTTP/1.1" 200' in access.read_text())
        pid = int((dirs["/run/atrium"] / "atrium.pid").read_text())
        assert pid == proc.pid

        # As logrotate does: move the log away, then SIGUSR1 (the snippet's).
        access.rename(access.with_suffix(".log.1"))
        proc.send_signal(signal.SIGUSR1)
        assert wait_until(lambda: "log files reopened" in log.read_text())
        get(port, "/healthz")
        assert wait_until(lambda: access.exists() and "/healthz" in access.read_text())

        # systemctl reload: the unit's ExecReload with its $MAINPID.
        run(command(unit, "ExecReload", root, MAINPID=str(proc.pid)))
        assert wait_until(lambda: re.search(r"reload: generation \d+ active", log.read_text()))
        assert get(port, "/").status == 200

        # the runtime API on the installed config's socket, as an operator types it
        ctl = run([str(root / "usr/sbin/atrium"), "-c", str(root / "etc/atrium/atrium.conf"),
                   "ctl", "show", "info"])
        assert "generation 2\n" in ctl.stdout and "pid %d\n" % proc.pid in ctl.stdout

        # systemctl stop: KillSignal to the main process; a graceful exit.
        proc.send_signal(getattr(signal, unit_values(unit, "KillSignal")[0]))
        assert proc.wait(timeout=35) == 0
        assert not (dirs["/run/atrium"] / "atrium.pid").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
    text = log.read_text() + (tmp_path / "stdout.log").read_text(errors="replace")
    assert not BAD_LOG_RE.search(text), text[-3000:]


def low_port():
    """A free port below 1024, which only CAP_NET_BIND_SERVICE may bind."""
    for p in random.sample(range(600, 1000), 400):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
                return p
            except OSError:
                continue
    raise RuntimeError("no free port below 1024")


def test_deb_runs_unprivileged_with_the_units_capability_only(deb):
    """The unit's User= and AmbientCapabilities=, played by setpriv with
    nobody: the package never needs root, and a reload still binds a new port
    below 1024 (what a `user` line in the config, dropping root after the
    first bind, could not do)."""
    need("setpriv")
    if os.getuid() != 0:
        pytest.skip("needs root to change user")
    path, _ = deb
    unit = find_unit(deb[1])
    caps = unit_values(unit, "AmbientCapabilities")
    assert caps == unit_values(unit, "CapabilityBoundingSet") == ["CAP_NET_BIND_SERVICE"]
    assert unit_values(unit, "User") == ["atrium"]
    tmp = Path(tempfile.mkdtemp(prefix="atrium-pkg-"))  # pytest's tmp is root's only
    proc = None
    try:
        tmp.chmod(0o755)
        root = tmp / "root"
        run(["dpkg-deb", "-x", str(path), str(root)])
        port, dirs = localize(root, tmp, low_port())
        for d in dirs.values():
            os.chown(d, 65534, 65534)
        setpriv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                   "--nnp", "--bounding-set=-all,+net_bind_service",
                   "--inh-caps=-all,+net_bind_service", "--ambient-caps=+net_bind_service"]
        proc = subprocess.Popen(setpriv + command(unit, "ExecStart", root), cwd="/",
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port, 10, proc, "the packaged atrium as nobody")
        status = Path("/proc/%d/status" % proc.pid).read_text()
        assert re.search(r"^Uid:\t65534\t65534\t65534\t65534$", status, re.M), status
        assert re.search(r"^CapEff:\t0+400$", status, re.M), status  # bit 10 alone
        assert get(port, "/healthz").body == b"ok"
        sock = os.stat(dirs["/run/atrium"] / "atrium.sock")  # the runtime API: the user's only
        assert (sock.st_uid, stat.S_IMODE(sock.st_mode)) == (65534, 0o600)

        second = low_port()
        conf = root / "etc/atrium/atrium.conf"
        conf.write_text(conf.read_text().replace(
            "listen 127.0.0.1:%d;" % port,
            "listen 127.0.0.1:%d;\nlisten 127.0.0.1:%d;" % (port, second)))
        log = dirs["/var/log/atrium"] / "error.log"
        proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: re.search(r"reload: generation \d+ active", log.read_text())), \
            log.read_text()[-2000:]
        wait_port(second, 5, proc, "the reloaded atrium")
        assert get(second, "/healthz").body == b"ok"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=35) == 0
        assert not (dirs["/run/atrium"] / "atrium.pid").exists()  # removed as nobody
        assert not BAD_LOG_RE.search(log.read_text())
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp)
