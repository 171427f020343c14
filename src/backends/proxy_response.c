/* The response side of the proxy core: the backend's bytes are decoded (by
 * the protocol, when it frames them), the head parsed by the shared parser
 * and sent on, the body streamed back with one client write in flight, and
 * the connection pooled only after a clean end. Also 101 tunnels. */
#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "backends/proxy_priv.h"

/* New raw bytes at bc->s.buf + bc->s.len: run the protocol's decoder over them
 * in place. 0 when the exchange failed (answered already). */
int atr__px_decode(atr_proxy_t *px, size_t nread)
{
    atr_bconn_t *bc = px->bc;
    if (px->ops->decode == NULL) {
        bc->s.len += (uint32_t)nread;
        return 1;
    }
    if (px->dec_done) {
        atr__px_fail(px, 502, "bytes after the end of the response");
        return 0;
    }
    size_t produced = 0;
    char *at = bc->s.buf + bc->s.len;
    int rc = px->ops->decode(px->dec, at, at, nread, &produced);
    bc->s.len += (uint32_t)produced;
    if (rc == ATR_ERROR) {
        atr__px_fail(px, 502, "malformed records from the backend");
        return 0;
    }
    if (rc == ATR_DONE)
        px->dec_done = 1;
    return 1;
}

/* The response stream is over: the backend closed, or the protocol said so. */
int atr__px_ended(const atr_proxy_t *px)
{
    return px->bc->s.eof || px->dec_done;
}

/* ---- response ---- */

static void px_complete(atr_proxy_t *px);

/* A connection goes back to the pool only after a cleanly framed, fully
 * consumed exchange that both the protocol and the backend allow to go on. */
static int px_reusable(atr_proxy_t *px)
{
    atr_bconn_t *bc = px->bc;
    if (!px->ops->reuse || bc->s.off != bc->s.len || bc->s.eof)
        return 0;
    if (px->ops->decode) {
        int status = 0;
        return px->dec_done && px->ops->dec_end(px->dec, &status);
    }
    return px->rbody.mode != ATR_BM_CLOSE && px->rmsg->keep_alive;
}

static void on_client_written(atr_req_t *r, int status)
{
    atr_proxy_t *px = atr__px_of(r);
    if (px == NULL)
        return;
    px->resp_writing = 0;
    if (status < 0) {
        atr__px_end(px);
        atr_req_abort(r);
        return;
    }
    if (px->bc && px->bc->s.off == px->bc->s.len)
        px->bc->s.off = px->bc->s.len = 0; /* every view is written: the buffer is free */
    if (px->resp_done) {
        px_complete(px);
        return;
    }
    atr__px_pump_response(px);
}

static int forget_unsent_response(atr_proxy_t *px);

