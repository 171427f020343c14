/* The unified proxy core (docs/internals.md). One request: pick a server,
 * take a pooled connection, connect (failover on refusal) or start a script,
 * send the head and stream the body; proxy_response.c parses the response
 * with the shared parser, streams it back and returns the connection to the
 * pool only after a cleanly framed, fully consumed exchange. Backpressure
 * both ways: one write in flight per direction, and the side that feeds it
 * stops reading until that write is done, so memory per request is two
 * buffers. This file: worker-generation state, backend connections and
 * pools, server accounting, queueing, dispatch and the request side. */
#include "backends/proxy.h"

#include <errno.h>
#include <stddef.h>
#include <sys/un.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "backends/proxy_priv.h"
#include "base/metrics.h"
#include "net/stream.h"

static void px_pump_request(atr_proxy_t *px);

static atr_gen_upstream_t *gups(atr_proxy_t *px)
{
    return &px->wg->gen->ups[px->ups];
}

static const atr_conf_server_t *server_conf(atr_wgen_t *wg, int ups, int s)
{
    return &wg->gen->ups[ups].conf->servers[s];
}

/* ---- worker generation state ---- */

void atr_proxy_wgen_init(atr_wgen_t *wg)
{
    const atr_gen_t *g = wg->gen;
    int n = g->nups;
    wg->lbs = atr_xcalloc((size_t)n, sizeof *wg->lbs);
    wg->pools = atr_xcalloc((size_t)n, sizeof *wg->pools);
    wg->queues = atr_xcalloc((size_t)n, sizeof *wg->queues);
    for (int i = 0; i < n; i++) {
        wg->lbs[i] = atr_lb_new(g->ups[i].lb_ops, g->ups[i].servers, g->ups[i].conf->nservers,
                                wg->w->seed + (uint64_t)i * 7919);
        wg->pools[i] = atr_xcalloc((size_t)g->ups[i].conf->nservers, sizeof(atr_pool_t));
        wg->queues[i] = atr_xcalloc(1, sizeof(atr_queue_t));
        wg->queues[i]->wg = wg;
        wg->queues[i]->ups = i;
    }
}


void atr_proxy_wgen_free(atr_wgen_t *wg)
{
    int n = wg->gen->nups;
    for (int i = 0; i < n; i++) {
        for (int s = 0; s < wg->gen->ups[i].conf->nservers; s++) {
            atr_pool_t *p = &wg->pools[i][s];
            while (p->idle) {
                atr_bconn_t *bc = p->idle;
                p->idle = bc->next;
                p->nidle--;
                bc->next = NULL;
                atr__bc_close(bc);
            }
        }
        atr_lb_free(wg->lbs[i]);
        free(wg->pools[i]);
        free(wg->queues[i]);
    }
    free(wg->lbs);
    free(wg->pools);
    free(wg->queues);
}

/* ---- backend connections ---- */

void atr__bc_release_ref(atr_bconn_t *bc)
{
    if (--bc->refs > 0)
        return;
    atr_cache_buf_put(bc->w, bc->buf, bc->cap);
    /* Pools hold no wgen reference (the wgen owns them); only an active
     * connection keeps its wgen alive. */
    free(bc);
}

static void bc_on_closed(uv_handle_t *h)
{
    atr__bc_release_ref(h->data);
}

static void bc_on_timer_closed(uv_handle_t *h)
{
    atr__bc_release_ref(((atr_deadline_t *)h->data)->data);
}

