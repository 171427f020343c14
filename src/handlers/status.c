/* `status;` routes: the counters of metrics.h and the per-server state,
 * summed over every worker, in the form the client asks for
 * (status_negotiate.h): the Prometheus text exposition format (version
 * 0.0.4, written here), JSON (status_json.c) or the HTML page that polls it
 * (assets/, built in). GET and HEAD only. The page shows the generation that
 * serves the request: its upstreams and servers, with counters carried over
 * reloads by name. Access control is the route's allow/deny, applied before
 * the handler runs. */
#include "handlers/status.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "cluster/hb_monitor.h"
#include "handlers/status_negotiate.h"
#include "handlers/status_priv.h"

#ifndef ATR_VERSION
#define ATR_VERSION "dev"
#endif

const char *const atr__status_classes[5] = { "1xx", "2xx", "3xx", "4xx", "5xx" };

static void family(atr_buf_t *b, const char *name, const char *type, const char *help)
{
    atr_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_name(atr_buf_t *b, const char *name, const char *labels)
{
    atr_buf_puts(b, name);
    if (labels && labels[0])
        atr_buf_printf(b, "{%s}", labels);
    atr_buf_put(b, " ", 1);
}

static void sample(atr_buf_t *b, const char *name, const char *labels, uint64_t v)
{
    sample_name(b, name, labels);
    atr_buf_put_u64(b, v);
    atr_buf_put(b, "\n", 1);
}

/* A label value: backslash, double quote and newline escaped. */
static void label_value(atr_buf_t *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            atr_buf_put(b, "\\", 1);
        if (*s == '\n')
            atr_buf_puts(b, "\\n");
        else
            atr_buf_put(b, s, 1);
    }
}

/* One latency histogram (per-bucket counts, summed over the workers) as
 * Prometheus wants it: cumulative buckets in seconds, +Inf, the sum and the
 * count. */
static void histogram(atr_buf_t *b, const char *name, const char *help, const uint64_t *n,
                      uint64_t sum_ms)
{
    uint64_t cum = 0;
    family(b, name, "histogram", help);
    for (int k = 0; k < ATR_LAT_NB; k++) {
        char lab[32];
        cum += n[k];
        if (k < ATR_LAT_NB - 1)
            snprintf(lab, sizeof lab, "le=\"%u.%03u\"", atr_lat_bounds_ms[k] / 1000,
                     atr_lat_bounds_ms[k] % 1000);
        else
            snprintf(lab, sizeof lab, "le=\"+Inf\"");
        atr_buf_printf(b, "%s_bucket{%s} %llu\n", name, lab, (unsigned long long)cum);
    }
    atr_buf_printf(b, "%s_sum %llu.%03llu\n", name, (unsigned long long)(sum_ms / 1000),
                   (unsigned long long)(sum_ms % 1000));
    atr_buf_printf(b, "%s_count %llu\n", name, (unsigned long long)cum);
}

static void lat_add(uint64_t *n, uint64_t *sum_ms, atr_lat_t *h)
{
    for (int k = 0; k < ATR_LAT_NB; k++)
        n[k] += atr_metric_get(&h->n[k]);
    *sum_ms += atr_metric_get(&h->sum_ms);
}

void atr__status_totals(atr_status_totals_t *t)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < atr_process.nworkers; i++) {
        atr_metrics_t *m = &atr_process.workers[i]->metrics;
        t->accepted += atr_metric_get(&m->accepted);
        t->conns += atr_metric_get(&m->connections);
        t->requests += atr_metric_get(&m->requests);
        t->bytes += atr_metric_get(&m->bytes_sent);
        for (int k = 0; k < 5; k++)
            t->resp[k] += atr_metric_get(&m->responses[k]);
        lat_add(t->request_n, &t->request_sum_ms, &m->request_ms);
        lat_add(t->upstream_n, &t->upstream_sum_ms, &m->upstream_ms);
    }
}

