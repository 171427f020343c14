/* The OCSP HTTP client (net/ocsp_fetch.c): the answer's head and body
 * (a table), then real fetches on a loop against a server on the same loop:
 * the request as sent, a good answer, an HTTP error, no answer in time, a
 * refused connection, a cancel; the loop closes clean after each. */
#include "net/ocsp_fetch.h"

#include <stdlib.h>
#include <string.h>

#include "t.h"

static void body_table(void)
{
    static const struct {
        int line;
        const char *in;
        int rc;
        const char *body;
    } cases[] = {
        { __LINE__, "HTTP/1.0 200 OK\r\nContent-Type: x\r\n\r\nDER", 0, "DER" },
        { __LINE__, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nDERxx", 0, "DE" },
        { __LINE__, "HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nDER", -1, NULL },
        { __LINE__, "HTTP/1.1 404 Not Found\r\n\r\n", -1, NULL },
        { __LINE__, "HTTP/1.1 200 OK\r\nContent-Type: x\r\n", -1, NULL },
        { __LINE__, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nDER", -1, NULL },
        { __LINE__, "SSH-2.0-OpenSSH\r\n\r\n", -1, NULL },
        { __LINE__, "HTTP/1.0 200 OK\r\n\r\n", 0, "" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint8_t *body = NULL;
        size_t blen = 0;
        const char *why = NULL;
        int rc = atr__ocsp_http_body((const uint8_t *)cases[i].in, strlen(cases[i].in), &body,
                                     &blen, &why);
        T_CHECK(cases[i].line, rc == cases[i].rc, "rc %d (%s)", rc, why ? why : "");
        if (rc == 0 && cases[i].body)
            T_CHECK(cases[i].line,
                    blen == strlen(cases[i].body) && memcmp(body, cases[i].body, blen) == 0,
                    "body %.*s", (int)blen, (const char *)body);
    }
}

/* A server on the loop: reads the request, answers `reply` and closes
 * (NULL: says nothing). */
static uv_tcp_t server, peer;
static const char *reply;
static char got[4096];
static size_t ngot;
static int status_seen = 1;
static char body_seen[64];

static void on_peer_closed(uv_handle_t *h)
{
    (void)h;
}

static void peer_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    (void)h, (void)s;
    *b = uv_buf_init(got + ngot, (unsigned)(sizeof got - ngot));
}

static void peer_written(uv_write_t *wr, int status)
{
    (void)status;
    uv_close((uv_handle_t *)&peer, on_peer_closed);
    free(wr);
}

static void peer_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    if (n < 0) {
        if (!uv_is_closing((uv_handle_t *)st))
            uv_close((uv_handle_t *)st, on_peer_closed);
        return;
    }
    ngot += (size_t)n;
    if (reply && memmem(got, ngot, "\r\n\r\nREQ", 7)) {
        uv_write_t *wr = malloc(sizeof *wr);
        uv_buf_t out = uv_buf_init((char *)reply, (unsigned)strlen(reply));
        uv_read_stop(st);
        uv_write(wr, st, &out, 1, peer_written);
    }
}

static void on_conn(uv_stream_t *srv, int status)
{
    (void)status;
    uv_tcp_init(srv->loop, &peer);
    uv_accept(srv, (uv_stream_t *)&peer);
    uv_read_start((uv_stream_t *)&peer, peer_alloc, peer_read);
}

static void done(void *arg, int status, const uint8_t *body, size_t len, const char *why)
{
    (void)arg, (void)why;
    status_seen = status;
    snprintf(body_seen, sizeof body_seen, "%.*s", (int)len, body ? (const char *)body : "");
    if (!uv_is_closing((uv_handle_t *)&server))
        uv_close((uv_handle_t *)&server, NULL);
}

/* One fetch against the server (port 0: a port nobody listens on). */
static void fetch(int line, const char *answer, uint64_t timeout_ms, int cancel, int expect,
                  const char *expect_body)
{
    uv_loop_t loop;
    struct sockaddr_in a;
    int len = sizeof a;
    uv_loop_init(&loop);
    uv_tcp_init(&loop, &server);
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(&server, (struct sockaddr *)&a, 0);
    uv_tcp_getsockname(&server, (struct sockaddr *)&a, &len);
    if (answer == (const char *)1) /* refused: nobody listens */
        uv_close((uv_handle_t *)&server, NULL);
    else
        uv_listen((uv_stream_t *)&server, 8, on_conn);
    reply = answer;
    ngot = 0;
    status_seen = 1;
    atr_ocsp_fetch_t *f = atr_ocsp_fetch_start(&loop, "127.0.0.1", 9, ntohs(a.sin_port), "/ocsp", 5,
                                               (const uint8_t *)"REQ", 3, timeout_ms, done, NULL);
    T_CHECK(line, f != NULL, "did not start");
    if (cancel)
        atr_ocsp_fetch_cancel(f);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (!uv_is_closing((uv_handle_t *)&peer) && peer.loop == &loop)
        uv_close((uv_handle_t *)&peer, on_peer_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    T_CHECK(line, status_seen == expect, "status %d, expected %d", status_seen, expect);
    if (expect_body)
        T_CHECK(line, strcmp(body_seen, expect_body) == 0, "body '%s'", body_seen);
    if (answer && answer != (const char *)1 && !cancel)
        T_CHECK(line,
                strstr(got, "POST /ocsp HTTP/1.0\r\n") == got &&
                    strstr(got, "Content-Type: application/ocsp-request\r\n") &&
                    strstr(got, "Content-Length: 3\r\n"),
                "request %.*s", (int)ngot, got);
    T_CHECK(line, uv_loop_close(&loop) == 0, "handles left open");
    memset(&peer, 0, sizeof peer);
}

int main(void)
{
    body_table();
    fetch(__LINE__, "HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nRESP", 2000, 0, 0, "RESP");
    fetch(__LINE__, "HTTP/1.0 500 Oops\r\n\r\n", 2000, 0, UV_EPROTO, NULL);
    fetch(__LINE__, NULL, 100, 0, UV_ETIMEDOUT, NULL);
    fetch(__LINE__, (const char *)1, 2000, 0, UV_ECONNREFUSED, NULL);
    fetch(__LINE__, NULL, 2000, 1, UV_ECANCELED, NULL);
    T_DONE();
}
