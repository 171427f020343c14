/* Client connections: accept, read, the head parser, timeouts, writing
 * responses, keep-alive and pipelining (docs/internals.md). Handlers see
 * requests, never sockets; the connection sees handlers only through the
 * ops they set on a request and the hooks modules registered. */
#include "net/conn.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/log.h"
#include "net/hooks.h"
#include "net/tls.h"
#include "tls/ctx.h"

enum { T_NONE = 0, T_IDLE, T_HEAD, T_BODY, T_SEND, T_HANDSHAKE };

static void process(atr_conn_t *c);
static void update_reading(atr_conn_t *c);

static const atr_conf_t *conf_of(atr_conn_t *c)
{
    return atr_conn_worker(c)->wgen->gen->conf;
}

/* The last reference is gone (the input buffer is back already). */
static void conn_free(atr_sock_t *s)
{
    atr_conn_t *c = (atr_conn_t *)s;
    atr_worker_t *w = atr_conn_worker(c);
    if (c->parser) {
        atr_http_parser_reset(c->parser);
        atr_cache_put(w, ATR_CACHE_REQ_PARSER, c->parser);
    }
    int counted = !c->refused;
    if (c->hs_gen)
        atr_gen_unref(c->hs_gen);
    atr_slab_free(&w->conn_slab, c);
    if (counted)
        atr_worker_conn_gone(w);
}

/* ---- timers ---- */

static void on_timer(atr_sock_t *s, int phase);

static void timer_set(atr_conn_t *c, int phase, uint64_t ms)
{
    atr_sock_deadline(&c->s, phase, ms);
}

/* ---- requests ---- */

static atr_req_t *req_new(atr_conn_t *c)
{
    atr_conn_worker(c)->requests++;
    atr_metric_add(&atr_conn_worker(c)->metrics.inflight, 1);
    atr_req_t *r = atr_cache_get(atr_conn_worker(c), ATR_CACHE_REQ);
    if (r)
        memset(r, 0, offsetof(atr_req_t, sizeline)); /* sizeline: no clearing */
    else
        r = atr_xcalloc(1, sizeof *r);
    r->c = c;
    r->wg = atr_conn_worker(c)->wgen;
    atr_wgen_ref(r->wg);
    r->msg = atr_cache_get(atr_conn_worker(c), ATR_CACHE_MSG);
    if (r->msg == NULL)
        r->msg = atr_xmalloc(sizeof *r->msg);
    r->upstream_time_us = -1;
    r->upstream_ms = -1;
    r->start_ms = uv_now(&atr_conn_worker(c)->loop); /* cached: no clock read */
    if (r->wg->gen->access_log) {
        /* Clocks are read only for a log that shows them. */
        struct timeval tv;
        gettimeofday(&tv, NULL);
        r->start_wall_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
        r->start_us = uv_hrtime() / 1000;
    }
    return r;
}

/* Let the handler free its state, if it is still attached. */
static void handler_cleanup(atr_req_t *r)
{
    const atr_handler_t *h = r->handler;
    if (h && h->cleanup)
        h->cleanup(r);
    r->handler = NULL;
    r->handler_data = NULL;
}

static void req_free(atr_req_t *r)
{
    handler_cleanup(r);
    atr_worker_t *w = atr_conn_worker(r->c);
    atr_metric_sub(&w->metrics.inflight, 1);
    atr_cache_put(w, ATR_CACHE_MSG, r->msg);
    atr_cache_head_put(w, r->out_head);
    free(r->log_method);
    free(r->norm_path);
    free(r->redirect_buf);
    atr_wgen_unref(r->wg);
    atr_cache_put(w, ATR_CACHE_REQ, r);
}

static void copy_log_strings(atr_req_t *r, const atr_http_msg_t *m);

static void keep_line(atr_req_t *r, const atr_http_msg_t *m);