static void process_metrics(atr_buf_t *b, const atr_gen_t *g)
{
    atr_process_t *pr = &atr_process;
    int nw = pr->nworkers;
    atr_status_totals_t t;
    atr__status_totals(&t);
    uint64_t start_ms = pr->start_unix_ms;

    family(b, "atrium_info", "gauge", "Version of the running binary.");
    atr_buf_printf(b, "atrium_info{version=\"%s\"} 1\n", ATR_VERSION);
    family(b, "atrium_start_time_seconds", "gauge", "Start time since the Unix epoch.");
    atr_buf_printf(b, "atrium_start_time_seconds %llu.%03u\n",
                   (unsigned long long)(start_ms / 1000), (unsigned)(start_ms % 1000));
    family(b, "atrium_workers", "gauge", "Worker threads.");
    sample(b, "atrium_workers", NULL, (uint64_t)nw);
    family(b, "atrium_config_generation", "gauge",
           "Configuration generation serving this request.");
    sample(b, "atrium_config_generation", NULL, g->id);
    family(b, "atrium_reloads_total", "counter", "Configuration reloads by result.");
    sample(b, "atrium_reloads_total", "result=\"ok\"", atomic_load(&pr->reloads_ok));
    sample(b, "atrium_reloads_total", "result=\"failed\"", atomic_load(&pr->reloads_failed));
    family(b, "atrium_dns_failures_total", "counter",
           "Lookups of resolve names that failed (the last good answer was kept).");
    sample(b, "atrium_dns_failures_total", NULL, atomic_load(&pr->dns_failures));
    family(b, "atrium_dns_names_failing", "gauge", "Resolve names whose last lookup failed.");
    sample(b, "atrium_dns_names_failing", NULL, (uint64_t)atomic_load(&pr->dns_failing));
    family(b, "atrium_log_lines_dropped_total", "counter",
           "Log lines a syslog target did not take at once (full or missing), by log.");
    sample(b, "atrium_log_lines_dropped_total", "log=\"error\"", atr_log_dropped());
    sample(b, "atrium_log_lines_dropped_total", "log=\"access\"", atr_access_log_dropped());
    family(b, "atrium_connections_accepted_total", "counter", "Client connections accepted.");
    sample(b, "atrium_connections_accepted_total", NULL, t.accepted);
    family(b, "atrium_connections", "gauge", "Client connections open.");
    sample(b, "atrium_connections", NULL, t.conns);
    family(b, "atrium_requests_total", "counter", "Requests finished, answered or abandoned.");
    sample(b, "atrium_requests_total", NULL, t.requests);
    family(b, "atrium_responses_total", "counter",
           "Requests finished, by status class (499: the client left).");
    for (int k = 0; k < 5; k++) {
        char lab[16];
        snprintf(lab, sizeof lab, "code=\"%s\"", atr__status_classes[k]);
        sample(b, "atrium_responses_total", lab, t.resp[k]);
    }
    family(b, "atrium_response_body_bytes_total", "counter",
           "Response body bytes sent to clients.");
    sample(b, "atrium_response_body_bytes_total", NULL, t.bytes);
    histogram(b, "atrium_request_duration_seconds",
              "Requests from their first byte to the end of the answer (the loop's clock, ms).",
              t.request_n, t.request_sum_ms);
    histogram(b, "atrium_upstream_duration_seconds",
              "Proxied requests from sent to the backend to the end of its answer.",
              t.upstream_n, t.upstream_sum_ms);
}

