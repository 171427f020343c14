"""Access log formats: combined (nginx's, byte for byte), timed and json."""

import json
import re

from conftest import get, proxy_conf, wait_until


def log_lines(path, needle):
    try:
        return [l for l in path.read_text().splitlines() if needle in l]
    except FileNotFoundError:
        return []


def test_timed_format(atrium, origin):
    o = origin("A")
    a = atrium(proxy_conf([o], main_extra="access_log {{dir}}/access.log timed;"))
    r = get(a.port, "/name", headers=[("User-Agent", "atrium-test/1"),
                                      ("Referer", "http://ref.test/x")])
    assert r.status == 200
    path = a.dir / "access.log"
    lines = wait_until(lambda: log_lines(path, "/name"), 10.0)
    assert len(lines) == 1, lines
    assert '"GET /name HTTP/1.1" 200' in lines[0]
    assert re.match(r'^127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] '
                    r'"GET /name HTTP/1\.1" 200 1 "http://ref\.test/x" "atrium-test/1"'
                    # nginx's combined, then request time and the upstream's address, status, time
                    r' rt=\d+\.\d{3} ua="127\.0\.0\.1:\d+" us=200 ut=\d+\.\d{3}$',
                    lines[0]), lines[0]


def test_timed_format_dashes_and_errors(atrium, origin):
    o = origin("A")
    a = atrium(proxy_conf([o], main_extra="access_log {{dir}}/access.log timed;"))
    assert get(a.port, "/status/404").status == 404
    path = a.dir / "access.log"
    lines = wait_until(lambda: log_lines(path, "/status/404"), 10.0)
    assert re.search(r'"GET /status/404 HTTP/1\.1" 404 \d+ "-" "-" rt=\S+ ua="\S+" us=404 ut=\S+$', lines[0]), lines


def test_json_format(atrium, origin):
    o = origin("A")
    a = atrium(proxy_conf([o], main_extra="access_log {{dir}}/access.log json;"))
    assert get(a.port, "/name?j=1").status == 200
    path = a.dir / "access.log"
    lines = wait_until(lambda: log_lines(path, "j=1"), 10.0)
    assert len(lines) == 1, lines
    rec = json.loads(lines[0])
    assert int(rec["status"]) == 200
    assert rec["upstream_addr"] == "127.0.0.1:%d" % o.port
    assert float(rec["request_time"]) >= 0


def test_json_format_escapes(atrium, origin):
    """Hostile bytes in logged fields never break the JSON line."""
    o = origin("A")
    a = atrium(proxy_conf([o], main_extra="access_log {{dir}}/access.log json;"))
    ua = 'evil"\\\tua\xe9'
    assert get(a.port, "/name?k=%22q%22", headers=[("User-Agent", ua)]).status == 200
    path = a.dir / "access.log"
    lines = wait_until(lambda: log_lines(path, "k=%22q%22"), 10.0)
    assert len(lines) == 1, lines
    rec = json.loads(lines[0])
    assert int(rec["status"]) == 200


NGINX_CONF = """
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log combined;
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://127.0.0.1:{origin}; proxy_http_version 1.1; }}
    }}
}}
"""


def test_combined_is_nginx_combined_byte_for_byte(atrium, origin, tmp_path):
    """The same requests through nginx and through Atrium: the combined lines
    are equal once the time is taken out."""
    import subprocess
    from conftest import free_port, wait_port
    o = origin("A")
    a = atrium(proxy_conf([o], main_extra="access_log {{dir}}/access.log combined;"))
    port = free_port()
    (tmp_path / "nginx.conf").write_text(NGINX_CONF.format(dir=tmp_path, port=port, origin=o.port))
    n = subprocess.Popen(["nginx", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
                          "-c", str(tmp_path / "nginx.conf")], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        wait_port(port, 10, n, "nginx")
        reqs = [("/name", [("User-Agent", "ua/1"), ("Referer", "http://r.test/")]),
                ("/status/404", []), ("/name?a=b&c=%20d", [("User-Agent", "x y")])]
        for p in (a.port, port):
            for path, headers in reqs:
                get(p, path, headers=headers)
        strip = lambda l: re.sub(r"\[[^]]*\]", "[T]", l)
        mine = wait_until(lambda: log_lines(a.dir / "access.log", "HTTP/1.1") if len(
            log_lines(a.dir / "access.log", "HTTP/1.1")) == 3 else None, 10)
        theirs = wait_until(lambda: log_lines(tmp_path / "access.log", "HTTP/1.1") if len(
            log_lines(tmp_path / "access.log", "HTTP/1.1")) == 3 else None, 10)
        assert [strip(l) for l in mine] == [strip(l) for l in theirs], (mine, theirs)
    finally:
        n.terminate()
        n.wait(10)
