/* Heartbeats on the control loop (core/heartbeat.h): the glue between the
 * configuration and cluster/'s monitor and sender.
 *
 * A beat is about every server of the running generation at the sender's
 * address (and at its port, when the beat says port=): its ready, busy and
 * time go into each such server's shared state, where balance heartbeat
 * reads them. That state is carried over reloads by name, so what was heard
 * survives a reload; a reload's new servers are told at once what the
 * monitor knows (atr_hb_monitor_republish). The monitor keeps its socket
 * and its table of senders across reloads while heartbeat_listen stays. */
#include "core/heartbeat.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "cluster/hb_monitor.h"
#include "net/worker.h"

/* A worker with no connection cap (no descriptor limit either) announces
 * this much room: conn_cap's own ceiling in runtime.c. */
#define UNCAPPED 10000000

static struct {
    atr_hb_monitor_t *mon;
    char *mon_listen; /* the heartbeat_listen text the monitor is bound to */
    int pending_fd;   /* bound by prepare, taken by apply; -1 = none */
    atr_hb_sender_t *snd;
    const atr_gen_t *gen; /* the running generation */
    int draining;         /* stopping: no room to announce */
} hb = { .pending_fd = -1 };

/* ---- beats received: into the servers' shared state ---- */

static int same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)(const void *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr,
                      sizeof(struct in6_addr)) == 0;
    return 0;
}

static unsigned port_of(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET
                     ? ((const struct sockaddr_in *)(const void *)ss)->sin_port
                     : ((const struct sockaddr_in6 *)(const void *)ss)->sin6_port);
}

/* Calls fn for the state of every member of g's upstreams at from's IP
 * (and at from's port, when not 0): the members as they are now, so the
 * addresses of a `resolve` server's latest answer count too. Returns how
 * many members matched. */
static int servers_at(const atr_gen_t *g, const struct sockaddr_storage *from,
                      void (*fn)(atr_server_state_t *st, void *arg), void *arg)
{
    unsigned port = port_of(from);
    int n = 0;
    for (int i = 0; i < g->conf->nupstreams; i++) {
        atr_members_t *ms = atr_gen_members(&g->ups[i]);
        for (int j = 0; j < ms->n; j++) {
            const struct sockaddr_storage *addr = &ms->m[j].addr;
            if (ms->m[j].addrlen == 0 || !same_ip(addr, from) ||
                (port != 0 && port_of(addr) != port))
                continue;
            fn(ms->servers[j].state, arg);
            n++;
        }
        atr_members_unref(ms);
    }
    return n;
}

typedef struct beat_arg {
    const atr_hb_beat_t *b;
    uint64_t seen_ms;
} beat_arg_t;

/* The more specific sender wins: a beat with port= speaks for its one
 * server, and while it keeps doing so (ATR_LB_HB_FRESH_MS) beats from the
 * same address without port= (the host's Apache, say) are about the other
 * servers at that address, not this one. */
static void store(atr_server_state_t *st, void *arg)
{
    const beat_arg_t *a = arg;
    uint64_t exact = atomic_load_explicit(&st->hb_port_ms, memory_order_relaxed);
    if (a->b->has_port)
        atomic_store_explicit(&st->hb_port_ms, a->seen_ms, memory_order_relaxed);
    else if (exact != 0 && a->seen_ms >= exact && a->seen_ms - exact <= ATR_LB_HB_FRESH_MS)
        return;
    atomic_store_explicit(&st->hb_ready, (int)a->b->ready, memory_order_relaxed);
    atomic_store_explicit(&st->hb_busy, (int)a->b->busy, memory_order_relaxed);
    atomic_store_explicit(&st->hb_seen_ms, a->seen_ms, memory_order_relaxed);
    atomic_fetch_add_explicit(&atr_lb_hb_epoch, 1, memory_order_relaxed);
}

static void publish(void *ud, const struct sockaddr_storage *from, const atr_hb_beat_t *b,
                    uint64_t seen_ms)
{
    beat_arg_t a = { b, seen_ms };
    (void)ud;
    if (hb.gen != NULL)
        servers_at(hb.gen, from, store, &a);
}

/* ---- beats sent: this node's load ---- */

/* ready: client connections the workers can still take; busy: requests in
 * progress (from their first byte to their end), as Apache counts slots. */
static int node_load(void *ud, unsigned *ready, unsigned *busy)
{
    uint64_t r = 0, b = 0;
    (void)ud;
    if (hb.gen == NULL)
        return -1;
    uint64_t cap = hb.gen->max_conns > 0 ? (uint64_t)hb.gen->max_conns : UNCAPPED;
    for (int i = 0; i < atr_process.nworkers; i++) {
        atr_metrics_t *m = &atr_process.workers[i]->metrics;
        uint64_t conns = atr_metric_get(&m->connections);
        r += conns < cap ? cap - conns : 0;
        b += atr_metric_get(&m->inflight);
    }
    *ready = hb.draining ? 0 : r > INT_MAX ? INT_MAX : (unsigned)r;
    *busy = b > INT_MAX ? INT_MAX : (unsigned)b;
    return 0;
}