void atr__bc_close(atr_bconn_t *bc)
{
    if (bc->closing)
        return;
    bc->closing = 1;
    bc->px = NULL;
    if (bc->child) {
        atr_cgi_release(bc->child);
        bc->child = NULL;
    }
    bc->refs += 2;
    uv_close(&bc->io.handle, bc_on_closed);
    uv_close((uv_handle_t *)&bc->timer.timer, bc_on_timer_closed);
    atr__bc_release_ref(bc);
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

static void idle_timeout(atr_bconn_t *bc)
{
    pool_remove(&bc->wg->pools[bc->ups][bc->server], bc);
    atr__bc_close(bc);
}

/* 1 when this finished connection cannot carry another exchange: the backend
 * closed or reset it, or sent bytes nobody asked for (what follows a complete
 * response must never be read as the next request's response). */
static int bc_unusable(atr_bconn_t *bc)
{
    uv_os_fd_t fd;
    char c;
    if (uv_fileno(&bc->io.handle, &fd) < 0)
        return 1;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

/* Keep a cleanly finished connection for the next request, or close it. */
void atr__bc_park(atr_bconn_t *bc)
{
    const atr_conf_upstream_t *u = bc->wg->gen->ups[bc->ups].conf;
    atr_pool_t *p = &bc->wg->pools[bc->ups][bc->server];
    bc->px = NULL;
    /* A response that ended exactly where a full read ended, or read while
     * reading was paused for the client, may have bytes behind it in the
     * socket (a shorter last read left the socket empty). */
    if (bc->closing || bc->eof || p->nidle >= u->keepalive || bc->nreqs >= u->keepalive_requests ||
        bc->wg->w->stopping || bc->wg != bc->wg->w->wgen || (bc->maybe_unread && bc_unusable(bc))) {
        atr__bc_close(bc);
        return;
    }
    bc->len = bc->off = 0;
    atr_cache_buf_put(bc->wg->w, bc->buf, bc->cap); /* an idle connection holds no buffer */
    bc->buf = NULL;
    bc->cap = 0;
    bc->next = p->idle;
    p->idle = bc;
    p->nidle++;
    atr_deadline_set(&bc->timer, BT_IDLE, u->keepalive_timeout);
    atr__bc_read_start(bc); /* to notice the server closing it */
}

static void bc_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    atr_bconn_t *bc = h->data;
    (void)suggested;
    if (bc->buf == NULL) {
        bc->buf = atr_cache_buf_get(bc->wg->w, &bc->cap);
        bc->len = bc->off = 0;
    }
    if (bc->len == bc->cap && bc->off > 0) {
        memmove(bc->buf, bc->buf + bc->off, bc->len - bc->off);
        bc->len -= bc->off;
        bc->off = 0;
    }
    if (bc->len == bc->cap && bc->px && !bc->px->resp_head_done) {
        uint32_t limit = bc->wg->gen->conf->max_header_size + bc->wg->gen->conf->buffer_size;
        if (bc->cap < limit) {
            bc->cap = ATR_MIN(bc->cap * 2, limit);
            bc->buf = atr_xrealloc(bc->buf, bc->cap);
        }
    }
    buf->base = bc->buf + bc->len;
    buf->len = bc->cap - bc->len;
}



static void bc_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    atr_bconn_t *bc = s->data;
    if (nread == 0)
        return;
    if (bc->px == NULL) {
        /* Idle in the pool: any byte or EOF makes it unusable. */
        pool_remove(&bc->wg->pools[bc->ups][bc->server], bc);
        atr__bc_close(bc);
        return;
    }
    if (nread < 0) {
        bc->eof = 1;
        bc->reset = nread != UV_EOF; /* a reset must not end a close-delimited body */
        uv_read_stop(s);
        bc->reading = 0;
    } else {
        bc->maybe_unread = (size_t)nread == buf->len;
        if (!atr__px_decode(bc->px, (size_t)nread))
            return;
    }
    atr__px_on_backend_data(bc->px, nread);
}

void atr__bc_read_start(atr_bconn_t *bc)
{
    if (!bc->reading && !bc->closing && !bc->eof &&
        uv_read_start(&bc->io.stream, bc_on_alloc, bc_on_read) == 0)
        bc->reading = 1;
}

void atr__bc_read_stop(atr_bconn_t *bc)
{
    if (bc->reading) {
        uv_read_stop(&bc->io.stream);
        bc->reading = 0;
        bc->maybe_unread = 1;
    }
}

/* ---- server accounting ---- */

/* Take a slot on server s: 0 when max_conns is reached. The balancer's pick
 * only read the count; another worker may have taken the last slot since, so
 * the check and the increment are one compare-and-swap. */
static int server_acquire(atr_proxy_t *px, int s)
{
    atr_server_state_t *st = gups(px)->servers[s].state;
    int max = gups(px)->servers[s].max_conns;
    if (max > 0) {
        int cur = atomic_load(&st->active);
        do {
            if (cur >= max)
                return 0;
        } while (!atomic_compare_exchange_weak(&st->active, &cur, cur + 1));
    } else {
        atomic_fetch_add(&st->active, 1);
    }
    atomic_fetch_add(&st->requests, 1);
    return 1;
}

static void queue_kick(atr_wgen_t *wg, int ups);

void atr__server_count_response(atr_proxy_t *px, int status)
{
    if (px->server >= 0) {
        atr_server_state_t *st = gups(px)->servers[px->server].state;
        atomic_fetch_add_explicit(&st->responses[atr_status_class(status)], 1,
                                  memory_order_relaxed);
    }
}

