"""tools/bench --tls: Atrium, nginx and HAProxy terminating TLS in front of the same
plain-HTTP nginx origin, measured the way the default mode measures plain HTTP (all
proxies started at once, each pinned to the proxy CPU with one worker, the load moved
between them in slices). For each certificate (ECDSA P-256, then RSA-2048; made at the
start with the openssl CLI) a fresh set of proxies, and:

1. idle memory (ECDSA only): VmRSS growth per used-and-idle TLS keep-alive connection;
2. full handshakes: every request on a new connection ("Connection: close"), with a
   client (tools/loadgen -t -n) that never offers a session, so that no handshake can be
   resumed; CPU per handshake saturated (closed loop, per-slice ratios) and at one fixed
   rate (half the lowest saturated rate) for all;
3. keep-alive requests over TLS (ECDSA only): CPU per request saturated and at a fixed
   rate, as the plain-HTTP mode has them.

A proxy that does not start with a TLS listener (Atrium before its TLS support) is
skipped with a note and the others are still measured. See tools/bench.md, "--tls".
"""

import json
import os
import socket
import ssl
import subprocess
import time

from benchlib.core import (BODY_SIZE, haproxy_config, CLK_TCK, HAPROXY_SAME_HEADERS, NGINX_SAME_HEADERS, PATH,
                           Server, _median, _read_response, busy_pct, cpus_busy_ticks,
                           idle_conn_bytes, light_warmup, log, make_tmpdir, nginx_common,
                           nginx_http_temp, print_rows, request_bytes, spawn, start_server,
                           stop_proc, tail, tree_cpu_user_sys, free_port)
from benchlib.interleave import loadgen_path, run_loadgen

TARGET_HANDSHAKE = 0.5      # atrium cpu/handshake <= 0.5 x nginx (ECDSA)
TARGET_KEEPALIVE = 0.8      # atrium cpu/request over TLS keep-alive <= 0.8 x nginx
TARGET_IDLE = 6 * 1024      # atrium bytes per idle TLS keep-alive connection

CERTS = (("ecdsa", "ECDSA P-256", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
         ("rsa", "RSA-2048", ["-newkey", "rsa:2048"]))


def make_certs(tmp):
    """Self-signed certificates for localhost: {kind: (cert, key, cert+key bundle)}."""
    out = {}
    for kind, _, newkey in CERTS:
        crt, key = os.path.join(tmp, kind + ".pem"), os.path.join(tmp, kind + ".key")
        subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                        "-keyout", key, "-out", crt] + newkey,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        bundle = os.path.join(tmp, kind + ".bundle.pem")   # HAProxy wants both in one file
        with open(bundle, "w") as f:
            f.write(open(crt).read() + open(key).read())
        os.chmod(key, 0o644)       # nginx reads it as root before dropping privileges; be safe
        out[kind] = (crt, key, bundle)
    return out


# --------------------------------------------------------------------------
# configs: the plain-HTTP mode's, with a TLS listener

def nginx_tls_config(tmp, port, oport, nofile, conns, keepalive, crt, key):
    # nginx 1.22 leaves TLS 1.3 out of its default ssl_protocols (1.23.4 added it).
    # Everything else is nginx's default: no session cache, session tickets on.
    return nginx_common(tmp, os.path.join(tmp, "error.log"), nofile, conns) + """http {{
{temp}    access_log off;
    keepalive_timeout 120s;
    keepalive_requests 100000;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate {crt};
    ssl_certificate_key {key};
    upstream origin {{
        server 127.0.0.1:{oport};
        keepalive {keepalive};
        keepalive_requests 100000;
    }}
    server {{
        listen 127.0.0.1:{port} ssl backlog=4096;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
{same}        }}
    }}
}}
""".format(temp=nginx_http_temp(tmp), port=port, oport=oport, keepalive=keepalive,
           same=NGINX_SAME_HEADERS, crt=crt, key=key)


def haproxy_tls_config(tmp, port, oport, maxconn, bundle):
    # HAProxy picks the cipher by its own preference (OpenSSL's list: AES-256 first);
    # AES-128-GCM first here, so that it runs the cipher the other two do ("tls" column).
    conf = haproxy_config(tmp, port, oport, maxconn)
    conf = conf.replace("    pidfile %s/haproxy.pid\n" % tmp, "    pidfile %s/haproxy.pid\n"
                        "    ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:"
                        "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256\n" % tmp)
    conf = conf.replace("    bind 127.0.0.1:%d\n" % port,
                        "    bind 127.0.0.1:%d ssl crt %s\n" % (port, bundle))
    return conf.replace(HAPROXY_SAME_HEADERS.format(scheme="http"),
                        HAPROXY_SAME_HEADERS.format(scheme="https"))


