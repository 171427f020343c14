/* The "memcached" small-object cache (net/socache.h): several memcached
 * servers, each key on one of them (the consistent hash in
 * memcached_proto.h), reached over the memcached text protocol.
 *
 * Each worker has its own connection to each server, opened when a request
 * first needs it. A connection is an atr_sock_t over atr_transport_tcp (the
 * project's transport: its input buffer, given back whenever every reply has
 * been consumed, the deadline timer and close-late references). Requests are
 * pipelined: commands are appended to an output buffer and written at once
 * when no write is in flight (otherwise when it completes); gets wait in a
 * FIFO and replies are matched in order. set and delete go with noreply, so
 * only gets have replies.
 *
 * Failure must cost a miss, never a stall (a TLS handshake waits on the
 * answer): the deadline is the oldest waiting get's send time plus the
 * timeout (while connecting, at most the connect's start plus the timeout);
 * when it passes, the connection is closed and every waiting get
 * answers UV_ETIMEDOUT. A refused or failed connect, or a timeout, marks the
 * server down for MC_BACKOFF_MS for every worker (an atomic time in the
 * shared server entry), during which its gets answer UV_EHOSTDOWN at once and
 * nothing connects. A key of a down server is not moved to another server:
 * that would put it where no other process looks, for a second.
 *
 * Bounds: MC_PENDING_MAX gets waiting per connection, MC_OUT_MAX bytes of
 * commands not yet written, replies of at most ATR_SOCACHE_VAL_MAX bytes of
 * value (a larger one loses the connection). */
#include "net/socache.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "net/memcached_proto.h"
#include "net/sock.h"
#include "net/worker.h"

#define MC_TIMEOUT_DEFAULT 200
#define MC_BACKOFF_MS 1000
#define MC_PENDING_MAX 256
#define MC_OUT_MAX (256u * 1024)
#define MC_SERVERS_MAX 64
#define MC_T_REPLY 1 /* the deadline's kind: the oldest get's reply */

typedef struct mc_server {
    struct sockaddr_storage addr;
    char name[64];                     /* "127.0.0.1:11211", for the ring and the log */
    atomic_uint_fast64_t down_until;   /* atr_now_ms() time; 0: up */
    atomic_int down_logged;            /* "down" logged, "up" not yet */
} mc_server_t;

typedef struct mc_cache {
    atr_socache_t base;
    uint64_t timeout_ms;
    atr_mc_ring_t ring;
    int n;
    mc_server_t servers[];
} mc_cache_t;

typedef struct mc_wait {
    atr_socache_get_cb cb;
    void *arg;
    uint64_t sent; /* loop time (ms) */
} mc_wait_t;

typedef struct mc_local mc_local_t;

typedef struct mc_conn {
    atr_sock_t s;         /* first: the transport's callbacks get it */
    mc_local_t *l;
    int server;
    int connected;
    atr_buf_t out;        /* commands not yet handed to the socket */
    atr_buf_t inflight;   /* the bytes of the write in flight (alive until on_written) */
    unsigned head, count; /* the FIFO of waiting gets in q */
    mc_wait_t q[MC_PENDING_MAX];
} mc_conn_t;

struct mc_local {
    atr_socache_local_t base;
    atr_worker_t *w;
    int live;             /* connections not yet freed */
    int detached;
    mc_conn_t *conns[];   /* by server; NULL: none open */
};

static mc_cache_t *cache_of(mc_local_t *l)
{
    return (mc_cache_t *)l->base.cache;
}

/* ---- servers up and down (any worker) ---- */

static int server_down(mc_server_t *sv)
{
    uint64_t until = atomic_load_explicit(&sv->down_until, memory_order_relaxed);
    return until != 0 && atr_now_ms() < until;
}

static void mark_down(mc_server_t *sv, int why)
{
    atomic_store_explicit(&sv->down_until, atr_now_ms() + MC_BACKOFF_MS, memory_order_relaxed);
    if (!atomic_exchange(&sv->down_logged, 1))
        ATR_WARN("socache memcached %s: %s; its keys miss, retried every %d ms", sv->name,
                 uv_strerror(why), MC_BACKOFF_MS);
}

