/* Backend connections of the proxy core: each is an atr_sock_t (net/sock.h)
 * reached by connecting to a server (TCP or unix socket) or, when the
 * protocol's ops say so, by spawning a process per exchange (CGI). Idle ones
 * wait in a per-server pool of the worker generation. Events go to the
 * exchange (proxy.c, proxy_response.c) through the atr__px_on_* functions. */
#include <stdlib.h>

#include "backends/proxy_priv.h"
#include "base/log.h"
#include "net/tls.h"
#include "tls/ctx.h"

/* ---- life and death ---- */

static void bc_free(atr_sock_t *s)
{
    /* Pools hold no wgen reference (the wgen owns them); only an active
     * connection keeps its wgen alive. Every connection holds its view. */
    atr__px_view_unref(((atr_bconn_t *)s)->view);
    free(s);
}

void atr__bc_close(atr_bconn_t *bc)
{
    if (bc->s.closed)
        return;
    bc->px = NULL;
    if (bc->child) {
        bc->ops->spawn_release(bc->child);
        bc->child = NULL;
    }
    atr_sock_close(&bc->s);
}

/* ---- the pool ---- */

static atr_pool_t *pool_of(atr_bconn_t *bc)
{
    return &bc->view->pools[bc->server];
}

static void pool_remove(atr_pool_t *p, atr_bconn_t *bc)
{
    for (atr_bconn_t **pp = &p->idle; *pp; pp = &(*pp)->next) {
        if (*pp == bc) {
            *pp = bc->next;
            p->nidle--;
            bc->next = NULL;
            return;
        }
    }
}

static atr_bconn_t *pool_pop(atr_pool_t *p)
{
    atr_bconn_t *bc = p->idle;
    p->idle = bc->next;
    p->nidle--;
    bc->next = NULL;
    return bc;
}

/* The members changed while bc was in use: it joins the current view if its
 * member is still there. 0, or -1 when it must close. */
static int bc_rejoin(atr_bconn_t *bc)
{
    atr_px_view_t *cur = atr__px_view(bc->wg, bc->ups);
    int t = atr__px_view_find(cur, bc->view, bc->server);
    if (t < 0)
        return -1;
    cur->refs++;
    atr__px_view_unref(bc->view);
    bc->view = cur;
    bc->server = t;
    return 0;
}

/* How many idle connections a server's pool keeps in this worker. `auto`
 * (the default) keeps what the load had in use, so a busy pool does not
 * close and reopen connections past a fixed count (keepalive 32 cost 1.6x
 * the CPU per request at 64 clients); keepalive_timeout trims what the
 * load no longer needs. */
static int idle_cap(const atr_conf_upstream_t *u, const atr_lb_server_t *s)
{
    if (u->keepalive != ATR_KEEPALIVE_AUTO)
        return u->keepalive;
    return s->max_conns > 0 && s->max_conns < ATR_KEEPALIVE_AUTO_MAX ? s->max_conns
                                                                     : ATR_KEEPALIVE_AUTO_MAX;
}

/* Keep a cleanly finished connection for the next request, or close it. */
void atr__bc_park(atr_bconn_t *bc)
{
    const atr_conf_upstream_t *u = bc->wg->gen->ups[bc->ups].conf;
    bc->px = NULL;
    if (bc->wg == bc->wg->w->wgen && bc->view != atr__px_view(bc->wg, bc->ups) &&
        bc_rejoin(bc) < 0) {
        atr__bc_close(bc); /* its member left the upstream: drained */
        return;
    }
    atr_pool_t *p = pool_of(bc);
    /* A response that ended exactly where a full read ended, or read while
     * reading was paused for the client, may have bytes behind it in the
     * socket (a shorter last read left the socket empty). */
    const atr_lb_server_t *sv = &bc->view->ms->servers[bc->server];
    /* a drained or disabled server keeps no idle connection: the operator
     * waits for it to have none before stopping it */
    if (bc->s.closing || bc->s.eof || p->nidle >= idle_cap(u, sv) ||
        atomic_load_explicit(&sv->state->admin, memory_order_relaxed) != ATR_LB_ADMIN_READY ||
        bc->nreqs >= u->keepalive_requests || bc->wg->w->stopping || bc->wg != bc->wg->w->wgen ||
        (bc->s.maybe_unread && atr_sock_unusable(&bc->s))) {
        atr__bc_close(bc);
        return;
    }
    atr_sock_buf_drop(&bc->s); /* an idle connection holds no buffer */
    bc->next = p->idle;
    p->idle = bc;
    p->nidle++;
    atr_sock_deadline(&bc->s, BT_IDLE, u->keepalive_timeout);
    atr_sock_read_start(&bc->s); /* to notice the server closing it */
}

void atr__pool_close_idle(atr_px_view_t *v, int s)
{
    atr_pool_t *p = &v->pools[s];
    while (p->idle)
        atr__bc_close(pool_pop(p));
}

/* An idle pooled connection to server s, or NULL. A request that must not be
 * retried takes no connection the backend has already closed (its FIN may
 * not have been read yet). */
atr_bconn_t *atr__bc_take_idle(atr_proxy_t *px, int s)
{
    atr_pool_t *p = &px->view->pools[s];
    while (p->idle && !px->idempotent && atr_sock_unusable(&p->idle->s))
        atr__bc_close(pool_pop(p));
    if (p->idle == NULL)
        return NULL;
    atr_bconn_t *bc = pool_pop(p);
    atr_sock_deadline(&bc->s, BT_NONE, 0);
    bc->px = px;
    return bc;
}

/* ---- transport events ---- */

