/* DNS pools: the names of `resolve` servers, asked for on the control loop
 * (net/dns.c) and asked for again when their answer expires. Policy:
 *
 * - the next lookup comes after the answer's smallest TTL, clamped to
 *   [resolve_ttl_min, resolve_ttl_max];
 * - a failed lookup (timeout, SERVFAIL, refused, no such name, no address)
 *   keeps the last good answer: a DNS outage must not empty a pool. It is
 *   retried after resolve_ttl_min, doubling up to RETRY_MAX_MS, logged once
 *   per change (failing, then resolving again) and counted;
 * - only a change of the set of addresses is announced (changed()), so an
 *   answer in another order or with another TTL costs the workers nothing.
 *
 * Names are keyed by host and port and outlive reloads while a config uses
 * them. */
#include "core/resolve.h"
#include "core/wait.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "net/dns.h"
#include "net/worker.h"

#define RETRY_MAX_MS 30000
#define TRY_TIMEOUT_MS 1000

typedef struct rname {
    char *host;
    int port;
    struct sockaddr_storage *addrs; /* the last good answer, sorted; NULL when never */
    int naddrs;
    int answered;                   /* a first answer or failure came */
    int failing;                    /* the last lookup failed (logged once) */
    int inflight;
    int used;                       /* by the config being applied (the sweep) */
    int dead;                       /* forgotten while a lookup was in flight: freed by its end */
    uint64_t retry_ms;              /* the next wait after a failure */
    uv_timer_t timer;               /* the next lookup */
    struct rname *next;
} rname_t;

static struct {
    uv_loop_t *loop;
    atr_dns_t *dns;
    struct sockaddr_storage *servers;  /* the channel's (a change makes a new channel) */
    int nservers;
    uint64_t ttl_min, ttl_max;
    int max;
    rname_t *names;
    void (*changed)(void);
} rs;

static void lookup(rname_t *nm);

static void on_timer(uv_timer_t *t)
{
    lookup(t->data);
}

static void schedule(rname_t *nm, uint64_t ms)
{
    uv_timer_start(&nm->timer, on_timer, ms, 0);
}

static int same_addrs(const rname_t *nm, const struct sockaddr_storage *a, int n)
{
    if (nm->naddrs != n)
        return 0;
    for (int i = 0; i < n; i++)
        if (memcmp(&nm->addrs[i], &a[i], sizeof a[i]) != 0)
            return 0;
    return 1;
}

static void name_closed(uv_handle_t *h)
{
    rname_t *nm = h->data;
    free(nm->host);
    free(nm->addrs);
    free(nm);
}

static void on_answer(void *arg, const char *status, const struct sockaddr_storage *addrs, int n,
                      uint32_t ttl_s)
{
    rname_t *nm = arg;
    nm->inflight = 0;
    if (nm->dead) {
        uv_close((uv_handle_t *)&nm->timer, name_closed);
        return;
    }
    if (status == atr_dns_cancelled)
        return; /* a new channel: the name was scheduled again */
    int first = !nm->answered;
    nm->answered = 1;
    uint64_t min = rs.ttl_min < rs.ttl_max ? rs.ttl_min : rs.ttl_max;
    if (status != NULL) {
        atomic_fetch_add(&atr_process.dns_failures, 1);
        if (!nm->failing) {
            nm->failing = 1;
            atomic_fetch_add(&atr_process.dns_failing, 1);
            if (nm->addrs)
                ATR_WARN("resolve %s: %s; keeping its %d address(es) until it answers", nm->host,
                         status, nm->naddrs);
            else
                ATR_WARN("resolve %s: %s; its server stays down until it resolves", nm->host,
                         status);
            nm->retry_ms = min;
        }
        schedule(nm, nm->retry_ms);
        nm->retry_ms = nm->retry_ms * 2 < RETRY_MAX_MS ? nm->retry_ms * 2 : RETRY_MAX_MS;
        if (first && rs.changed)
            rs.changed(); /* its placeholder stops waiting: down */
        return;
    }
    if (nm->failing) {
        nm->failing = 0;
        atomic_fetch_sub(&atr_process.dns_failing, 1);
        ATR_NOTICE("resolve %s: answers again (%d address(es))", nm->host, n);
    }
    uint64_t ms = (uint64_t)ttl_s * 1000;
    schedule(nm, ms < min ? min : ms > rs.ttl_max ? rs.ttl_max : ms);
    if (same_addrs(nm, addrs, n))
        return;
    ATR_INFO("resolve %s: %d address(es), was %d", nm->host, n, nm->naddrs);
    free(nm->addrs);
    nm->addrs = atr_xmalloc((size_t)n * sizeof *addrs);
    memcpy(nm->addrs, addrs, (size_t)n * sizeof *addrs);
    nm->naddrs = n;
    if (rs.changed)
        rs.changed();
}

