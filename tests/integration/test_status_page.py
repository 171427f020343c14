"""`status;` routes for people: content negotiation (Prometheus and curl keep
the text, browsers get the page, `?format=` forces a form), the JSON form the
page polls (bounded for 1,000 servers and more), and the page itself in a real
browser: headless Chromium loads it from a running Atrium under load, the
graphs draw and move, the server table shows every server with its state, a
reload with another server set shows up, and nothing is refused by the page's
Content-Security-Policy. The browser test saves a screenshot and prints where.

Chromium comes from Debian's `chromium`, `chromium-driver` and
`python3-selenium` (tools/dev installs them); without them the browser tests
skip, naming what is missing."""

import json
import os
import shutil
import socket
import threading
from pathlib import Path

import pytest

from conftest import Conn, get, http_request, run_atrium, upstream_conf, wait_until

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                     "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
BROWSER_ACCEPT = ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
                  "image/webp,image/apng,*/*;q=0.8")
STATUS = "/atrium-status"


def status_conf(servers, extra_upstreams="", route_extra=""):
    return "\n".join([
        "workers 2;",
        upstream_conf(servers),
        extra_upstreams,
        "host * {",
        "    route %s { status; allow 127.0.0.1; deny all; %s }" % (STATUS, route_extra),
        "    route / { proxy app; }",
        "}"])