static void mark_up(mc_server_t *sv)
{
    atomic_store_explicit(&sv->down_until, 0, memory_order_relaxed);
    if (atomic_exchange(&sv->down_logged, 0))
        ATR_NOTICE("socache memcached %s: up again", sv->name);
}

/* ---- a connection ---- */

/* Close c and answer every waiting get with status (the callbacks may call
 * the cache again: a new request opens a new connection). */
static void conn_fail(mc_conn_t *c, int status)
{
    if (c->s.closed)
        return;
    c->l->conns[c->server] = NULL;
    unsigned head = c->head, count = c->count;
    c->count = 0;
    atr_sock_close(&c->s); /* the memory stays until on_free, after this returns */
    for (unsigned i = 0; i < count; i++) {
        mc_wait_t *wt = &c->q[(head + i) % MC_PENDING_MAX];
        wt->cb(wt->arg, status, NULL, 0);
    }
}

/* Hand the buffered commands to the socket unless a write is in flight. */
static void conn_flush(mc_conn_t *c)
{
    if (!c->connected || c->s.closing || c->s.write_pending || c->out.n == 0)
        return;
    atr_buf_t t = c->inflight; /* empty: its room is reused for the next commands */
    c->inflight = c->out;
    c->out = t;
    uv_buf_t b = uv_buf_init(c->inflight.p, (unsigned)c->inflight.n);
    int rc = atr_sock_write(&c->s, &b, 1);
    if (rc == 0)
        c->inflight.n = 0;
    else if (rc < 0)
        conn_fail(c, rc);
}

/* Time the oldest waiting get, or nothing. */
static void conn_arm(mc_conn_t *c)
{
    if (c->count == 0) {
        atr_sock_deadline(&c->s, 0, 0);
        return;
    }
    uint64_t now = uv_now(c->s.timer.loop), due = c->q[c->head].sent + cache_of(c->l)->timeout_ms;
    atr_sock_deadline(&c->s, MC_T_REPLY, due > now ? due - now : 1);
}

/* The replies in the buffer, each to the oldest waiting get. */
static void conn_replies(mc_conn_t *c)
{
    atr_sock_t *s = &c->s;
    while (c->count > 0) {
        size_t used = 0, vlen = 0;
        const char *val = NULL;
        int r = atr_mc_parse_get(s->buf + s->off, s->len - s->off, ATR_SOCACHE_VAL_MAX, &used,
                                 &val, &vlen);
        if (r == ATR_MC_MORE)
            break;
        if (r == ATR_MC_BAD) {
            conn_fail(c, UV_EPROTO);
            return;
        }
        mc_wait_t wt = c->q[c->head];
        c->head = (c->head + 1) % MC_PENDING_MAX;
        c->count--;
        s->off += (uint32_t)used;
        wt.cb(wt.arg, r, (const uint8_t *)val, vlen);
        if (s->closing)
            return;
    }
    if (c->count == 0 && s->off < s->len) {
        conn_fail(c, UV_EPROTO); /* bytes nobody asked for: the stream is lost */
        return;
    }
    if (s->off == s->len)
        atr_sock_buf_drop(s); /* all consumed: hold no buffer while waiting */
    conn_arm(c);
}

static void on_read(atr_sock_t *s, ssize_t nread)
{
    mc_conn_t *c = (mc_conn_t *)s;
    if (nread < 0) {
        conn_fail(c, nread == UV_ENOBUFS ? UV_EPROTO : (int)nread);
        return;
    }
    s->len += (uint32_t)nread;
    conn_replies(c);
}

static void on_connect(atr_sock_t *s, int status)
{
    mc_conn_t *c = (mc_conn_t *)s;
    mc_server_t *sv = &cache_of(c->l)->servers[c->server];
    if (status < 0) {
        mark_down(sv, status);
        conn_fail(c, status);
        return;
    }
    mark_up(sv);
    c->connected = 1;
    conn_arm(c); /* from the connect's deadline to the oldest get's, if any */
    atr_sock_read_start(s);
    conn_flush(c);
}

