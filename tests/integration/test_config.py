"""Command line and configuration: -v, -t, -T, error positions, includes."""

import re
import subprocess

import pytest

from conftest import ATRIUM_BIN, HERE, free_port, get, port_open, render, run_atrium

# A valid config; {{...}} are filled per test. Line numbers matter below.
BASE = """\
workers 1;
error_log {{dir}}/error.log info;
listen 127.0.0.1:{{port}};
upstream app {
    server 127.0.0.1:{{p1}};
}
host * {
    route / { proxy app; }
}
"""


def write(tmp_path, text, name="atrium.conf", **kw):
    kw.setdefault("dir", tmp_path)
    kw.setdefault("port", free_port())
    kw.setdefault("p1", free_port())
    path = tmp_path / name
    path.write_text(render(text, **kw))
    return path


def error_positions(stderr, path):
    """[(line, col, message)] for every `FILE:LINE:COL: message` line naming path."""
    rx = re.compile(r"^%s:(\d+):(\d+): (.*\S.*)$" % re.escape(str(path)), re.M)
    return [(int(l), int(c), m) for l, c, m in rx.findall(stderr)]


def test_help_and_long_options(tmp_path):
    for args in (["--help"], ["-h"]):
        r = run_atrium(args)
        assert r.returncode == 0 and "usage: atrium" in r.stdout and "--config" in r.stdout, r
    r = run_atrium(["--bogus"])
    assert r.returncode == 2 and "usage: atrium" in r.stderr, r
    p = tmp_path / "a.conf"
    p.write_text("listen 127.0.0.1:1;\nhost * { route / { return 200; } }\n")
    r = run_atrium(["--test", "--config", str(p)])
    assert r.returncode == 0 and "is ok" in r.stderr, r
    assert "atrium " in run_atrium(["--version"]).stdout


def test_version():
    r = run_atrium(["-v"])
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert re.search(r"(?i)atrium[ /v]*\d+\.\d+", out), out
    assert re.search(r"libuv[ /v]*1\.\d+", out), out
    assert "BoringSSL" in out, out
    assert re.search(r"c-ares[ /v]*1\.\d+", out), out


def test_check_good_config(tmp_path):
    path = write(tmp_path, BASE)
    r = run_atrium(["-t", "-c", str(path)])
    assert r.returncode == 0, r.stderr
    assert not error_positions(r.stderr, path)


def test_check_example_config_from_design(tmp_path):
    """The example every engineer got: all directives, sizes and durations."""
    (tmp_path / "www").mkdir()
    path = write(tmp_path, """\
workers 1;
error_log {{dir}}/error.log debug;
access_log {{dir}}/access.log combined;   # or json
listen 127.0.0.1:{{port}};
keepalive_timeout 750ms;
max_request_line 8k;
max_header_size 32k;
max_headers 100;
max_body_size 1m;
header_timeout 10s;
body_timeout 10s;
send_timeout 10s;
keepalive_requests 1000;
drain_timeout 30s;
via atrium;
upstream app {
    balance round_robin;   # round_robin | least_conn | random2
    server 127.0.0.1:{{p1}};
    server 127.0.0.1:{{p2}} weight=2 max_conns=100;
    connect_timeout 2s; read_timeout 60s; keepalive 32; queue 128; queue_timeout 5s; retries 2; fail_timeout 10s;
}
upstream lc { balance least_conn; server 127.0.0.1:{{p1}}; }
upstream r2 { balance random2; server 127.0.0.1:{{p1}}; server 127.0.0.1:{{p2}}; }
host * {
    route /static/ { static {{dir}}/www; }
    route /ret/ { return 200 "hello"; }
    route / { proxy app; request_header set X-A 1; response_header add X-B 2; request_header remove X-C; }
}
""", p2=free_port())
    r = run_atrium(["-t", "-c", str(path)])
    assert r.returncode == 0, r.stderr


