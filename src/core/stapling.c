/* OCSP stapling on the control loop (core/stapling.h). One entry per
 * certificate (keyed by its CertID) holds the last good response, the
 * fetch in flight and the timer of the next one; targets say which pairs of
 * the running generation staple which entry. */
#include "core/stapling.h"
#include "core/wait.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/util.h"
#include "net/ocsp_fetch.h"
#include "tls/ctx.h"
#include "tls/ocsp.h"

#define RETRY_FIRST_MS 2000u
#define RETRY_MAX_MS (300u * 1000)
#define REFRESH_MIN_S 5
#define REFRESH_MAX_S (12 * 3600)

typedef struct entry {
    struct entry *next;
    atr_ocsp_certid_t id;
    X509 *leaf, *issuer; /* references of our own */
    char *url;           /* the responder; parsed views into it */
    atr_ocsp_url_t where;
    char *what;   /* "host a.test certificate /x.pem", for logs */
    uint8_t *der; /* the last good response, NULL: none */
    size_t len;
    int64_t good_until;      /* its nextUpdate */
    atr_ocsp_fetch_t *fetch; /* in flight, or NULL */
    uv_timer_t *timer;       /* the next fetch (closed and freed with the entry) */
    uint64_t retry_ms;       /* the next back-off after a failure */
    unsigned used : 1, answered : 1;
} entry_t;

typedef struct target {
    entry_t *e;
    int pair;
} target_t;

static struct {
    uv_loop_t *loop;
    atr_gen_t *gen; /* whose pairs the targets are (ref held) */
    entry_t *entries;
    target_t *targets;
    int ntargets;
} st;

static void fetch_now(entry_t *e);

static const char *utc(int64_t t, char *buf, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return buf;
}

/* What e's pairs staple: its response, or nothing. */
static void publish(entry_t *e)
{
    for (int i = 0; i < st.ntargets; i++)
        if (st.targets[i].e == e)
            atr_tls_server_set_staple(st.gen->tls, st.targets[i].pair, e->der, e->len);
}

static void drop_staple(entry_t *e)
{
    free(e->der);
    e->der = NULL;
    e->len = 0;
    e->good_until = 0;
    publish(e);
}

static void on_timer(uv_timer_t *t)
{
    entry_t *e = t->data;
    if (e->der && e->good_until <= (int64_t)time(NULL)) {
        char u[40];
        ATR_WARN("stapling: %s: the last good response expired at %s; not stapling until a "
                 "fetch succeeds",
                 e->what, utc(e->good_until, u, sizeof u));
        drop_staple(e);
    }
    fetch_now(e);
}

static void schedule(entry_t *e, uint64_t ms)
{
    uv_timer_start(e->timer, on_timer, ms, 0);
}

/* A fetch failed (or said something not worth stapling): retry with
 * back-off, but wake when the response kept expires. */
static void failed(entry_t *e, const char *why)
{
    char u[40];
    int64_t now = (int64_t)time(NULL);
    uint64_t ms = e->retry_ms ? e->retry_ms : RETRY_FIRST_MS;
    e->retry_ms = ATR_MIN(ms * 2, (uint64_t)RETRY_MAX_MS);
    if (e->der) {
        ATR_WARN("stapling: %s: OCSP fetch from %s failed: %s; keeping the last good response "
                 "until %s, retrying in %llus",
                 e->what, e->url, why, utc(e->good_until, u, sizeof u),
                 (unsigned long long)(ms / 1000));
        if (e->good_until > now && (uint64_t)(e->good_until - now) * 1000 < ms)
            ms = (uint64_t)(e->good_until - now) * 1000;
    } else {
        ATR_WARN("stapling: %s: OCSP fetch from %s failed: %s; not stapling, retrying in %llus",
                 e->what, e->url, why, (unsigned long long)(ms / 1000));
    }
    schedule(e, ms);
}

static void good(entry_t *e, const uint8_t *der, size_t len, const atr_ocsp_result_t *r)
{
    char u[40], n[40];
    int64_t now = (int64_t)time(NULL);
    int64_t refresh = (r->next_update - now) / 2;
    refresh = refresh < REFRESH_MIN_S   ? REFRESH_MIN_S
              : refresh > REFRESH_MAX_S ? REFRESH_MAX_S
                                        : refresh;
    free(e->der);
    e->der = atr_xmalloc(len);
    memcpy(e->der, der, len);
    e->len = len;
    e->good_until = r->next_update;
    e->retry_ms = 0;
    publish(e);
    ATR_INFO("stapling: %s: OCSP response from %s: good until %s; next fetch at %s", e->what,
             e->url, utc(r->next_update, u, sizeof u), utc(now + refresh, n, sizeof n));
    schedule(e, (uint64_t)refresh * 1000);
}

static void on_fetched(void *arg, int status, const uint8_t *body, size_t len, const char *why)
{
    entry_t *e = arg;
    e->fetch = NULL;
    if (status == UV_ECANCELED)
        return; /* the entry is going */
    e->answered = 1;
    if (status < 0) {
        failed(e, why);
        return;
    }
    atr_ocsp_result_t r;
    if (atr_ocsp_verify(body, len, e->leaf, e->issuer, (int64_t)time(NULL), &r) < 0) {
        char text[200];
        snprintf(text, sizeof text, "the response does not verify: %s", r.reason);
        failed(e, text);
    } else if (r.status != ATR_OCSP_GOOD) {
        /* A response that says revoked is authentic news: staple nothing. */
        ATR_ERROR("stapling: %s: the responder %s says the certificate is %s; not stapling",
                  e->what, e->url, r.status == ATR_OCSP_REVOKED ? "revoked" : "unknown");
        drop_staple(e);
        e->retry_ms = RETRY_MAX_MS;
        schedule(e, RETRY_MAX_MS);
    } else {
        good(e, body, len, &r);
    }
}