/* Decode what the backend buffer holds and send it to the client. */
void atr__px_pump_response(atr_proxy_t *px)
{
    atr_bconn_t *bc = px->bc;
    atr_req_t *r = px->r;
    while (!px->resp_writing && !px->resp_done) {
        atr_str_t v[ATR_MAX_OUT_BUFS];
        int n = 0;
        size_t used = 0;
        int rc = atr_body_decode(&px->rbody, bc->s.buf + bc->s.off, bc->s.len - bc->s.off, &used, v,
                                 ATR_MAX_OUT_BUFS, &n);
        if (rc == ATR_ERROR) {
            atr__px_fail(px, 502, "bad response body framing");
            return;
        }
        bc->s.off += (uint32_t)used;
        /* With a framing protocol (FastCGI) the exchange ends with its end
         * record, which may come after a Content-Length body is complete. */
        int stream_done = !px->ops->decode || px->dec_done;
        int last = (rc == ATR_DONE && stream_done) ||
                   (px->rbody.mode == ATR_BM_CLOSE && atr__px_ended(px) && !bc->s.reset);
        if (!last && atr__px_ended(px) && bc->s.off == bc->s.len) {
            /* The backend closed (or reset) before the body ended: the client
             * must see a truncated transfer, never a complete one; unless it
             * has seen nothing yet, and the request may go elsewhere. */
            if (px->client_head && forget_unsent_response(px)) {
                atr__px_server_failed(px, 502, bc->s.reset ? "backend reset mid-body"
                                                            : "backend closed mid-body", 0);
                return;
            }
            atr__px_fail(px, 502,
                         bc->s.reset ? "backend reset mid-body" : "backend closed mid-body");
            return;
        }
        if (rc == ATR_DONE && !stream_done && px->ops->decode && bc->s.off < bc->s.len) {
            if (px->rbody.mode == ATR_BM_NONE) {
                /* A body to HEAD, or with 204/304: the gateway discards it
                 * (RFC 3875 §4.3.2); the records keep the stream in step. */
                bc->s.off = bc->s.len;
            } else {
                atr__px_fail(px, 502, "response data after the end of the body");
                return;
            }
        }
        if (n == 0 && !last && px->client_head == NULL) {
            if (bc->s.off == bc->s.len)
                bc->s.off = bc->s.len = 0;
            atr_sock_read_start(&bc->s);
            atr__arm_read_timer(px);
            return;
        }
        if (last) {
            px->resp_done = 1;
            px->reusable = px_reusable(px);
        }
        /* The response head goes out with the first body bytes: one write. */
        char *head = px->client_head;
        px->client_head = NULL;
        int wrc = atr_req_send(r, head, px->client_head_len, v, n, last, on_client_written);
        if (wrc < 0) {
            atr__px_end(px);
            atr_req_abort(r);
            return;
        }
        if (wrc == 1) {
            px->resp_writing = 1;
            atr_sock_read_stop(&bc->s);
            atr_sock_deadline(&bc->s, BT_NONE, 0);
            return;
        }
        if (bc->s.off == bc->s.len)
            bc->s.off = bc->s.len = 0;
    }
    if (px->resp_done && !px->resp_writing)
        px_complete(px);
}

static void px_complete(atr_proxy_t *px)
{
    atr_req_t *r = px->r;
    atr_bconn_t *bc = px->bc;
    if (px->t_start)
        r->upstream_time_us = (int64_t)((uv_hrtime() - px->t_start) / 1000);
    if (r && px->t_sent_ms)
        r->upstream_ms = (int64_t)(uv_now(&px->wg->w->loop) - px->t_sent_ms);
    px->phase = PX_DONE;
    if (bc) {
        bc->px = NULL;
        px->bc = NULL;
        atr_sock_deadline(&bc->s, BT_NONE, 0);
        if (px->reusable && px->req_body_done && !bc->s.write_pending)
            atr__bc_park(bc);
        else
            atr__bc_close(bc);
    }
    if (!px->req_body_done)
        r->resp_close = 1;
    atr__px_end(px);
    atr_req_finish(r);
}

static void start_tunnel(atr_proxy_t *px);

/* The response head is parsed: send it to the client and start the body. */
static void px_response_head(atr_proxy_t *px)
{
    atr_req_t *r = px->r;
    atr_http_msg_t *m = px->rmsg;
    atr_bconn_t *bc = px->bc;
    if (px->t_start) /* the time to the head is what balance ewma learns from */
        atr_lb_observe(px->view->lb, px->server, uv_now(&px->wg->w->loop),
                       (uv_hrtime() - px->t_start) / 1000);
    r->upstream_status = m->status;
    r->status = m->status;
    atr__server_count_response(px, m->status);
    bc->s.off += m->head_len;
    px->resp_head_done = 1;
    int with_length = 0;
    uint64_t length = 0;
    atr_body_init(&px->rbody, m->body, m->content_length);
    int head_req = r->method == ATR_M_HEAD;
    if (m->status == 101) {
        start_tunnel(px);
        return;
    }
    if (px->ops->local_redirect && m->cgi_form && m->location.n > 0 &&
        m->location.p[0] == '/' && m->nheaders == 1) {
        /* RFC 3875 §6.2.2 local redirect: the script named another local
         * resource and said nothing else; serve that instead, as a GET,
         * without telling the client. With any other header (a Set-Cookie,
         * a Status) the client gets the redirect and every header. */
        char *loc = atr_xstrndup(m->location.p, m->location.n);
        atr__px_end(px);
        atr_req_redirect_local(r, loc);
        free(loc);
        return;
    }
    if (m->body == ATR_BODY_LENGTH) {
        with_length = 1;
        length = m->content_length;
    } else if (m->body == ATR_BODY_NONE) {
        /* 204/304/HEAD: a HEAD answer keeps the framing field the backend
         * gave, as a GET would get it (RFC 9110 §9.3.2); no body follows */
        if (head_req && m->status != 204 && m->status != 304) {
            const atr_http_header_t *cl = atr_http_find(m, "content-length");
            if (cl) {
                with_length = 1;
                length = strtoull(cl->value.p, NULL, 10);
            } else if ((m->hkinds & ATR_HK_BIT(ATR_HK_TRANSFER_ENCODING)) &&
                       r->version_minor >= 1) {
                r->resp_chunked = 1;
            }
        }
    } else if (r->version_minor >= 1) {
        r->resp_chunked = 1;
    } else {
        r->resp_close = 1; /* HTTP/1.0 client: delimit by close */
    }
    if (!px->req_body_done && !r->body.done)
        r->resp_close = 1; /* early response: the rest of the request body is unread */
    if (r->wg->w->stopping)
        r->resp_close = 1;
    r->resp_no_body = head_req || m->body == ATR_BODY_NONE;
    px->client_head = atr_http_client_head(r, m, with_length, length, &px->client_head_len);
    px->phase = PX_STREAMING;
    atr__px_pump_response(px);
}