void atr__server_release(atr_proxy_t *px)
{
    if (px->server < 0)
        return;
    if (px->slot_moved) {
        px->server = -1; /* the CGI child gives it back when it exits */
        return;
    }
    atomic_fetch_sub(&gups(px)->servers[px->server].state->active, 1);
    px->server = -1;
    queue_kick(px->wg, px->ups);
}

static void server_mark_down(atr_proxy_t *px, int s, const char *why)
{
    atr_server_state_t *st = gups(px)->servers[s].state;
    uint64_t now = uv_now(&px->wg->w->loop);
    atomic_store(&st->down_until, now + px->u->fail_timeout);
    atomic_fetch_add(&st->failures, 1);
    if (atomic_exchange(&st->logged_down, 1) == 0)
        ATR_WARN("upstream %s: server %s marked down for %llums: %s", px->u->name,
                 server_conf(px->wg, px->ups, s)->text, (unsigned long long)px->u->fail_timeout,
                 why);
}

static void server_mark_up(atr_proxy_t *px, int s)
{
    atr_server_state_t *st = gups(px)->servers[s].state;
    if (atomic_load(&st->down_until) != 0)
        atomic_store(&st->down_until, 0);
    if (atomic_exchange(&st->logged_down, 0) == 1)
        ATR_NOTICE("upstream %s: server %s is up again", px->u->name,
                   server_conf(px->wg, px->ups, s)->text);
}

/* ---- the proxy object ---- */

static void px_free(atr_proxy_t *px)
{
    atr__server_release(px);
    atr__px_spool_free(px);
    if (px->bc) {
        px->bc->px = NULL;
        atr__bc_close(px->bc);
        px->bc = NULL;
    }
    if (px->qtimer)
        uv_close((uv_handle_t *)px->qtimer, (uv_close_cb)free);
    if (px->rparser) {
        atr_http_parser_reset(px->rparser);
        atr_cache_put(px->wg->w, ATR_CACHE_RESP_PARSER, px->rparser);
    }
    atr_cache_put(px->wg->w, ATR_CACHE_MSG, px->rmsg);
    atr_cache_head_put(px->wg->w, px->head);
    atr_cache_head_put(px->wg->w, px->client_head);
    if (px->tried != px->tried_inline)
        free(px->tried);
    atr_worker_t *w = px->wg->w;
    atr_wgen_unref(px->wg);
    atr_cache_put(w, ATR_CACHE_PROXY, px);
}

static void px_detach(atr_proxy_t *px)
{
    if (px->r)
        px->r->proxy = NULL;
    px->r = NULL;
}

/* The exchange is over for the client side: free the proxy state. */
void atr__px_end(atr_proxy_t *px)
{
    px_detach(px);
    px_free(px);
}

/* ---- queueing (max_conns) ----
 *
 * max_conns counts requests of all workers (the server state is shared), but
 * each worker queues its own requests. A slot freed by this worker kicks its
 * queue at once; one freed by another worker is found by a short retry tick
 * that runs only while some queue of this worker has requests waiting. */

#define QUEUE_RETRY_MS 10

/* Some server of the upstream that is up has a free slot now. */
static int slot_free(atr_wgen_t *wg, int ups)
{
    const atr_gen_upstream_t *gu = &wg->gen->ups[ups];
    uint64_t now = uv_now(&wg->w->loop);
    for (int s = 0; s < gu->conf->nservers; s++) {
        const atr_server_state_t *st = gu->servers[s].state;
        int max = gu->servers[s].max_conns;
        if (atomic_load(&st->down_until) <= now &&
            (max == 0 || atomic_load(&st->active) < max))
            return 1;
    }
    return 0;
}

static void on_queue_retry(uv_timer_t *t)
{
    atr_worker_t *w = t->data;
    /* A kick can change the list (requests leave, fail, or queue again), so
     * each one starts from the top; a bound keeps a tick short when another
     * worker takes every slot that shows up free. */
    for (int kicks = 0; kicks < 256; kicks++) {
        atr_queue_t *q = w->waiting;
        while (q && !slot_free(q->wg, q->ups))
            q = q->wnext;
        if (q == NULL)
            break;
        queue_kick(q->wg, q->ups);
    }
    if (w->waiting == NULL)
        uv_timer_stop(t);
}