def test_check_does_not_start(tmp_path):
    port = free_port()
    path = write(tmp_path, BASE, port=port)
    r = run_atrium(["-t", "-c", str(path)], timeout=10)
    assert r.returncode == 0, r.stderr
    assert not port_open(port)


# (name, text, expected line, allowed columns or None for any)
BAD = [
    ("unknown_top_level", BASE + "bogus_directive 1;\n", 10, {1}),
    ("unknown_in_upstream",
     BASE.replace("    server 127.0.0.1:{{p1}};\n",
                  "    server 127.0.0.1:{{p1}};\n    frobnicate yes;\n"), 6, {5}),
    ("undefined_upstream", BASE.replace("proxy app;", "proxy nosuch;"), 8, {15, 21}),
    ("bad_duration",
     BASE.replace("upstream app {", "keepalive_timeout 7parsecs;\nupstream app {"), 4, {1, 19}),
    ("bad_size", BASE.replace("upstream app {", "max_body_size 12q;\nupstream app {"), 4, {1, 15}),
    ("bad_balance",
     BASE.replace("upstream app {\n", "upstream app {\n    balance fastest;\n"), 5, {5, 13}),
    ("missing_semicolon", BASE.replace("{ proxy app; }", "{ proxy app }"), 8, {25}),
    ("duplicate_upstream", BASE + "upstream app { server 127.0.0.1:1; }\n", 10, {1, 10}),
    ("bad_listen_port", BASE.replace("listen 127.0.0.1:{{port}};", "listen 127.0.0.1:99999;"),
     3, {1, 8}),
    ("stray_close_brace", BASE + "}\n", 10, {1}),
    ("directive_wrong_context", BASE + "balance round_robin;\n", 10, {1}),
    ("bad_weight",
     BASE.replace("server 127.0.0.1:{{p1}};", "server 127.0.0.1:{{p1}} weight=abc;"), 5, None),
]


@pytest.mark.parametrize("name,text,line,cols", BAD, ids=[b[0] for b in BAD])
def test_check_bad_config_position(tmp_path, name, text, line, cols):
    path = write(tmp_path, text)
    r = run_atrium(["-t", "-c", str(path)])
    assert r.returncode == 1, (r.returncode, r.stderr)
    pos = error_positions(r.stderr, path)
    assert pos, "no `%s:LINE:COL: message` line on stderr:\n%s" % (path, r.stderr)
    l, c, msg = pos[0]
    assert l == line, r.stderr
    if cols is not None:
        assert c in cols, r.stderr
    assert c >= 1


def test_error_in_included_file_names_that_file(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10-app.conf").write_text(
        "upstream app {\n    server 127.0.0.1:%d;\n}\n" % free_port())
    bad = tmp_path / "conf.d" / "20-bad.conf"
    bad.write_text("# a comment\n    nonsense_here on;\n")
    path = write(tmp_path, """\
workers 1;
error_log {{dir}}/error.log info;
listen 127.0.0.1:{{port}};
include {{dir}}/conf.d/*.conf;
host * { route / { proxy app; } }
""")
    r = run_atrium(["-t", "-c", str(path)])
    assert r.returncode == 1
    pos = error_positions(r.stderr, bad)
    assert pos and pos[0][:2] == (2, 5), r.stderr
    bad.unlink()
    r = run_atrium(["-t", "-c", str(path)])
    assert r.returncode == 0, r.stderr   # the glob include itself works


def test_bad_config_foreground_exits_1_and_never_listens(tmp_path):
    port = free_port()
    path = write(tmp_path, BASE + "bogus_directive 1;\n", port=port)
    r = run_atrium(["-c", str(path)], timeout=15)
    assert r.returncode == 1
    assert error_positions(r.stderr, path)[0][:2] == (10, 1), r.stderr
    assert not port_open(port)