def refusing_port():
    """A port bound but never listening: connects to it are refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def status_json(port, path=STATUS + "?format=json"):
    r = get(port, path)
    assert r.status == 200, r
    assert r.get("content-type") == "application/json", r
    return json.loads(r.body)


def server_names(doc, upstream="app"):
    for u in doc["upstreams"]:
        if u["name"] == upstream:
            return [s["name"] for s in u["servers"]]
    raise AssertionError("no upstream %r in %r" % (upstream, [u["name"] for u in doc["upstreams"]]))


# ---------------------------------------------------------------- negotiation


def test_scrapers_keep_the_text_browsers_get_the_page(atrium, origin):
    o = origin("A")
    a = atrium(status_conf([o]))
    assert get(a.port, "/").status == 200
    for accept in (PROMETHEUS_ACCEPT, "*/*", None):          # Prometheus, curl, nothing
        r = get(a.port, STATUS, headers=[("Accept", accept)] if accept else [])
        assert r.status == 200, (accept, r)
        assert r.get("content-type") == "text/plain; version=0.0.4; charset=utf-8", (accept, r)
        assert r.get("vary") == "Accept" and r.get("cache-control") == "no-store", r
        assert r.body.startswith(b"# HELP atrium_info "), r
        assert b'atrium_upstream_requests_total{upstream="app",protocol="http",server="%s"} 1\n' \
            % o.addr.encode() in r.body, r

    page = get(a.port, STATUS, headers=[("Accept", BROWSER_ACCEPT)])
    assert page.status == 200 and page.get("content-type") == "text/html; charset=utf-8", page
    assert page.get("vary") == "Accept" and page.get("cache-control") == "no-store", page
    csp = page.get("content-security-policy")
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp, csp
    body = page.text()
    assert body.startswith("<!doctype html>") and "<canvas" in body and "<script>" in body
    # everything is inline: the page names no other place to load from
    assert "http://" not in body and "https://" not in body and " src=" not in body, body[:300]

    # ?format= decides whatever Accept says, and the answer does not vary
    forced = {"prometheus": "text/plain; version=0.0.4; charset=utf-8",
              "html": "text/html; charset=utf-8", "json": "application/json"}
    for fmt, ctype in forced.items():
        r = get(a.port, STATUS + "?format=" + fmt, headers=[("Accept", BROWSER_ACCEPT)])
        assert r.status == 200 and r.get("content-type") == ctype, (fmt, r)
        assert r.get("vary") is None and r.get("cache-control") == "no-store", (fmt, r)
    assert get(a.port, STATUS, headers=[("Accept", "application/json")]).json()["workers"] == 2
    assert get(a.port, STATUS + "?format=xml").status == 400

    head = http_request(a.port, "HEAD", STATUS, headers=[("Accept", BROWSER_ACCEPT)])
    assert head.status == 200 and head.body == b"", head
    assert int(head.get("content-length")) == len(page.body), head
    assert http_request(a.port, "POST", STATUS + "?format=json", body=b"x").status == 405


def test_json_has_what_the_page_draws(atrium, origin):
    o1, o2 = origin("A"), origin("B")
    dead, dead_port = refusing_port()
    try:
        a = atrium("control {{dir}}/ctl.sock;\n" +
                   status_conf([o1, (o2, "weight=3"), dead_port],
                               extra_upstreams="upstream other { server %s; }" % o1.addr))
        with Conn(a.port) as c:
            for path in ("/", "/status/404", "/status/503", "/", "/", "/"):
                c.request("GET", path)
        doc = status_json(a.port)
        assert doc["generation"] == 1 and doc["workers"] == 2 and doc["uptime_ms"] >= 0
        assert doc["reloads"] == {"ok": 0, "failed": 0}
        assert doc["requests"] >= 6 and doc["responses"]["4xx"] >= 1 and doc["responses"]["5xx"] >= 1
        lat = doc["latency"]
        assert lat["bounds_ms"][0] == 5 and lat["bounds_ms"][-1] == 10000
        for which in ("request", "upstream"):
            assert len(lat[which]["counts"]) == len(lat["bounds_ms"]) + 1
        assert sum(lat["upstream"]["counts"]) >= 6
        assert [u["name"] for u in doc["upstreams"]] == ["app", "other"]
        app = doc["upstreams"][0]
        assert app["protocol"] == "http" and app["balance"] == "round_robin"
        servers = {s["name"]: s for s in app["servers"]}
        assert list(servers) == [o1.addr, o2.addr, "127.0.0.1:%d" % dead_port]
        assert servers[o2.addr]["weight"] == 3
        gone = servers["127.0.0.1:%d" % dead_port]
        assert gone["state"] == "down" and gone["connect_failures"] >= 1, gone
        assert servers[o1.addr]["state"] == "up" and servers[o1.addr]["in_flight"] == 0
        assert app["servers_total"] == 3 and app["servers_up"] == 2
        assert app["requests"] == sum(s["requests"] for s in servers.values())
        assert doc["servers_omitted"] == 0
        # the operator's state comes first, as `atrium ctl show servers` has it
        ctl = run_atrium(["-S", str(a.dir / "ctl.sock"), "ctl", "drain", "app", o2.addr])
        assert ctl.returncode == 0, ctl
        app = status_json(a.port)["upstreams"][0]
        assert [s["state"] for s in app["servers"]] == ["up", "draining", "down"], app
        assert app["servers_up"] == 1
        # the route's allow/deny comes first, whatever the form
        a.reload(status_conf([o1], route_extra="").replace("allow 127.0.0.1;", "allow 10.9.9.9;"))
        assert get(a.port, STATUS + "?format=json").status == 403
        assert get(a.port, STATUS, headers=[("Accept", BROWSER_ACCEPT)]).status == 403
    finally:
        dead.close()


@pytest.mark.parametrize("n", [1000, 6000])
def test_json_bounded_for_many_servers(atrium, n):
    """1,000 servers are all listed (about 230 bytes each); past a megabyte the
    rest are left out and counted, and the upstream's sums still cover them."""
    servers = [20000 + i for i in range(n)]          # never asked: no request is proxied
    a = atrium(status_conf(servers))
    r = get(a.port, STATUS + "?format=json")
    assert r.status == 200, r
    assert len(r.body) <= (1 << 20) + 4096, len(r.body)
    doc = json.loads(r.body)
    app = doc["upstreams"][0]
    assert app["servers_total"] == n and app["servers_up"] == n
    assert len(app["servers"]) + doc["servers_omitted"] == n
    if n == 1000:
        assert doc["servers_omitted"] == 0 and len(r.body) < 300 * 1000, len(r.body)
    else:
        assert doc["servers_omitted"] > 0
    assert app["servers"][0]["name"] == "127.0.0.1:20000"
    text = get(a.port, STATUS)                       # the scrape still has every server
    assert text.body.count(b"atrium_upstream_down{") == n


# ---------------------------------------------------------------- the browser


def artifact_dir():
    """Where screenshots are kept past the test: $ATRIUM_ARTIFACTS, else
    tests/output in the source tree (ignored by git)."""
    d = os.environ.get("ATRIUM_ARTIFACTS")
    if not d:
        src = os.environ.get("ATRIUM_SRC") or str(Path(__file__).resolve().parents[2])
        d = os.path.join(src, "tests", "output")
    os.makedirs(d, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [n for n, p in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if not p]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("python3-selenium")
    if missing:
        pytest.skip("not installed: %s (tools/dev installs them)" % ", ".join(missing))
    d = tmp_path_factory.mktemp("chromium")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-proxy-server", "--no-first-run", "--disable-extensions",
                "--window-size=1400,1300", "--user-data-dir=%s" % (d / "profile")):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER, log_path=str(d / "chromedriver.log")),
                           options=opts)
    drv.set_page_load_timeout(30)
    drv.set_script_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()


