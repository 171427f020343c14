/* The unified proxy core (docs/internals.md). One request: pick a server,
 * take a pooled connection, connect (failover on refusal) or start a script,
 * send the head and stream the body; proxy_response.c parses the response
 * with the shared parser, streams it back and returns the connection to the
 * pool only after a cleanly framed, fully consumed exchange. Backpressure
 * both ways: one write in flight per direction, and the side that feeds it
 * stops reading until that write is done, so memory per request is two
 * buffers. This file: the proxy's per-generation state, server accounting,
 * queueing, choosing a server and the request side of the exchange; the
 * backend connections are proxy_conn.c's, the response side
 * proxy_response.c's. */
#include "backends/proxy.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "backends/proxy_priv.h"
#include "base/log.h"
#include "base/metrics.h"
#include "net/hooks.h"
#include "net/tls.h"

static void px_pump_request(atr_proxy_t *px);

/* The shared state of member s of px's view. */
static atr_server_state_t *member_state(const atr_proxy_t *px, int s)
{
    return px->view->ms->servers[s].state;
}

static const char *member_name(const atr_proxy_t *px, int s)
{
    return px->view->ms->m[s].name;
}

/* ---- worker generation state ---- */

int atr__px_slot;

static void px_wgen_init(atr_wgen_t *wg)
{
    int n = wg->gen->nups;
    atr_px_wgen_t *pw = atr_xcalloc(1, sizeof *pw);
    wg->slots[atr__px_slot] = pw;
    pw->views = atr_xcalloc((size_t)n, sizeof *pw->views);
    pw->queues = atr_xcalloc((size_t)n, sizeof *pw->queues);
    atr__px_views_init(wg);
    for (int i = 0; i < n; i++) {
        pw->queues[i] = atr_xcalloc(1, sizeof(atr_queue_t));
        pw->queues[i]->wg = wg;
        pw->queues[i]->ups = i;
    }
}

static void px_wgen_free(atr_wgen_t *wg)
{
    atr_px_wgen_t *pw = atr__pxw(wg);
    atr__px_views_free(wg);
    for (int i = 0; i < wg->gen->nups; i++)
        free(pw->queues[i]);
    free(pw->views);
    free(pw->queues);
    free(pw);
    wg->slots[atr__px_slot] = NULL;
}

void atr_proxy_register(void)
{
    atr__px_slot = atr_wgen_slot_new();
    atr_hook_wgen(px_wgen_init, px_wgen_free);
    atr_hook_members(atr__px_members_changed);
}

/* ---- server accounting ---- */

/* Take a slot on server s: 0 when max_conns is reached. The balancer's pick
 * only read the count; another worker may have taken the last slot since, so
 * the check and the increment are one compare-and-swap. */