static void queue_listed(atr_queue_t *q, int waiting)
{
    atr_worker_t *w = q->wg->w;
    int listed = q->wprev != NULL || w->waiting == q;
    if (waiting && !listed) {
        q->wprev = NULL;
        q->wnext = w->waiting;
        if (w->waiting)
            w->waiting->wprev = q;
        w->waiting = q;
        if (!w->queue_timer_ready) {
            uv_timer_init(&w->loop, &w->queue_timer);
            w->queue_timer.data = w;
            uv_unref((uv_handle_t *)&w->queue_timer); /* queued requests keep the loop alive */
            w->queue_timer_ready = 1;
        }
        if (!uv_is_active((uv_handle_t *)&w->queue_timer))
            uv_timer_start(&w->queue_timer, on_queue_retry, QUEUE_RETRY_MS, QUEUE_RETRY_MS);
    } else if (!waiting && listed) {
        if (q->wprev)
            q->wprev->wnext = q->wnext;
        else
            w->waiting = q->wnext;
        if (q->wnext)
            q->wnext->wprev = q->wprev;
        q->wnext = q->wprev = NULL;
    }
}

static void queue_remove(atr_proxy_t *px)
{
    atr_queue_t *q = px->wg->queues[px->ups];
    for (atr_proxy_t **pp = &q->head; *pp; pp = &(*pp)->qnext) {
        if (*pp == px) {
            *pp = px->qnext;
            if (q->tail == px) {
                q->tail = q->head;
                while (q->tail && q->tail->qnext)
                    q->tail = q->tail->qnext;
            }
            q->n--;
            px->qnext = NULL;
            queue_listed(q, q->n > 0);
            return;
        }
    }
}

void atr__px_fail(atr_proxy_t *px, int status, const char *why)
{
    atr_req_t *r = px->r;
    ATR_WARN("%s: upstream %s: %s -> %d", px->wg->w->name, px->u->name, why, status);
    if (px->server >= 0 && (status == 502 || status == 504))
        atomic_fetch_add_explicit(&gups(px)->servers[px->server].state->errors, 1,
                                  memory_order_relaxed);
    if (px->phase == PX_QUEUED)
        queue_remove(px);
    px->phase = PX_DONE;
    if (px->bc) {
        px->bc->px = NULL;
        atr__bc_close(px->bc);
        px->bc = NULL;
    }
    atr__px_end(px);
    if (r == NULL)
        return;
    if (r->resp_head_sent) {
        atr_req_abort(r);
        return;
    }
    /* The request body may be half read: the connection cannot continue. */
    atr_req_respond_simple(r, status, NULL, !r->body.done);
}

static void on_queue_timeout(uv_timer_t *t)
{
    atr_proxy_t *px = t->data;
    atr__px_fail(px, 503, "queue timeout");
}

static void enqueue(atr_proxy_t *px)
{
    atr_queue_t *q = px->wg->queues[px->ups];
    if (q->n >= px->u->queue) {
        atr__px_fail(px, 503, "all servers at max_conns and the queue is full");
        return;
    }
    px->phase = PX_QUEUED;
    px->qnext = NULL;
    if (q->tail)
        q->tail->qnext = px;
    else
        q->head = px;
    q->tail = px;
    q->n++;
    queue_listed(q, 1);
    if (px->qtimer == NULL) {
        px->qtimer = atr_xmalloc(sizeof *px->qtimer);
        uv_timer_init(&px->wg->w->loop, px->qtimer);
        px->qtimer->data = px;
    }
    if (!uv_is_active((uv_handle_t *)px->qtimer))
        uv_timer_start(px->qtimer, on_queue_timeout, px->u->queue_timeout, 0);
}

static void queue_kick(atr_wgen_t *wg, int ups)
{
    atr_queue_t *q = wg->queues[ups];
    if (q->head == NULL)
        return;
    atr_proxy_t *px = q->head;
    q->head = px->qnext;
    if (q->head == NULL)
        q->tail = NULL;
    q->n--;
    px->qnext = NULL;
    queue_listed(q, q->n > 0);
    memset(px->tried, 0, (size_t)px->u->nservers);
    atr__px_dispatch(px);
}

/* ---- connecting ---- */

static void px_send_head(atr_proxy_t *px);

/* A connect failed: the server is down for fail_timeout; fail over to
 * another one while tries remain (nothing was sent, so any method may). */
static void connect_failed(atr_proxy_t *px, int status, const char *why)
{
    atr_bconn_t *bc = px->bc;
    server_mark_down(px, px->server, why);
    px->fail_status = status;
    bc->px = NULL;
    atr__bc_close(bc);
    px->bc = NULL;
    atr__server_release(px);
    if (px->attempts <= px->u->retries)
        atr__px_dispatch(px);
    else
        atr__px_fail(px, status, why);
}

static void connect_timeout(atr_bconn_t *bc)
{
    if (bc->px)
        connect_failed(bc->px, 504, "connect timeout");
}

