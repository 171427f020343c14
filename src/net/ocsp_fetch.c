/* An OCSP POST over HTTP on a libuv loop (net/ocsp_fetch.h). One plain
 * uv_tcp_t per fetch rather than an atr_sock: the control loop has no
 * worker (buffers, kicks) for a sock to live on, and a fetch is one request
 * and one answer read to the end. */
#include "net/ocsp_fetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/util.h"

/* The head of an answer (status line and headers) may take this much. */
#define HEAD_MAX (8u * 1024)

struct atr_ocsp_fetch {
    uv_loop_t *loop;
    uv_timer_t timer;
    uv_tcp_t tcp;
    uv_getaddrinfo_t gai;
    uv_connect_t connect;
    uv_write_t wr;
    atr_ocsp_fetch_cb cb;
    void *arg;
    char *req; /* head and body, sent in one write */
    size_t req_len;
    uint8_t *resp;
    size_t resp_len;
    int pending; /* handles open and requests out; the fetch is freed at 0 */
    int error;   /* a connect that failed at once, reported from the timer */
    unsigned done : 1, tcp_open : 1, resolving : 1;
};

static void release(atr_ocsp_fetch_t *f)
{
    if (--f->pending > 0)
        return;
    free(f->req);
    free(f->resp);
    free(f);
}

static void on_close(uv_handle_t *h)
{
    release(h->data);
}

/* The one answer; then everything closes. */
static void finish(atr_ocsp_fetch_t *f, int status, const uint8_t *body, size_t len,
                   const char *why)
{
    if (f->done)
        return;
    f->done = 1;
    uv_timer_stop(&f->timer);
    f->cb(f->arg, status, body, len, why ? why : status < 0 ? uv_strerror(status) : "");
    uv_close((uv_handle_t *)&f->timer, on_close);
    if (f->tcp_open)
        uv_close((uv_handle_t *)&f->tcp, on_close);
    if (f->resolving)
        uv_cancel((uv_req_t *)&f->gai); /* its callback still comes (UV_ECANCELED) */
}

static void on_timeout(uv_timer_t *t)
{
    atr_ocsp_fetch_t *f = t->data;
    if (f->error < 0)
        finish(f, f->error, NULL, 0, NULL);
    else
        finish(f, UV_ETIMEDOUT, NULL, 0, "no answer in time");
}

int atr__ocsp_http_body(const uint8_t *buf, size_t len, const uint8_t **body, size_t *blen,
                        const char **why)
{
    const char *p = (const char *)buf;
    static __thread char reason[64];
    if (len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ') {
        *why = "not an HTTP/1.x response";
        return -1;
    }
    int code = atoi(p + 9);
    if (code != 200) {
        snprintf(reason, sizeof reason, "HTTP status %d", code);
        *why = reason;
        return -1;
    }
    const char *end = memmem(p, len, "\r\n\r\n", 4);
    if (end == NULL) {
        *why = "the response head has no end";
        return -1;
    }
    size_t head = (size_t)(end - p) + 4, have = len - head;
    long long want = -1;
    const char *l = (const char *)memchr(p, '\n', head) + 1; /* after the status line */
    while (l < end) {
        if (strncasecmp(l, "content-length:", 15) == 0)
            want = atoll(l + 15);
        if (strncasecmp(l, "transfer-encoding:", 18) == 0) {
            *why = "a chunked answer to an HTTP/1.0 request";
            return -1;
        }
        const char *nl = memchr(l, '\n', (size_t)(end - l));
        if (nl == NULL)
            break;
        l = nl + 1;
    }
    if (want >= 0 && (unsigned long long)want > have) {
        *why = "the body is shorter than its Content-Length";
        return -1;
    }
    *body = buf + head;
    *blen = want >= 0 ? (size_t)want : have;
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    atr_ocsp_fetch_t *f = h->data;
    (void)suggested;
    size_t cap = ATR_OCSP_FETCH_MAX + HEAD_MAX + 1; /* +1: to see a reply too large */
    if (f->resp == NULL)
        f->resp = atr_xmalloc(cap);
    *buf = uv_buf_init((char *)f->resp + f->resp_len, (unsigned)(cap - f->resp_len));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    atr_ocsp_fetch_t *f = st->data;
    (void)buf;
    if (nread > 0) {
        f->resp_len += (size_t)nread;
        if (f->resp_len > ATR_OCSP_FETCH_MAX + HEAD_MAX)
            finish(f, UV_EPROTO, NULL, 0, "the response is larger than 64 KiB");
        return;
    }
    if (nread == 0)
        return;
    if (nread != UV_EOF) {
        finish(f, (int)nread, NULL, 0, NULL);
        return;
    }
    const uint8_t *body;
    size_t blen;
    const char *why;
    if (atr__ocsp_http_body(f->resp, f->resp_len, &body, &blen, &why) < 0)
        finish(f, UV_EPROTO, NULL, 0, why);
    else if (blen == 0 || blen > ATR_OCSP_FETCH_MAX)
        finish(f, UV_EPROTO, NULL, 0, blen ? "the body is larger than 64 KiB" : "empty body");
    else
        finish(f, 0, body, blen, NULL);
}

