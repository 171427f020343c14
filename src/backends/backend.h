/* What a backend protocol provides to the unified proxy core: encoding the
 * request head and framing request-body data for the wire. Responses come
 * back through the shared response-head parser (status line or CGI block)
 * and the shared body decoder, so a protocol that speaks HTTP-ish responses
 * needs nothing more. The protocols `protocol NAME;` names are listed in one
 * explicit array (registry.c). */
#ifndef ATR_BACKEND_H
#define ATR_BACKEND_H

#include "base/registry.h"
#include "net/conn.h"

#define ATR_FRAME_SCRATCH 24
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
     * ATR_FRAME_MAX_VIEWS) for the wire into out[] (at most 3*n+1 buffers),
     * using scratch[i] for per-view framing bytes; last = 1 ends the body.
     * Returns the number of buffers. */
    int (*frame_body)(enum atr_http_body body, const atr_str_t *v, int n, int last,
                      char (*scratch)[ATR_FRAME_SCRATCH], uv_buf_t *out);
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
    /* Optional: bytes to send when the client goes away mid-exchange
     * (FastCGI ABORT_REQUEST); returns their length (<= 16) or 0. */
    size_t (*abort_bytes)(char *out);
} atr_backend_ops_t;

extern const atr_backend_ops_t atr_backend_http;
extern const atr_backend_ops_t atr_backend_https;
extern const atr_backend_ops_t atr_backend_fastcgi;
extern const atr_backend_ops_t atr_backend_scgi;
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