static void on_connect(uv_connect_t *req, int status)
{
    atr_bconn_t *bc = req->data;
    atr_proxy_t *px = bc->px;
    if (bc->closing || px == NULL) {
        atr__bc_release_ref(bc); /* the handles' refs keep bc alive until here */
        return;
    }
    atr__bc_release_ref(bc);
    atr_deadline_set(&bc->timer, BT_NONE, 0);
    if (status < 0) {
        connect_failed(px, 502, uv_strerror(status));
        return;
    }
    bc->connected = 1;
    server_mark_up(px, px->server);
    if (bc->io.handle.type == UV_TCP)
        uv_tcp_nodelay(&bc->io.tcp, 1);
    px_send_head(px);
}

static void read_timeout(atr_bconn_t *bc);
static void send_timeout(atr_bconn_t *bc);

static void bc_on_timer(atr_deadline_t *d, int kind)
{
    atr_bconn_t *bc = d->data;
    switch (kind) {
    case BT_CONNECT: connect_timeout(bc); break;
    case BT_READ: read_timeout(bc); break;
    case BT_SEND: send_timeout(bc); break;
    case BT_IDLE: idle_timeout(bc); break;
    }
}

typedef struct cgi_kick {
    atr_wgen_t *wg;
    int ups;
} cgi_kick_t;

/* A CGI child exited and gave its slot back: start a queued request. */
static void on_cgi_slot_free(void *arg)
{
    cgi_kick_t *k = arg;
    queue_kick(k->wg, k->ups);
    atr_wgen_unref(k->wg);
    free(k);
}

/* The "connection" of a cgi upstream is a new script process. It is ready at
 * once: the request body goes to its stdin, its stdout is read as the
 * response. The slot it takes is given back when the process has exited. */
static atr_bconn_t *bc_new(atr_proxy_t *px, int s)
{
    atr_bconn_t *bc = atr_xcalloc(1, sizeof *bc);
    bc->wg = px->wg;
    bc->w = px->wg->w;
    bc->ups = px->ups;
    bc->server = s;
    bc->refs = 1;
    atr_deadline_init(&px->wg->w->loop, &bc->timer, bc_on_timer, bc);
    return bc;
}

static atr_bconn_t *bc_spawn(atr_proxy_t *px, int s)
{
    atr_bconn_t *bc = bc_new(px, s);
    cgi_kick_t *k = atr_xmalloc(sizeof *k);
    k->wg = px->wg;
    k->ups = px->ups;
    atr_wgen_ref(k->wg);
    int rc = atr_cgi_spawn(px->r, &px->wg->w->loop, &bc->io.pipe, &bc->child, &bc->out,
                           &gups(px)->servers[s].state->active, on_cgi_slot_free, k);
    bc->io.handle.data = bc;
    if (rc < 0) {
        atr_wgen_unref(k->wg);
        free(k);
        atr__bc_close(bc);
        return NULL;
    }
    px->slot_moved = 1;
    bc->px = px;
    bc->connected = 1;
    return bc;
}

static atr_bconn_t *bc_connect(atr_proxy_t *px, int s)
{
    const atr_conf_server_t *sc = server_conf(px->wg, px->ups, s);
    atr_bconn_t *bc = bc_new(px, s);
    int unix_socket = sc->addr.ss_family == AF_UNIX;
    if (unix_socket)
        uv_pipe_init(&px->wg->w->loop, &bc->io.pipe, 0);
    else
        uv_tcp_init(&px->wg->w->loop, &bc->io.tcp);
    bc->io.handle.data = bc;
    bc->connect_req.data = bc;
    bc->px = px;
    bc->out = &bc->io.stream;
    int rc = 0;
    if (unix_socket)
        uv_pipe_connect(&bc->connect_req, &bc->io.pipe,
                        ((const struct sockaddr_un *)&sc->addr)->sun_path, on_connect);
    else
        rc = uv_tcp_connect(&bc->connect_req, &bc->io.tcp, (const struct sockaddr *)&sc->addr,
                            on_connect);
    if (rc < 0) {
        atr__bc_close(bc);
        return NULL;
    }
    bc->refs++; /* held by the connect request */
    atr_deadline_set(&bc->timer, BT_CONNECT, px->u->connect_timeout);
    return bc;
}