static void lookup(rname_t *nm)
{
    if (nm->inflight || rs.dns == NULL)
        return;
    nm->inflight = 1;
    atr_dns_query(rs.dns, nm->host, nm->port, rs.max, on_answer, nm);
}

static rname_t *find(const char *host, int port)
{
    for (rname_t *nm = rs.names; nm; nm = nm->next)
        if (nm->port == port && strcmp(nm->host, host) == 0)
            return nm;
    return NULL;
}

static void name_free(rname_t *nm)
{
    if (nm->failing)
        atomic_fetch_sub(&atr_process.dns_failing, 1);
    nm->failing = 0;
    uv_timer_stop(&nm->timer);
    if (nm->inflight)
        nm->dead = 1; /* its lookup's end frees it */
    else
        uv_close((uv_handle_t *)&nm->timer, name_closed);
}

static int same_servers(const atr_conf_t *conf)
{
    if (conf->nresolvers != rs.nservers)
        return 0;
    return rs.nservers == 0 ||
           memcmp(conf->resolvers, rs.servers, (size_t)rs.nservers * sizeof *rs.servers) == 0;
}

/* A new channel when the resolvers changed (queries in flight are dropped:
 * their names ask again at once). */
static int channel(uv_loop_t *loop, const atr_conf_t *conf, char *err, size_t errlen)
{
    if (rs.dns && same_servers(conf))
        return 0;
    atr_dns_t *d = atr_dns_new(loop, conf->resolvers, conf->nresolvers, TRY_TIMEOUT_MS, err, errlen);
    if (d == NULL)
        return -1;
    for (rname_t *nm = rs.names; nm; nm = nm->next)
        if (nm->inflight)
            schedule(nm, 0); /* asked again on the new channel */
    atr_dns_free(rs.dns);
    rs.dns = d;
    free(rs.servers);
    rs.nservers = conf->nresolvers;
    rs.servers = atr_xmalloc((size_t)(rs.nservers ? rs.nservers : 1) * sizeof *rs.servers);
    if (rs.nservers)
        memcpy(rs.servers, conf->resolvers, (size_t)rs.nservers * sizeof *rs.servers);
    return 0;
}

void atr_resolve_apply(uv_loop_t *loop, const atr_conf_t *conf, void (*changed)(void))
{
    int any = 0;
    char err[256];
    for (int i = 0; i < conf->nupstreams; i++)
        for (int j = 0; j < conf->upstreams[i].nservers; j++)
            any |= conf->upstreams[i].servers[j].resolve;
    if (any && channel(loop, conf, err, sizeof err) < 0)
        ATR_ERROR("resolver: %s; %s", err, rs.dns ? "keeping the resolvers before" :
                  "names are not resolved");
    rs.loop = loop;
    rs.changed = changed;
    rs.ttl_min = conf->resolve_ttl_min;
    rs.ttl_max = conf->resolve_ttl_max;
    rs.max = conf->resolve_max;
    for (int i = 0; i < conf->nupstreams; i++) {
        for (int j = 0; j < conf->upstreams[i].nservers; j++) {
            const atr_conf_server_t *sv = &conf->upstreams[i].servers[j];
            if (!sv->resolve)
                continue;
            rname_t *nm = find(sv->host, sv->port);
            if (nm == NULL) {
                nm = atr_xcalloc(1, sizeof *nm);
                nm->host = atr_xstrdup(sv->host);
                nm->port = sv->port;
                uv_timer_init(loop, &nm->timer);
                uv_unref((uv_handle_t *)&nm->timer);
                nm->timer.data = nm;
                nm->next = rs.names;
                rs.names = nm;
                schedule(nm, 0);
            }
            nm->used = 1;
        }
    }
    for (rname_t **pp = &rs.names; *pp;) {
        rname_t *nm = *pp;
        if (nm->used) {
            nm->used = 0;
            pp = &nm->next;
        } else {
            *pp = nm->next;
            name_free(nm); /* a query in flight ends in the old channel or finds it gone */
        }
    }
    if (rs.names == NULL) {
        atr_dns_free(rs.dns);
        rs.dns = NULL;
    }
}

