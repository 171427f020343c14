/* Health-check exchanges (core/health_probe.h). Plain ones write the
 * request and read the answer as is. HTTPS ones run BoringSSL over two
 * memory BIOs: bytes read go into one, what BoringSSL wants sent comes out
 * of the other; the request is written into the SSL at once (the handshake
 * happens on the way) and the plaintext read back goes to the protocol's
 * status reader. The control loop checks a few servers a second: clarity
 * over the workers' zero-copy transport (net/tls.c), which lives on worker
 * loops. */
#include "core/health_probe.h"

#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "base/util.h"
#include "tls/ctx.h"

#define ANSWER_MAX 4096 /* enough for any status line or header block that matters */

struct atr_probe {
    union {
        uv_handle_t h;
        uv_stream_t s;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } io;
    uv_connect_t creq;
    uv_timer_t timer;
    atr_probe_spec_t spec;
    struct sockaddr_storage addr;
    atr_probe_done_cb done_cb; /* NULL once cancelled */
    void *arg;
    int handles; /* open: freed at 0 */
    int done;
    SSL *ssl;                /* HTTPS, else NULL */
    int sent;                /* the SSL took the request */
    int early;               /* a connect that failed at once (reported from the loop) */
    char answer[ANSWER_MAX]; /* plaintext so far */
    size_t n;
    char in[ANSWER_MAX]; /* one read */
};

typedef struct probe_write {
    uv_write_t req;
    atr_probe_t *p;
    char data[];
} probe_write_t;

static void closed(uv_handle_t *h)
{
    atr_probe_t *p = h->data;
    if (--p->handles == 0) {
        SSL_free(p->ssl);
        free(p);
    }
}

/* The end, once, whatever ended it. */
static void finish(atr_probe_t *p, int status, const char *why)
{
    if (p->done)
        return;
    p->done = 1;
    if (p->done_cb)
        p->done_cb(p->arg, status, why);
    uv_close(&p->io.h, closed);
    uv_close((uv_handle_t *)&p->timer, closed);
}

void atr_probe_cancel(atr_probe_t *p)
{
    p->done_cb = NULL;
    finish(p, 0, "cancelled");
}

static void on_timeout(uv_timer_t *t)
{
    finish(t->data, 0, "timed out");
}

static void on_early(uv_timer_t *t)
{
    atr_probe_t *p = t->data;
    finish(p, 0, uv_strerror(p->early));
}

/* Judge the answer so far. */
static void judge(atr_probe_t *p, int eof)
{
    int st = p->spec.status(p->answer, p->n, eof || p->n == sizeof p->answer);
    if (st > 0)
        finish(p, st, NULL);
    else if (st < 0)
        finish(p, 0, "not an answer of the protocol");
    else if (eof)
        finish(p, 0, "closed without an answer");
}

static void on_written(uv_write_t *w, int status)
{
    probe_write_t *pw = (probe_write_t *)w;
    atr_probe_t *p = pw->p;
    free(pw);
    if (status < 0)
        finish(p, 0, uv_strerror(status));
}

static void send_bytes(atr_probe_t *p, const char *data, size_t n)
{
    probe_write_t *pw = atr_xmalloc(sizeof *pw + n);
    pw->p = p;
    memcpy(pw->data, data, n);
    uv_buf_t b = uv_buf_init(pw->data, (unsigned)n);
    int rc = uv_write(&pw->req, &p->io.s, &b, 1, on_written);
    if (rc < 0) {
        free(pw);
        finish(p, 0, uv_strerror(rc));
    }
}

/* Why the TLS exchange failed, for the log. */
static const char *tls_why(atr_probe_t *p, char *buf, size_t n)
{
    long v = SSL_get_verify_result(p->ssl);
    uint32_t e = ERR_get_error();
    ERR_clear_error();
    if (v != X509_V_OK)
        snprintf(buf, n, "certificate verify failed: %s", X509_verify_cert_error_string(v));
    else
        snprintf(buf, n, "TLS: %s", e ? ERR_reason_error_string(e) : "handshake failed");
    return buf;
}