/* Pick a server and a connection for px (first try, failover or retry). */
void atr__px_dispatch(atr_proxy_t *px)
{
    int all_full = 0, s;
    uint64_t now = uv_now(&px->wg->w->loop);
    for (int lost = 0;; lost++) {
        s = atr_lb_pick(px->wg->lbs[px->ups], now, px->tried, &all_full);
        if (s < 0 || server_acquire(px, s))
            break;
        /* Another worker took the slot after the pick: the server now counts
         * as full, so pick again; after a few lost races, wait in the queue. */
        if (lost == 8) {
            s = -1;
            all_full = 1;
            break;
        }
    }
    if (s < 0) {
        if (all_full && px->attempts == 0)
            enqueue(px);
        else if (px->attempts > 0)
            atr__px_fail(px, px->fail_status ? px->fail_status : 502, "no server left to try");
        else
            atr__px_fail(px, 503, "no server available");
        return;
    }
    if (px->qtimer)
        uv_timer_stop(px->qtimer);
    px->tried[s] = 1;
    px->attempts++;
    px->server = s;
    if (px->wg->gen->access_log) {
        const char *text = server_conf(px->wg, px->ups, s)->text;
        size_t n = ATR_MIN(strlen(text), sizeof px->r->upstream_addr - 1);
        memcpy(px->r->upstream_addr, text, n);
        px->r->upstream_addr[n] = '\0';
    }
    atr__px_use_server(px);
}

/* Send px to the server whose slot it holds (px->server): on an idle pooled
 * connection, a new script, or a new connection. */
void atr__px_use_server(atr_proxy_t *px)
{
    int s = px->server;
    atr_pool_t *p = &px->wg->pools[px->ups][s];
    while (p->idle && !px->idempotent && bc_unusable(p->idle)) {
        /* A request that must not be retried takes no connection the
         * backend has already closed (its FIN may not have been read yet). */
        atr_bconn_t *dead = p->idle;
        p->idle = dead->next;
        p->nidle--;
        dead->next = NULL;
        atr__bc_close(dead);
    }
    if (p->idle) {
        atr_bconn_t *bc = p->idle;
        p->idle = bc->next;
        p->nidle--;
        bc->next = NULL;
        atr_deadline_set(&bc->timer, BT_NONE, 0);
        bc->px = px;
        px->bc = bc;
        px->phase = PX_SENDING;
        px_send_head(px);
        return;
    }
    if (px->ops == &atr_backend_cgi) {
        px->bc = bc_spawn(px, s);
        if (px->bc == NULL) {
            atr__server_release(px);
            atr__px_fail(px, 502, "cannot start the script");
            return;
        }
        px_send_head(px);
        return;
    }
    px->phase = PX_CONNECTING;
    px->bc = bc_connect(px, s);
    if (px->bc == NULL) {
        atr__server_release(px);
        atr__px_fail(px, 502, "cannot create a socket");
    }
}

/* ---- request: head and body to the backend ---- */

static void read_timeout(atr_bconn_t *bc)
{
    atr_proxy_t *px = bc->px;
    if (px)
        atr__px_fail(px, 504, "response timeout");
}

/* Response inactivity counts once the whole request is out (a slow client
 * body is the client's body_timeout, a slow backend read the send_timeout). */
void atr__arm_read_timer(atr_proxy_t *px)
{
    if (px->bc && !px->bc->write_pending && px->req_body_done) {
        if (px->bc->child)
            atr_cgi_close_stdin(px->bc->child); /* the script sees the end of its input */
        atr_deadline_set(&px->bc->timer, BT_READ, px->u->read_timeout);
    }
}

static void send_timeout(atr_bconn_t *bc)
{
    if (bc->px)
        atr__px_fail(bc->px, 504, "request send timeout");
}

/* The backend stopped taking the request: a script that exits without
 * reading its input, a server that answered early and closed. Stop sending
 * (the client connection closes after this response, its body unread) and
 * let the read side decide: the response that comes, or 502 at its end. */
static void px_write_failed(atr_proxy_t *px)
{
    px->write_failed = 1;
    if (px->r && !px->r->body.done)
        px->r->resp_close = 1;
    if (px->r && px->r->body_pending)
        atr_req_body_consumed(px->r);
    px->req_body_done = 1;
    px->req_writing = 0;
    atr__arm_read_timer(px);
}

static void on_backend_write(uv_write_t *wr, int status)
{
    atr_bconn_t *bc = wr->data;
    atr_proxy_t *px = bc->px;
    bc->write_pending = 0;
    if (bc->closing || px == NULL) {
        atr__bc_release_ref(bc);
        return;
    }
    atr__bc_release_ref(bc);
    px->req_writing = 0;
    if (status < 0) {
        px_write_failed(px);
        return;
    }
    if (px->r && px->r->body_pending)
        atr_req_body_consumed(px->r);
    /* The backend took it: the send deadline ends here (the next queued write
     * arms its own; the response's starts once the request is out). */
    if (bc->timer.kind == BT_SEND)
        atr_deadline_set(&bc->timer, BT_NONE, 0);
    atr__arm_read_timer(px);
    px_pump_request(px);
}

