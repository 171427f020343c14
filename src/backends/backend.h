/* What a backend protocol provides to the unified proxy core: encoding the
 * request head and framing request-body data for the wire. Responses come
 * back through the shared response-head parser (status line or CGI block)
 * and the shared body decoder, so a protocol that speaks HTTP-ish responses
 * needs nothing more. The registry is an explicit array (backend.c). */
#ifndef ATR_BACKEND_H
#define ATR_BACKEND_H

#include "conn.h"

#define ATR_FRAME_SCRATCH 24

typedef struct atr_backend_ops {
    const char *name;
    /* Serialise the request head for this backend from the parsed client
     * head (valid during the call). body is the framing the body will be
     * sent with (ATR_BODY_NONE / LENGTH / CHUNKED). Returns a malloc'ed
     * buffer and its length. */
    char *(*encode_head)(atr_req_t *r, const atr_http_msg_t *m, enum atr_http_body body,
                         size_t *len);
    /* Frame request-body views for the wire into out[] (at most 3*n+1
     * buffers), using scratch[i] for per-view framing bytes; last = 1 ends
     * the body. Returns the number of buffers. */
    int (*frame_body)(enum atr_http_body body, const atr_str_t *v, int n, int last,
                      char (*scratch)[ATR_FRAME_SCRATCH], uv_buf_t *out);
} atr_backend_ops_t;

extern const atr_backend_ops_t atr_backend_http;

/* The response head to send to the client for a backend response m
 * (hop-by-hop fields removed, route response_header ops applied, framing
 * decided by r->resp_chunked / r->resp_close / content length). */
char *atr_http_client_head(atr_req_t *r, const atr_http_msg_t *m, int with_length,
                           uint64_t length, size_t *len);

#endif
