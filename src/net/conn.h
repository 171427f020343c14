/* Client connections and the requests on them.
 *
 * Lifecycle (docs/internals.md, "Client connections"): accept -> read head
 * (header_timeout, total) -> the request's phases (net/hooks.h: access,
 * limits, rewrite, handler) -> request body streams to the handler on demand
 * -> response streams back -> log hooks -> keep-alive idle (no buffers held,
 * keepalive_timeout) or close. Pipelined requests wait in the input buffer
 * and are handled one at a time, in order. The connection never names a
 * handler: it calls the ops the handler set on the request.
 *
 * Ownership: the conn owns its input buffer and its current request. A
 * request holds a reference on the worker generation it started on. Any
 * callback may end the connection: conn code holds a reference across every
 * callback and frees only when the last one is dropped (close late). */
#ifndef ATR_CONN_H
#define ATR_CONN_H

#include <uv.h>

#include "http/body.h"
#include "net/sock.h"
#include "http/http_parse.h"
#include "net/worker.h"

typedef struct atr_req atr_req_t;

/* What the connection calls on the handler that took a request (r->handler,
 * set by the handler; NULL while none has, or once it let go). Every member
 * may be NULL. */
typedef struct atr_handler {
    const char *name;
    /* Request body arrived (or the client closed: atr_req_body_read then says
     * so) after atr_req_body_read returned no data; also tunnel bytes. */
    void (*body_ready)(atr_req_t *r);
    /* The connection is closing under the request (timeout, reset, stop):
     * drop what the handler holds for it; answer nothing. */
    void (*client_gone)(atr_req_t *r);
    /* The request ends (or is redirected) with the handler still attached:
     * free r->handler_data. */
    void (*cleanup)(atr_req_t *r);
} atr_handler_t;

enum atr_req_phase { ATR_RP_HEAD = 0, ATR_RP_HANDLING, ATR_RP_RESPONDING, ATR_RP_DONE };

/* Views of output to send: bodies are moved, not copied, so the caller keeps
 * the bytes alive until the write callback. */
#define ATR_MAX_OUT_BUFS 64

/* At most this many input bytes per atr_req_body_read: what a handler gets
 * in one call must fit its framing (FastCGI cuts it into 64 KiB records, see
 * ATR_FRAME_MAX_VIEWS), whatever size the input buffer has grown to. */
#define ATR_BODY_READ_MAX (2u << 20)

struct atr_req {
    atr_conn_t *c;
    atr_wgen_t *wg;                 /* ref held */
    const atr_conf_host_t *host;
    const atr_conf_route_t *route;
    char *norm_path;                /* static and gateway routes: the normalised, decoded path */
    const atr_conf_upstream_t *upstream; /* proxy and cgi routes: the upstream (r->wg->gen's) */
    int ups;                        /* its index in r->wg->gen->ups */
    int refuse_status;              /* why a backend could not encode the request (400, 431) */
    void *backend_data;             /* a backend's per-request plan (CGI), freed by its
                                     * exchange_done when the proxy lets go */
    char *redirect_buf;             /* the head of an internal redirect (msg views point here) */
    int redirects;                  /* CGI local redirects followed so far */
    atr_http_msg_t *msg;            /* head views into c->s.buf; valid until atr_req_head_done() */
    enum atr_req_phase phase;

    /* request body from the client */
    atr_body_t body;
    size_t body_pending;            /* input bytes handed out, consumed at atr_req_body_consumed */
    int body_started;               /* sent 100 Continue (or not needed) */
    int body_wanted;                /* handler waits for atr_req_body_read data */
    int body_error;                 /* 400 / 413 when atr_req_body_read failed */
    int expect_continue;            /* send 100 Continue before the first body read */

    /* response to the client */
    int status;
    int resp_chunked;               /* re-chunking the body to the client */
    int resp_close;                 /* close the connection after this response */
    int resp_head_sent;
    int resp_no_body;               /* HEAD, 204, 304 */
    uint64_t bytes_sent;            /* body bytes */
    char *out_head;                 /* serialised head, freed after it is written */
    void (*write_cb)(atr_req_t *r, int status);  /* pending body write completion */

    /* handler state */
    const atr_handler_t *handler;   /* the handler that took the request, NULL before */
    void *handler_data;             /* the handler's own state (proxy exchange, open file) */
    int upgraded;                   /* tunnel after 101 */
    int upgrade_requested;          /* the client asked for an Upgrade */

    /* copies for the access log */
    char line[96];                  /* "METHOD TARGET", cut short with "...": error-log lines
                                     * about the request name it (atr_req_line) */
    enum atr_http_method method;
    char *log_method, *log_target, *log_referer, *log_ua, *log_host; /* access log / CGI only */
    int version_minor;
    uint64_t start_us;
    uint64_t start_ms;              /* the loop's clock at the first byte (latency histogram) */
    int64_t upstream_ms;            /* request sent to response end, the loop's clock; -1 none */
    int64_t start_wall_ms;
    char upstream_addr[64];
    int64_t upstream_time_us;
    int upstream_status;

    /* Chunk-size lines of the write in flight. Last: a recycled request is
     * cleared up to here (req_new), these 1280 bytes are written before use. */
    char sizeline[ATR_MAX_OUT_BUFS][20];
};