/* 0 written, 1 pending, <0 error */
static int bc_write(atr_proxy_t *px, uv_buf_t *bufs, unsigned n)
{
    atr_bconn_t *bc = px->bc;
    int rc = atr_stream_try_write(bc->out, &bufs, &n);
    if (rc <= 0)
        return rc;
    bc->wr.data = bc;
    rc = uv_write(&bc->wr, bc->out, bufs, n, on_backend_write);
    if (rc < 0)
        return rc;
    bc->refs++;
    bc->write_pending = 1;
    px->req_writing = 1;
    atr_deadline_set(&bc->timer, BT_SEND, px->u->send_timeout);
    return 1;
}

static void px_send_head(atr_proxy_t *px)
{
    px->phase = PX_SENDING;
    px->bc->nreqs++;
    if (px->rparser == NULL) {
        px->rparser = atr_cache_get(px->wg->w, ATR_CACHE_RESP_PARSER);
        if (px->rparser == NULL)
            px->rparser = atr_http_parser_new(1, &px->wg->gen->resp_limits);
        else /* a cached one may come from an earlier generation */
            atr_http_parser_set_limits(px->rparser, &px->wg->gen->resp_limits);
        px->rmsg = atr_cache_get(px->wg->w, ATR_CACHE_MSG);
        if (px->rmsg == NULL)
            px->rmsg = atr_xmalloc(sizeof *px->rmsg);
    }
    atr_http_parser_reset(px->rparser);
    atr_http_parser_set_request_method(px->rparser, px->idempotent == 2 ? ATR_M_HEAD : ATR_M_GET);
    atr_http_parser_set_lenient_lf(px->rparser, px->ops != &atr_backend_http);
    if (px->wg->gen->access_log)
        px->t_start = uv_hrtime();
    atr__bc_read_start(px->bc);
    uv_buf_t b = uv_buf_init(px->head, (unsigned)px->head_len);
    int rc = bc_write(px, &b, 1);
    if (rc < 0) {
        px_write_failed(px);
        return;
    }
    if (rc == 0) {
        atr__arm_read_timer(px);
        px_pump_request(px);
    }
}

/* Cut views to at most ATR_FRAME_MAX_VIEW bytes (a FastCGI record's
 * content) for the encoder. The input is at most ATR_MAX_OUT_BUFS views of
 * ATR_BODY_READ_MAX bytes in all, so the output fits ATR_FRAME_MAX_VIEWS (an
 * input buffer grown for a large head once made it overflow: a piece over
 * 64 KiB reached the FastCGI record header). */
_Static_assert(ATR_MAX_OUT_BUFS + ATR_BODY_READ_MAX / ATR_FRAME_MAX_VIEW <= ATR_FRAME_MAX_VIEWS,
               "a body read must fit the framing views");

static int split_views(const atr_str_t *in, int n, atr_str_t *out)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        atr_str_t v = in[i];
        while (v.n > ATR_FRAME_MAX_VIEW) {
            out[k++] = (atr_str_t){ v.p, ATR_FRAME_MAX_VIEW };
            v.p += ATR_FRAME_MAX_VIEW;
            v.n -= ATR_FRAME_MAX_VIEW;
        }
        out[k++] = v;
    }
    return k;
}

/* Move request body from the client to the backend until one side waits. */
static void px_pump_request(atr_proxy_t *px)
{
    atr_req_t *r = px->r;
    while (r && !px->req_body_done && !px->req_writing && px->phase != PX_DONE) {
        atr_str_t v[ATR_MAX_OUT_BUFS], fv[ATR_FRAME_MAX_VIEWS];
        uv_buf_t bufs[3 * ATR_FRAME_MAX_VIEWS + 1];
        int n = 0;
        int rc;
        if (px->spool) {
            rc = atr__px_spool_next(px, &v[0]);
            n = v[0].n > 0;
            if (rc == ATR_ERROR) {
                atr__px_fail(px, 500, "cannot read the spooled request body");
                return;
            }
        } else {
            rc = atr_req_body_read(r, v, ATR_MAX_OUT_BUFS, &n);
        }
        if (rc == ATR_ERROR) {
            r->resp_close = 1; /* the body's framing is in doubt: never read on */
            if (r->body_error && !r->resp_head_sent) {
                atr__px_fail(px, r->body_error, "bad request body");
                return;
            }
            atr__px_fail(px, 400, "client went away during the request body");
            return;
        }
        int last = rc == ATR_DONE;
        if (n == 0 && !last)
            return; /* on_body_ready resumes */
        int nf = split_views(v, n, fv);
        int nb = px->ops->frame_body(px->req_framing, fv, nf, last, px->scratch, bufs);
        if (n > 0)
            px->req_bytes_sent = 1;
        if (last)
            px->req_body_done = 1;
        int wrc = nb ? bc_write(px, bufs, (unsigned)nb) : 0;
        if (wrc < 0) {
            px_write_failed(px);
            return;
        }
        if (wrc == 0 && r->body_pending)
            atr_req_body_consumed(r);
    }
    if (px->req_body_done && !px->req_writing && px->phase != PX_DONE)
        atr__arm_read_timer(px); /* the whole request is out */
}