static void on_read(atr_sock_t *s, ssize_t nread)
{
    atr_bconn_t *bc = (atr_bconn_t *)s;
    if (bc->px == NULL) {
        /* Idle in the pool: any byte or EOF makes it unusable. */
        pool_remove(pool_of(bc), bc);
        atr__bc_close(bc);
        return;
    }
    if (nread == UV_ENOBUFS) {
        bc->s.eof = 1; /* no room and none to make: the exchange cannot go on */
        bc->s.reset = 1;
    }
    if (nread > 0 && !atr__px_decode(bc->px, (size_t)nread))
        return;
    atr__px_on_backend_data(bc->px, nread);
}

/* Room is made while the response head is read (one larger than a buffer). */
static uint32_t grow_limit(atr_sock_t *s)
{
    atr_bconn_t *bc = (atr_bconn_t *)s;
    if (bc->px == NULL || bc->px->resp_head_done)
        return 0;
    return bc->wg->gen->conf->max_header_size + bc->wg->gen->conf->buffer_size;
}

static void on_written(atr_sock_t *s, int status)
{
    atr_bconn_t *bc = (atr_bconn_t *)s;
    if (bc->px)
        atr__px_on_written(bc->px, status);
}

static void on_connect(atr_sock_t *s, int status)
{
    atr_bconn_t *bc = (atr_bconn_t *)s;
    if (bc->px == NULL)
        return;
    atr_sock_deadline(&bc->s, BT_NONE, 0);
    if (status == 0)
        bc->connected = 1;
    atr__px_on_connect(bc->px, status);
}

static void on_timer(atr_sock_t *s, int kind)
{
    atr_bconn_t *bc = (atr_bconn_t *)s;
    if (kind == BT_IDLE) {
        pool_remove(pool_of(bc), bc);
        atr__bc_close(bc);
    } else if (bc->px) {
        atr__px_on_timeout(bc->px, kind);
    }
}

static const atr_sock_cbs_t bc_cbs = {
    .on_read = on_read,
    .on_written = on_written,
    .on_connect = on_connect,
    .grow_limit = grow_limit,
    .on_timer = on_timer,
    .on_free = bc_free,
};

static atr_bconn_t *bc_new(atr_proxy_t *px, int s, const atr_transport_t *tp)
{
    atr_bconn_t *bc = atr_xcalloc(1, sizeof *bc);
    atr_sock_init(&bc->s, px->wg->w, tp, &bc_cbs);
    bc->wg = px->wg;
    bc->ops = px->ops;
    bc->ups = px->ups;
    bc->server = s;
    bc->view = px->view;
    bc->view->refs++;
    bc->px = px;
    return bc;
}

/* ---- reaching a server ---- */

typedef struct slot_kick {
    atr_wgen_t *wg;
    int ups;
} slot_kick_t;

/* A spawned process exited and gave its slot back: start a queued request. */
static void on_slot_free(void *arg)
{
    slot_kick_t *k = arg;
    atr__queue_kick(k->wg, k->ups);
    atr_wgen_unref(k->wg);
    free(k);
}

/* The "connection" of a spawning protocol (CGI) is a new process. It is
 * ready at once: the request body goes to its stdin, its stdout is read as
 * the response. The slot it takes is given back when the process has
 * exited, not when the exchange ends. */
atr_bconn_t *atr__bc_spawn(atr_proxy_t *px, int s)
{
    atr_bconn_t *bc = bc_new(px, s, &atr_transport_pipe);
    slot_kick_t *k = atr_xmalloc(sizeof *k);
    k->wg = px->wg;
    k->ups = px->ups;
    atr_wgen_ref(k->wg);
    atomic_int *slot = &px->view->ms->servers[s].state->active;
    int rc = px->ops->spawn(px->r, &bc->s, &bc->child, slot, on_slot_free, k);
    if (rc < 0) {
        atr_wgen_unref(k->wg);
        free(k);
        atr__bc_close(bc);
        return NULL;
    }
    px->slot_moved = 1;
    bc->connected = 1;
    return bc;
}

atr_bconn_t *atr__bc_connect(atr_proxy_t *px, int s)
{
    const atr_member_t *m = &px->view->ms->m[s];
    const struct sockaddr *addr = (const struct sockaddr *)&m->addr;
    atr_tls_client_t *cl = px->wg->gen->ups[px->ups].tls;
    atr_bconn_t *bc = bc_new(px, s, cl ? &atr_transport_tls : atr_transport_for(addr));
    if (cl) {
        /* Names and sessions are per `server` line: the members of one
         * name share them. */
        SSL_SESSION *sess = atr_tls_client_session(cl, m->line);
        int rc = atr_tls_client(&bc->s, atr_tls_client_ctx(cl), atr_tls_client_name(cl, m->line),
                                sess);
        SSL_SESSION_free(sess); /* the SSL holds its own reference */
        if (rc < 0) {
            atr__bc_close(bc);
            return NULL;
        }
        atr_tls_client_watch(cl, atr_tls_ssl(&bc->s), m->line);
    }
    if (atr_sock_connect(&bc->s, addr) < 0) {
        atr__bc_close(bc);
        return NULL;
    }
    atr_sock_deadline(&bc->s, BT_CONNECT, px->u->connect_timeout);
    return bc;
}

/* Write to the backend, timing the send. 0 written, 1 pending, <0 error. */
int atr__bc_write(atr_proxy_t *px, uv_buf_t *bufs, unsigned n)
{
    atr_bconn_t *bc = px->bc;
    int rc = atr_sock_write(&bc->s, bufs, n);
    if (rc == 1) {
        px->req_writing = 1;
        atr_sock_deadline(&bc->s, BT_SEND, px->u->send_timeout);
    }
    return rc;
}