void atr_req_head_done(atr_req_t *r)
{
    atr_conn_t *c = r->c;
    atr_http_msg_t *m = r->msg;
    if (m == NULL)
        return;
    if (r->redirect_buf) {
        /* An internal redirect's head is ours, not the client's bytes: the
         * access log keeps the request the client sent. */
        atr_cache_put(atr_conn_worker(c), ATR_CACHE_MSG, r->msg);
        r->msg = NULL;
        return;
    }
    r->method = m->method;
    r->version_minor = m->version_minor;
    keep_line(r, m);
    c->s.off += m->head_len;
    /* The strings outliving the head: only for an access log, or for a CGI
     * local redirect (it needs the Host). No copies on the plain path. */
    if (r->wg->gen->access_log || (r->route && r->route->kind == ATR_ROUTE_CGI))
        copy_log_strings(r, m);
    atr_cache_put(atr_conn_worker(c), ATR_CACHE_MSG, r->msg);
    r->msg = NULL;
    atr_http_parser_reset(c->parser);
}

/* The request line for error-log lines, bounded: no allocation. */
static void keep_line(atr_req_t *r, const atr_http_msg_t *m)
{
    size_t cap = sizeof r->line - 4, mn = ATR_MIN(m->method_str.n, 16), n = mn;
    memcpy(r->line, m->method_str.p, mn);
    r->line[n++] = ' ';
    size_t tn = ATR_MIN(m->target.n, cap - n);
    memcpy(r->line + n, m->target.p, tn);
    n += tn;
    if (tn < m->target.n) {
        memcpy(r->line + n, "...", 3);
        n += 3;
    }
    r->line[n] = '\0';
}

const char *atr_req_line(const atr_req_t *r)
{
    return r->line[0] ? r->line : "-";
}

static void copy_log_strings(atr_req_t *r, const atr_http_msg_t *m)
{
    const atr_http_header_t *ref = atr_http_find(m, "referer");
    const atr_http_header_t *ua = atr_http_find(m, "user-agent");
    /* One allocation for every string the access log needs later. */
    atr_str_t parts[5] = { m->method_str, m->target, ref ? ref->value : (atr_str_t){ "", 0 },
                           ua ? ua->value : (atr_str_t){ "", 0 }, m->host };
    size_t total = 0;
    for (int i = 0; i < 5; i++)
        total += parts[i].n + 1;
    char *p = atr_xmalloc(total);
    char **dst[5] = { &r->log_method, &r->log_target, &r->log_referer, &r->log_ua, &r->log_host };
    for (int i = 0; i < 5; i++) {
        *dst[i] = p;
        memcpy(p, parts[i].p ? parts[i].p : "", parts[i].n);
        p[parts[i].n] = '\0';
        p += parts[i].n + 1;
    }
}

/* A request is over (answered, or abandoned by either side): count it, then
 * let the log hooks see it. */
static void request_done(atr_req_t *r)
{
    atr_metrics_t *mt = &atr_conn_worker(r->c)->metrics;
    atr_metric_add(&mt->requests, 1);
    atr_metric_add(&mt->responses[atr_status_class(r->status)], 1);
    atr_metric_add(&mt->bytes_sent, r->bytes_sent);
    /* The loop's cached clock, as nginx's $request_time: millisecond
     * resolution, no clock read per request. */
    atr_lat_add(&mt->request_ms, uv_now(&atr_conn_worker(r->c)->loop) - r->start_ms);
    if (r->upstream_ms >= 0)
        atr_lat_add(&mt->upstream_ms, (uint64_t)r->upstream_ms);
    atr_hooks_run_log(r);
}

static void handler_body_ready(atr_req_t *r)
{
    if (r->handler && r->handler->body_ready)
        r->handler->body_ready(r);
}

static void handler_client_gone(atr_req_t *r)
{
    const atr_handler_t *h = r->handler;
    if (h && h->client_gone)
        h->client_gone(r);
}

/* ---- writing ---- */