static void on_written(atr_sock_t *s, int status)
{
    mc_conn_t *c = (mc_conn_t *)s;
    c->inflight.n = 0;
    if (status < 0)
        conn_fail(c, status);
    else
        conn_flush(c);
}

static void on_timer(atr_sock_t *s, int kind)
{
    mc_conn_t *c = (mc_conn_t *)s;
    (void)kind;
    mark_down(&cache_of(c->l)->servers[c->server], UV_ETIMEDOUT);
    conn_fail(c, UV_ETIMEDOUT);
}

/* Room for the largest reply, however the buffer was sized. */
static uint32_t grow_limit(atr_sock_t *s)
{
    (void)s;
    return ATR_SOCACHE_VAL_MAX + 1024;
}

static void on_free(atr_sock_t *s)
{
    mc_conn_t *c = (mc_conn_t *)s;
    mc_local_t *l = c->l;
    free(c->out.p);
    free(c->inflight.p);
    free(c);
    if (--l->live == 0 && l->detached)
        free(l);
}

static const atr_sock_cbs_t conn_cbs = {
    .on_read = on_read,
    .on_written = on_written,
    .on_connect = on_connect,
    .grow_limit = grow_limit,
    .on_timer = on_timer,
    .on_free = on_free,
};

/* The connection to server i, opened now when there is none; NULL (and the
 * error in *err) when the server is down or the connect fails at once. */
static mc_conn_t *conn_for(mc_local_t *l, int i, int *err)
{
    mc_server_t *sv = &cache_of(l)->servers[i];
    if (l->conns[i])
        return l->conns[i];
    if (server_down(sv)) {
        *err = UV_EHOSTDOWN;
        return NULL;
    }
    mc_conn_t *c = atr_xcalloc(1, sizeof *c);
    c->l = l;
    c->server = i;
    l->live++;
    atr_sock_init(&c->s, l->w, &atr_transport_tcp, &conn_cbs);
    int rc = atr_sock_connect(&c->s, (const struct sockaddr *)&sv->addr);
    if (rc < 0) {
        mark_down(sv, rc);
        atr_sock_close(&c->s);
        *err = rc;
        return NULL;
    }
    /* A connect nobody answers (a dead host) must not hold sets forever
     * either: it gets the same deadline as a get. */
    atr_sock_deadline(&c->s, MC_T_REPLY, cache_of(l)->timeout_ms);
    l->conns[i] = c;
    return c;
}

/* ---- the ops ---- */

/* The connection for key with room for `bytes` more of commands, or NULL and
 * the reason in *err. */
static mc_conn_t *conn_for_key(mc_local_t *l, const uint8_t *key, size_t klen, size_t bytes,
                               int *err)
{
    if (l->detached) {
        *err = UV_ECANCELED;
        return NULL;
    }
    if (klen == 0 || klen > ATR_SOCACHE_KEY_MAX) {
        *err = UV_EINVAL;
        return NULL;
    }
    mc_conn_t *c = conn_for(l, atr_mc_ring_pick(&cache_of(l)->ring, key, klen), err);
    if (c && c->out.n + bytes > MC_OUT_MAX) {
        *err = UV_ENOBUFS;
        return NULL;
    }
    return c;
}

static void mc_get(atr_socache_local_t *base, const uint8_t *key, size_t klen,
                   atr_socache_get_cb cb, void *arg)
{
    mc_local_t *l = (mc_local_t *)base;
    int err = 0;
    mc_conn_t *c = conn_for_key(l, key, klen, ATR_MC_WKEY_MAX + 8, &err);
    if (c && c->count == MC_PENDING_MAX) {
        c = NULL;
        err = UV_ENOBUFS;
    }
    if (c == NULL) {
        cb(arg, err, NULL, 0);
        return;
    }
    char wk[ATR_MC_WKEY_MAX];
    atr_mc_encode_get(&c->out, wk, atr_mc_key(wk, key, klen));
    c->q[(c->head + c->count++) % MC_PENDING_MAX] =
        (mc_wait_t){ .cb = cb, .arg = arg, .sent = uv_now(c->s.timer.loop) };
    if (c->count == 1)
        conn_arm(c);
    conn_flush(c);
}

