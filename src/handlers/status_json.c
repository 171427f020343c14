/* The status page's JSON form (`?format=json`, or Accept: application/json):
 * what the HTML page polls every second. Totals, response classes, the two
 * latency histograms per bucket, and every upstream with its servers' state
 * and counters, for the generation serving the request. Built in one buffer
 * on the worker, sized up front, and bounded (status_priv.h). */
#include <stdio.h>
#include <time.h>

#include "handlers/status_priv.h"

#ifndef ATR_VERSION
#define ATR_VERSION "dev"
#endif

/* Longest name written: config text, so bounded already, but a 1,000-server
 * page should not carry 1,000 copies of a pathological one. */
#define NAME_MAX_BYTES 256

/* A JSON string: quote, backslash and control bytes escaped; other bytes
 * as they are (config text is UTF-8), cut on a character boundary. */
static void json_str(atr_buf_t *b, const char *s)
{
    size_t n = strlen(s);
    if (n > NAME_MAX_BYTES) {
        n = NAME_MAX_BYTES;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    atr_buf_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = { '\\', (char)c };
            atr_buf_put(b, e, 2);
        } else if (c < 0x20) {
            atr_buf_printf(b, "\\u%04x", c);
        } else {
            atr_buf_put(b, (const char *)&c, 1);
        }
    }
    atr_buf_put(b, "\"", 1);
}

static void key(atr_buf_t *b, const char *k)
{
    atr_buf_printf(b, "\"%s\":", k);
}

static void key_u64(atr_buf_t *b, const char *k, uint64_t v)
{
    key(b, k);
    atr_buf_put_u64(b, v);
    atr_buf_put(b, ",", 1);
}

static void u64_array(atr_buf_t *b, const uint64_t *v, int n)
{
    atr_buf_put(b, "[", 1);
    for (int i = 0; i < n; i++) {
        if (i)
            atr_buf_put(b, ",", 1);
        atr_buf_put_u64(b, v[i]);
    }
    atr_buf_put(b, "]", 1);
}

static void histogram(atr_buf_t *b, const char *name, const uint64_t *n, uint64_t sum_ms)
{
    key(b, name);
    atr_buf_puts(b, "{\"counts\":");
    u64_array(b, n, ATR_LAT_NB);
    atr_buf_puts(b, ",\"sum_ms\":");
    atr_buf_put_u64(b, sum_ms);
    atr_buf_put(b, "}", 1);
}

static uint64_t now_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void process(atr_buf_t *b, const atr_gen_t *g)
{
    atr_process_t *pr = &atr_process;
    atr_status_totals_t t;
    atr__status_totals(&t);
    uint64_t now = now_unix_ms();
    atr_buf_puts(b, "{\"version\":\"" ATR_VERSION "\",");
    key_u64(b, "generation", g->id);
    key_u64(b, "workers", (uint64_t)pr->nworkers);
    key_u64(b, "start_unix_ms", pr->start_unix_ms);
    key_u64(b, "now_unix_ms", now);
    key_u64(b, "uptime_ms", now > pr->start_unix_ms ? now - pr->start_unix_ms : 0);
    atr_buf_printf(b, "\"reloads\":{\"ok\":%llu,\"failed\":%llu},",
                   (unsigned long long)atomic_load(&pr->reloads_ok),
                   (unsigned long long)atomic_load(&pr->reloads_failed));
    atr_buf_printf(b, "\"connections\":{\"open\":%llu,\"accepted\":%llu},",
                   (unsigned long long)t.conns, (unsigned long long)t.accepted);
    key_u64(b, "requests", t.requests);
    key_u64(b, "bytes_sent", t.bytes);
    key(b, "responses");
    atr_buf_put(b, "{", 1);
    for (int k = 0; k < 5; k++)
        atr_buf_printf(b, "%s\"%s\":%llu", k ? "," : "", atr__status_classes[k],
                       (unsigned long long)t.resp[k]);
    atr_buf_puts(b, "},\"latency\":{\"bounds_ms\":[");
    for (int k = 0; k < ATR_LAT_NB - 1; k++)
        atr_buf_printf(b, "%s%u", k ? "," : "", atr_lat_bounds_ms[k]);
    atr_buf_puts(b, "],");
    histogram(b, "request", t.request_n, t.request_sum_ms);
    atr_buf_put(b, ",", 1);
    histogram(b, "upstream", t.upstream_n, t.upstream_sum_ms);
    atr_buf_puts(b, "},");
}