static void fetch_now(entry_t *e)
{
    uint8_t *req;
    size_t len;
    if (e->fetch)
        return;
    if (atr_ocsp_request(&e->id, &req, &len) < 0) {
        failed(e, "cannot build the request");
        return;
    }
    e->fetch = atr_ocsp_fetch_start(st.loop, e->where.host.p, e->where.host.n, e->where.port,
                                    e->where.path.p, e->where.path.n, req, len,
                                    ATR_STAPLING_TIMEOUT_MS, on_fetched, e);
    OPENSSL_free(req);
    if (e->fetch == NULL) {
        e->answered = 1;
        failed(e, "cannot start the request");
    }
}

static void timer_closed(uv_handle_t *h)
{
    free(h);
}

static void entry_free(entry_t *e)
{
    if (e->fetch)
        atr_ocsp_fetch_cancel(e->fetch);
    uv_close((uv_handle_t *)e->timer, timer_closed);
    X509_free(e->leaf);
    X509_free(e->issuer);
    free(e->url);
    free(e->what);
    free(e->der);
    free(e);
}

/* The entry for this pair's certificate: found, made, or NULL (logged). */
static entry_t *entry_for(const atr_tls_staple_pair_t *p)
{
    char what[512];
    const char *why = NULL;
    snprintf(what, sizeof what, "host %s certificate %s", p->host->names[0], p->cert_file);
    atr_ocsp_certid_t id;
    if (p->issuer == NULL) {
        ATR_WARN("stapling: %s: the file has no issuer certificate after the leaf; not "
                 "stapling",
                 what);
        return NULL;
    }
    if (atr_ocsp_certid(p->leaf, p->issuer, &id) < 0)
        return NULL;
    for (entry_t *e = st.entries; e; e = e->next)
        if (memcmp(e->id.name_hash, id.name_hash, 20) == 0 &&
            memcmp(e->id.key_hash, id.key_hash, 20) == 0 && e->id.serial_len == id.serial_len &&
            memcmp(e->id.serial, id.serial, id.serial_len) == 0)
            return e;
    char *url = atr_ocsp_responder_url(p->leaf);
    atr_ocsp_url_t where;
    if (url == NULL || atr_ocsp_url_parse(url, &where, &why) < 0) {
        ATR_WARN("stapling: %s: %s%s; not stapling", what,
                 url ? "responder URL: " : "the certificate names no OCSP responder",
                 url ? why : "");
        free(url);
        return NULL;
    }
    entry_t *e = atr_xcalloc(1, sizeof *e);
    e->id = id;
    X509_up_ref(e->leaf = p->leaf);
    X509_up_ref(e->issuer = p->issuer);
    e->url = url;
    e->where = where;
    e->what = atr_xstrdup(what);
    e->timer = atr_xmalloc(sizeof *e->timer);
    uv_timer_init(st.loop, e->timer);
    uv_unref((uv_handle_t *)e->timer); /* never what keeps the process up */
    e->timer->data = e;
    e->next = st.entries;
    st.entries = e;
    fetch_now(e);
    return e;
}

void atr_stapling_use(uv_loop_t *loop, atr_gen_t *g)
{
    st.loop = loop;
    for (entry_t *e = st.entries; e; e = e->next)
        e->used = 0;
    int n = atr_tls_server_npairs(g->tls);
    free(st.targets);
    st.targets = atr_xcalloc((size_t)n + 1, sizeof *st.targets);
    st.ntargets = 0;
    atr_gen_ref(g);
    if (st.gen)
        atr_gen_unref(st.gen);
    st.gen = g;
    for (int i = 0; i < n; i++) {
        atr_tls_staple_pair_t p;
        entry_t *e;
        if (atr_tls_server_staple_pair(g->tls, i, &p) < 0 || (e = entry_for(&p)) == NULL)
            continue;
        e->used = 1;
        st.targets[st.ntargets++] = (target_t){ e, i };
        if (e->der && e->good_until > (int64_t)time(NULL))
            atr_tls_server_set_staple(g->tls, i, e->der, e->len);
    }
    for (entry_t **pp = &st.entries; *pp;) {
        entry_t *e = *pp;
        if (e->used) {
            pp = &e->next;
        } else {
            *pp = e->next;
            entry_free(e);
        }
    }
}

static int all_answered(void)
{
    for (entry_t *e = st.entries; e; e = e->next)
        if (!e->answered)
            return 0;
    return 1;
}

void atr_stapling_wait_first(uv_loop_t *loop, uint64_t timeout_ms)
{
    if (!atr_wait_until(loop, timeout_ms, all_answered))
        ATR_WARN("stapling: no answer from a responder in %llu ms; serving without a staple "
                 "until one comes",
                 (unsigned long long)timeout_ms);
}

void atr_stapling_stop(void)
{
    while (st.entries) {
        entry_t *e = st.entries;
        st.entries = e->next;
        entry_free(e);
    }
    free(st.targets);
    st.targets = NULL;
    st.ntargets = 0;
    if (st.gen)
        atr_gen_unref(st.gen);
    st.gen = NULL;
}