static void on_written(atr_sock_t *s, int status)
{
    atr_conn_t *c = (atr_conn_t *)s;
    atr_req_t *r = c->req;
    if (c->s.timer_kind == T_SEND) {
        /* A request body still coming (a backend answering early) is timed
         * again: with nothing to write and no backend timer, nothing else is. */
        if (r && r->body_wanted && c->s.reading)
            timer_set(c, T_BODY, conf_of(c)->body_timeout);
        else
            timer_set(c, T_NONE, 0);
    }
    if (r) {
        atr_cache_head_put(atr_conn_worker(c), r->out_head);
        r->out_head = NULL;
        void (*cb)(atr_req_t *, int) = r->write_cb;
        r->write_cb = NULL;
        if (cb)
            cb(r, status);
        else if (status < 0)
            atr_conn_close(c);
    }
}

/* Try the write directly; queue the rest. 0 = all written, 1 = pending, <0 error. */
static int write_bufs(atr_conn_t *c, uv_buf_t *bufs, unsigned n)
{
    int rc = atr_sock_write(&c->s, bufs, n);
    if (rc == 1)
        timer_set(c, T_SEND, conf_of(c)->send_timeout);
    return rc;
}

int atr_req_send(atr_req_t *r, char *head, size_t headlen, const atr_str_t *v, int n, int last,
                 void (*cb)(atr_req_t *r, int status))
{
    atr_conn_t *c = r->c;
    uv_buf_t bufs[2 + 3 * ATR_MAX_OUT_BUFS];
    unsigned nb = 0;
    if (c->s.closing) {
        atr_cache_head_put(atr_conn_worker(c), head);
        return UV_ECANCELED;
    }
    if (head) {
        r->out_head = head;
        r->resp_head_sent = 1;
        bufs[nb++] = uv_buf_init(head, (unsigned)headlen);
    }
    for (int i = 0; i < n && i < ATR_MAX_OUT_BUFS && !r->resp_no_body; i++) {
        if (v[i].n == 0)
            continue;
        if (r->resp_chunked) {
            size_t sl = atr_chunked_size_line(r->sizeline[i], v[i].n);
            bufs[nb++] = uv_buf_init(r->sizeline[i], (unsigned)sl);
        }
        bufs[nb++] = uv_buf_init((char *)v[i].p, (unsigned)v[i].n);
        if (r->resp_chunked)
            bufs[nb++] = uv_buf_init("\r\n", 2);
        r->bytes_sent += v[i].n;
    }
    if (last && r->resp_chunked && !r->resp_no_body)
        bufs[nb++] = uv_buf_init("0\r\n\r\n", 5);
    int rc = write_bufs(c, bufs, nb);
    if (rc == 1) {
        r->write_cb = cb;
        return 1;
    }
    /* A tunnel is idle only when neither side sends: bytes the server pushes
     * count as activity (a WebSocket whose client only listens was cut after
     * body_timeout). */
    if (rc == 0 && r->upgraded && c->s.timer_kind == T_BODY)
        timer_set(c, T_BODY, conf_of(c)->body_timeout);
    atr_cache_head_put(atr_conn_worker(c), r->out_head);
    r->out_head = NULL;
    return rc;
}

/* ---- simple responses ---- */

static const char *reason_of(int s)
{
    return atr_http_reason(s);
}

const char *atr_req_connection_header(const atr_req_t *r)
{
    if (r->resp_close)
        return "Connection: close\r\n";
    return r->version_minor == 0 ? "Connection: keep-alive\r\n" : "";
}

static void finish_after_write(atr_req_t *r, int status)
{
    if (status < 0)
        atr_req_abort(r);
    else
        atr_req_finish(r);
}

void atr_req_send_whole(atr_req_t *r, char *head, size_t len)
{
    int rc = atr_req_send(r, head, len, NULL, 0, 1, finish_after_write);
    if (rc != 1) /* written (0) or failed (<0) already: no callback comes */
        finish_after_write(r, rc);
}