/* May the request go again? Idempotent, no body byte sent, and after a
 * failed write only without a body (its body is given up then, see
 * px_write_failed; the head is consumed by now: r->body says whether there
 * was a body). */
static int px_may_resend(const atr_proxy_t *px)
{
    return px->idempotent && !px->req_bytes_sent &&
           !(px->write_failed && px->r && px->r->body.mode != ATR_BM_NONE);
}

/* The connection ended before any byte of the response. A pooled one may
 * just have been closed by the server (its FIN not read yet), or the server
 * died: its other idle connections go too, and the request goes once more
 * to the same server on a new connection, keeping its slot (released, the
 * slot would go to a queued request) and not counted as a try. A new
 * connection that closes unanswered is the server failing the request: it
 * is marked down and the request moves to the next server, within
 * `retries`, as when a connect is refused. */
/* The backend ended after (part of) a response head, but nothing of the
 * response has gone to the client (its head waits for the first body
 * bytes): forget what came, so the request can go again as if unanswered.
 * 0 when the client has seen something, or the request may not go again. */
static int forget_unsent_response(atr_proxy_t *px)
{
    atr_req_t *r = px->r;
    if (r == NULL || r->resp_head_sent || px->phase == PX_TUNNEL || !px_may_resend(px))
        return 0;
    atr_cache_head_put(px->wg->w, px->client_head);
    px->client_head = NULL;
    px->resp_head_done = 0;
    px->resp_done = 0;
    px->dec_done = 0;
    if (px->ops->dec_init)
        px->ops->dec_init(px->dec, r);
    r->resp_chunked = 0;
    r->resp_no_body = 0;
    r->status = 0;
    return 1;
}

static void died_unanswered(atr_proxy_t *px)
{
    atr_bconn_t *bc = px->bc;
    const char *why = bc->s.reset ? "backend reset without a response"
                                  : "backend closed without a response";
    if (!px_may_resend(px)) {
        atr__px_fail(px, 502, why);
        return;
    }
    if (bc->nreqs > 1 && !px->stale_retried) {
        px->stale_retried = 1;
        bc->px = NULL;
        atr__bc_close(bc);
        px->bc = NULL;
        atr__pool_close_idle(px->view, px->server);
        atr__px_use_server(px);
        return;
    }
    atr__px_server_failed(px, 502, why, 0);
}