def atrium_tls_config(port, oport, keepalive, crt, key):
    return """workers 1;
error_log stderr warn;
access_log off;
keepalive_timeout 120s;
keepalive_requests 100000;
listen 127.0.0.1:{port} tls;
upstream origin {{
    server 127.0.0.1:{oport};
    keepalive {keepalive};
    keepalive_timeout 120s;
    keepalive_requests 100000;
}}
host * {{
    tls {{ certificate {crt}; key {key}; }}
    route / {{ proxy origin; }}
}}
""".format(port=port, oport=oport, keepalive=keepalive, crt=crt, key=key)


def make_tls_server(name, args, kind, cert, oport, cpus, nofile, conns):
    crt, key, bundle = cert
    tmp = make_tmpdir(name + "-" + kind)
    port = free_port()
    if name == "nginx":
        conf = os.path.join(tmp, "nginx.conf")
        text = nginx_tls_config(tmp, port, oport, nofile, conns, args.upstream_keepalive, crt, key)
        argv = [args.nginx, "-p", tmp + "/", "-e", os.path.join(tmp, "error.log"), "-c", conf]
    elif name == "haproxy":
        conf = os.path.join(tmp, "haproxy.cfg")
        text = haproxy_tls_config(tmp, port, oport, conns, bundle)
        argv = [args.haproxy, "-db", "-f", conf]
    else:
        conf = os.path.join(tmp, "atrium.conf")
        text = atrium_tls_config(port, oport, args.upstream_keepalive, crt, key)
        argv = [args.atrium, "-c", conf]
    with open(conf, "w") as f:
        f.write(text)
    return Server(name, argv, tmp, port, cpus, nofile)


# --------------------------------------------------------------------------
# the bench's own TLS client (probe, resumption check, idle connections)

