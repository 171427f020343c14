"""tools/bench --interleave: the proxies measured in alternating slices, not one after another.

On a VM the host's steal time drifts by tens of percent within a minute, so two proxies
measured back to back each see a different machine. Here all of them run at once (each
pinned to the proxy CPU, idle when it is not its turn) and the load moves between them in
short slices:

1. CPU per request: wrk runs SLICE seconds against each proxy in turn, for as many cycles
   as fit in --duration per proxy. CPU time (from /proc) and requests add up per proxy;
   every cycle also gives one Atrium/nginx ratio, and the spread of those ratios says how
   far the summed figure can be trusted.
2. Latency and CPU at the same load: tools/loadgen sends a fixed rate (--rate, or half
   the lowest req/s of step 1), open loop, to each proxy in turn in the same slices, and
   reports p50/p99/p99.9 measured from each request's scheduled send time. Each proxy's
   CPU time over the whole loadgen run, divided by the requests it answered, gives its CPU
   per request at that rate (a proxy out of its slice is idle and costs next to nothing).
   Step 1 runs each proxy as fast as the load generator and origin allow, and there the
   proxy that needs less CPU per request is the one left idle part of the time, paying a
   sleep and a wake-up more often; at the same rate neither proxy is saturated, so both pay
   that alike.
"""

import json
import os
import subprocess
import time

from benchlib.core import (CLK_TCK, PATH, _median, busy_pct, cpus_busy_ticks, idle_conn_bytes,
                           idle_notes, light_warmup, load_bound_note, log, make_server, parse_wrk,
                           print_rows, probe, run_wrk, spawn, start_server, stop_proc, tail,
                           tree_cpu_user_sys)


def loadgen_path(args):
    """tools/loadgen is built next to the Atrium binary (meson)."""
    return os.path.join(os.path.dirname(os.path.abspath(args.atrium)), "loadgen")


def run_loadgen(binary, ports, rate, seconds, slice_s, conns, cpus, tmp, extra=(), warmup=1,
                tag=None):
    """tools/loadgen over ports (one slice each in turn); its JSON result. extra: more
    arguments (-t for TLS, -n for a new connection per request)."""
    argv = [binary, "-p", ",".join(str(p) for p in ports), "-u", PATH, "-r", str(int(rate)),
            "-d", str(seconds), "-s", str(slice_s), "-c", str(conns), "-w", str(warmup)]
    argv += list(extra)
    name = "loadgen-%s" % tag if tag else "loadgen"
    out = os.path.join(tmp, name + ".out")
    err = os.path.join(tmp, name + ".err")
    p = spawn(argv, cpus, 65536, out, err)
    try:
        p.wait(seconds * len(ports) + warmup + 30)
    except subprocess.TimeoutExpired:
        pass
    rc = p.poll()
    stop_proc(p)
    if rc != 0:
        raise RuntimeError("loadgen exited with %s: %s" % (rc, tail(err) or tail(out)))
    with open(out) as f:
        return json.load(f)