/* One family over every server of every upstream; get() reads the value. */
static void server_family(atr_buf_t *b, const atr_gen_t *g, uint64_t now, const char *name,
                          const char *type, const char *help, int per_class,
                          uint64_t (*get)(atr_server_state_t *st, uint64_t now, int k),
                          void (*put)(atr_buf_t *b, const atr_lb_server_t *s, uint64_t now))
{
    family(b, name, type, help);
    for (int u = 0; u < g->nups; u++) {
        const atr_conf_upstream_t *uc = g->ups[u].conf;
        atr_members_t *ms = atr_gen_members(&g->ups[u]);
        for (int s = 0; s < ms->n; s++) {
            atr_buf_t lab = { 0 };
            atr_buf_puts(&lab, "upstream=\"");
            label_value(&lab, uc->name);
            atr_buf_printf(&lab, "\",protocol=\"%s\",server=\"", uc->protocol->name);
            label_value(&lab, ms->m[s].name);
            atr_buf_put(&lab, "\"", 1);
            size_t base = lab.n;
            for (int k = 0; k < (per_class ? 5 : 1); k++) {
                lab.n = base;
                if (per_class)
                    atr_buf_printf(&lab, ",code=\"%s\"", atr__status_classes[k]);
                atr_buf_put(&lab, "", 1); /* NUL */
                if (put != NULL) { /* a value that is not a count */
                    sample_name(b, name, lab.p);
                    put(b, &ms->servers[s], now);
                    continue;
                }
                sample(b, name, lab.p, get(ms->servers[s].state, now, k));
            }
            free(lab.p);
        }
        atr_members_unref(ms);
    }
}

static uint64_t get_requests(atr_server_state_t *st, uint64_t now, int k)
{
    (void)now, (void)k;
    return atomic_load(&st->requests);
}

static uint64_t get_responses(atr_server_state_t *st, uint64_t now, int k)
{
    (void)now;
    return atomic_load(&st->responses[k]);
}

static uint64_t get_errors(atr_server_state_t *st, uint64_t now, int k)
{
    (void)now, (void)k;
    return atomic_load(&st->errors);
}

static uint64_t get_failures(atr_server_state_t *st, uint64_t now, int k)
{
    (void)now, (void)k;
    return atomic_load(&st->failures);
}

static uint64_t get_active(atr_server_state_t *st, uint64_t now, int k)
{
    (void)now, (void)k;
    int v = atomic_load(&st->active);
    return v > 0 ? (uint64_t)v : 0;
}

static uint64_t get_down(atr_server_state_t *st, uint64_t now, int k)
{
    (void)k;
    return atomic_load(&st->down_until) > now;
}

static uint64_t get_ejected(atr_server_state_t *st, uint64_t now, int k)
{
    (void)k;
    return atomic_load(&st->ejected_until) > now;
}

static uint64_t get_ejections(atr_server_state_t *st, uint64_t now, int k)
{
    (void)now, (void)k;
    return atomic_load(&st->ejections);
}

static uint64_t get_unhealthy(atr_server_state_t *st, uint64_t now, int k)
{
    (void)now, (void)k;
    return atomic_load(&st->unhealthy) != 0;
}

static uint64_t get_draining(atr_server_state_t *st, uint64_t now, int k)
{
    (void)now, (void)k;
    return atomic_load(&st->admin) == ATR_LB_ADMIN_DRAIN;
}

static uint64_t get_disabled(atr_server_state_t *st, uint64_t now, int k)
{
    (void)now, (void)k;
    return atomic_load(&st->admin) == ATR_LB_ADMIN_DISABLED;
}

/* The share of its weight the methods give the server now: below 1 while
 * slow_start ramps it up. */
static void put_weight_ratio(atr_buf_t *b, const atr_lb_server_t *s, uint64_t now)
{
    uint32_t w = atr_lb_weight_at(s, now);
    atr_buf_printf(b, "%.3f\n", (double)w / ((double)s->weight * ATR_LB_WSCALE));
}