void atr_proxy_on_body_ready(atr_req_t *r)
{
    atr_proxy_t *px = r->proxy;
    if (px == NULL)
        return;
    if (px->phase == PX_TUNNEL) {
        atr__tunnel_pump_up(px);
        return;
    }
    if (px->phase == PX_SPOOLING)
        atr__px_spool_pump(px);
    else if (px->phase == PX_SENDING || px->phase == PX_STREAMING)
        px_pump_request(px);
}

/* ---- entry points ---- */

void atr_proxy_start(atr_req_t *r)
{
    const atr_conf_upstream_t *u = r->upstream;
    atr_http_msg_t *m = r->msg;
    atr_proxy_t *px = atr_cache_get(r->c->w, ATR_CACHE_PROXY);
    if (px)
        memset(px, 0, offsetof(atr_proxy_t, scratch)); /* scratch, tried_inline: no clearing */
    else
        px = atr_xcalloc(1, sizeof *px);
    px->r = r;
    px->wg = r->wg;
    atr_wgen_ref(px->wg);
    px->ups = r->ups;
    px->u = u;
    px->ops = u->protocol;
    px->server = -1;
    size_t ntried = u->nservers > 0 ? (size_t)u->nservers : 1;
    if (ntried <= sizeof px->tried_inline) {
        px->tried = px->tried_inline;
        memset(px->tried, 0, ntried);
    } else {
        px->tried = atr_xcalloc(ntried, 1);
    }
    px->req_framing = m->body;
    switch (m->method) {
    case ATR_M_HEAD: px->idempotent = 2; break;
    case ATR_M_GET: case ATR_M_PUT: case ATR_M_DELETE: case ATR_M_OPTIONS: case ATR_M_TRACE:
        px->idempotent = 1;
        break;
    default: px->idempotent = 0; break;
    }
    r->upgrade_requested = m->upgrade && px->ops == &atr_backend_http;
    r->proxy = px;
    if (m->body == ATR_BODY_CHUNKED && px->ops->needs_length) {
        atr__px_spool_start(px);
        return;
    }
    atr__px_begin(px, m);
}

void atr__px_begin(atr_proxy_t *px, const atr_http_msg_t *m)
{
    atr_req_t *r = px->r;
    px->head = px->ops->encode_head(r, m, m->body, &px->head_len);
    if (px->head == NULL) {
        int status = r->refuse_status ? r->refuse_status : 431;
        int unread_body = m->body != ATR_BODY_NONE && !r->body.done;
        px_detach(px);
        px_free(px);
        atr_req_head_done(r);
        atr_req_respond_simple(r, status, NULL, unread_body);
        return;
    }
    if (px->ops->dec_init)
        px->ops->dec_init(px->dec, r);
    if (m->body == ATR_BODY_NONE)
        px->req_body_done = 1;
    atr_req_head_done(r); /* a spooled request's head is consumed already */
    atr__px_dispatch(px);
}

void atr_proxy_on_client_gone(atr_req_t *r)
{
    atr_proxy_t *px = r->proxy;
    if (px == NULL)
        return;
    if (px->phase == PX_QUEUED)
        queue_remove(px);
    if (px->ops->abort_bytes && px->bc && px->bc->connected && !px->resp_done &&
        !px->bc->write_pending) {
        /* Tell the application (FastCGI ABORT_REQUEST), best effort: the
         * connection closes right after and is never reused. */
        char rec[16];
        uv_buf_t b = uv_buf_init(rec, (unsigned)px->ops->abort_bytes(rec));
        uv_try_write(&px->bc->io.stream, &b, 1);
    }
    px->phase = PX_DONE;
    atr__px_end(px);
}