/* ---- applying a configuration ---- */

static int listen_error(const atr_conf_t *conf, int rc, char *err, size_t errlen)
{
    const atr_conf_pos_t *p = &conf->hb.listen_pos;
    snprintf(err, errlen, "%s:%d:%d: heartbeat_listen %s: cannot listen: %s",
             p->file ? p->file : conf->path, p->line, p->col, conf->hb.listen, strerror(-rc));
    return -1;
}

/* A socket for conf's heartbeat_listen when the running monitor is not
 * already bound there: the descriptor, -1 when none is needed, or -2 with
 * the error in err. */
static int new_socket(const atr_conf_t *conf, char *err, size_t errlen)
{
    if (conf->hb.listen == NULL ||
        (hb.mon_listen != NULL && strcmp(hb.mon_listen, conf->hb.listen) == 0))
        return -1;
    int fd = atr_hb_listen_socket((const struct sockaddr *)&conf->hb.listen_addr);
    if (fd < 0) {
        listen_error(conf, fd, err, errlen);
        return -2;
    }
    return fd;
}

int atr_heartbeat_check(const atr_conf_t *conf, char *err, size_t errlen)
{
    int fd = new_socket(conf, err, errlen);
    if (fd >= 0)
        close(fd);
    return fd == -2 ? -1 : 0;
}

int atr_heartbeat_prepare(const atr_conf_t *conf, char *err, size_t errlen)
{
    atr_heartbeat_abort();
    int fd = new_socket(conf, err, errlen);
    if (fd >= 0)
        hb.pending_fd = fd;
    return fd == -2 ? -1 : 0;
}

void atr_heartbeat_abort(void)
{
    if (hb.pending_fd >= 0)
        close(hb.pending_fd);
    hb.pending_fd = -1;
}

static void monitor_apply(uv_loop_t *loop, const atr_conf_heartbeat_t *c)
{
    atr_hb_monitor_opts_t o = { .key = c->key,
                                .keylen = c->keylen,
                                .storage = c->storage,
                                .max_servers = c->max_servers,
                                .publish = publish };
    int rc = 0;
    if (c->listen == NULL || hb.pending_fd >= 0) {
        if (hb.mon != NULL)
            ATR_NOTICE("heartbeat: no longer listening on %s", hb.mon_listen);
        atr_hb_monitor_close(hb.mon);
        hb.mon = NULL;
        free(hb.mon_listen);
        hb.mon_listen = NULL;
    }
    if (hb.pending_fd >= 0) {
        hb.mon = atr_hb_monitor_new(loop, hb.pending_fd, &o, &rc);
        hb.pending_fd = -1;
        if (hb.mon == NULL)
            ATR_ERROR("heartbeat_listen %s: %s", c->listen, uv_strerror(rc));
        else
            ATR_NOTICE("heartbeat: listening on %s%s", c->listen,
                       c->key ? " (signed beats only)" : "");
        hb.mon_listen = hb.mon ? atr_xstrdup(c->listen) : NULL;
    } else if (hb.mon != NULL) {
        atr_hb_monitor_set(hb.mon, &o);
    }
    if (hb.mon != NULL)
        atr_hb_monitor_republish(hb.mon);
}

static void sender_apply(uv_loop_t *loop, const atr_conf_heartbeat_t *c)
{
    int rc = 0;
    atr_hb_sender_close(hb.snd);
    hb.snd = NULL;
    if (c->send == NULL)
        return;
    hb.snd = atr_hb_sender_new(loop, (const struct sockaddr *)&c->send_addr, c->interval, c->key,
                               c->keylen, node_load, NULL, &rc);
    if (hb.snd == NULL)
        ATR_ERROR("heartbeat_send %s: %s", c->send, uv_strerror(rc));
}

void atr_heartbeat_apply(uv_loop_t *loop, const atr_gen_t *g)
{
    hb.gen = g;
    monitor_apply(loop, &g->conf->hb);
    sender_apply(loop, &g->conf->hb);
}

void atr_heartbeat_drain(void)
{
    hb.draining = 1;
    if (hb.snd != NULL)
        atr_hb_sender_beat_now(hb.snd);
}

void atr_heartbeat_stop(void)
{
    atr_heartbeat_abort();
    atr_hb_monitor_close(hb.mon);
    atr_hb_sender_close(hb.snd);
    hb.mon = NULL;
    hb.snd = NULL;
    free(hb.mon_listen);
    hb.mon_listen = NULL;
    hb.gen = NULL;
}
