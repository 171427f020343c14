// Atrium's status page: polls the JSON form of this same route every second,
// keeps two minutes of samples in the tab, and draws them on canvases. No
// libraries and nothing fetched from anywhere else (the server's
// Content-Security-Policy forbids it). window.atriumStatus exposes what was
// drawn, for tests and for the curious.
"use strict";
(function () {
  const POLL_MS = 1000;
  const KEEP_MS = 120000;
  const LAT_WINDOW = 5; // polls the latency percentiles are taken over
  const CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"];

  const state = { polls: 0, errors: 0, draws: 0, samples: 0, generation: null, servers: 0,
                  reloads: [], last: null, charts: {}, error: null };
  window.atriumStatus = state;

  const history = [];   // one sample per poll: {t, rps, cls, rq, uq, gen}
  const snaps = [];     // the last LAT_WINDOW + 1 raw answers, for deltas
  let prevServers = new Map(); // "upstream\0server" -> {requests, t}

  const $ = (id) => document.getElementById(id);
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  // ---- numbers

  function fmt(v, digits) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    if (a >= 100 || Number.isInteger(v)) return Math.round(v).toString();
    return v.toFixed(digits === undefined ? 1 : digits);
  }

  function fmtMs(v) {
    if (v === null || !isFinite(v)) return "–";
    return v >= 1000 ? (v / 1000).toFixed(2) + " s" : fmt(v) + " ms";
  }

  function fmtDuration(ms) {
    let s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    return m ? m + "m " + s + "s" : s + "s";
  }

  // The q-quantile of a histogram given per bucket (bounds in ms, the last
  // bucket past the last bound), interpolated linearly inside its bucket as
  // Prometheus's histogram_quantile does; the open last bucket answers its
  // lower bound. null without observations.
  function quantile(counts, bounds, q) {
    const total = counts.reduce((a, b) => a + b, 0);
    if (total <= 0) return null;
    const rank = q * total;
    let cum = 0;
    for (let i = 0; i < counts.length; i++) {
      if (counts[i] > 0 && cum + counts[i] >= rank) {
        if (i >= bounds.length) return bounds[bounds.length - 1];
        const lo = i === 0 ? 0 : bounds[i - 1];
        return lo + (bounds[i] - lo) * (rank - cum) / counts[i];
      }
      cum += counts[i];
    }
    return bounds[bounds.length - 1];
  }

  function percentiles(now, old, which) {
    const a = now.latency[which].counts, b = old.latency[which].counts;
    const d = a.map((v, i) => Math.max(0, v - b[i]));
    const bounds = now.latency.bounds_ms;
    return [0.5, 0.9, 0.99].map((q) => quantile(d, bounds, q));
  }

  // ---- samples

  function sample(d) {
    const prev = snaps.length ? snaps[snaps.length - 1] : null;
    if (prev && (d.start_unix_ms !== prev.start_unix_ms || d.requests < prev.requests)) {
      snaps.length = 0;              // another process: its counters start again
      prevServers = new Map();
    }
    snaps.push(d);
    if (snaps.length > LAT_WINDOW + 1) snaps.shift();
    if (snaps.length < 2) return null;
    const p = snaps[snaps.length - 2], old = snaps[0];
    const dt = (d.now_unix_ms - p.now_unix_ms) / 1000;
    if (dt <= 0) return null;
    const s = {
      t: d.now_unix_ms,
      gen: d.generation,
      rps: (d.requests - p.requests) / dt,
      cls: CLASSES.map((c) => Math.max(0, d.responses[c] - p.responses[c]) / dt),
      rq: percentiles(d, old, "request"),
      uq: percentiles(d, old, "upstream"),
    };
    if (p.generation !== d.generation)
      state.reloads.push({ t: d.now_unix_ms, gen: d.generation });
    return s;
  }

  function keep(s) {
    history.push(s);
    const oldest = s.t - KEEP_MS;
    while (history.length && history[0].t < oldest) history.shift();
    while (state.reloads.length && state.reloads[0].t < oldest) state.reloads.shift();
    state.samples = history.length;
    state.last = s;
  }

  // ---- charts

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  function sizeCanvas(c) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(100, Math.round(c.clientWidth * dpr));
    const h = Math.max(60, Math.round(c.clientHeight * dpr));
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    const ctx = c.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return { ctx, w: w / dpr, h: h / dpr };
  }

  // The time the charts span: what is kept, at least 30 s (a page just
  // opened fills in seconds instead of starting as a sliver on the right).
  function span() {
    const have = history.length ? history[history.length - 1].t - history[0].t : 0;
    return Math.min(KEEP_MS, Math.max(30000, Math.ceil(have / 30000) * 30000));
  }

  // series: [{label, color, get(sample) -> number|null}]; fmtY formats axis
  // labels. Time runs right to left from the newest sample: "now" at the
  // right edge, span() ago at the left.
  function drawChart(id, series, fmtY) {
    const c = $("chart-" + id);
    const { ctx, w, h } = sizeCanvas(c);
    const pad = { l: 48, r: 10, t: 8, b: 20 };
    const pw = w - pad.l - pad.r, ph = h - pad.t - pad.b;
    const tEnd = history.length ? history[history.length - 1].t : Date.now();
    const spanMs = span();
    const x = (t) => pad.l + pw * (1 - (tEnd - t) / spanMs);
    let max = 0;
    for (const s of history) for (const se of series) {
      const v = se.get(s);
      if (v !== null && v > max) max = v;
    }
    const top = niceMax(max);
    const y = (v) => pad.t + ph * (1 - v / top);

    ctx.clearRect(0, 0, w, h);
    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    ctx.strokeStyle = css("--grid");
    ctx.fillStyle = css("--muted");
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const v = top * i / 4, yy = Math.round(y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(pad.l, yy); ctx.lineTo(w - pad.r, yy); ctx.stroke();
      ctx.fillText(fmtY(v), pad.l - 6, yy);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const step = spanMs <= 30000 ? 10 : spanMs <= 60000 ? 15 : 30; // seconds
    for (let s = 0; s <= spanMs / 1000; s += step) {
      const xx = x(tEnd - s * 1000);
      ctx.fillText(s ? "-" + s + "s" : "now", Math.min(xx, w - pad.r - 12), h - pad.b + 5);
    }
    // reloads: a dashed line with the generation they brought
    ctx.strokeStyle = css("--reload");
    ctx.setLineDash([4, 3]);
    ctx.fillStyle = css("--reload");
    for (const r of state.reloads) {
      if (tEnd - r.t > spanMs) continue;
      const xx = Math.round(x(r.t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(xx, pad.t); ctx.lineTo(xx, pad.t + ph); ctx.stroke();
      const right = xx + 50 > w - pad.r; // the label on the side with room
      ctx.textAlign = right ? "right" : "left";
      ctx.fillText("gen " + r.gen, right ? xx - 3 : xx + 3, pad.t);
    }
    ctx.setLineDash([]);
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    let points = 0;
    const last = {};
    for (const se of series) {
      ctx.strokeStyle = se.color;
      ctx.beginPath();
      let pen = false;
      for (const s of history) {
        const v = se.get(s);
        if (v === null) { pen = false; continue; }  // a gap: no data then
        if (pen) ctx.lineTo(x(s.t), y(v)); else ctx.moveTo(x(s.t), y(v));
        pen = true;
        points++;
        last[se.label] = v;
      }
      ctx.stroke();
    }
    state.charts[id] = { points, last, max: top };
    legend(id, series);
  }

  function legend(id, series) {
    const ul = $("legend-" + id);
    if (ul.children.length !== series.length) {
      ul.textContent = "";
      for (const se of series) {
        const li = document.createElement("li");
        li.style.setProperty("--swatch", se.color);
        li.append(se.label + " ", document.createElement("b"));
        ul.append(li);
      }
    }
    const s = history[history.length - 1];
    series.forEach((se, i) => {
      const v = s ? se.get(s) : null;
      ul.children[i].querySelector("b").textContent = se.fmt ? se.fmt(v) : fmt(v);
    });
  }

  function drawCharts() {
    drawChart("rps", [{ label: "requests/s", color: css("--rps"), get: (s) => s.rps }], fmt);
    drawChart("classes", CLASSES.map((c, i) => ({
      label: c, color: css("--c" + c), get: (s) => s.cls[i] })), fmt);
    const lat = (key) => ["p50", "p90", "p99"].map((p, i) => ({
      label: p, color: css("--" + p), get: (s) => s[key][i], fmt: fmtMs }));
    drawChart("latency", lat("rq"), fmt);
    drawChart("upstream", lat("uq"), fmt);
    state.draws++;
  }

  // ---- header, cards, tables

  function header(d) {
    $("version").textContent = d.version;
    $("generation").textContent = d.generation;
    $("workers").textContent = d.workers;
    $("uptime").textContent = fmtDuration(d.uptime_ms);
    $("reloads").textContent = d.reloads.ok + (d.reloads.failed ? " (" + d.reloads.failed + " failed)" : "");
    const s = history[history.length - 1];
    let inflight = 0;
    for (const u of d.upstreams) inflight += u.in_flight;
    $("card-rps").textContent = s ? fmt(s.rps) : "–";
    $("card-err").textContent = s ? fmt(s.cls[4]) : "–";
    $("card-p99").textContent = s ? fmtMs(s.rq[2]) : "–";
    $("card-inflight").textContent = inflight;
    $("card-conns").textContent = d.connections.open;
  }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.append(td);
    return td;
  }

  function num(tr, v, hot) {
    cell(tr, fmt(v), v === 0 ? "zero" : hot ? "hot" : "");
  }

  function rate(sv, was, now) {
    const dt = (now - was.t) / 1000;
    return dt > 0 ? Math.max(0, sv.requests - was.requests) / dt : null;
  }

  const COLUMNS = ["server", "state", "weight", "in flight", "req/s", "requests",
                   "2xx", "4xx", "5xx", "errors", "connect fails"];

  function serverRow(u, sv, now, seen, filter) {
    const k = u.name + "\0" + sv.name;
    const was = prevServers.get(k);
    seen.set(k, { requests: sv.requests, t: now, rate: was ? rate(sv, was, now) : null });
    if (filter && !(sv.name + " " + sv.state).toLowerCase().includes(filter)) return null;
    const tr = document.createElement("tr");
    if (prevServers.size && !was) tr.className = "new";
    cell(tr, sv.name);
    const st = document.createElement("span");
    st.className = "state " + sv.state;
    st.textContent = sv.state;
    cell(tr, "").append(st);
    cell(tr, sv.weight_ratio < 1 ? sv.weight + " (" + Math.round(sv.weight_ratio * 100) + "%)" : sv.weight);
    num(tr, sv.in_flight);
    cell(tr, was ? fmt(was.t === now ? was.rate : rate(sv, was, now)) : "–");
    num(tr, sv.requests);
    num(tr, sv.responses[1]);
    num(tr, sv.responses[3]);
    num(tr, sv.responses[4], true);
    num(tr, sv.errors, true);
    num(tr, sv.connect_failures, true);
    return tr;
  }

  // advance: a new answer (per-server rates move on); not for a filter change
  function tables(d, advance) {
    const box = $("upstreams");
    const filter = $("filter").value.trim().toLowerCase();
    const seen = new Map();
    const frag = document.createDocumentFragment();
    let servers = 0;
    for (const u of d.upstreams) {
      const div = document.createElement("div");
      div.className = "upstream";
      const h3 = document.createElement("h3");
      const small = document.createElement("small");
      small.textContent = u.protocol + " · " + u.balance + " · " + u.servers_up + "/" +
        u.servers_total + " up · " + u.in_flight + " in flight · " + fmt(u.requests) +
        " requests · " + fmt(u.errors) + " errors";
      h3.append(u.name, small);
      const table = document.createElement("table");
      const hr = table.createTHead().insertRow();
      for (const c of COLUMNS) { const th = document.createElement("th"); th.textContent = c; hr.append(th); }
      const tb = table.createTBody();
      for (const sv of u.servers) {
        const tr = serverRow(u, sv, d.now_unix_ms, seen, filter);
        if (tr) tb.append(tr);
      }
      servers += u.servers.length;
      div.append(h3, table);
      frag.append(div);
    }
    box.replaceChildren(frag);
    if (advance) prevServers = seen; // servers gone from the set are forgotten with it
    state.servers = servers;
    $("omitted").hidden = !d.servers_omitted;
    $("omitted").textContent = d.servers_omitted + " servers not listed (the page is bounded); " +
      "their counts are in the upstream sums.";
  }

  // ---- polling

  function onData(d) {
    state.polls++;
    state.generation = d.generation;
    state.error = null;
    const s = sample(d);
    if (s) keep(s);
    header(d);
    tables(d, true);
    drawCharts();
    const live = $("live");
    live.className = "live ok";
    live.textContent = "live · " + new Date(d.now_unix_ms).toLocaleTimeString();
  }

  function onError(e) {
    state.errors++;
    state.error = String(e);
    const live = $("live");
    live.className = "live bad";
    live.textContent = "no answer: " + e.message;
  }

  function poll() {
    fetch("?format=json", { cache: "no-store", headers: { Accept: "application/json" } })
      .then((r) => { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(onData)
      .catch(onError)
      .finally(() => setTimeout(poll, POLL_MS));
  }

  window.addEventListener("resize", () => { if (history.length) drawCharts(); });
  $("filter").addEventListener("input", () => { if (snaps.length) tables(snaps[snaps.length - 1], false); });
  poll();
})();