void atr_req_respond(atr_req_t *r, int status, const char *content_type, const char *body,
                     size_t blen, int close_conn)
{
    if (close_conn)
        r->resp_close = 1;
    r->status = status;
    r->resp_chunked = 0;
    if (r->method == ATR_M_HEAD)
        r->resp_no_body = 1;
    char fields[256];
    atr_buf_t b;
    if (status == 204 || status == 304) { /* no body, no framing fields (RFC 9110 §8.6) */
        r->resp_no_body = 1;
        atr_req_local_head(r, status, NULL, -1, &b);
    } else {
        snprintf(fields, sizeof fields, "Content-Type: %s\r\n", content_type);
        atr_req_local_head(r, status, fields, (int64_t)blen, &b);
    }
    if (!r->resp_no_body) {
        atr_buf_put(&b, body, blen);
        r->bytes_sent = blen;
    }
    atr_req_send_whole(r, b.p, b.n);
}

void atr_req_respond_simple(atr_req_t *r, int status, const char *body, int close_conn)
{
    char tmp[256];
    if (body == NULL) {
        snprintf(tmp, sizeof tmp, "%d %s\n", status, reason_of(status));
        body = tmp;
    }
    atr_req_respond(r, status, "text/plain", body, strlen(body), close_conn);
}

/* ---- finishing ---- */

static void go_idle(atr_conn_t *c)
{
    if (c->s.off == c->s.len) {
        atr_cache_buf_put(atr_conn_worker(c), c->s.buf, c->s.cap);
        c->s.buf = NULL;
        c->s.len = c->s.off = c->s.cap = 0;
        if (c->parser) {
            atr_http_parser_reset(c->parser);
            atr_cache_put(atr_conn_worker(c), ATR_CACHE_REQ_PARSER, c->parser);
            c->parser = NULL;
        }
        timer_set(c, T_IDLE, conf_of(c)->keepalive_timeout);
    }
}

void atr_req_finish(atr_req_t *r)
{
    atr_conn_t *c = r->c;
    /* A client that half-closed after pipelining still gets an answer to every
     * request it sent whole: go on while bytes are buffered (process closes at
     * an incomplete head). */
    int keep = !r->resp_close && (!c->s.eof || c->s.off < c->s.len) && !c->s.closing &&
               !atr_conn_worker(c)->stopping && r->body.done && r->version_minor >= 0 &&
               c->nreqs < (uint32_t)conf_of(c)->keepalive_requests;
    if (r->msg != NULL)
        keep = 0; /* the head was never consumed (error before dispatch) */
    r->phase = ATR_RP_DONE;
    request_done(r);
    c->req = NULL;
    req_free(r);
    if (!keep) {
        atr_conn_close(c);
        return;
    }
    go_idle(c);
    process(c);
}

void atr_req_abort(atr_req_t *r)
{
    atr_conn_t *c = r->c;
    r->resp_close = 1;
    if (r->status == 0)
        r->status = 499;
    atr_conn_close(c);
}

/* ---- request body, pulled by the handler ---- */

static void send_continue(atr_conn_t *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    /* Tiny and first on an idle socket: a short try_write always takes it. */
    atr_sock_write_now(&c->s, cont, sizeof cont - 1);
}