/* Move the TLS exchange on: the request in, plaintext out, ciphertext to send. */
static void tls_pump(atr_probe_t *p)
{
    char why[256];
    if (!p->sent) {
        int rc = SSL_write(p->ssl, p->spec.req, (int)p->spec.reqlen);
        if (rc > 0)
            p->sent = 1;
        else if (SSL_get_error(p->ssl, rc) != SSL_ERROR_WANT_READ) {
            finish(p, 0, tls_why(p, why, sizeof why));
            return;
        }
    }
    while (p->sent && !p->done && p->n < sizeof p->answer) {
        int rc = SSL_read(p->ssl, p->answer + p->n, (int)(sizeof p->answer - p->n));
        if (rc > 0) {
            p->n += (size_t)rc;
            judge(p, 0);
            continue;
        }
        int e = SSL_get_error(p->ssl, rc);
        if (e == SSL_ERROR_ZERO_RETURN) {
            judge(p, 1);
            return;
        }
        if (e != SSL_ERROR_WANT_READ) {
            finish(p, 0, tls_why(p, why, sizeof why));
            return;
        }
        break;
    }
    char out[ANSWER_MAX];
    int k;
    while (!p->done && (k = BIO_read(SSL_get_wbio(p->ssl), out, sizeof out)) > 0)
        send_bytes(p, out, (size_t)k);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    atr_probe_t *p = h->data;
    (void)suggested;
    if (p->ssl)
        *buf = uv_buf_init(p->in, sizeof p->in);
    else
        *buf = uv_buf_init(p->answer + p->n, (unsigned)(sizeof p->answer - p->n));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    atr_probe_t *p = s->data;
    if (p->done || nread == 0)
        return;
    if (nread < 0) {
        if (nread != UV_EOF)
            finish(p, 0, uv_strerror((int)nread));
        else if (p->ssl && !p->sent)
            finish(p, 0, "closed during the TLS handshake");
        else
            judge(p, 1);
        return;
    }
    if (p->ssl) {
        BIO_write(SSL_get_rbio(p->ssl), buf->base, (int)nread);
        tls_pump(p);
    } else {
        p->n += (size_t)nread;
        judge(p, 0);
    }
}

static int tls_begin(atr_probe_t *p)
{
    p->ssl = SSL_new(p->spec.tls);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    if (p->ssl == NULL || rb == NULL || wb == NULL) {
        BIO_free(rb);
        BIO_free(wb);
        return -1;
    }
    SSL_set_bio(p->ssl, rb, wb);
    SSL_set_connect_state(p->ssl);
    return atr_tls_client_set_name(p->ssl, p->spec.tls_name);
}

static void on_connected(uv_connect_t *c, int status)
{
    atr_probe_t *p = c->data;
    if (p->done)
        return;
    if (status < 0) {
        finish(p, 0, uv_strerror(status));
        return;
    }
    if (uv_read_start(&p->io.s, on_alloc, on_read) < 0) {
        finish(p, 0, "cannot read");
        return;
    }
    if (p->spec.tls == NULL) {
        send_bytes(p, p->spec.req, p->spec.reqlen);
        return;
    }
    if (tls_begin(p) < 0) {
        finish(p, 0, "cannot set up TLS");
        return;
    }
    tls_pump(p);
}

atr_probe_t *atr_probe_start(uv_loop_t *loop, const atr_probe_spec_t *spec, atr_probe_done_cb done,
                             void *arg)
{
    atr_probe_t *p = atr_xcalloc(1, sizeof *p);
    p->spec = *spec;
    memcpy(&p->addr, spec->addr,
           spec->addr->sa_family == AF_UNIX    ? sizeof(struct sockaddr_un)
           : spec->addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                               : sizeof(struct sockaddr_in));
    p->done_cb = done;
    p->arg = arg;
    p->handles = 2;
    p->io.h.data = p;
    p->timer.data = p;
    p->creq.data = p;
    uv_timer_init(loop, &p->timer);
    uv_timer_start(&p->timer, on_timeout, spec->timeout_ms, 0);
    const struct sockaddr *a = (const struct sockaddr *)&p->addr;
    int rc;
    if (a->sa_family == AF_UNIX) {
        uv_pipe_init(loop, &p->io.pipe, 0);
        uv_pipe_connect(&p->creq, &p->io.pipe, ((const struct sockaddr_un *)a)->sun_path,
                        on_connected);
        return p;
    }
    uv_tcp_init(loop, &p->io.tcp);
    if ((rc = uv_tcp_connect(&p->creq, &p->io.tcp, a, on_connected)) < 0) {
        /* Reported from the loop, not from inside this call. */
        p->early = rc;
        uv_timer_start(&p->timer, on_early, 0, 0);
    }
    return p;
}
