/* What a backend protocol provides to the unified proxy core: encoding the
 * request head and framing request-body data for the wire. Responses come
 * back through the shared response-head parser (status line or CGI block)
 * and the shared body decoder, so a protocol that speaks HTTP-ish responses
 * needs nothing more. The core never asks which protocol it talks to: what
 * differs is a field here. The protocols `protocol NAME;` names are listed
 * in one explicit array (registry.c). */
#ifndef ATR_BACKEND_H
#define ATR_BACKEND_H

#include <stdatomic.h>
#include <sys/uio.h>

#include "backends/frame.h"
#include "base/registry.h"
#include "net/conn.h"
#include "net/sock.h"

/* Request-body views handed to frame_body are at most this long (a FastCGI
 * record's content limit) and at most ATR_FRAME_MAX_VIEWS at a time. */
#define ATR_FRAME_MAX_VIEW 65535
#define ATR_FRAME_MAX_VIEWS 96

typedef struct atr_backend_ops {
    const char *name; /* as written in `protocol NAME;`; first: a registry entry */
    /* 1 when the connection to the backend is TLS (https): refused by the
     * runtime's check until TLS lands. */
    int tls;
    /* 0 when a connection carries one request only (SCGI): never pooled. */
    int reuse;
    /* 1 when responses are CGI output (FastCGI, SCGI, CGI): a header block
     * without a status line is a response, bare-LF lines are tolerated, and
     * a status line with a Status field is refused. 0 (HTTP): a response
     * must start with a status line. */
    int cgi_response;
    /* 1 when Upgrade requests (WebSocket) may pass to the backend. */
    int upgrade;
    /* 1 when a CGI local redirect (RFC 3875 §6.2.2: a Location path and no
     * Status) is served internally instead of sent to the client. */
    int local_redirect;
    /* 1 when the backend needs the request's normalised path (SCRIPT_NAME,
     * PATH_INFO): the router keeps it on the request. */
    int needs_path;
    /* How a server is reached. NULL: connect to its address (TCP or unix
     * socket). Set (CGI): every exchange starts a process. spawn makes s
     * (initialised with atr_transport_pipe) read its stdout and write its
     * stdin (s->out), and returns it in *child. The server slot the request
     * holds (*slot, one count) is given back by the backend when the process
     * has exited, and slot_free(arg) is called then so a queued request can
     * start. 0, or a negative libuv error (then nothing was started). */
    int (*spawn)(atr_req_t *r, atr_sock_t *s, void **child, atomic_int *slot,
                 void (*slot_free)(void *arg), void *arg);
    /* The request body is complete: close the child's stdin (it sees EOF). */
    void (*spawn_input_done)(void *child);
    /* The exchange is over: stop the child if it still runs, and reap it. */
    void (*spawn_release)(void *child);
    /* 1 when the protocol must know the body length before the body
     * (FastCGI, SCGI, CGI: CONTENT_LENGTH): the core spools a chunked request
     * body to a temporary file first and sends it with its length. */
    int needs_length;
    /* Serialise the request head for this backend from the parsed client
     * head (valid during the call). body is the framing the body will be
     * sent with (ATR_BODY_NONE / LENGTH / CHUNKED). Returns a malloc'ed
     * buffer and its length, or NULL when the request is too large to
     * encode (the core answers 431). */
    char *(*encode_head)(atr_req_t *r, const atr_http_msg_t *m, enum atr_http_body body,
                         size_t *len);
    /* Frame request-body views (each <= ATR_FRAME_MAX_VIEW bytes, at most
     * ATR_FRAME_MAX_VIEWS) for the wire into out[] (at most 3*n+1 entries),
     * using scratch[i] for per-view framing bytes; last = 1 ends the body.
     * The entries borrow v and scratch until the write completes. Returns
     * the number of entries. Pure: struct iovec, not the loop's buffers
     * (the framers are in frame.h). */
    int (*frame_body)(enum atr_http_body body, const atr_str_t *v, int n, int last,
                      char (*scratch)[ATR_FRAME_SCRATCH], struct iovec *out);
    /* Optional: turn the backend's bytes into the response byte stream the
     * shared parser reads (FastCGI: de-frame STDOUT records), in place.
     * state is dec_size bytes owned by the core, set up by dec_init. Every
     * input byte is consumed; *produced bytes are written at out. Returns
     * ATR_AGAIN, ATR_DONE (the response stream ended: like a close for
     * framing, but the connection may live on) or ATR_ERROR (502). NULL:
     * the bytes are the response. */
    size_t dec_size;
    void (*dec_init)(void *state, atr_req_t *r);
    int (*decode)(void *state, char *out, const char *in, size_t len, size_t *produced);
    /* After ATR_DONE: 1 when the connection may be pooled (clean end, no
     * bytes after it, application status fine); the HTTP status to answer
     * when no response came at all (e.g. 503 for FastCGI "overloaded") is
     * *status. */
    int (*dec_end)(void *state, int *status);
    /* Optional: the exchange is over for the request (answered, failed or
     * redirected): free what encode_head attached to r (r->backend_data). */
    void (*exchange_done)(atr_req_t *r);
    /* Optional: bytes to send when the client goes away mid-exchange
     * (FastCGI ABORT_REQUEST); returns their length (<= 16) or 0. */
    size_t (*abort_bytes)(char *out);
    /* Active health checks (core/health.c, backends/probe.h): a GET of path
     * for Host host in this protocol, and the status its answer gives so
     * far. NULL: the protocol cannot be checked (CGI). */
    char *(*probe_request)(const char *path, const char *host, size_t *len);
    int (*probe_status)(const char *p, size_t n, int eof);
} atr_backend_ops_t;

/* Internal: the upstream of a `cgi DIR;` route (not a `protocol` name). */
extern const atr_backend_ops_t atr_backend_cgi;

/* The protocols `protocol NAME;` accepts, entries atr_backend_ops_t, in the
 * order messages list them; the first (http) is the default. main registers
 * it with the config (atr_conf_use_protocols) before loading one. */
extern const atr_registry_t atr_backend_registry;

/* The response head to send to the client for a backend response m
 * (hop-by-hop fields removed, route response_header ops applied, framing
 * decided by r->resp_chunked / r->resp_close / content length). */
char *atr_http_client_head(atr_req_t *r, const atr_http_msg_t *m, int with_length,
                           uint64_t length, size_t *len);

#endif