def test_dump_effective_config(tmp_path):
    (tmp_path / "conf.d").mkdir()
    p1 = free_port()
    (tmp_path / "conf.d" / "app.conf").write_text(
        "upstream app {\n    server 127.0.0.1:%d weight=3;\n}\n" % p1)
    path = write(tmp_path, """\
workers 1;
error_log {{dir}}/error.log info;
listen 127.0.0.1:{{port}};
include {{dir}}/conf.d/*.conf;
host * { route / { proxy app; } }
""")
    r = run_atrium(["-T", "-c", str(path)])
    assert r.returncode == 0, r.stderr
    dump = r.stdout
    assert re.search(r"upstream\s+app\s*\{", dump), dump
    assert "127.0.0.1:%d" % p1 in dump, dump
    assert not re.search(r"(?m)^\s*include\b", dump), "includes must be resolved:\n" + dump
    # effective = with defaults filled in (values from the documented defaults)
    assert re.search(r"max_request_line\s+(8k|8192)\s*;", dump), dump
    assert re.search(r"max_headers\s+100\s*;", dump), dump
    assert re.search(r"header_timeout\s+(10s|10000ms)\s*;", dump), dump
    # and the dump is itself a valid config
    again = tmp_path / "dumped.conf"
    again.write_text(dump)
    r2 = run_atrium(["-t", "-c", str(again)])
    assert r2.returncode == 0, r2.stderr + "\n" + dump


def test_dump_quotes_what_needs_quoting(tmp_path):
    """-T output parses back to the same values: a `via` with '#' or a quote used to
    be dumped bare (a comment, an unterminated string)."""
    for via in ('"a#b"', '"it\'s"'):
        path = write(tmp_path, BASE.replace("listen", "via %s;\nlisten" % via, 1))
        r = run_atrium(["-T", "-c", str(path)])
        assert r.returncode == 0, r.stderr
        again = tmp_path / "dumped.conf"
        again.write_text(r.stdout)
        r2 = run_atrium(["-T", "-c", str(again)])
        assert r2.returncode == 0, r2.stderr + "\n" + r.stdout
        assert r2.stdout.splitlines()[1:] == r.stdout.splitlines()[1:]  # the first names the file


def test_units_and_comments_accepted(tmp_path):
    path = write(tmp_path, """\
workers 1;   # trailing comment
error_log {{dir}}/error.log info;
listen 127.0.0.1:{{port}};
keepalive_timeout 750ms;
header_timeout 2s;
body_timeout 5m;
max_body_size 64k;
max_header_size 1m;
upstream app {
    server 127.0.0.1:{{p1}};
    connect_timeout 500ms;
}
# a whole-line comment
host * {
    route / { proxy app; }
}
""")
    r = run_atrium(["-t", "-c", str(path)])
    assert r.returncode == 0, r.stderr


def test_started_config_serves(atrium):
    """The smallest complete config starts and answers."""
    a = atrium('host * { route / { return 200 "up"; } }')
    r = get(a.port, "/")
    assert (r.status, r.body) == (200, b"up")


def test_user_drops_privileges_after_binding(atrium):
    """`user NAME`: listeners are bound as root, then every thread runs as NAME."""
    import os
    import pwd
    if os.geteuid() != 0:
        pytest.skip("needs root")
    nobody = pwd.getpwnam("nobody")
    a = atrium('user nobody;\nhost * { route / { return 200 "x"; } }')
    assert get(a.port, "/").status == 200
    for tid in os.listdir("/proc/%d/task" % a.pid):
        status = open("/proc/%d/task/%s/status" % (a.pid, tid)).read()
        uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
        gids = re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()
        assert set(map(int, uids)) == {nobody.pw_uid}, (tid, uids)
        assert set(map(int, gids)) == {nobody.pw_gid}, (tid, gids)