/* An upstream's sums over all of its servers, listed or not. */
typedef struct sums {
    uint64_t requests, errors, failures, responses[5];
    int64_t in_flight;
    int up;
} sums_t;

static void server(atr_buf_t *b, const atr_lb_server_t *s, const atr_member_t *m, uint64_t now,
                   sums_t *sum, int listed)
{
    atr_server_state_t *st = s->state;
    uint64_t req = atomic_load(&st->requests), err = atomic_load(&st->errors);
    uint64_t fail = atomic_load(&st->failures), resp[5];
    int active = atomic_load(&st->active);
    const char *state = atr_member_state(m, st, now);
    for (int k = 0; k < 5; k++) {
        resp[k] = atomic_load(&st->responses[k]);
        sum->responses[k] += resp[k];
    }
    sum->requests += req;
    sum->errors += err;
    sum->failures += fail;
    sum->in_flight += active > 0 ? active : 0;
    sum->up += strcmp(state, "up") == 0;
    if (!listed)
        return;
    atr_buf_puts(b, "{\"name\":");
    json_str(b, m->name);
    atr_buf_printf(b, ",\"state\":\"%s\",\"weight\":%d,\"weight_ratio\":%.3f,"
                      "\"max_conns\":%d,\"backup\":%s,",
                   state, s->weight,
                   (double)atr_lb_weight_at(s, now) / ((double)s->weight * ATR_LB_WSCALE),
                   s->max_conns, s->backup ? "true" : "false");
    key_u64(b, "in_flight", active > 0 ? (uint64_t)active : 0);
    key_u64(b, "requests", req);
    key_u64(b, "errors", err);
    key_u64(b, "connect_failures", fail);
    key_u64(b, "ejections", atomic_load(&st->ejections));
    key(b, "responses");
    u64_array(b, resp, 5);
    atr_buf_put(b, "}", 1);
}

/* One upstream; returns how many of its servers were left out. */
static int upstream(atr_buf_t *b, const atr_gen_upstream_t *gu, uint64_t now)
{
    const atr_conf_upstream_t *uc = gu->conf;
    atr_members_t *ms = atr_gen_members(gu);
    sums_t sum = { 0 };
    int listed = 0;
    atr_buf_puts(b, "{\"name\":");
    json_str(b, uc->name);
    atr_buf_printf(b, ",\"protocol\":\"%s\",\"balance\":\"%s\",\"servers\":[",
                   uc->protocol->name, uc->balance ? uc->balance->name : "");
    for (int s = 0; s < ms->n; s++) {
        int room = b->n < ATR_STATUS_JSON_MAX;
        if (room && listed++)
            atr_buf_put(b, ",", 1);
        server(b, &ms->servers[s], &ms->m[s], now, &sum, room);
    }
    atr_buf_puts(b, "],");
    key_u64(b, "servers_total", (uint64_t)ms->n);
    key_u64(b, "servers_up", (uint64_t)sum.up);
    key_u64(b, "in_flight", (uint64_t)sum.in_flight);
    key_u64(b, "requests", sum.requests);
    key_u64(b, "errors", sum.errors);
    key_u64(b, "connect_failures", sum.failures);
    key(b, "responses");
    u64_array(b, sum.responses, 5);
    atr_buf_put(b, "}", 1);
    int omitted = ms->n - listed;
    atr_members_unref(ms);
    return omitted;
}

void atr__status_json(atr_buf_t *b, const atr_gen_t *g)
{
    /* ~200 bytes a server: one allocation for the usual page */
    size_t guess = 2048;
    for (int u = 0; u < g->nups; u++)
        guess += 256 + 224 * (size_t)g->ups[u].conf->nservers;
    atr_buf_grow(b, ATR_MIN(guess, (size_t)ATR_STATUS_JSON_MAX + 4096));
    process(b, g);
    uint64_t now = atr_now_ms();
    int omitted = 0;
    atr_buf_puts(b, "\"upstreams\":[");
    for (int u = 0; u < g->nups; u++) {
        if (u)
            atr_buf_put(b, ",", 1);
        omitted += upstream(b, &g->ups[u], now);
    }
    atr_buf_printf(b, "],\"servers_omitted\":%d}\n", omitted);
}
