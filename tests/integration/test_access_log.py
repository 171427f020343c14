"""Access log formats: combined and json."""

import json
import re

from conftest import get, proxy_conf, wait_until


def log_lines(path, needle):
    try:
        return [l for l in path.read_text().splitlines() if needle in l]
    except FileNotFoundError:
        return []


def test_combined_format(atrium, origin):
    o = origin("A")
    a = atrium(proxy_conf([o], main_extra="access_log {{dir}}/access.log combined;"))
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


def test_combined_format_dashes_and_errors(atrium, origin):
    o = origin("A")
    a = atrium(proxy_conf([o], main_extra="access_log {{dir}}/access.log combined;"))
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