def test_check_mode_refuses_what_a_start_refuses(tmp_path):
    """-t opens the access log and looks at a spawned set's socket directory, as a
    start does (it said ok and the start then failed), with FILE:LINE:COL; an error
    log that cannot be opened is refused by both (a start went on with stderr)."""
    cases = [
        ("access_log /nonexistent-dir/a.log;\n", 3, "access_log /nonexistent-dir/a.log"),
        ("upstream php { protocol fastcgi; server unix:/nonexistent-dir/x.sock;\n"
         "    spawn /bin/sleep 100; }\n", 4, "spawn: cannot listen on unix:/nonexistent-dir"),
    ]
    base_bad_log = BASE.replace("error_log {{dir}}/error.log info;",
                                "error_log /nonexistent-dir/e.log info;")
    for extra, line, msg in cases + [(None, 2, "error_log /nonexistent-dir/e.log")]:
        if extra is None:
            path = write(tmp_path, base_bad_log)
        else:
            path = write(tmp_path, BASE.replace("listen", extra + "listen", 1))
        for args in (["-t", "-c", str(path)], ["-c", str(path)]):
            r = run_atrium(args, timeout=15)
            assert r.returncode == 1, (args, r.stdout, r.stderr)
            pos = error_positions(r.stderr, path)
            assert pos and pos[0][0] == line and msg in pos[0][2], (args, r.stderr)


def test_relative_paths_follow_the_config_file(tmp_path):
    """`static www;` in /some/dir/atrium.conf is /some/dir/www whatever the working
    directory, like include: the shipped config works from anywhere."""
    d = tmp_path / "etc"
    (d / "www").mkdir(parents=True)
    (d / "certs").mkdir()
    p = d / "atrium.conf"
    p.write_text("listen 127.0.0.1:%d;\npid_file run.pid;\nerror_log logs.txt;\n"
                 "host * { route / { static www; } }\n" % free_port())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = subprocess.run([ATRIUM_BIN, "-T", "-c", str(p)], cwd=str(elsewhere), capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert "static %s/www;" % d in r.stdout, r.stdout
    assert "pid_file %s/run.pid;" % d in r.stdout
    assert "error_log %s/logs.txt" % d in r.stdout
    # the shipped config checks from any directory
    shipped = HERE.parent.parent / "conf" / "atrium.conf"
    r = subprocess.run([ATRIUM_BIN, "-T", "-c", str(shipped)], cwd=str(elsewhere),
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and "static %s/www;" % shipped.parent in r.stdout, r.stderr


def test_check_lists_every_error_with_hints(tmp_path):
    """-t lists every mistake at once (FILE:LINE:COL each), suggests the directive
    a typo was probably meant to be, and says when a ';' is missing rather than
    reporting the next line."""
    p = tmp_path / "bad.conf"
    p.write_text("listne 127.0.0.1:8080;\n"
                 "host * {\n"
                 "  route / { retrun 200; }\n"
                 "  route /x { proxy nope; }\n"
                 "}\n"
                 "upstream a { server 127.0.0.1:1 wieght=2; }\n")
    r = run_atrium(["-t", "-c", str(p)])
    assert r.returncode == 1
    pos = error_positions(r.stderr, p)
    assert sorted((l, c) for l, c, _ in pos) == [(1, 1), (3, 13), (4, 20), (6, 33)], r.stderr
    assert "unknown directive 'listne' at top level (did you mean 'listen'?)" in r.stderr
    assert "(did you mean 'return'?)" in r.stderr
    p.write_text("listen 127.0.0.1:8080;\nworkers 2\nhost * { route / { return 200; } }\n")
    r = run_atrium(["-t", "-c", str(p)])
    assert error_positions(r.stderr, p) == [(2, 10, "missing ';' after 'workers 2'")], r.stderr
    # a name far from every directive gets no guess
    p.write_text("listen 127.0.0.1:8080;\nzzzzzz 1;\nhost * { route / { return 200; } }\n")
    r = run_atrium(["-t", "-c", str(p)])
    assert "did you mean" not in r.stderr and "unknown directive 'zzzzzz'" in r.stderr, r.stderr