class Load:
    """Keep-alive clients sending a mix (200s, 404s, 503s, some held 20-60 ms)
    until stopped."""

    PATHS = ["/", "/", "/", "/status/404", "/", "/hold?ms=20", "/", "/status/503",
             "/hold?ms=60", "/"]

    def __init__(self, port, clients=3):
        self.port, self.sent, self.failed = port, 0, []
        self.stop_ev = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(clients)]
        for t in self.threads:
            t.start()

    def run(self, k):
        i = k
        try:
            with Conn(self.port) as c:
                while not self.stop_ev.is_set() and self.sent < 200000:
                    r = c.request("GET", self.PATHS[i % len(self.PATHS)])
                    assert r.status in (200, 404, 503, 502), r
                    i += 1
                    self.sent += 1
        except Exception as e:  # noqa: BLE001 - reported by stop()
            self.failed.append(e)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(30)
        assert not self.failed, self.failed


def screenshot(drv, name):
    """Save the window as NAME in the artifact directory; its path."""
    shot = Path(artifact_dir()) / name
    assert drv.save_screenshot(str(shot)), shot
    assert shot.stat().st_size > 10000, shot.stat()
    return str(shot)


def js(drv, expr):
    return drv.execute_script("return " + expr)


def canvases(drv):
    return js(drv, "Array.from(document.querySelectorAll('canvas'), c => [c.id, c.toDataURL()])")


def table_rows(drv):
    """[(upstream, server, state)] as the page shows them."""
    return [tuple(r) for r in js(drv, """Array.from(document.querySelectorAll('.upstream'), u =>
        Array.from(u.querySelectorAll('tbody tr'), tr => [u.querySelector('h3').firstChild.data,
            tr.cells[0].textContent, tr.cells[1].textContent])).flat()""")]


def test_page_draws_and_updates_in_chromium(atrium, origin, browser):
    o1, o2, o3 = origin("A"), origin("B"), origin("C")
    dead, dead_port = refusing_port()
    try:
        conf = status_conf([o1, o2, dead_port])
        a = atrium(conf)
        load = Load(a.port)
        try:
            browser.get("http://127.0.0.1:%d%s" % (a.port, STATUS))  # Chromium's own Accept
            assert browser.title == "Atrium status"
            st = "window.atriumStatus"
            # a few samples in, with traffic on every chart
            assert wait_until(lambda: js(browser, st + ".samples") >= 3 and
                              js(browser, st + ".last.rps") > 0 and
                              js(browser, st + ".last.rq[0]") is not None, 20), \
                js(browser, st)
            charts = js(browser, st + ".charts")
            assert set(charts) == {"rps", "classes", "latency", "upstream"}, charts
            for name, c in charts.items():
                assert c["points"] >= 2, (name, c)
            assert charts["rps"]["last"]["requests/s"] > 0, charts
            assert charts["classes"]["last"]["2xx"] > 0, charts
            assert charts["latency"]["last"]["p99"] > 0, charts
            first, drawn = canvases(browser), js(browser, st + ".samples")
            # the next samples move every graph
            assert wait_until(lambda: js(browser, st + ".samples") >= drawn + 2, 20)
            second = canvases(browser)
            assert [i for i, _ in first] == ["chart-rps", "chart-classes", "chart-latency",
                                             "chart-upstream"]
            for (name, before), (_, after) in zip(first, second):
                assert before != after, "%s did not change between two samples" % name
            # every server, the refusing one marked down (red), the others up
            dead_name = "127.0.0.1:%d" % dead_port
            want = {("app", o1.addr, "up"), ("app", o2.addr, "up"), ("app", dead_name, "down")}
            assert wait_until(lambda: set(table_rows(browser)) == want, 20), table_rows(browser)
            color = js(browser, """getComputedStyle(Array.from(document.querySelectorAll('.state'))
                .find(e => e.textContent === 'down')).backgroundColor""")
            assert color == "rgb(220, 38, 38)", color
            assert js(browser, "document.getElementById('generation').textContent") == "1"
            shots = [screenshot(browser, "status_page.png")]

            # a reload with another server set: counters go on, the table follows
            before_reload = js(browser, st + ".samples")
            assert a.reload(status_conf([o1, o3]))
            want = {("app", o1.addr, "up"), ("app", o3.addr, "up")}
            assert wait_until(lambda: set(table_rows(browser)) == want and
                              js(browser, "document.getElementById('generation').textContent")
                              == "2", 20), table_rows(browser)
            assert wait_until(lambda: js(browser, st + ".samples") >= before_reload + 3 and
                              js(browser, st + ".reloads.length") == 1, 20), js(browser, st)
            assert js(browser, st + ".last.rps") > 0       # no reset, no negative rate
            assert js(browser, st + ".errors") == 0, js(browser, st + ".error")
            shots.append(screenshot(browser, "status_page_after_reload.png"))
        finally:
            load.stop()
        assert load.sent > 0
        print("\nstatus page screenshots: %s" % ", ".join(shots))
        # nothing refused by the Content-Security-Policy, no script error
        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
    finally:
        dead.close()