static int mc_set(atr_socache_local_t *base, const uint8_t *key, size_t klen, const uint8_t *val,
                  size_t vlen, uint32_t ttl_s)
{
    mc_local_t *l = (mc_local_t *)base;
    if (vlen > ATR_SOCACHE_VAL_MAX)
        return UV_E2BIG;
    int err = 0;
    mc_conn_t *c = conn_for_key(l, key, klen, ATR_MC_WKEY_MAX + 64 + vlen, &err);
    if (c == NULL)
        return err;
    char wk[ATR_MC_WKEY_MAX];
    atr_mc_encode_set(&c->out, wk, atr_mc_key(wk, key, klen), val, vlen, ttl_s);
    conn_flush(c);
    return 0;
}

static int mc_del(atr_socache_local_t *base, const uint8_t *key, size_t klen)
{
    mc_local_t *l = (mc_local_t *)base;
    int err = 0;
    mc_conn_t *c = conn_for_key(l, key, klen, ATR_MC_WKEY_MAX + 24, &err);
    if (c == NULL)
        return err;
    char wk[ATR_MC_WKEY_MAX];
    atr_mc_encode_delete(&c->out, wk, atr_mc_key(wk, key, klen));
    conn_flush(c);
    return 0;
}

static atr_socache_local_t *mc_attach(atr_socache_t *base, struct uv_loop_s *loop)
{
    mc_cache_t *mc = (mc_cache_t *)base;
    mc_local_t *l = atr_xcalloc(1, sizeof *l + (size_t)mc->n * sizeof l->conns[0]);
    l->base.cache = base;
    l->w = loop->data;
    return &l->base;
}

static void mc_detach(atr_socache_local_t *base)
{
    mc_local_t *l = (mc_local_t *)base;
    l->detached = 1;
    for (int i = 0; i < cache_of(l)->n; i++)
        if (l->conns[i])
            conn_fail(l->conns[i], UV_ECANCELED);
    if (l->live == 0)
        free(l); /* otherwise the last connection's on_free does */
}

static void mc_free(atr_socache_t *base)
{
    mc_cache_t *mc = (mc_cache_t *)base;
    atr_mc_ring_free(&mc->ring);
    free(mc);
}

static const atr_socache_ops_t memcached_ops = {
    .name = "memcached",
    .attach = mc_attach,
    .detach = mc_detach,
    .get = mc_get,
    .set = mc_set,
    .del = mc_del,
    .free = mc_free,
};

static void server_name(const struct sockaddr_storage *sa, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        uv_ip6_name(a, ip, sizeof ip);
        snprintf(out, n, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        uv_ip4_name(a, ip, sizeof ip);
        snprintf(out, n, "%s:%u", ip, ntohs(a->sin_port));
    }
}

atr_socache_t *atr_socache_memcached_new(const struct sockaddr_storage *addrs, int n,
                                         uint64_t timeout_ms)
{
    if (n < 1 || n > MC_SERVERS_MAX)
        return NULL;
    mc_cache_t *mc = atr_xcalloc(1, sizeof *mc + (size_t)n * sizeof mc->servers[0]);
    mc->base.ops = &memcached_ops;
    mc->timeout_ms = timeout_ms ? timeout_ms : MC_TIMEOUT_DEFAULT;
    mc->n = n;
    const char *names[MC_SERVERS_MAX];
    for (int i = 0; i < n; i++) {
        mc->servers[i].addr = addrs[i];
        server_name(&addrs[i], mc->servers[i].name, sizeof mc->servers[i].name);
        names[i] = mc->servers[i].name;
    }
    atr_mc_ring_init(&mc->ring, names, n);
    return &mc->base;
}