int atr_req_body_read(atr_req_t *r, atr_str_t *v, int max, int *n)
{
    atr_conn_t *c = r->c;
    *n = 0;
    if (r->body.done)
        return ATR_DONE;
    if (!r->body_started) {
        r->body_started = 1;
        if (r->expect_continue && c->s.off == c->s.len)
            send_continue(c);
    }
    size_t used = 0, avail = ATR_MIN(c->s.len - c->s.off, ATR_BODY_READ_MAX);
    int rc = atr_body_decode(&r->body, c->s.buf + c->s.off, avail, &used, v, max, n);
    if (rc == ATR_ERROR) {
        r->body_error = 400;
        return ATR_ERROR;
    }
    uint64_t limit = conf_of(c)->max_body_size;
    if (limit && r->body.total > limit) {
        r->body_error = 413;
        return ATR_ERROR;
    }
    r->body_pending = used;
    if (*n == 0) {
        /* Only framing (a chunk-size line, a CRLF): the decoder has moved past
         * it, so it is consumed now; no caller gets a view to hand back. */
        atr_req_body_consumed(r);
    }
    if (rc == ATR_DONE) {
        r->body_wanted = 0;
        if (c->s.timer_kind == T_BODY)
            timer_set(c, T_NONE, 0);
        return ATR_DONE;
    }
    if (*n == 0 && c->s.eof) {
        r->body_error = 400;
        return ATR_ERROR;
    }
    r->body_wanted = (*n == 0);
    update_reading(c);
    return ATR_AGAIN;
}

void atr_req_body_consumed(atr_req_t *r)
{
    atr_conn_t *c = r->c;
    c->s.off += (uint32_t)r->body_pending;
    r->body_pending = 0;
    if (c->s.off == c->s.len)
        c->s.off = c->s.len = 0;
}

int atr_req_tunnel_read(atr_req_t *r, atr_str_t *v)
{
    atr_conn_t *c = r->c;
    v->p = c->s.buf + c->s.off;
    v->n = c->s.len - c->s.off;
    r->body_pending = v->n;
    if (v->n == 0) {
        r->body_wanted = 1;
        update_reading(c);
        return c->s.eof ? ATR_DONE : ATR_AGAIN;
    }
    return ATR_AGAIN;
}

/* ---- reading ---- */

/* Consumed bytes may move only while no body view into them is out. */
static int may_compact(atr_sock_t *s)
{
    atr_conn_t *c = (atr_conn_t *)s;
    return c->req == NULL || c->req->body_pending == 0;
}

/* A head may be larger than one buffer, up to max_header_size. */
static uint32_t grow_limit(atr_sock_t *s)
{
    atr_conn_t *c = (atr_conn_t *)s;
    if (c->req != NULL && c->req->phase != ATR_RP_HEAD)
        return 0;
    return conf_of(c)->max_header_size + conf_of(c)->buffer_size;
}

static void on_read(atr_sock_t *s, ssize_t nread)
{
    atr_conn_t *c = (atr_conn_t *)s;
    if (nread == UV_ENOBUFS)
        return; /* the buffer is full: update_reading resumes */
    if (nread < 0) {
        atr_req_t *r = c->req;
        if (r == NULL || (r->phase == ATR_RP_HEAD && r->msg)) {
            atr_conn_close(c);
        } else if (r->body_wanted || r->upgraded) {
            r->body_wanted = 0;
            handler_body_ready(r);
        }
        return;
    }
    c->s.len += (uint32_t)nread;
    if (c->s.timer_kind == T_IDLE)
        timer_set(c, T_HEAD, conf_of(c)->header_timeout);
    else if (c->s.timer_kind == T_BODY)
        timer_set(c, T_BODY, conf_of(c)->body_timeout);
    process(c);
}

/* A TLS handshake is done: the head's time starts. */
static void on_handshake(atr_sock_t *s, int status)
{
    atr_conn_t *c = (atr_conn_t *)s;
    (void)status;
    if (c->hs_gen) {
        atr_gen_unref(c->hs_gen);
        c->hs_gen = NULL;
    }
    if (c->s.timer_kind == T_HANDSHAKE)
        timer_set(c, T_HEAD, conf_of(c)->header_timeout);
}

static const atr_sock_cbs_t conn_cbs = {
    .on_read = on_read,
    .on_connect = on_handshake,
    .on_written = on_written,
    .may_compact = may_compact,
    .grow_limit = grow_limit,
    .on_timer = on_timer,
    .on_free = conn_free,
};