/* The per-server families, in the order the page shows them. */
static const struct {
    const char *name, *type, *help;
    int per_class;
    uint64_t (*get)(atr_server_state_t *st, uint64_t now, int k);
    void (*put)(atr_buf_t *b, const atr_lb_server_t *s, uint64_t now); /* instead of get */
} server_families[] = {
    { "atrium_upstream_requests_total", "counter",
      "Requests given to the server, failed connects included (CGI: scripts started).", 0,
      get_requests, NULL },
    { "atrium_upstream_responses_total", "counter",
      "Response heads received from the server, by status class.", 1, get_responses, NULL },
    { "atrium_upstream_errors_total", "counter",
      "502 and 504 answers caused by the server (bad response, timeout, reset).", 0, get_errors,
      NULL },
    { "atrium_upstream_connect_failures_total", "counter",
      "Failed connects (or script starts), each marking the server down.", 0, get_failures, NULL },
    { "atrium_upstream_active", "gauge",
      "Requests in flight on the server, all workers (CGI: live scripts).", 0, get_active, NULL },
    { "atrium_upstream_down", "gauge", "1 while the server is marked down after a failure.", 0,
      get_down, NULL },
    { "atrium_upstream_unhealthy", "gauge", "1 while the server fails its active health check.", 0,
      get_unhealthy, NULL },
    { "atrium_upstream_draining", "gauge",
      "1 while the operator has the server drained (atrium ctl drain): no new requests.", 0,
      get_draining, NULL },
    { "atrium_upstream_disabled", "gauge",
      "1 while the operator has the server disabled (atrium ctl disable): no requests, no checks.",
      0, get_disabled, NULL },
    { "atrium_upstream_ejected", "gauge",
      "1 while outlier detection keeps the server out (failures in a row).", 0, get_ejected, NULL },
    { "atrium_upstream_ejections_total", "counter", "Times outlier detection ejected the server.",
      0, get_ejections, NULL },
    { "atrium_upstream_weight_ratio", "gauge",
      "Share of its weight the server gets now (below 1 during slow_start).", 0, NULL,
      put_weight_ratio },
};

static uint64_t get_hb_ready(atr_server_state_t *st, uint64_t now, int k)
{
    (void)k;
    int v = atomic_load(&st->hb_ready);
    return atr_lb_hb_fresh(st, now) && v > 0 ? (uint64_t)v : 0;
}

static uint64_t get_hb_fresh(atr_server_state_t *st, uint64_t now, int k)
{
    (void)k;
    return (uint64_t)atr_lb_hb_fresh(st, now);
}

/* The heartbeat counters (cluster/hb_monitor.h), when heartbeats are on. */
static void heartbeat_metrics(atr_buf_t *b, const atr_gen_t *g, uint64_t now)
{
    static const struct {
        const char *result;
        atomic_uint_fast64_t *n;
    } beats[] = {
        { "accepted", &atr_hb_stats.accepted },   { "malformed", &atr_hb_stats.malformed },
        { "too_long", &atr_hb_stats.too_long },   { "forged", &atr_hb_stats.forged },
        { "replayed", &atr_hb_stats.replayed },   { "too_many_senders", &atr_hb_stats.too_many },
    };
    const atr_conf_heartbeat_t *hb = &g->conf->hb;
    if (hb->listen != NULL) {
        family(b, "atrium_heartbeat_beats_total", "counter",
               "Heartbeats received, by what became of them.");
        for (size_t i = 0; i < sizeof beats / sizeof beats[0]; i++) {
            char lab[48];
            snprintf(lab, sizeof lab, "result=\"%s\"", beats[i].result);
            sample(b, "atrium_heartbeat_beats_total", lab, atomic_load(beats[i].n));
        }
        family(b, "atrium_heartbeat_senders", "gauge", "Senders whose last beat still counts.");
        int n = atomic_load(&atr_hb_stats.senders);
        sample(b, "atrium_heartbeat_senders", NULL, n > 0 ? (uint64_t)n : 0);
        server_family(b, g, now, "atrium_upstream_heartbeat_fresh", "gauge",
                      "1 while the server's last heartbeat counts (at most 10s old).", 0,
                      get_hb_fresh, NULL);
        server_family(b, g, now, "atrium_upstream_heartbeat_ready", "gauge",
                      "Idle capacity the server announced in its last heartbeat (0 when stale).",
                      0, get_hb_ready, NULL);
    }
    if (hb->send != NULL) {
        family(b, "atrium_heartbeat_sent_total", "counter", "Heartbeats of ours, by result.");
        sample(b, "atrium_heartbeat_sent_total", "result=\"sent\"", atomic_load(&atr_hb_stats.sent));
        sample(b, "atrium_heartbeat_sent_total", "result=\"error\"",
               atomic_load(&atr_hb_stats.send_errors));
    }
}