def client_context(version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    v = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.minimum_version = ctx.maximum_version = v
    return ctx


def tls_get(ctx, port, session=None):
    """One GET over a new TLS connection: (status, body length, session, reused)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
            s.sendall(request_bytes(port))
            status, n, _, _ = _read_response(s)
            return status, n, s.session, s.session_reused


def probe_tls(ctx, port):
    """(problem or None, whether the server resumes a session a client offers)."""
    try:
        status, n, sess, _ = tls_get(ctx, port)
        if status != 200 or n != BODY_SIZE:
            return "probe got status %d with %d body bytes (expected 200, %d)" % (
                status, n, BODY_SIZE), None
        # The server can resume (tickets or a cache) when asked; loadgen never asks.
        _, _, _, reused = tls_get(ctx, port, sess)
        return None, reused
    except (OSError, ValueError, IndexError) as e:
        return "TLS probe failed: %s: %s" % (type(e).__name__, e), None


# --------------------------------------------------------------------------
# load

def run_lg(binary, ports, rate, seconds, slice_s, conns, cpus, tmp, tag, newconn, version,
           warmup):
    extra = ["-t", "-V", version] + (["-n"] if newconn else [])
    return run_loadgen(binary, ports, rate, seconds, slice_s, conns, cpus, tmp, extra, warmup, tag)


def saturated(servers, args, lg, load_cpus, newconn, tag):
    """Closed-loop loadgen slices in turn, per proxy summed requests and CPU ticks, and
    per cycle each proxy's CPU us/request (as the plain mode's wrk step)."""
    slice_s = args.slice
    cycles = max(1, args.duration // slice_s)
    tot = {s.name: {"requests": 0, "ticks": 0, "user_ticks": 0, "errors": 0, "handshakes": 0,
                    "resumed": 0, "tickets": 0, "tls": "", "load_ticks": 0, "wall": 0.0}
           for s in servers}
    per_cycle = []
    for c in range(cycles):
        row = {}
        k = c % len(servers)
        for s in servers[k:] + servers[:k]:
            u0, s0 = tree_cpu_user_sys(s.proc.pid)
            l0, w0 = cpus_busy_ticks(load_cpus), time.monotonic()
            t = run_lg(lg, [s.port], 0, slice_s, slice_s, args.connections, load_cpus, s.tmp,
                       "%s%d" % (tag, c), newconn, args.tls_version, 0)["targets"][0]
            l1, w1 = cpus_busy_ticks(load_cpus), time.monotonic()
            u1, s1 = tree_cpu_user_sys(s.proc.pid)
            if s.proc.poll() is not None:
                raise RuntimeError("%s exited during the run (status %s)"
                                   % (s.name, s.proc.returncode))
            r = tot[s.name]
            r["load_ticks"] += l1 - l0
            r["wall"] += w1 - w0
            r["requests"] += t["answered"]
            r["ticks"] += (u1 + s1) - (u0 + s0)
            r["user_ticks"] += u1 - u0
            r["errors"] += t["errors"] + t["non2xx"]
            for key in ("handshakes", "resumed", "tickets"):
                r[key] += t[key]
            r["tls"] = r["tls"] or t["tls"]
            n = t["answered"]
            row[s.name] = ((u1 + s1) - (u0 + s0)) * 1e6 / CLK_TCK / n if n else None
        per_cycle.append(row)
        log("%s cycle %d of %d: %s" % (tag, c + 1, cycles, ", ".join(
            "%s %.1f us" % (k, v) for k, v in row.items() if v is not None)))
    for t in tot.values():
        n = t["requests"]
        t["rps"] = n / float(cycles * slice_s)
        t["cpu_us"] = t["ticks"] * 1e6 / CLK_TCK / n if n else None
        t["user_us"] = t["user_ticks"] * 1e6 / CLK_TCK / n if n else None
        t["load_busy_pct"] = busy_pct(t.pop("load_ticks"), t.pop("wall"), load_cpus)
    return tot, per_cycle


def at_rate(servers, args, lg, load_cpus, newconn, rate, tag):
    """One open-loop loadgen run at rate over every proxy's port, in the same slices;
    per proxy its CPU over the whole run per request it answered (warm-up included)."""
    ticks0 = {s.name: sum(tree_cpu_user_sys(s.proc.pid)) for s in servers}
    lat = run_lg(lg, [s.port for s in servers], rate, args.duration, args.slice,
                 args.connections, load_cpus, servers[0].tmp, tag, newconn, args.tls_version, 1)
    out = {}
    for s, t in zip(servers, lat["targets"]):
        ticks = sum(tree_cpu_user_sys(s.proc.pid)) - ticks0[s.name]
        t["cpu_us"] = ticks * 1e6 / CLK_TCK / t["answered"] if t["answered"] else None
        t["overloaded"] = lat["overloaded"]
        out[s.name] = t
    return out


def step(servers, args, lg, load_cpus, newconn, tag, rate):
    log("%s: saturated, %ds closed-loop slices in turn, %ds per proxy"
        % (tag, args.slice, args.duration))
    tot, cycles = saturated(servers, args, lg, load_cpus, newconn, tag)
    rate = rate or 0.5 * min(t["rps"] for t in tot.values())
    log("%s: at %d/s, %ds slices in turn, %ds per proxy" % (tag, rate, args.slice, args.duration))
    fixed = at_rate(servers, args, lg, load_cpus, newconn, rate, tag + "-rate")
    return {"rate": rate, "saturated": tot, "cycles": cycles, "at_rate": fixed}


# --------------------------------------------------------------------------
# one certificate: start the proxies, measure, stop them

def start_proxies(names, args, kind, cert, oport, proxy_cpus, nofile, conns, ctx, notes):
    servers, resumes = [], {}
    for name in names:
        s = make_tls_server(name, args, kind, cert, oport, proxy_cpus, nofile, conns)
        if start_server(name, s)["status"] != "ok":
            first = (s.error or "").strip().splitlines()
            notes.append("%s skipped (%s): failed to start with a TLS listener: %s"
                         % (name, kind, " / ".join(l.strip() for l in first[:4])))
            continue
        problem, resumes[name] = probe_tls(ctx, s.port)
        if problem:
            notes.append("%s skipped (%s): %s" % (name, kind, problem))
            s.stop()
            continue
        servers.append(s)
    return servers, resumes


def run_cert(kind, names, args, cert, oport, proxy_cpus, load_cpus, nofile, conns, lg, notes):
    ctx = client_context(args.tls_version)
    servers, resumes = start_proxies(names, args, kind, cert, oport, proxy_cpus, nofile, conns,
                                     ctx, notes)
    out = {"proxies": [s.name for s in servers], "resumes_when_offered": resumes}
    if not servers:
        return out
    try:
        wrap = lambda sock: ctx.wrap_socket(sock, server_hostname="localhost")  # noqa: E731
        if kind == "ecdsa" and args.idle_conns > 0:
            out["idle"] = {}
            for s in servers:
                log("%s: idle memory with %d TLS keep-alive connections" % (s.name, args.idle_conns))
                try:
                    light_warmup(s.port, wrap=wrap)
                    out["idle"][s.name] = idle_conn_bytes(s, args.idle_conns, wrap=wrap)
                except (OSError, ValueError, IndexError, RuntimeError) as e:
                    notes.append("%s: TLS idle-memory test failed: %s" % (s.name, e))
        if args.warmup > 0:
            for s in servers:
                run_lg(lg, [s.port], 0, args.warmup, args.warmup, args.connections, load_cpus,
                       s.tmp, "warmup", True, args.tls_version, 0)
        out["handshake"] = step(servers, args, lg, load_cpus, True, "handshake-" + kind, 0)
        if kind == "ecdsa":
            out["keepalive"] = step(servers, args, lg, load_cpus, False, "keepalive", args.rate)
    finally:
        for s in servers:
            s.stop()
    return out


def main_tls(args, names, oport, proxy_cpus, load_cpus, nofile, conns, pinning):
    lg = loadgen_path(args)
    if not os.access(lg, os.X_OK):
        log("%s not found: build it with meson (it is built next to atrium)" % lg)
        return 2, None
    tmp = make_tmpdir("certs")
    certs = make_certs(tmp)
    notes = []
    if "atrium" in names and not os.access(args.atrium, os.X_OK):
        notes.append("atrium skipped: binary %s not found or not executable" % args.atrium)
        names = [n for n in names if n != "atrium"]
    doc = {"config": {"tls_version": args.tls_version, "seconds_per_proxy": args.duration,
                      "slice_s": args.slice, "connections": args.connections,
                      "idle_conns": args.idle_conns, "pinning": pinning,
                      "client": "tools/loadgen -t (BoringSSL), X25519, AES-128-GCM, "
                                "no session offered"},
           "certs": {}, "notes": notes}
    for kind, _, _ in CERTS:
        doc["certs"][kind] = run_cert(kind, names, args, certs[kind], oport, proxy_cpus,
                                      load_cpus, nofile, conns, lg, notes)
    doc["ratios"] = tls_ratios(doc)
    return 0, doc


# --------------------------------------------------------------------------
# ratios and output

def _r(a, b):
    return a / b if a and b else None


def tls_ratios(doc):
    """{"atrium/REF FIGURE": {"value", "target", "cycles"}} for what was measured."""
    out = {}
    for kind, label, _ in CERTS:
        c = doc["certs"].get(kind, {})
        for what, target in (("handshake", TARGET_HANDSHAKE if kind == "ecdsa" else None),
                             ("keepalive", TARGET_KEEPALIVE)):
            st = c.get(what)
            if not st or "atrium" not in st["saturated"]:
                continue
            name = "%s %s" % (what, kind) if what == "handshake" else what
            for ref in ("nginx", "haproxy"):
                if ref not in st["saturated"]:
                    continue
                a, b = st["saturated"]["atrium"], st["saturated"][ref]
                xs = sorted(r["atrium"] / r[ref] for r in st["cycles"]
                            if r.get("atrium") and r.get(ref))
                out["atrium/%s %s cpu" % (ref, name)] = {
                    "value": _r(a["cpu_us"], b["cpu_us"]), "target": target if ref == "nginx" else None,
                    "cycles": {"median": _median(xs), "min": xs[0], "max": xs[-1]} if xs else None}
                out["atrium/%s %s cpu at %d/s" % (ref, name, st["rate"])] = {
                    "value": _r(st["at_rate"]["atrium"]["cpu_us"], st["at_rate"][ref]["cpu_us"]),
                    "target": target if ref == "nginx" else None}
    idle = doc["certs"].get("ecdsa", {}).get("idle", {})
    if "atrium" in idle:
        out["atrium idle TLS conn bytes"] = {"value": idle["atrium"]["idle_bytes_per_conn"],
                                             "target": TARGET_IDLE}
        for ref in ("nginx", "haproxy"):
            if ref in idle:
                out["atrium/%s idle TLS conn bytes" % ref] = {
                    "value": _r(idle["atrium"]["idle_bytes_per_conn"],
                                idle[ref]["idle_bytes_per_conn"]), "target": None}
    return out


def _f(v, spec, suffix=""):
    return "-" if v is None else format(v, spec) + suffix


def print_step(title, st, unit, idle=None):
    print(title)
    cols = ["proxy", unit + "/s", "cpu_us", "user_us", "load_cpu", "errors",
            "cpu_us@%d/s" % st["rate"], "p50@rate", "p99@rate", "errors@rate", "resumed",
            "tickets/conn"]
    if idle is not None:
        cols.insert(6, "idle_B/conn")
    rows = []
    for name, t in st["saturated"].items():
        f = st["at_rate"][name]
        hs = t["handshakes"] + f["handshakes"]
        row = [name, _f(t["rps"], ".0f"), _f(t["cpu_us"], ".1f"), _f(t["user_us"], ".1f"),
               _f(t["load_busy_pct"], ".0f", "%"), str(t["errors"]), _f(f["cpu_us"], ".1f"),
               _f(f["p50_us"], ".0f", "us"), _f(f["p99_us"], ".0f", "us"),
               str(f["errors"] + f["non2xx"]), "%d/%d" % (t["resumed"] + f["resumed"], hs),
               _f((t["tickets"] + f["tickets"]) / hs if hs else None, ".1f")]
        if idle is not None:
            i = idle.get(name)
            row.insert(6, _f(i["idle_bytes_per_conn"] if i else None, ".0f"))
        rows.append(tuple(row))
    print_rows(cols, rows)
    seen = sorted(set(t["tls"] for t in st["saturated"].values()))
    print("negotiated: %s" % " | ".join(seen))
    print()


def print_tls(doc):
    c = doc["config"]
    print("Atrium bench --tls: GET %s via TLS %s proxy -> plain-HTTP nginx origin; %s"
          % (PATH, c["tls_version"], c["pinning"]))
    print("client: %s; %d connections, %ds slices, %ds per proxy per step"
          % (c["client"], c["connections"], c["slice_s"], c["seconds_per_proxy"]))
    print()
    for kind, label, _ in CERTS:
        cert = doc["certs"].get(kind, {})
        if cert.get("handshake"):
            print_step("Full handshakes, %s (a new connection per request, none resumed):"
                       " cpu_us per handshake" % label, cert["handshake"], "hs",
                       cert.get("idle") if kind == "ecdsa" else None)
        if cert.get("keepalive"):
            print_step("Keep-alive requests over TLS (%s): cpu_us per request" % label,
                       cert["keepalive"], "req")
    for key, r in doc["ratios"].items():
        v = r["value"]
        if "bytes" in key and "/" not in key:
            line = "%s: %s" % (key, _f(v, ".0f"))
        else:
            line = "%s ratio: %s" % (key, _f(v, ".2f"))
        if r.get("target"):
            line += " (target <= %s)" % (("%d" % r["target"]) if r["target"] > 10
                                         else "%.2g" % r["target"])
        cyc = r.get("cycles")
        if cyc:
            line += "; per cycle: median %.2f, range %.2f-%.2f" % (cyc["median"], cyc["min"],
                                                                   cyc["max"])
        print(line)
    for note in tls_notes(doc):
        print("note: " + note)


def tls_notes(doc):
    notes = list(doc["notes"])
    for kind, label, _ in CERTS:
        cert = doc["certs"].get(kind, {})
        for name, reused in cert.get("resumes_when_offered", {}).items():
            if reused is False:
                notes.append("%s (%s) did not resume even when the probe offered its session"
                             % (name, kind))
        tls_seen = set()
        for what in ("handshake", "keepalive"):
            st = cert.get(what)
            if not st:
                continue
            for name, t in st["saturated"].items():
                f = st["at_rate"][name]
                tls_seen.add(t["tls"])
                if t["resumed"] or f["resumed"]:
                    notes.append("%s %s %s: %d handshakes were resumed: the full-handshake "
                                 "figure is wrong" % (name, kind, what, t["resumed"] + f["resumed"]))
                if t["errors"] or f["errors"] or f["non2xx"]:
                    notes.append("%s %s %s: %d errors saturated, %d at the fixed rate"
                                 % (name, kind, what, t["errors"], f["errors"] + f["non2xx"]))
                if (t["load_busy_pct"] or 0) >= 90:
                    notes.append("%s %s %s: the load CPU was %.0f%% busy when saturated: the "
                                 "client and origin, not the proxy, set that rate; compare the "
                                 "fixed-rate column" % (name, kind, what, t["load_busy_pct"]))
                if f.get("overloaded"):
                    notes.append("%s %s: loadgen's backlog overflowed at the fixed rate"
                                 % (kind, what))
        if len(tls_seen) > 1:
            notes.append("%s: the proxies negotiated different parameters: %s"
                         % (kind, "; ".join(sorted(tls_seen))))
    return notes