void atr__px_on_backend_data(atr_proxy_t *px, ssize_t nread)
{
    atr_bconn_t *bc = px->bc;
    if (px->phase == PX_TUNNEL) {
        atr__px_pump_response(px);
        return;
    }
    if (px->resp_head_done) {
        if (!px->resp_writing)
            atr__px_pump_response(px);
        return;
    }
    if (nread < 0 && bc->s.len == 0) {
        died_unanswered(px);
        return;
    }
    if (px->dec_done && bc->s.len == bc->s.off) {
        int st = 502;
        px->ops->dec_end(px->dec, &st);
        atr__px_fail(px, st, st == 503 ? "backend overloaded" : "backend ended without a response");
        return;
    }
    int status = 0;
    const char *why = NULL;
    for (;;) {
        int rc = atr_http_parse(px->rparser, bc->s.buf + bc->s.off, bc->s.len - bc->s.off, px->rmsg,
                                &status, &why);
        if (rc == ATR_AGAIN) {
            if (atr__px_ended(px)) {
                if (forget_unsent_response(px))
                    atr__px_server_failed(px, 502, "backend closed mid-head", 0);
                else
                    atr__px_fail(px, 502, "backend closed mid-head");
                return;
            }
            atr__arm_read_timer(px);
            return;
        }
        if (rc == ATR_ERROR) {
            atr__px_fail(px, 502, why ? why : "invalid response head");
            return;
        }
        if (px->rmsg->cgi_form && !px->ops->cgi_response) {
            /* A header block without a status line is CGI output; from an HTTP
             * server it is not a response at all. */
            atr__px_fail(px, 502, "response without a status line");
            return;
        }
        if (!px->rmsg->cgi_form && px->ops->cgi_response &&
            atr_http_find(px->rmsg, "status") != NULL) {
            /* A script's status line and a Status field: two answers to one
             * question, never forwarded. */
            atr__px_fail(px, 502, "status line and Status field");
            return;
        }
        int st = px->rmsg->status;
        if (st >= 100 && st < 200 && st != 101) {
            /* Interim responses (100 Continue, 103): ours to absorb. */
            bc->s.off += px->rmsg->head_len;
            atr_http_parser_reset(px->rparser);
            continue;
        }
        break;
    }
    atr_sock_deadline(&bc->s, BT_NONE, 0);
    px_response_head(px);
}

/* ---- upgrade tunnel (WebSocket and friends) ---- */

static void start_tunnel(atr_proxy_t *px)
{
    atr_req_t *r = px->r;
    if (!r->upgrade_requested) {
        atr__px_fail(px, 502, "101 without an upgrade request");
        return;
    }
    size_t hl = 0;
    r->resp_chunked = 0;
    r->resp_close = 1;
    r->upgraded = 1;
    r->body.done = 1;
    px->rbody.mode = ATR_BM_CLOSE;
    px->rbody.done = 0;
    px->req_body_done = 1;
    char *head = atr_http_client_head(r, px->rmsg, 0, 0, &hl);
    px->phase = PX_TUNNEL;
    atr_sock_deadline(&px->bc->s, BT_NONE, 0);
    int rc = atr_req_send(r, head, hl, NULL, 0, 0, on_client_written);
    if (rc < 0) {
        atr__px_end(px);
        atr_req_abort(r);
        return;
    }
    if (rc == 1)
        px->resp_writing = 1;
    else
        atr__px_pump_response(px);
    atr__tunnel_pump_up(px);
}

/* A queued tunnel write to the backend finished. */
void atr__tunnel_written(atr_proxy_t *px, int status)
{
    if (status < 0) {
        atr__px_fail(px, 502, "tunnel write failed");
        return;
    }
    atr_req_body_consumed(px->r);
    atr__tunnel_pump_up(px);
}

/* Client -> backend bytes in a tunnel, unchanged. */
void atr__tunnel_pump_up(atr_proxy_t *px)
{
    while (px->r && !px->req_writing && px->phase == PX_TUNNEL) {
        atr_str_t v;
        int rc = atr_req_tunnel_read(px->r, &v);
        if (rc == ATR_DONE) {
            /* client closed: end the tunnel */
            atr_req_t *r = px->r;
            atr__px_end(px);
            atr_req_abort(r);
            return;
        }
        if (v.n == 0)
            return;
        uv_buf_t b = uv_buf_init((char *)v.p, (unsigned)v.n);
        int wrc = atr_sock_write(&px->bc->s, &b, 1);
        if (wrc < 0) {
            atr__px_fail(px, 502, "tunnel write failed");
            return;
        }
        if (wrc == 1) {
            px->req_writing = 1;
            return;
        }
        atr_req_body_consumed(px->r);
    }
}