static void server_metrics(atr_buf_t *b, const atr_gen_t *g)
{
    uint64_t now = atr_now_ms();
    for (size_t i = 0; i < sizeof server_families / sizeof server_families[0]; i++)
        server_family(b, g, now, server_families[i].name, server_families[i].type,
                      server_families[i].help, server_families[i].per_class,
                      server_families[i].get, server_families[i].put);
    heartbeat_metrics(b, g, now);
}

/* Send a 200 with n bytes of body (copied after the head). HEAD gets the
 * head alone. */
static void respond(atr_req_t *r, const char *fields, const char *body, size_t n, int close_conn)
{
    if (close_conn)
        r->resp_close = 1;
    if (r->method == ATR_M_HEAD)
        r->resp_no_body = 1;
    atr_buf_t out;
    atr_req_local_head(r, 200, fields, (int64_t)n, &out);
    if (!r->resp_no_body) {
        atr_buf_put(&out, body, n);
        r->bytes_sent = n;
    }
    r->status = 200;
    atr_req_send_whole(r, out.p, out.n);
}

static const char *const content_types[] = {
    [ATR_STATUS_PROMETHEUS] = "text/plain; version=0.0.4; charset=utf-8",
    [ATR_STATUS_HTML] = "text/html; charset=utf-8",
    [ATR_STATUS_JSON] = "application/json",
};

static void answer(atr_req_t *r, enum atr_status_format f, int by_accept, int close_conn)
{
    atr_buf_t b = { 0 }, fields = { 0 };
    const atr_gen_t *g = r->wg->gen;
    const char *body = NULL;
    switch (f) {
    case ATR_STATUS_HTML:
        body = (const char *)atr__status_page;
        b.n = atr__status_page_len;
        /* the page's own script and style only, and requests to this origin */
        atr_buf_printf(&fields, "Content-Security-Policy: %s\r\n", atr__status_page_csp);
        break;
    case ATR_STATUS_JSON:
        atr__status_json(&b, g);
        break;
    default:
        process_metrics(&b, g);
        server_metrics(&b, g);
        break;
    }
    atr_buf_printf(&fields, "Content-Type: %s\r\nCache-Control: no-store\r\n"
                            "X-Content-Type-Options: nosniff\r\n%s",
                   content_types[f], by_accept ? "Vary: Accept\r\n" : "");
    atr_buf_put(&fields, "", 1); /* NUL */
    respond(r, fields.p, body ? body : b.p, b.n, close_conn);
    free(fields.p);
    free(b.p);
}

void atr_status_handle(atr_req_t *r)
{
    const atr_http_msg_t *m = r->msg;
    int has_body = m->body != ATR_BODY_NONE, by_accept;
    const atr_http_header_t *acc = atr_http_find(m, "accept");
    enum atr_status_format f =
        atr_status_negotiate(m->target, acc ? acc->value : (atr_str_t){ "", 0 }, &by_accept);
    atr_req_head_done(r); /* the views above are gone from here on */
    if (r->method != ATR_M_GET && r->method != ATR_M_HEAD) {
        atr_req_respond_simple(r, 405, NULL, has_body);
        return;
    }
    if (f == ATR_STATUS_BAD_FORMAT) {
        atr_req_respond_simple(r, 400, "format: html, prometheus or json\n", has_body);
        return;
    }
    answer(r, f, by_accept, has_body);
}