static int want_read(atr_conn_t *c)
{
    if (c->s.closing || c->s.eof)
        return 0;
    if (c->s.buf == NULL || c->req == NULL || c->req->phase == ATR_RP_HEAD)
        return 1;
    /* While a request is handled keep reading as long as the buffer has
     * room (no epoll churn per request, and a client's close is seen); a
     * full buffer lets the kernel hold the rest: the backpressure on the
     * client. Room exists if compaction can make some (on_alloc). */
    int full = c->s.len == c->s.cap && (c->s.off == 0 || c->req->body_pending > 0);
    return !full;
}

static void update_reading(atr_conn_t *c)
{
    int want = want_read(c);
    if (want)
        atr_sock_read_start(&c->s);
    else
        atr_sock_read_stop(&c->s);
    /* Not reading because the buffer is full of body the backend has not taken:
     * the wait is the backend's (its send_timeout), not the client's. */
    if (!want && c->s.timer_kind == T_BODY)
        timer_set(c, T_NONE, 0);
    if (want && c->req && c->req->body_wanted && c->s.timer_kind != T_SEND)
        timer_set(c, T_BODY, conf_of(c)->body_timeout);
}

static void head_error(atr_req_t *r, int status, const char *why)
{
    ATR_INFO("%s c%llu: %s: %d %s", atr_conn_worker(r->c)->name, (unsigned long long)r->c->id,
             r->c->peer, status, why);
    r->body.done = 1;
    r->resp_close = 1;
    /* Out of the head phase: bytes arriving while the answer is written are
     * not parsed again (a second error, a second answer). */
    r->phase = ATR_RP_RESPONDING;
    atr_req_respond_simple(r, status, NULL, 1);
}

/* Parse and dispatch every complete head waiting in the buffer. */
static void process(atr_conn_t *c)
{
    if (c->in_process) {
        c->process_again = 1;
        return;
    }
    c->in_process = 1;
    do {
        c->process_again = 0;
        if (c->s.closing)
            break;
        atr_req_t *r = c->req;
        if (r && r->phase != ATR_RP_HEAD) {
            if (r->body_wanted || r->upgraded) {
                r->body_wanted = 0;
                handler_body_ready(r);
            }
            break;
        }
        if (c->s.off == c->s.len)
            break;
        if (r == NULL) {
            if (atr_conn_worker(c)->wgen == NULL)
                break;
            r = c->req = req_new(c);
            if (c->parser == NULL)
                c->parser = atr_cache_get(atr_conn_worker(c), ATR_CACHE_REQ_PARSER);
            if (c->parser == NULL)
                c->parser = atr_http_parser_new(0, &r->wg->gen->req_limits);
            else /* kept from before: the limits in force now, not its first generation's */
                atr_http_parser_set_limits(c->parser, &r->wg->gen->req_limits);
            if (c->s.timer_kind != T_HEAD)
                timer_set(c, T_HEAD, conf_of(c)->header_timeout);
        }
        int status = 0;
        const char *why = NULL;
        int rc = atr_http_parse(c->parser, c->s.buf + c->s.off, c->s.len - c->s.off, r->msg,
                                &status, &why);
        if (rc == ATR_AGAIN) {
            if (c->s.eof) /* the rest of this head will never come */
                atr_conn_close(c);
            break;
        }
        timer_set(c, T_NONE, 0);
        c->nreqs++;
        if (rc == ATR_ERROR) {
            head_error(r, status, why ? why : "bad request");
            continue;
        }
        r->phase = ATR_RP_HANDLING;
        r->version_minor = r->msg->version_minor;
        /* Decide now whether this is the connection's last response, so
         * every handler's head can say Connection: close. */
        if (!r->msg->keep_alive || atr_conn_worker(c)->stopping ||
            c->nreqs >= (uint32_t)conf_of(c)->keepalive_requests)
            r->resp_close = 1;
        r->expect_continue = r->msg->expect_continue;
        atr_body_init(&r->body, r->msg->body, r->msg->content_length);
        atr_req_dispatch(r);
    } while (c->process_again && !c->s.closing);
    c->in_process = 0;
    update_reading(c);
}

