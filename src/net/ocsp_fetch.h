/* An OCSP request over HTTP (RFC 6960 appendix A.1, the POST form) on any
 * libuv loop: the control loop fetches staples with it, the workers check
 * client certificates. One request per connection (HTTP/1.0 with
 * Connection: close), so the answer ends where the connection does; a
 * bounded body and a deadline for the whole exchange. A host name is
 * resolved with uv_getaddrinfo (the thread pool): no loop ever blocks.
 *
 * The request and response bytes are opaque here: building the request and
 * verifying the answer is tls/ocsp.h's. */
#ifndef ATR_NET_OCSP_FETCH_H
#define ATR_NET_OCSP_FETCH_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* The largest response body accepted (a staple is one to a few KiB). */
#define ATR_OCSP_FETCH_MAX (64u * 1024)

typedef struct atr_ocsp_fetch atr_ocsp_fetch_t;

/* The answer, exactly once per started fetch. status 0: HTTP 200 with a
 * body, body[0..len) valid only during the call. status < 0: a libuv error
 * (UV_ECONNREFUSED, UV_ETIMEDOUT, UV_EAI_*: resolution, UV_ECANCELED:
 * atr_ocsp_fetch_cancel) or UV_EPROTO with why[] saying what was wrong with
 * the reply ("HTTP status 404", "body larger than 64 KiB"). why is a static
 * or fetch-owned sentence, valid during the call. The fetch is gone when the
 * callback returns (its handles close afterwards, on the same loop). */
typedef void (*atr_ocsp_fetch_cb)(void *arg, int status, const uint8_t *body, size_t len,
                                  const char *why);

/* POST der[0..len) (copied) to http://host:port/path with Content-Type
 * application/ocsp-request. host is a numeric address or a name (copied);
 * path starts with '/'. timeout_ms bounds resolution, connect, send and
 * receive together. cb runs later, from the loop, never before this
 * returns. Returns the fetch (for atr_ocsp_fetch_cancel until the
 * callback has run), or NULL when it could not start, in which case cb is
 * not called. */
atr_ocsp_fetch_t *atr_ocsp_fetch_start(uv_loop_t *loop, const char *host, size_t host_len,
                                       uint16_t port, const char *path, size_t path_len,
                                       const uint8_t *der, size_t len, uint64_t timeout_ms,
                                       atr_ocsp_fetch_cb cb, void *arg);

/* Stop f now: its callback runs before this returns, with UV_ECANCELED. */
void atr_ocsp_fetch_cancel(atr_ocsp_fetch_t *f);

/* Splits an HTTP/1.x response (the whole of it, as read until the peer
 * closed) into its body: 0 with *body and *blen pointing into buf, or -1 with
 * *why set (not HTTP, a status other than 200, a head without its end, a
 * body shorter than its Content-Length). Pure; exposed for tests. */
int atr__ocsp_http_body(const uint8_t *buf, size_t len, const uint8_t **body, size_t *blen,
                        const char **why);

#endif