static void on_written(uv_write_t *wr, int status)
{
    atr_ocsp_fetch_t *f = wr->data;
    if (status < 0)
        finish(f, status, NULL, 0, NULL);
    release(f);
}

static void on_connect(uv_connect_t *req, int status)
{
    atr_ocsp_fetch_t *f = req->data;
    if (status == 0 && !f->done) {
        uv_buf_t b = uv_buf_init(f->req, (unsigned)f->req_len);
        f->wr.data = f;
        if ((status = uv_write(&f->wr, (uv_stream_t *)&f->tcp, &b, 1, on_written)) == 0) {
            f->pending++;
            status = uv_read_start((uv_stream_t *)&f->tcp, on_alloc, on_read);
        }
    }
    if (status < 0)
        finish(f, status, NULL, 0, NULL);
    release(f);
}

static void connect_to(atr_ocsp_fetch_t *f, const struct sockaddr *addr)
{
    uv_tcp_init(f->loop, &f->tcp);
    f->tcp.data = f;
    f->tcp_open = 1;
    f->pending++;
    f->connect.data = f;
    int rc = uv_tcp_connect(&f->connect, &f->tcp, addr, on_connect);
    if (rc < 0) { /* answered from the loop, never from inside atr_ocsp_fetch_start */
        f->error = rc;
        uv_timer_start(&f->timer, on_timeout, 0, 0);
    } else {
        f->pending++;
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
    atr_ocsp_fetch_t *f = req->data;
    f->resolving = 0;
    if (status < 0)
        finish(f, status, NULL, 0, NULL);
    else if (!f->done)
        connect_to(f, ai->ai_addr);
    uv_freeaddrinfo(ai);
    release(f);
}

static void make_request(atr_ocsp_fetch_t *f, const char *host, int v6, uint16_t port,
                         const char *path, size_t path_len, const uint8_t *der, size_t len)
{
    size_t cap = path_len + strlen(host) + 200 + len;
    f->req = atr_xmalloc(cap);
    int n = snprintf(f->req, cap,
                     "POST %.*s HTTP/1.0\r\nHost: %s%s%s:%u\r\n"
                     "Content-Type: application/ocsp-request\r\n"
                     "Accept: application/ocsp-response\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     (int)path_len, path, v6 ? "[" : "", host, v6 ? "]" : "", port, len);
    memcpy(f->req + n, der, len);
    f->req_len = (size_t)n + len;
}

atr_ocsp_fetch_t *atr_ocsp_fetch_start(uv_loop_t *loop, const char *host, size_t host_len,
                                       uint16_t port, const char *path, size_t path_len,
                                       const uint8_t *der, size_t len, uint64_t timeout_ms,
                                       atr_ocsp_fetch_cb cb, void *arg)
{
    char name[256], service[8];
    if (host_len == 0 || host_len >= sizeof name || path_len == 0 || path[0] != '/')
        return NULL;
    memcpy(name, host, host_len);
    name[host_len] = '\0';
    struct sockaddr_storage ss;
    int v4 = uv_ip4_addr(name, port, (struct sockaddr_in *)&ss) == 0;
    int v6 = !v4 && uv_ip6_addr(name, port, (struct sockaddr_in6 *)&ss) == 0;
    atr_ocsp_fetch_t *f = atr_xcalloc(1, sizeof *f);
    f->loop = loop;
    f->cb = cb;
    f->arg = arg;
    make_request(f, name, v6, port, path, path_len, der, len);
    uv_timer_init(loop, &f->timer);
    f->timer.data = f;
    f->pending = 1;
    uv_timer_start(&f->timer, on_timeout, timeout_ms, 0);
    if (v4 || v6) {
        connect_to(f, (struct sockaddr *)&ss);
        return f;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    snprintf(service, sizeof service, "%u", port);
    f->gai.data = f;
    if (uv_getaddrinfo(loop, &f->gai, on_resolved, name, service, &hints) < 0) {
        f->done = 1; /* not started: no callback */
        uv_close((uv_handle_t *)&f->timer, on_close);
        return NULL;
    }
    f->resolving = 1;
    f->pending++;
    return f;
}

void atr_ocsp_fetch_cancel(atr_ocsp_fetch_t *f)
{
    finish(f, UV_ECANCELED, NULL, 0, "cancelled");
}