/* ---- dispatch ---- */

void atr_req_dispatch(atr_req_t *r)
{
    if (atr_hooks_run_request(r) == ATR_HOOK_DONE)
        return;
    ATR_CRIT("%s c%llu: no handler took the request", atr_conn_worker(r->c)->name,
             (unsigned long long)r->c->id);
    atr_req_head_done(r);
    atr_req_respond_simple(r, 500, NULL, 1);
}

void atr_req_redirect_local(atr_req_t *r, const char *location)
{
    const atr_gen_t *g = r->wg->gen;
    if (++r->redirects > 10) {
        ATR_WARN(ATR_REQ_FMT ": too many local redirects (last %s)", ATR_REQ_ARGS(r), location);
        atr_req_respond_simple(r, 500, NULL, !r->body.done);
        return;
    }
    const char *host = r->log_host && r->log_host[0] ? r->log_host : "localhost";
    size_t n = strlen(location) + strlen(host) + 32;
    char *head = atr_xmalloc(n);
    int len = snprintf(head, n, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", location, host);
    atr_http_parser_t *p = atr_http_parser_new(0, &g->req_limits);
    atr_http_msg_t *m = atr_xmalloc(sizeof *m);
    int status = 0;
    const char *why = NULL;
    int rc = atr_http_parse(p, head, (size_t)len, m, &status, &why);
    atr_http_parser_free(p);
    if (rc != ATR_DONE) {
        ATR_WARN(ATR_REQ_FMT ": bad local redirect target %s", ATR_REQ_ARGS(r), location);
        free(head);
        free(m);
        atr_req_respond_simple(r, 502, NULL, !r->body.done);
        return;
    }
    /* Forget the first handler; keep the client's request for the log. */
    handler_cleanup(r);
    free(r->norm_path);
    r->norm_path = NULL;
    free(r->redirect_buf);
    r->redirect_buf = head;
    r->route = NULL;
    r->upstream = NULL;
    r->handler = NULL;
    r->handler_data = NULL;
    r->status = r->upstream_status = r->refuse_status = 0;
    r->upstream_addr[0] = '\0';
    r->resp_chunked = r->resp_no_body = 0;
    r->expect_continue = 0;
    r->msg = m;
    atr_req_dispatch(r);
}

/* ---- timers ---- */

static void on_timer(atr_sock_t *s, int phase)
{
    atr_conn_t *c = (atr_conn_t *)s;
    atr_req_t *r = c->req;
    switch (phase) {
    case T_HEAD:
        if (r && r->phase == ATR_RP_HEAD && c->s.len > c->s.off) {
            r->body.done = 1;
            r->phase = ATR_RP_RESPONDING; /* the rest of the head is not parsed */
            atr_req_respond_simple(r, 408, NULL, 1);
            return;
        }
        atr_conn_close(c);
        return;
    case T_BODY:
        if (r && !r->resp_head_sent) {
            ATR_INFO(ATR_REQ_FMT ": request body timeout", ATR_REQ_ARGS(r));
            handler_client_gone(r);
            r->body.done = 1;
            atr_req_respond_simple(r, 408, NULL, 1);
            return;
        }
        atr_conn_close(c);
        return;
    default:
        atr_conn_close(c);
        return;
    }
}

/* ---- connection lifecycle ---- */

/* Dotted quad without inet_ntop's sprintf: this runs for every gateway request. */
static void ip4_text(const uint8_t a[4], char *out)
{
    for (int i = 0; i < 4; i++) {
        unsigned v = a[i];
        if (v >= 100)
            *out++ = (char)('0' + v / 100);
        if (v >= 10)
            *out++ = (char)('0' + v / 10 % 10);
        *out++ = (char)('0' + v % 10);
        *out++ = i < 3 ? '.' : '\0';
    }
}

int atr_conn_addrs(atr_conn_t *c, char *local, size_t cap, int *local_port, int *peer_port)
{
    if (c->local_family == AF_INET && cap >= 16)
        ip4_text(c->local_addr, local);
    else
        inet_ntop(c->local_family, c->local_addr, local, (socklen_t)cap);
    *local_port = c->local_port;
    *peer_port = c->peer_port;
    return 0;
}

/* Addresses once per connection, not per request. */
/* The peer comes from accept4, the local address from the listener unless it
 * is bound to a wildcard: no syscall for either in the usual case. */
static void record_addrs(atr_conn_t *c, const atr_listener_t *l, const struct sockaddr *peer)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    c->peer[0] = '\0';
    if (peer->sa_family == AF_INET) {
        ip4_text((const uint8_t *)&((const struct sockaddr_in *)peer)->sin_addr, c->peer);
        c->peer_port = ntohs(((const struct sockaddr_in *)peer)->sin_port);
    } else if (peer->sa_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)peer, c->peer, sizeof c->peer);
        c->peer_port = ntohs(((const struct sockaddr_in6 *)peer)->sin6_port);
    }
    c->peer_len = (uint8_t)strlen(c->peer);
    c->peer_v6 = strchr(c->peer, ':') != NULL;
    if (l->local.ss_family != 0)
        ss = l->local;
    else if (uv_tcp_getsockname(&c->s.io.tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    c->local_family = (uint8_t)ss.ss_family;
    if (ss.ss_family == AF_INET) {
        memcpy(c->local_addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        c->local_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    } else {
        memcpy(c->local_addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        c->local_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
}

void atr_conn_accept(atr_listener_t *l, int fd, const struct sockaddr *peer)
{
    atr_worker_t *w = l->w;
    static uint64_t next_id; /* per process; ids only need to be distinct in logs */
    atr_conn_t *c = atr_slab_alloc(&w->conn_slab);
    atr_gen_t *g = w->wgen ? w->wgen->gen : NULL;
    int tls = g && g->tls && atr_gen_listener_tls(g, l->key);
    c->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
    atr_sock_init(&c->s, w, tls ? &atr_transport_tls : &atr_transport_tcp, &conn_cbs);
    int opened = g != NULL && atr_sock_open(&c->s, fd) == 0;
    if (!opened || (tls && atr_tls_accept(&c->s, atr_tls_server_ctx(g->tls)) < 0)) {
        if (!opened)
            close(fd);
        c->refused = 1; /* never counted: freed without telling the worker */
        atr_sock_close(&c->s);
        return;
    }
    record_addrs(c, l, peer);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    atr_metric_add(&w->metrics.accepted, 1);
    atr_metric_add(&w->metrics.connections, 1);
    if (tls) {
        c->hs_gen = g;
        atr_gen_ref(g);
        timer_set(c, T_HANDSHAKE, g->conf->tls_handshake_timeout);
    } else {
        timer_set(c, T_HEAD, conf_of(c)->header_timeout);
    }
    update_reading(c);
}

void atr_conn_close(atr_conn_t *c)
{
    if (c->s.closing)
        return;
    c->s.closing = 1;
    atr_worker_t *w = atr_conn_worker(c);
    atr_req_t *r = c->req;
    if (r) {
        handler_client_gone(r);
        if (r->phase != ATR_RP_HEAD || r->status)
            request_done(r);
        c->req = NULL;
        req_free(r);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    atr_metric_sub(&w->metrics.connections, 1);
    atr_sock_close(&c->s);
}

void atr_conn_close_idle(atr_worker_t *w)
{
    atr_conn_t *c = w->conns;
    while (c) {
        atr_conn_t *next = c->next;
        if (c->req == NULL)
            atr_conn_close(c);
        c = next;
    }
}