const struct sockaddr_storage *atr_resolve_addrs(const char *host, int port, int *n)
{
    rname_t *nm = find(host, port);
    *n = nm ? nm->naddrs : 0;
    return nm ? nm->addrs : NULL;
}

int atr_resolve_answered(const char *host, int port)
{
    const rname_t *nm = find(host, port);
    return nm != NULL && nm->answered;
}

static int all_answered(void)
{
    for (rname_t *nm = rs.names; nm; nm = nm->next)
        if (!nm->answered)
            return 0;
    return 1;
}

void atr_resolve_wait_first(uv_loop_t *loop, uint64_t timeout_ms)
{
    atr_wait_until(loop, timeout_ms, all_answered);
}

void atr_resolve_stop(void)
{
    atr_dns_free(rs.dns);
    rs.dns = NULL;
    while (rs.names) {
        rname_t *nm = rs.names;
        rs.names = nm->next;
        name_free(nm);
    }
    free(rs.servers);
    rs.servers = NULL;
    rs.nservers = 0;
}

/* ---- -t ---- */

typedef struct check_q {
    const atr_conf_server_t *sv;
    FILE *out;
    int *left, *bad;
} check_q_t;

static void on_check(void *arg, const char *status, const struct sockaddr_storage *addrs, int n,
                     uint32_t ttl_s)
{
    check_q_t *q = arg;
    (void)addrs;
    (void)n;
    (void)ttl_s;
    (*q->left)--;
    if (status == NULL)
        return;
    (*q->bad)++;
    fprintf(q->out, "%s:%d:%d: warning: server %s: cannot resolve '%s': %s (it stays down and is "
            "asked for again until it resolves)\n", q->sv->pos.file, q->sv->pos.line,
            q->sv->pos.col, q->sv->text, q->sv->host, status);
}

static void check_tick(uv_timer_t *t)
{
    (void)t;
}

int atr_resolve_check(const atr_conf_t *conf, FILE *out)
{
    int left = 0, bad = 0, n = 0;
    for (int i = 0; i < conf->nupstreams; i++)
        for (int j = 0; j < conf->upstreams[i].nservers; j++)
            n += conf->upstreams[i].servers[j].resolve;
    if (n == 0)
        return 0;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    atr_dns_t *d = atr_dns_new(&loop, conf->resolvers, conf->nresolvers, TRY_TIMEOUT_MS, err,
                               sizeof err);
    check_q_t *qs = atr_xcalloc((size_t)n, sizeof *qs);
    if (d == NULL) {
        fprintf(out, "warning: resolver: %s\n", err);
        bad = n;
    }
    for (int i = 0, k = 0; d && i < conf->nupstreams; i++) {
        for (int j = 0; j < conf->upstreams[i].nservers; j++) {
            const atr_conf_server_t *sv = &conf->upstreams[i].servers[j];
            if (!sv->resolve)
                continue;
            qs[k] = (check_q_t){ sv, out, &left, &bad };
            left++;
            atr_dns_query(d, sv->host, sv->port, conf->resolve_max, on_check, &qs[k++]);
        }
    }
    /* The channel's timer is unref'd: a tick keeps the loop waiting (not
     * spinning) until every query has ended. */
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, check_tick, 3600000, 0);
    while (left > 0)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    atr_dns_free(d);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(qs);
    return bad;
}