struct atr_conn {
    atr_sock_t s;                    /* first: the transport (input buffer s.buf, [s.off, s.len)
                                      * unconsumed; s.timer_kind = the phase timed) */
    atr_conn_t *next, *prev;         /* worker list */
    atr_http_parser_t *parser;       /* NULL while idle */
    atr_req_t *req;                  /* current request */
    atr_gen_t *hs_gen;               /* ref held while a TLS handshake runs: its contexts
                                      * call back into the generation's hosts */
    uint32_t nreqs;
    unsigned in_process : 1, process_again : 1; /* process() re-entrancy guard */
    unsigned refused : 1;            /* accept refused: never counted as a connection */
    uint64_t id;
    char peer[46];                   /* client address text */
    uint8_t peer_len;                /* strlen(peer) */
    uint8_t peer_v6;                 /* peer is an IPv6 address (has ':') */
    uint16_t peer_port, local_port;
    uint8_t local_family;            /* AF_INET or AF_INET6 */
    uint8_t local_addr[16];          /* the address the client connected to */
};

/* The worker the connection lives on (its loop's). */
static inline atr_worker_t *atr_conn_worker(const atr_conn_t *c)
{
    return atr_sock_worker(&c->s);
}

/* ---- used by handlers (static, return, proxy) ---- */

/* Copy what the rest of the request needs out of the head views, then drop
 * the head bytes from the input buffer (views in r->msg become invalid). */
void atr_req_head_done(atr_req_t *r);

/* Answer with a complete short response (errors, `return`). Sets
 * Connection: close when the connection must close. */
void atr_req_respond_simple(atr_req_t *r, int status, const char *body, int close_conn);
/* Send a whole response already serialised in head (malloc'ed, ownership
 * moves here; r->status set by the caller) and end the request: when the
 * write completes, or at once when it completed or failed right away. */
void atr_req_send_whole(atr_req_t *r, char *head, size_t len);
/* The same with a content type and a body of blen bytes (copied). */
void atr_req_respond(atr_req_t *r, int status, const char *content_type, const char *body,
                     size_t blen, int close_conn);

/* Send to the client in one gather write: an optional response head
 * (malloc'ed, ownership moves here; NULL for none) and body views (kept
 * alive by the caller until the write is done), framed for the client
 * (chunked when r->resp_chunked; dropped when r->resp_no_body). last = 1 ends
 * the body (writes the last chunk). At most ATR_MAX_OUT_BUFS views.
 * Returns 0 when written at once (cb not called), 1 when pending (cb runs
 * later with 0 or a negative error), <0 on error. */
int atr_req_send(atr_req_t *r, char *head, size_t headlen, const atr_str_t *v, int n, int last,
                 void (*cb)(atr_req_t *r, int status));

/* The head of a response Atrium makes itself (errors, return, the status
 * page, static files): the status line, Server, Date, `fields` ("Name:
 * value\r\n" lines, or NULL), Content-Length when length >= 0, the
 * Connection field, then the route's response_header operations (a set or
 * remove of one of these fields replaces it; never the framing), into *out
 * (a buffer from the worker's head cache; ownership to the caller, who may
 * append the body). */
void atr_req_local_head(atr_req_t *r, int status, const char *fields, int64_t length,
                        atr_buf_t *out);

/* The request as error-log lines name it: "METHOD TARGET" ("-" before its
 * head was read). With ATR_REQ_FMT / ATR_REQ_ARGS: `w1 127.0.0.1 "GET /x"`. */
const char *atr_req_line(const atr_req_t *r);
#define ATR_REQ_FMT "%s %s \"%s\""
#define ATR_REQ_ARGS(r) atr_conn_worker((r)->c)->name, (r)->c->peer, atr_req_line(r)

/* "Connection: close\r\n", "Connection: keep-alive\r\n" (HTTP/1.0 keep-alive)
 * or "", for handlers writing their own response head. */
const char *atr_req_connection_header(const atr_req_t *r);

/* The response is complete: log it and go on with the connection. */
void atr_req_finish(atr_req_t *r);
/* Abort: the client connection is closed (truncated response). */
void atr_req_abort(atr_req_t *r);

/* Body pull: returns ATR_AGAIN with *n views (possibly 0: then the
 * handler's body_ready is called when data arrives), ATR_DONE when the body has ended
 * (views may still be returned), ATR_ERROR on bad framing or a closed client
 * (the request is answered/aborted by conn code then). Views point into
 * c->s.buf; call atr_req_body_consumed once they are written. */
int atr_req_body_read(atr_req_t *r, atr_str_t *v, int max, int *n);
void atr_req_body_consumed(atr_req_t *r);

/* Raw tunnel (after 101): bytes from the client go to the handler unchanged. */
int atr_req_tunnel_read(atr_req_t *r, atr_str_t *v);

/* The connection's local address as text ("127.0.0.1") and port, and the
 * peer's port, for gateway environments (recorded at accept). 0. */
int atr_conn_addrs(atr_conn_t *c, char *local, size_t cap, int *local_port, int *peer_port);

/* Connection-level */
/* A connection accept4() gave us, with the peer address it reported. */
void atr_conn_accept(atr_listener_t *l, int fd, const struct sockaddr *peer);
void atr_conn_close(atr_conn_t *c);
void atr_conn_close_idle(atr_worker_t *w);   /* graceful stop / drain */

/* A request head is complete (r->msg): run its phases (net/hooks.h). */
void atr_req_dispatch(atr_req_t *r);
/* RFC 3875 §6.2.2 local redirect: forget the handler, answer r as a GET of
 * location (a path, with the original Host) through the phases again. The
 * handler has let go of r before the call. */
void atr_req_redirect_local(atr_req_t *r, const char *location);

#endif
