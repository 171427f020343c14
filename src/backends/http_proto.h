/* HTTP/1.1 heads as Atrium forwards them, from a parsed head: the request to
 * an HTTP backend (one framing header, no hop-by-hop fields, forwarding
 * headers added) and the response head to the client. Pure code over bytes:
 * the inputs are views and plain values, the output goes into an atr_buf_t
 * (http/headers.h), so these run in unit tests without a loop. */
#ifndef ATR_HTTP_PROTO_H
#define ATR_HTTP_PROTO_H

#include "http/headers.h"
#include "http/http_parse.h"

/* What the request encoder needs besides the parsed head m. Views and
 * pointers are borrowed for the call. */
typedef struct atr_http_fwd {
    const atr_http_msg_t *m;
    enum atr_http_body body;     /* the framing the body goes with: NONE, LENGTH, CHUNKED */
    atr_str_t peer;              /* the client's address as text */
    int peer_v6;                 /* it is IPv6 (Forwarded quotes it in brackets) */
    const char *host_fallback;   /* Host when the client sent none (HTTP/1.0): the upstream */
    int close;                   /* send Connection: close (no keep-alive to this backend) */
    const atr_hdr_op_t *ops;     /* the route's request_header operations */
    int nops;
    int drop_underscores;        /* drop fields whose name has '_' */
    const char *via;             /* Via pseudonym, NULL = none */
    int https;                   /* the client came over TLS: proto https */
    const char *path;            /* the path to ask for, decoded (a route's `proxy NAME PREFIX`
                                  * rewrote it): sent percent-encoded with the target's query;
                                  * NULL: the target as received */
} atr_http_fwd_t;

/* Append the request head (request line to the empty line) to b. */
void atr_http_encode_request(atr_buf_t *b, const atr_http_fwd_t *f);

/* What the response head needs besides the backend's parsed head m. */
typedef struct atr_http_resp {
    const atr_http_msg_t *m;
    int with_length;             /* send Content-Length: length */
    uint64_t length;
    int chunked;                 /* else send Transfer-Encoding: chunked */
    const char *connection;      /* a whole "Connection: ...\r\n" line, or "" */
    const atr_hdr_op_t *ops;     /* the route's response_header operations */
    int nops;
    const char *via;             /* Via pseudonym, NULL = none */
} atr_http_resp_t;

/* Append the response head for the client (status line to the empty line)
 * to b: hop-by-hop fields removed, the route's operations applied, framing
 * as given; a 101 keeps the upgrade. */
void atr_http_encode_response(atr_buf_t *b, const atr_http_resp_t *f);

#endif
