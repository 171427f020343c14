/* One health-check exchange on the control loop (core/health_probe.c):
 * connect (TCP or unix socket), TLS when asked, send the probe's bytes, read
 * the answer until the protocol's status reader knows the status, all within
 * a timeout. */
#ifndef ATR_HEALTH_PROBE_H
#define ATR_HEALTH_PROBE_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

typedef struct atr_probe atr_probe_t;

typedef struct atr_probe_spec {
    const struct sockaddr *addr;   /* copied */
    const char *req;               /* the request bytes, borrowed until the end */
    size_t reqlen;
    /* The status the answer's first n bytes give: > 0, 0 for more, -1 no
     * answer (backend.h probe_status). */
    int (*status)(const char *p, size_t n, int eof);
    SSL_CTX *tls;                  /* HTTPS: the upstream's client context; NULL: plain */
    const char *tls_name;          /* what SNI and verification use (NULL: neither) */
    uint64_t timeout_ms;           /* the whole exchange */
} atr_probe_spec_t;

/* The end of a probe: the status (> 0) of an answer, or 0 and why there is
 * none ("connection refused", "timed out", "certificate verify failed: ..."). */
typedef void (*atr_probe_done_cb)(void *arg, int status, const char *why);

/* Start one exchange; done runs once, later, unless atr_probe_cancel comes
 * first. */
atr_probe_t *atr_probe_start(uv_loop_t *loop, const atr_probe_spec_t *spec, atr_probe_done_cb done,
                             void *arg);

/* Stop it: done never runs; the handles close on the loop. */
void atr_probe_cancel(atr_probe_t *p);

#endif