def cpu_cycles(servers, args, slice_s, load_cpus, counters=None):
    """Step 1: wrk slices in turn; per proxy the summed requests and CPU ticks, and
    per cycle each proxy's CPU us/request. counters, if given, is a function returning
    a dict of counters (e.g. the origin's accepted connections), read around each slice:
    their growth is added up per proxy, under the same keys."""
    cycles = max(1, args.duration // slice_s)
    tot = {s.name: {"requests": 0, "ticks": 0, "user_ticks": 0, "errors": 0, "load_ticks": 0,
                    "wall": 0.0, "own_cpus": s.cpus.isdisjoint(load_cpus)} for s in servers}
    per_cycle = []
    for c in range(cycles):
        row = {}
        order = servers[c % len(servers):] + servers[:c % len(servers)]
        for s in order:
            k0 = counters() if counters else {}
            u0, s0 = tree_cpu_user_sys(s.proc.pid)
            l0, w0 = cpus_busy_ticks(load_cpus), time.monotonic()
            w = parse_wrk(run_wrk(s.port, slice_s, args.connections, load_cpus, s.tmp,
                                  "slice%d" % c))
            l1, w1 = cpus_busy_ticks(load_cpus), time.monotonic()
            u1, s1 = tree_cpu_user_sys(s.proc.pid)
            k1 = counters() if counters else {}
            for k, v in k1.items():
                if v is not None and k0.get(k) is not None:
                    tot[s.name][k] = tot[s.name].get(k, 0) + v - k0[k]
            tot[s.name]["load_ticks"] += l1 - l0
            tot[s.name]["wall"] += w1 - w0
            t0, t1 = u0 + s0, u1 + s1
            if s.proc.poll() is not None:
                raise RuntimeError("%s exited during the run (status %s)"
                                   % (s.name, s.proc.returncode))
            n = w["requests"] or 0
            tot[s.name]["requests"] += n
            tot[s.name]["ticks"] += t1 - t0
            tot[s.name]["user_ticks"] += u1 - u0
            tot[s.name]["errors"] += w["non2xx"] + w["socket_errors"]
            row[s.name] = (t1 - t0) * 1e6 / CLK_TCK / n if n else None
        per_cycle.append(row)
        log("cycle %d of %d: %s" % (c + 1, cycles, ", ".join(
            "%s %.1f us/req" % (k, v) for k, v in row.items() if v is not None)))
    for name, t in tot.items():
        t["rps"] = t["requests"] / float(cycles * slice_s)
        t["cpu_us_per_req"] = t["ticks"] * 1e6 / CLK_TCK / t["requests"] if t["requests"] else None
        # The kernel's share (loopback TCP, about two thirds) is the same for every proxy;
        # the user share is what a proxy's own code costs.
        t["user_us_per_req"] = (t["user_ticks"] * 1e6 / CLK_TCK / t["requests"]
                                if t["requests"] else None)
        # Near 100 %: wrk and the origin set the rate, and the proxy idled in the gaps.
        # Not for a proxy that runs on the load CPU too (atrium-w2).
        busy = busy_pct(t.pop("load_ticks"), t.pop("wall"), load_cpus)
        t["load_busy_pct"] = busy if t.pop("own_cpus") else None
    return tot, per_cycle


def cycle_ratios(per_cycle, a, b):
    xs = sorted(r[a] / r[b] for r in per_cycle if r.get(a) and r.get(b))
    if not xs:
        return None
    return {"median": _median(xs), "min": xs[0], "max": xs[-1], "n": len(xs)}


def idle_memory(server, n):
    """Idle memory per keep-alive connection, on the fresh process before any load: after
    a wrk run the allocator holds freed memory the idle connections would reuse (see
    tools/bench.md). A failure loses this figure only."""
    log("%s: idle memory with %d keep-alive connections" % (server.name, n))
    try:
        light_warmup(server.port)
        return idle_conn_bytes(server, n)
    except (OSError, ValueError, IndexError, RuntimeError) as e:
        log("%s: idle-memory test failed: %s" % (server.name, e))
        return {"idle_error": str(e)}


def measure(servers, args, load_cpus, lg, counters=None, tmp=None):
    """The two steps over servers (started, each with .name, .port, .proc, .cpus, .tmp):
    warm-up, CPU per request in wrk slices (cpu_cycles, with counters), then loadgen at a
    fixed rate in the same slices. Returns (results, per_cycle, rate, loadgen's JSON):
    one result per server, in order, as cpu_cycles' totals plus "proxy" and "fixed_rate"
    (loadgen's target, with the server's CPU ticks and CPU us/request over that step)."""
    slice_s = max(1, args.slice)
    for s in servers:
        if args.warmup > 0:
            log("%s: warm-up %ds" % (s.name, args.warmup))
            run_wrk(s.port, args.warmup, args.connections, load_cpus, s.tmp, "warmup")
    log("CPU per request: %ds wrk slices in turn, %ds per proxy" % (slice_s, args.duration))
    tot, per_cycle = cpu_cycles(servers, args, slice_s, load_cpus, counters)
    rate = args.rate or 0.5 * min(t["rps"] for t in tot.values())
    log("latency at %d req/s: %ds loadgen slices in turn, %ds per proxy"
        % (rate, slice_s, args.duration))
    us0 = {s.name: tree_cpu_user_sys(s.proc.pid) for s in servers}
    lat = run_loadgen(lg, [s.port for s in servers], rate, args.duration, slice_s,
                      args.connections, load_cpus, tmp or servers[0].tmp)
    us1 = {s.name: tree_cpu_user_sys(s.proc.pid) for s in servers}
    by_port = {t["port"]: t for t in lat["targets"]}
    results = []
    for s in servers:
        r = dict(tot[s.name], proxy=s.name)
        f = r["fixed_rate"] = by_port[s.port]
        (u0, s0), (u1, s1) = us0[s.name], us1[s.name]
        f["ticks"], f["user_ticks"] = u1 + s1 - u0 - s0, u1 - u0
        f["cpu_us_per_req"] = (f["ticks"] * 1e6 / CLK_TCK / f["completed"]
                               if f["completed"] else None)
        f["user_us_per_req"] = (f["user_ticks"] * 1e6 / CLK_TCK / f["completed"]
                                if f["completed"] else None)
        results.append(r)
    return results, per_cycle, rate, lat


def pair_ratio(results, per_cycle, num, ref, target=None):
    """num against ref (proxy names in results): CPU per request saturated (summed, and
    per cycle), user CPU, CPU per request and p50/p99 at the fixed rate."""
    by = {r["proxy"]: r for r in results}
    a, b = by[num], by[ref]
    la, lb = a["fixed_rate"], b["fixed_rate"]
    return {
        "target": target,
        "cpu_per_req": a["cpu_us_per_req"] / b["cpu_us_per_req"]
        if a["cpu_us_per_req"] and b["cpu_us_per_req"] else None,
        "cpu_per_req_cycles": cycle_ratios(per_cycle, num, ref),
        "user_per_req": a["user_us_per_req"] / b["user_us_per_req"]
        if a["user_us_per_req"] and b["user_us_per_req"] else None,
        "cpu_per_req_at_rate": la["cpu_us_per_req"] / lb["cpu_us_per_req"]
        if la["cpu_us_per_req"] and lb["cpu_us_per_req"] else None,
        "user_per_req_at_rate": la["user_us_per_req"] / lb["user_us_per_req"]
        if la["user_us_per_req"] and lb["user_us_per_req"] else None,
        "p99_at_rate": la["p99_us"] / lb["p99_us"] if lb["p99_us"] > 0 else None,
        "p50_at_rate": la["p50_us"] / lb["p50_us"] if lb["p50_us"] > 0 else None,
    }


def main_interleave(args, only, origin_port, proxy_cpus, load_cpus, all_cpus, nofile, conns):
    slice_s = max(1, args.slice)
    lg = loadgen_path(args)
    if not os.access(lg, os.X_OK):
        log("%s not found: build it with meson (it is built next to atrium)" % lg)
        return 2, None
    servers = []
    try:
        for name in only:
            if name == "atrium-w2":  # workers 2 on every CPU, as in the sequential --workers2
                s = make_server(name, args, origin_port, all_cpus, nofile, conns, workers=2)
            else:
                s = make_server(name, args, origin_port, proxy_cpus, nofile, conns)
            if start_server(name, s)["status"] != "ok":
                return 2, None
            problem = probe(s.port)
            if problem:
                log("%s: WARNING: %s" % (name, problem))
            servers.append(s)
        idle = {s.name: idle_memory(s, args.idle_conns) for s in servers if args.idle_conns > 0}
        results, per_cycle, rate, lat = measure(servers, args, load_cpus, lg)
    finally:
        for s in servers:
            s.stop()
    for r in results:
        r.update(idle.get(r["proxy"], {}))
    doc = {"config": {"slice_s": slice_s, "seconds_per_proxy": args.duration,
                      "connections": args.connections, "rate": rate, "origin": args.origin,
                      "loadgen_overloaded": lat["overloaded"]},
           "results": results, "cycles": per_cycle, "ratios": {}}
    names = [s.name for s in servers]
    # (numerator, denominator, target): Atrium against each other proxy, and workers 2
    # against workers 1 (the same binary, so its at-rate latency ratio says little).
    pairs = [("atrium", ref, None if ref == "baseline" else 0.8)
             for ref in ("nginx", "haproxy", "baseline")] + [("atrium-w2", "atrium", 1.10)]
    for num, ref, target in pairs:
        if num in names and ref in names:
            doc["ratios"]["%s/%s" % (num, ref)] = pair_ratio(results, per_cycle, num, ref, target)
    return 0, doc


def print_ratio(pair, r, rate):
    """The lines of one pair_ratio() result."""
    cyc = r["cpu_per_req_cycles"]
    if r["cpu_per_req"]:
        print("%s cpu_per_req ratio: %.2f%s%s" % (
            pair, r["cpu_per_req"], " (target <= %g)" % r["target"] if r["target"] else "",
            "; per cycle: median %.2f, range %.2f-%.2f over %d cycles"
            % (cyc["median"], cyc["min"], cyc["max"], cyc["n"]) if cyc else ""))
    if r["user_per_req"]:
        print("%s user CPU per request: %.2f (the rest is kernel time, mostly "
              "loopback TCP)" % (pair, r["user_per_req"]))
    if r["cpu_per_req_at_rate"]:
        print("%s cpu_per_req ratio at %d req/s: %.2f (both proxies below saturation)%s"
              % (pair, rate, r["cpu_per_req_at_rate"],
                 "; user CPU: %.2f" % r["user_per_req_at_rate"]
                 if r.get("user_per_req_at_rate") else ""))
    if r["p99_at_rate"]:
        print("%s p99 ratio at %d req/s: %.2f; p50 ratio: %.2f" % (
            pair, rate, r["p99_at_rate"], r["p50_at_rate"]))


def print_interleave(doc, pinning):
    c = doc["config"]
    print("Atrium bench, interleaved: GET %s via proxy -> nginx origin, from %s; %s"
          % (PATH, c.get("origin", "memory"), pinning))
    print("CPU: wrk -t1 -c%d in %ds slices, %ds per proxy; latency: loadgen %d req/s open loop, "
          "same slices" % (c["connections"], c["slice_s"], c["seconds_per_proxy"], c["rate"]))
    print()
    cols = ("proxy", "req/s", "cpu_us/req", "user_us/req", "load_cpu", "errors", "cpu_us/req@rate",
            "p50@rate", "p99@rate", "p99.9@rate", "errors@rate", "idle_B/conn")
    rows = []
    for r in doc["results"]:
        f = r["fixed_rate"]
        rows.append((r["proxy"], "%.0f" % r["rps"],
                     "%.1f" % r["cpu_us_per_req"] if r["cpu_us_per_req"] else "-",
                     "%.1f" % r["user_us_per_req"] if r.get("user_us_per_req") else "-",
                     "%.0f%%" % r["load_busy_pct"] if r.get("load_busy_pct") else "-",
                     str(r["errors"]),
                     "%.1f" % f["cpu_us_per_req"] if f["cpu_us_per_req"] else "-",
                     "%.0fus" % f["p50_us"], "%.0fus" % f["p99_us"],
                     "%.0fus" % f["p999_us"], str(f["errors"] + f["non2xx"]),
                     "%.0f" % r["idle_bytes_per_conn"] if "idle_bytes_per_conn" in r else "-"))
    print_rows(cols, rows)
    print()
    for pair, r in doc["ratios"].items():
        print_ratio(pair, r, doc["config"]["rate"])
    for r in doc["results"]:
        if r["proxy"] == "atrium" and "idle_bytes_per_conn" in r:
            print("atrium idle conn bytes: %.0f (target <= 1024)" % r["idle_bytes_per_conn"])
        for note in idle_notes(r) + [load_bound_note(r)]:
            if note:
                print(note)
        f = r["fixed_rate"]
        if f.get("idle_closed") or f.get("retried"):
            print("%s: closed or wrote on %d idle keep-alive connections during the latency step, "
                  "%d of them as a request went out (loadgen opened new ones and sent those "
                  "requests again)" % (r["proxy"], f["idle_closed"] + f["retried"], f["retried"]))
    if doc["config"]["loadgen_overloaded"]:
        print("note: loadgen's backlog overflowed: a proxy could not keep up with the rate")