static int server_acquire(atr_proxy_t *px, int s)
{
    atr_server_state_t *st = member_state(px, s);
    int max = px->view->ms->servers[s].max_conns;
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


/* Outlier detection hears how server s did (balancer/outlier.c: 5xx,
 * timeouts, resets and refusals in a row eject it); what it changes is
 * logged here, once per change. */
static void server_outlier(atr_proxy_t *px, int s, int failed)
{
    const atr_members_t *ms = px->view->ms;
    uint64_t len = 0;
    switch (atr_lb_outlier_result(&px->u->outlier, ms->servers, ms->n, s, failed,
                                  uv_now(&px->wg->w->loop), &len)) {
    case ATR_LB_OUTLIER_EJECTED:
        ATR_WARN("upstream %s: server %s ejected for %llums: %d failures in a row", px->u->name,
                 member_name(px, s), (unsigned long long)len, px->u->outlier.consecutive);
        break;
    case ATR_LB_OUTLIER_BACK:
        ATR_NOTICE("upstream %s: server %s is back from its ejection", px->u->name,
                   member_name(px, s));
        break;
    default: break;
    }
}

void atr__server_count_response(atr_proxy_t *px, int status)
{
    if (px->server >= 0) {
        atr_server_state_t *st = member_state(px, px->server);
        atomic_fetch_add_explicit(&st->responses[atr_status_class(status)], 1,
                                  memory_order_relaxed);
        /* By default only a gateway's failures count: an application's 500
         * on one broken page says nothing about the server. */
        int bad = px->u->outlier.all_5xx ? status >= 500 : status >= 502 && status <= 504;
        server_outlier(px, px->server, bad);
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
    atomic_fetch_sub(&member_state(px, px->server)->active, 1);
    px->server = -1;
    atr__queue_kick(px->wg, px->ups);
}

static void server_mark_down(atr_proxy_t *px, int s, const char *why)
{
    atr_server_state_t *st = member_state(px, s);
    uint64_t now = uv_now(&px->wg->w->loop);
    atomic_store(&st->down_until, now + px->u->fail_timeout);
    atomic_fetch_add(&st->failures, 1);
    if (atomic_exchange(&st->logged_down, 1) == 0)
        ATR_WARN("upstream %s: server %s marked down for %llums: %s", px->u->name,
                 member_name(px, s),
                 (unsigned long long)px->u->fail_timeout, why);
}

static void server_mark_up(atr_proxy_t *px, int s)
{
    atr_server_state_t *st = member_state(px, s);
    if (atomic_load(&st->down_until) != 0)
        atomic_store(&st->down_until, 0);
    if (atomic_exchange(&st->logged_down, 0) == 1) {
        atr_lb_server_back(st, uv_now(&px->wg->w->loop)); /* slow_start from here */
        ATR_NOTICE("upstream %s: server %s is up again", px->u->name, member_name(px, s));
    }
}

/* ---- the proxy object ---- */

/* Place px among the upstream's current members, none tried yet: at the
 * start, and again when it leaves the queue (the members may have changed
 * while it waited). Retries stay among the members it was placed among. */
static void px_place(atr_proxy_t *px)
{
    atr_px_view_t *v = atr__px_view(px->wg, px->ups);
    size_t n = (size_t)v->ms->n;
    if (px->view != v) {
        v->refs++;
        atr__px_view_unref(px->view);
        px->view = v;
    }
    if (px->tried != NULL && px->tried != px->tried_inline && px->ntried < n) {
        free(px->tried);
        px->tried = NULL;
    }
    if (px->tried == NULL || (px->tried == px->tried_inline && n > sizeof px->tried_inline)) {
        px->tried = n <= sizeof px->tried_inline ? px->tried_inline : atr_xmalloc(n);
        px->ntried = n;
    }
    memset(px->tried, 0, n);
}

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
    atr__px_view_unref(px->view);
    atr_worker_t *w = px->wg->w;
    atr_wgen_unref(px->wg);
    atr_cache_put(w, ATR_CACHE_PROXY, px);
}

static void px_detach(atr_proxy_t *px)
{
    atr_req_t *r = px->r;
    if (r) {
        if (px->ops->exchange_done)
            px->ops->exchange_done(r);
        r->handler = NULL;
        r->handler_data = NULL;
    }
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

/* This worker's queues with requests waiting, and the tick that retries
 * them while any waits. Per worker thread, like the worker's loop. */
static __thread struct {
    atr_queue_t *head;
    uv_timer_t timer;
    int timer_ready;
} waiting;

/* The requests queued for the upstream may go on now: a member that takes
 * requests has a free slot, or nothing is left to wait for (no member is
 * full or waiting for its name's first answer any more: they fail now
 * rather than at their queue timeout). */
static int slot_free(atr_wgen_t *wg, int ups)
{
    const atr_members_t *ms = atr__px_view(wg, ups)->ms;
    uint64_t now = uv_now(&wg->w->loop);
    int waiting = 0;
    for (int s = 0; s < ms->n; s++) {
        const atr_server_state_t *st = ms->servers[s].state;
        int max = ms->servers[s].max_conns;
        if (atomic_load(&st->pending)) {
            waiting = 1;
            continue;
        }
        if (atr_lb_out_of_service(st, now))
            continue;
        if (max == 0 || atomic_load(&st->active) < max)
            return 1;
        waiting = 1;
    }
    return !waiting;
}

static void on_queue_retry(uv_timer_t *t)
{
    /* A kick can change the list (requests leave, fail, or queue again), so
     * each one starts from the top; a bound keeps a tick short when another
     * worker takes every slot that shows up free. */
    for (int kicks = 0; kicks < 256; kicks++) {
        atr_queue_t *q = waiting.head;
        while (q && !slot_free(q->wg, q->ups))
            q = q->wnext;
        if (q == NULL)
            break;
        atr__queue_kick(q->wg, q->ups);
    }
    if (waiting.head == NULL)
        uv_timer_stop(t);
}

static void queue_listed(atr_queue_t *q, int want)
{
    atr_worker_t *w = q->wg->w;
    int listed = q->wprev != NULL || waiting.head == q;
    if (want && !listed) {
        q->wprev = NULL;
        q->wnext = waiting.head;
        if (waiting.head)
            waiting.head->wprev = q;
        waiting.head = q;
        if (!waiting.timer_ready) {
            uv_timer_init(&w->loop, &waiting.timer);
            uv_unref((uv_handle_t *)&waiting.timer); /* queued requests keep the loop alive */
            waiting.timer_ready = 1;
        }
        if (!uv_is_active((uv_handle_t *)&waiting.timer))
            uv_timer_start(&waiting.timer, on_queue_retry, QUEUE_RETRY_MS, QUEUE_RETRY_MS);
    } else if (!want && listed) {
        if (q->wprev)
            q->wprev->wnext = q->wnext;
        else
            waiting.head = q->wnext;
        if (q->wnext)
            q->wnext->wprev = q->wprev;
        q->wnext = q->wprev = NULL;
    }
}

static void queue_remove(atr_proxy_t *px)
{
    atr_queue_t *q = atr__pxw(px->wg)->queues[px->ups];
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
    if (r)
        ATR_WARN(ATR_REQ_FMT ": upstream %s: %s -> %d", ATR_REQ_ARGS(r), px->u->name, why, status);
    else
        ATR_WARN("%s: upstream %s: %s -> %d", px->wg->w->name, px->u->name, why, status);
    if (px->server >= 0 && (status == 502 || status == 504)) {
        atomic_fetch_add_explicit(&member_state(px, px->server)->errors, 1,
                                  memory_order_relaxed);
        server_outlier(px, px->server, 1);
    }
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
    atr_queue_t *q = atr__pxw(px->wg)->queues[px->ups];
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

void atr__queue_kick(atr_wgen_t *wg, int ups)
{
    atr_queue_t *q = atr__pxw(wg)->queues[ups];
    if (q->head == NULL)
        return;
    atr_proxy_t *px = q->head;
    q->head = px->qnext;
    if (q->head == NULL)
        q->tail = NULL;
    q->n--;
    px->qnext = NULL;
    queue_listed(q, q->n > 0);
    px_place(px); /* among the members of now, none tried */
    atr__px_dispatch(px);
}

/* ---- connecting ---- */

static void px_send_head(atr_proxy_t *px);

/* The callers know the request may go again: nothing was sent, or it is
 * idempotent and no body went out. */
void atr__px_server_failed(atr_proxy_t *px, int status, const char *why, int down)
{
    atr_bconn_t *bc = px->bc;
    server_outlier(px, px->server, 1);
    if (down)
        server_mark_down(px, px->server, why);
    else if (px->r)
        ATR_INFO(ATR_REQ_FMT ": upstream %s: server %s: %s, trying the next one",
                 ATR_REQ_ARGS(px->r), px->u->name, member_name(px, px->server), why);
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

void atr__px_on_connect(atr_proxy_t *px, int status)
{
    if (status < 0) {
        char why[192];
        int tls = status == UV_EPROTO && atr_tls_ssl(&px->bc->s);
        atr__px_server_failed(px, 502, tls ? atr_tls_why(&px->bc->s, why, sizeof why)
                                           : uv_strerror(status), 1);
        return;
    }
    server_mark_up(px, px->server);
    px_send_head(px);
}

void atr__px_on_timeout(atr_proxy_t *px, int kind)
{
    switch (kind) {
    case BT_CONNECT: atr__px_server_failed(px, 504, "connect timeout", 1); break;
    case BT_READ: atr__px_fail(px, 504, "response timeout"); break;
    case BT_SEND: atr__px_fail(px, 504, "request send timeout"); break;
    }
}

/* Pick a server and a connection for px (first try, failover or retry). */
void atr__px_dispatch(atr_proxy_t *px)
{
    int all_full = 0, s;
    uint64_t now = uv_now(&px->wg->w->loop);
    for (int lost = 0;; lost++) {
        s = atr_lb_pick_key(px->view->lb, now, px->tried, &all_full, px->lb_key);
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
        const char *text = member_name(px, s);
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
    atr_bconn_t *bc = atr__bc_take_idle(px, s);
    if (bc) {
        px->bc = bc;
        px->phase = PX_SENDING;
        px_send_head(px);
        return;
    }
    if (px->ops->spawn) {
        px->bc = atr__bc_spawn(px, s);
        if (px->bc == NULL) {
            atr__server_release(px);
            atr__px_fail(px, 502, "cannot start the script");
            return;
        }
        px_send_head(px);
        return;
    }
    px->phase = PX_CONNECTING;
    px->bc = atr__bc_connect(px, s);
    if (px->bc == NULL) {
        atr__server_release(px);
        atr__px_fail(px, 502, "cannot create a socket");
    }
}

/* ---- request: head and body to the backend ---- */

/* Response inactivity counts once the whole request is out (a slow client
 * body is the client's body_timeout, a slow backend read the send_timeout). */
void atr__arm_read_timer(atr_proxy_t *px)
{
    if (px->bc && !px->bc->s.write_pending && px->req_body_done) {
        if (px->bc->child)
            px->ops->spawn_input_done(px->bc->child); /* the script sees the end of its input */
        atr_sock_deadline(&px->bc->s, BT_READ, px->u->read_timeout);
    }
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

void atr__px_on_written(atr_proxy_t *px, int status)
{
    atr_bconn_t *bc = px->bc;
    px->req_writing = 0;
    if (px->phase == PX_TUNNEL) {
        atr__tunnel_written(px, status);
        return;
    }
    if (status < 0) {
        px_write_failed(px);
        return;
    }
    if (px->r && px->r->body_pending)
        atr_req_body_consumed(px->r);
    /* The backend took it: the send deadline ends here (the next queued write
     * arms its own; the response's starts once the request is out). */
    if (bc->s.timer_kind == BT_SEND)
        atr_sock_deadline(&bc->s, BT_NONE, 0);
    atr__arm_read_timer(px);
    px_pump_request(px);
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
    atr_http_parser_set_lenient_lf(px->rparser, px->ops->cgi_response);
    if (px->wg->gen->access_log || px->u->balance->observe) /* the time is logged, or learnt */
        px->t_start = uv_hrtime();
    px->t_sent_ms = uv_now(&px->wg->w->loop);
    atr_sock_read_start(&px->bc->s);
    uv_buf_t b = uv_buf_init(px->head, (unsigned)px->head_len);
    int rc = atr__bc_write(px, &b, 1);
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
        struct iovec bufs[3 * ATR_FRAME_MAX_VIEWS + 1];
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
        int wrc = nb ? atr__bc_write(px, atr_sock_bufs(bufs), (unsigned)nb) : 0;
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


static void on_body_ready(atr_req_t *r)
{
    atr_proxy_t *px = atr__px_of(r);
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

static void on_client_gone(atr_req_t *r);

static const atr_handler_t proxy_handler = {
    .name = "proxy",
    .body_ready = on_body_ready,
    .client_gone = on_client_gone,
};

void atr_proxy_start(atr_req_t *r)
{
    const atr_conf_upstream_t *u = r->upstream;
    atr_http_msg_t *m = r->msg;
    atr_proxy_t *px = atr_cache_get(r->wg->w, ATR_CACHE_PROXY);
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
    px_place(px);
    px->req_framing = m->body;
    switch (m->method) {
    case ATR_M_HEAD: px->idempotent = 2; break;
    case ATR_M_GET: case ATR_M_PUT: case ATR_M_DELETE: case ATR_M_OPTIONS: case ATR_M_TRACE:
        px->idempotent = 1;
        break;
    default: px->idempotent = 0; break;
    }
    r->upgrade_requested = m->upgrade && px->ops->upgrade;
    r->handler = &proxy_handler;
    r->handler_data = px;
    if (m->body == ATR_BODY_CHUNKED && px->ops->needs_length) {
        atr__px_spool_start(px);
        return;
    }
    atr__px_begin(px, m);
}

/* The balancing key of a `balance hash` upstream, while the head is there:
 * the client's address, the target, a header's or a cookie's value. */
static uint64_t lb_key(const atr_proxy_t *px, const atr_http_msg_t *m)
{
    const atr_lb_args_t *la = &px->u->balance_args;
    if (la->key == ATR_LB_KEY_NONE)
        return 0;
    const atr_conn_t *c = px->r->c;
    atr_lb_key_in_t in = { c->peer, c->peer_len, m->target.p, m->target.n, NULL, 0, NULL, 0 };
    char lower[sizeof la->name];
    size_t i = 0;
    for (; la->name[i] && i + 1 < sizeof lower; i++)
        lower[i] = (char)tolower((unsigned char)la->name[i]);
    lower[i] = '\0';
    const atr_http_header_t *h = NULL;
    if (la->key == ATR_LB_KEY_HEADER && (h = atr_http_find(m, lower)) != NULL) {
        in.header = h->value.p;
        in.header_len = h->value.n;
    } else if (la->key == ATR_LB_KEY_COOKIE && (h = atr_http_find(m, "cookie")) != NULL) {
        in.cookie = h->value.p; /* the first Cookie field */
        in.cookie_len = h->value.n;
    }
    return atr_lb_key(la, &in);
}

void atr__px_begin(atr_proxy_t *px, const atr_http_msg_t *m)
{
    atr_req_t *r = px->r;
    px->lb_key = lb_key(px, m);
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

static void on_client_gone(atr_req_t *r)
{
    atr_proxy_t *px = atr__px_of(r);
    if (px == NULL)
        return;
    if (px->phase == PX_QUEUED)
        queue_remove(px);
    if (px->ops->abort_bytes && px->bc && px->bc->connected && !px->resp_done &&
        !px->bc->s.write_pending) {
        /* Tell the application (FastCGI ABORT_REQUEST), best effort: the
         * connection closes right after and is never reused. */
        char rec[16];
        atr_sock_write_now(&px->bc->s, rec, px->ops->abort_bytes(rec));
    }
    px->phase = PX_DONE;
    atr__px_end(px);
}
