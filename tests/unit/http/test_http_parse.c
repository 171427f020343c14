/* HTTP/1.1 head parser: tables of requests and responses, each fed whole,
 * one byte at a time through a buffer that moves on every call, and split in
 * two at every offset; all three must give the same result.
 *
 * A result is summarised as "key=value|key=value|..." (or "E400", "AGAIN");
 * a case lists the pieces it expects to find in that summary.
 *
 * test_http_parse --bench   parses a ~500-byte head 1M times (not a test). */
#include "http/http_parse.h"
#include "t.h"

#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

#define S(lit) lit, sizeof(lit) - 1

enum { LIM_DEFAULT = 0, LIM_SMALL };

static const atr_http_limits_t small_limits = { 64, 256, 4 };

struct tcase {
    int line;
    const char *in;
    size_t len;
    const char *expect; /* '|'-separated pieces of the summary */
    int lim;
    enum atr_http_method req_method; /* responses only */
};

static const char *body_name(enum atr_http_body b)
{
    switch (b) {
    case ATR_BODY_NONE: return "none";
    case ATR_BODY_LENGTH: return "len";
    case ATR_BODY_CHUNKED: return "chunked";
    case ATR_BODY_UNTIL_CLOSE: return "close";
    }
    return "?";
}

static void summarize(char *out, size_t cap, int rc, int status, const atr_http_msg_t *m)
{
    size_t k;
    uint32_t i;
    if (rc == ATR_ERROR) {
        snprintf(out, cap, "E%d", status);
        return;
    }
    if (rc == ATR_AGAIN) {
        snprintf(out, cap, "AGAIN");
        return;
    }
    k = (size_t)snprintf(out, cap,
                         "M=%.*s|MC=%d|T=%.*s|V=%d|H=%.*s|S=%d|R=%.*s|CGI=%d|LOC=%.*s|B=%s|"
                         "CL=%" PRIu64 "|KA=%d|CC=%d|UP=%d|EX=%d|N=%u|HL=%u",
                         (int)m->method_str.n, m->method_str.p, (int)m->method,
                         (int)m->target.n, m->target.p, m->version_minor, (int)m->host.n,
                         m->host.p, m->status, (int)m->reason.n, m->reason.p, m->cgi_form,
                         (int)m->location.n, m->location.p, body_name(m->body),
                         m->content_length, m->keep_alive, m->conn_close, m->upgrade,
                         m->expect_continue, m->nheaders, m->head_len);
    for (i = 0; i < m->nheaders && k < cap; i++)
        k += (size_t)snprintf(out + k, cap - k, "|h%u=%.*s:%.*s", i,
                              (int)m->headers[i].name.n, m->headers[i].name.p,
                              (int)m->headers[i].value.n, m->headers[i].value.p);
}

/* Every '|' piece of want is a whole piece of got. */
static int matches(const char *got, const char *want)
{
    while (*want) {
        const char *e = strchr(want, '|');
        size_t n = e ? (size_t)(e - want) : strlen(want);
        const char *g = got;
        int found = 0;
        while (*g) {
            const char *ge = strchr(g, '|');
            size_t gn = ge ? (size_t)(ge - g) : strlen(g);
            if (gn == n && memcmp(g, want, n) == 0) {
                found = 1;
                break;
            }
            g += gn + (ge != NULL);
        }
        if (!found)
            return 0;
        want += n + (e != NULL);
    }
    return 1;
}

static atr_http_parser_t *new_parser(int is_resp, const struct tcase *c)
{
    atr_http_parser_t *p = atr_http_parser_new(is_resp, c->lim == LIM_SMALL ? &small_limits : NULL);
    if (is_resp)
        atr_http_parser_set_request_method(p, c->req_method);
    return p;
}

/* Whole input in one call. */
static void feed_whole(int is_resp, const struct tcase *c, char *out, size_t cap)
{
    static atr_http_msg_t m;
    atr_http_parser_t *p = new_parser(is_resp, c);
    char *buf = malloc(c->len + 1);
    int status = 0, rc;
    const char *reason = NULL;
    memcpy(buf, c->in, c->len);
    rc = atr_http_parse(p, buf, c->len, &m, &status, &reason);
    summarize(out, cap, rc, status, &m);
    T_CHECK(c->line, rc != ATR_ERROR || (reason != NULL && status >= 400), "no reason");
    free(buf);
    atr_http_parser_free(p);
}

/* One byte more per call, and the buffer moves every time (offsets, not
 * pointers, must survive). */
static void feed_bytes(int is_resp, const struct tcase *c, char *out, size_t cap)
{
    static atr_http_msg_t m;
    atr_http_parser_t *p = new_parser(is_resp, c);
    char *buf = NULL;
    int status = 0, rc = ATR_AGAIN;
    const char *reason = NULL;
    size_t n;
    if (c->len == 0)
        rc = atr_http_parse(p, "", 0, &m, &status, &reason);
    for (n = 1; n <= c->len; n++) {
        char *nb = malloc(n);
        memcpy(nb, c->in, n);
        free(buf);
        buf = nb;
        rc = atr_http_parse(p, buf, n, &m, &status, &reason);
        if (rc != ATR_AGAIN)
            break;
    }
    summarize(out, cap, rc, status, &m);
    free(buf);
    atr_http_parser_free(p);
}

/* Two calls: the first k bytes, then all. */
static void feed_split(int is_resp, const struct tcase *c, size_t k, char *out, size_t cap)
{
    static atr_http_msg_t m;
    atr_http_parser_t *p = new_parser(is_resp, c);
    char *buf = malloc(c->len + 1);
    int status = 0, rc;
    const char *reason = NULL;
    memcpy(buf, c->in, c->len);
    rc = atr_http_parse(p, buf, k, &m, &status, &reason);
    if (rc == ATR_AGAIN)
        rc = atr_http_parse(p, buf, c->len, &m, &status, &reason);
    summarize(out, cap, rc, status, &m);
    free(buf);
    atr_http_parser_free(p);
}

static void run_cases(int is_resp, const struct tcase *cases, size_t n)
{
    char whole[4096], other[4096];
    size_t i, k;
    for (i = 0; i < n; i++) {
        const struct tcase *c = &cases[i];
        feed_whole(is_resp, c, whole, sizeof whole);
        T_CHECK(c->line, matches(whole, c->expect), "got %s, want %s", whole, c->expect);
        feed_bytes(is_resp, c, other, sizeof other);
        T_CHECK(c->line, strcmp(whole, other) == 0, "byte-at-a-time %s != whole %s", other, whole);
        for (k = 0; k < c->len; k++) {
            feed_split(is_resp, c, k, other, sizeof other);
            if (strcmp(whole, other) != 0) {
                T_CHECK(c->line, 0, "split at %zu: %s != whole %s", k, other, whole);
                break;
            }
        }
    }
}

#define GET11 "GET / HTTP/1.1\r\nHost: a\r\n"

static const struct tcase requests[] = {
    /* ---- valid */
    { __LINE__, S("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),
      "M=GET|MC=1|T=/|V=1|H=example.com|B=none|CL=0|KA=1|CC=0|UP=0|EX=0|N=1|HL=37|h0=Host:example.com", 0, 0 },
    { __LINE__, S("GET /a?b=c HTTP/1.1\r\nHost: x\r\nUser-Agent:  curl/8 \r\nAccept: */*\r\n"
                  "X-Empty:\r\nX-Tab:\tv w\t\r\nX-Sp:   \r\n\r\n"),
      "T=/a?b=c|N=6|h1=User-Agent:curl/8|h2=Accept:*/*|h3=X-Empty:|h4=X-Tab:v w|h5=X-Sp:", 0, 0 },
    { __LINE__, S("POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"),
      "M=POST|MC=3|B=len|CL=5|HL=48", 0, 0 },
    { __LINE__, S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), "B=len|CL=0", 0, 0 },
    { __LINE__, S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 004611686018427387904\r\n\r\n"),
      "B=len|CL=4611686018427387904", 0, 0 },
    { __LINE__, S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), "B=chunked|CL=0", 0, 0 },
    { __LINE__, S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n"), "B=chunked", 0, 0 },
    { __LINE__, S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\nTransfer-Encoding: , chunked ,\r\n\r\n"),
      "B=chunked", 0, 0 },
    { __LINE__, S("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), "M=GET|HL=31", 0, 0 },
    { __LINE__, S("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n" GET11 "\r\n"), "M=GET", 0, 0 },
    { __LINE__, S("GET / HTTP/1.0\r\n\r\n"), "V=0|KA=0|H=|N=0|B=none", 0, 0 },
    { __LINE__, S("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), "V=0|KA=1", 0, 0 },
    { __LINE__, S("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"), "KA=0|CC=1", 0, 0 },
    { __LINE__, S(GET11 "Connection: close\r\n\r\n"), "KA=0|CC=1", 0, 0 },
    { __LINE__, S(GET11 "Connection: foo,,  Upgrade\r\nUpgrade: websocket\r\n\r\n"), "UP=1|KA=1", 0, 0 },
    /* RFC 9110 §7.8: an HTTP/1.0 request's Upgrade is ignored */
    { __LINE__, S("GET / HTTP/1.0\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"),
      "UP=0", 0, 0 },
    { __LINE__, S(GET11 "Connection: upgrade\r\n\r\n"), "UP=0", 0, 0 },
    { __LINE__, S(GET11 "Upgrade: websocket\r\n\r\n"), "UP=0", 0, 0 },
    { __LINE__, S(GET11 "Expect: 100-Continue\r\n\r\n"), "EX=1", 0, 0 },
    { __LINE__, S("GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"), "EX=0", 0, 0 },
    { __LINE__, S(GET11 "Expect: 100-continue-x\r\n\r\n"), "EX=0", 0, 0 },
    { __LINE__, S("GET http://Example.com:8080/p?q HTTP/1.1\r\nHost: example.COM:8080\r\n\r\n"),
      "T=http://Example.com:8080/p?q|H=example.COM:8080", 0, 0 },
    { __LINE__, S("GET https://a.b HTTP/1.1\r\nHost: a.b\r\n\r\n"), "H=a.b", 0, 0 },
    { __LINE__, S("GET http://a.b/x HTTP/1.0\r\n\r\n"), "V=0|H=|T=http://a.b/x", 0, 0 },
    { __LINE__, S("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), "MC=6|T=*", 0, 0 },
    { __LINE__, S("CONNECT a.b:443 HTTP/1.1\r\nHost: a.b:443\r\n\r\n"), "MC=8|T=a.b:443", 0, 0 },
    { __LINE__, S(GET11 "X: caf\xc3\xa9 \x80\xff\r\n\r\n"), "h1=X:caf\xc3\xa9 \x80\xff", 0, 0 },
    { __LINE__, S("PURGE / HTTP/1.1\r\nHost: a\r\n\r\n"), "M=PURGE|MC=0", 0, 0 },
    { __LINE__, S("ABCDEFGHIJKLMNOPQRSTUVWXYZ-!#$%& / HTTP/1.1\r\nHost: a\r\n\r\n"), "MC=0", 0, 0 },
    { __LINE__, S("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), "H=[::1]:8080", 0, 0 },
    { __LINE__, S("GET / HTTP/1.1\r\nhOsT: a\r\n\r\n"), "H=a", 0, 0 },
    { __LINE__, S("DELETE /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET"),
      "MC=5|B=len|CL=3|HL=50", 0, 0 },
    /* ---- incomplete */
    { __LINE__, S(""), "AGAIN", 0, 0 },
    { __LINE__, S(GET11), "AGAIN", 0, 0 },
    { __LINE__, S(GET11 "\r"), "AGAIN", 0, 0 },
    { __LINE__, S("\r\n\r\n"), "AGAIN", 0, 0 },
    /* ---- framing smuggling */
    { __LINE__, S(GET11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Content-Length: 5, 5\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Content-Length: +5\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Content-Length: -1\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Content-Length: 0x5\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Content-Length: 5 5\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Content-Length:\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Content-Length: 4611686018427387905\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Content-Length: 99999999999999999999999999\r\n\r\n"), "E400", 0, 0 },
    /* 2^64 + 4 and 2^64: a check after the multiplication let them wrap to 4 and 0 */
    { __LINE__, S(GET11 "Content-Length: 18446744073709551620\r\n\r\nabcd"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Content-Length: 18446744073709551616\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Transfer-Encoding: chunked, gzip\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Transfer-Encoding: gzip\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Transfer-Encoding: identity\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Transfer-Encoding:\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Transfer-Encoding: chunked, chunked\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Transfer-Encoding: xchunked\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Transfer-Encoding: gzip, chunked\r\n\r\n"), "E501", 0, 0 },
    { __LINE__, S(GET11 "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"), "E501", 0, 0 },
    { __LINE__, S("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), "E400", 0, 0 },
    /* ---- field syntax */
    { __LINE__, S(GET11 "X: a\r\n b\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "X: a\r\n\tb\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Content-Length\t: 5\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 ": a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "Foo\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "X(y): a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "X\x80: a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "X: a\rb\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "X: a\r\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "\r\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "X: a\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET / HTTP/1.1\nHost: a\n\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "X: a\0b\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "X: a\x01\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "X: a\x7f\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "X:\x1f\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(GET11 "\0: a\r\n\r\n"), "E400", 0, 0 },
    /* ---- Host */
    { __LINE__, S("GET / HTTP/1.1\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET / HTTP/1.1\r\nHost:\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET / HTTP/1.1\r\nHost: a\x80\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET http://evil.com/ HTTP/1.1\r\nHost: good.com\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET http://good.com:81/ HTTP/1.1\r\nHost: good.com\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET http://u@good.com/ HTTP/1.1\r\nHost: good.com\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET http:/// HTTP/1.1\r\nHost: a\r\n\r\n"), "E400", 0, 0 },
    /* ---- request line */
    { __LINE__, S("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), "E400", 0, 0 },
    /* the last field fails in the grammar step that also ends the head */
    { __LINE__, S("GET http://a/p HTTP/1.1\r\nHost:\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET / HTTP/1.1 x\r\nHost: a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET /\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET / \r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET /\t HTTP/1.1\r\nHost: a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET foo HTTP/1.1\r\nHost: a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET / HTTP/1.1\rHost: a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n" GET11 "\r\n"), "E400", 0, 0 },
    { __LINE__, S("\r\r\n"), "E400", 0, 0 },
    { __LINE__, S("\n"), "E400", 0, 0 },
    { __LINE__, S("ABCDEFGHIJKLMNOPQRSTUVWXYZ-!#$%&' / HTTP/1.1\r\nHost: a\r\n\r\n"), "E501", 0, 0 },
    { __LINE__, S("ABCDEFGHIJKLMNOPQRSTUVWXYZ-!#$%&'"), "E501", 0, 0 },
    { __LINE__, S("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), "E505", 0, 0 },
    { __LINE__, S("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), "E505", 0, 0 },
    { __LINE__, S("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), "E505", 0, 0 },
    { __LINE__, S("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET / HTTP/11\r\nHost: a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET / http/1.1\r\nHost: a\r\n\r\n"), "E400", 0, 0 },
    { __LINE__, S("GET / HTTP/1.x\r\nHost: a\r\n\r\n"), "E400", 0, 0 },
    /* ---- limits (small: request line 64, head 256, 4 fields) */
    { __LINE__, S("GET /012345678901234567890123456789012345678901234567 HTTP/1.1\r\nHost: a\r\n\r\n"),
      "T=/012345678901234567890123456789012345678901234567", LIM_SMALL, 0 }, /* line == 64 */
    { __LINE__, S("GET /0123456789012345678901234567890123456789012345678 HTTP/1.1\r\nHost: a\r\n\r\n"),
      "E414", LIM_SMALL, 0 },
    { __LINE__, S("GET /01234567890123456789012345678901234567890123456789012345678"),
      "E414", LIM_SMALL, 0 }, /* 64 bytes, no CRLF yet: no need to wait */
    { __LINE__, S("GET /012345678901234567890123456789012345678901234567 HTTP/1.1\r"),
      "AGAIN", LIM_SMALL, 0 }, /* 63 bytes */
    { __LINE__, S("GET /012345678901234567890123456789012345678901234567 HTTP/1.1\r\n"),
      "AGAIN", LIM_SMALL, 0 },
    { __LINE__, S("\r\n\r\nGET /012345678901234567890123456789012345678901234567 HTTP/1.1\r\nHost: a\r\n\r\n"),
      "HL=79", LIM_SMALL, 0 }, /* empty lines do not count toward the line */
    { __LINE__, S(GET11 "A: 1\r\nB: 2\r\nC: 3\r\n\r\n"), "N=4", LIM_SMALL, 0 },
    { __LINE__, S(GET11 "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"), "E431", LIM_SMALL, 0 },
    { __LINE__, S(GET11 "A: 012345678901234567890123456789012345678901234567890123456789\r\n"
                  "B: 012345678901234567890123456789012345678901234567890123456789\r\n"
                  "C: 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123\r\n\r\n"),
      "HL=256", LIM_SMALL, 0 },
    { __LINE__, S(GET11 "A: 012345678901234567890123456789012345678901234567890123456789\r\n"
                  "B: 012345678901234567890123456789012345678901234567890123456789\r\n"
                  "C: 01234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234\r\n\r\n"),
      "E431", LIM_SMALL, 0 },
    { __LINE__, S(GET11 "A: 012345678901234567890123456789012345678901234567890123456789\r\n"
                  "B: 012345678901234567890123456789012345678901234567890123456789\r\n"
                  "C: 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123\r\n\r"),
      "AGAIN", LIM_SMALL, 0 },
    { __LINE__, S(GET11 "A: 012345678901234567890123456789012345678901234567890123456789\r\n"
                  "B: 012345678901234567890123456789012345678901234567890123456789\r\n"
                  "C: 01234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234\r\n\r"),
      "E431", LIM_SMALL, 0 }, /* 256 bytes, not done: no need to wait */
};

static const struct tcase responses[] = {
    /* ---- valid */
    { __LINE__, S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
      "S=200|R=OK|V=1|CGI=0|B=len|CL=5|KA=1|N=1|HL=38|M=|T=|H=", 0, 0 },
    { __LINE__, S("HTTP/1.1 204\r\n\r\n"), "S=204|R=|B=none|KA=1|HL=16", 0, 0 },
    { __LINE__, S("HTTP/1.1 200 \r\n\r\n"), "S=200|R=|B=close|KA=0", 0, 0 },
    { __LINE__, S("HTTP/1.0 404 Not  Found \x80\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"),
      "S=404|R=Not  Found \x80|V=0|B=len|KA=1", 0, 0 },
    { __LINE__, S("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n"), "V=0|KA=0", 0, 0 },
    { __LINE__, S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), "B=chunked|KA=1", 0, 0 },
    /* a transfer coding other than chunked would reach the client unlabelled */
    { __LINE__, S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n"), "KA=0|CC=1|B=len", 0, 0 },
    { __LINE__, S("HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"), "S=304|B=none", 0, 0 },
    { __LINE__, S("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n"), "B=none", 0, 0 },
    { __LINE__, S("HTTP/1.1 100 Continue\r\n\r\n"), "S=100|B=none", 0, 0 },
    { __LINE__, S("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
      "S=101|UP=1|B=none", 0, 0 },
    { __LINE__, S("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n"), "B=none", 0, ATR_M_HEAD },
    { __LINE__, S("HTTP/1.1 200 OK\r\n\r\n"), "B=none", 0, ATR_M_CONNECT },
    { __LINE__, S("HTTP/1.1 407 Auth\r\nContent-Length: 3\r\n\r\n"), "B=len|CL=3", 0, ATR_M_CONNECT },
    { __LINE__, S("HTTP/1.1 599 x\r\n\r\n"), "S=599", 0, 0 },
    { __LINE__, S("Content-Type: text/html\r\n\r\n"), "CGI=1|S=200|R=|V=1|B=close|LOC=|N=1", 0, 0 },
    { __LINE__, S("Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\n"),
      "CGI=1|S=404|R=Not Found|B=close", 0, 0 },
    { __LINE__, S("Status: 201\r\nContent-Length: 2\r\n\r\nok"), "CGI=1|S=201|R=|B=len|CL=2|KA=1", 0, 0 },
    { __LINE__, S("Location: http://x/y\r\n\r\n"), "CGI=1|S=302|LOC=http://x/y", 0, 0 },
    { __LINE__, S("Location: /local\r\nStatus: 301 Moved\r\n\r\n"), "CGI=1|S=301|R=Moved|LOC=/local", 0, 0 },
    { __LINE__, S("HTTP-Foo: x\r\n\r\n"), "CGI=1|h0=HTTP-Foo:x", 0, 0 },
    { __LINE__, S("HTTP\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1 302 Found\r\nLocation: /x\r\nStatus: 200\r\n\r\n"), "S=302|LOC=|CGI=0", 0, 0 },
    /* ---- incomplete */
    { __LINE__, S(""), "AGAIN", 0, 0 },
    { __LINE__, S("HTTP"), "AGAIN", 0, 0 },
    { __LINE__, S("HTTP/1.1 200 OK\r\n"), "AGAIN", 0, 0 },
    /* ---- invalid: all 502 */
    { __LINE__, S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1 304 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1 200 OK\nContent-Length: 1\n\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1 200 OK\r\nX : a\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1 200 OK\r\nX: a\0\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1 200 O\x01K\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1 2000 OK\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1 20 OK\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1 600 OK\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1 099 OK\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1 abc OK\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1  200 OK\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/2.0 200 OK\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("\r\n"), "E502", 0, 0 },
    { __LINE__, S("\r\nHTTP/1.1 200 OK\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("Status: abc\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("Status: 99\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("Status: 600\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("Status: 2000\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("Status: 200\r\nStatus: 200\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("Location: /a\r\nLocation: /b\r\n\r\n"), "E502", 0, 0 },
    { __LINE__, S("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n"), "E502", LIM_SMALL, 0 },
    { __LINE__, S("HTTP/1.1 200 OK\r\nA: 0123456789012345678901234567890123456789012345678901234567890123456789"
                  "0123456789012345678901234567890123456789012345678901234567890123456789"
                  "0123456789012345678901234567890123456789012345678901234567890123456789"
                  "0123456789012345678901234567890123456789012345678901234567890123456789\r\n\r\n"),
      "E502", LIM_SMALL, 0 },
};

/* Pipelining: bytes after head_len belong to the next message, and the
 * parser is reusable after reset. */
static void test_pipelined(void)
{
    static const char in[] = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
                             "POST /b HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\n\r\nxy"
                             "GET /c HTTP/1.1\r\nHost: c\r\n\r\n";
    static atr_http_msg_t m;
    atr_http_parser_t *p = atr_http_parser_new(0, NULL);
    int status = 0, rc;
    const char *reason = NULL;
    size_t off = 0;

    rc = atr_http_parse(p, in, sizeof in - 1, &m, &status, &reason);
    T_CHECK(__LINE__, rc == ATR_DONE && m.head_len == 28 && m.target.n == 2 &&
            memcmp(m.target.p, "/a", 2) == 0, "first: rc %d len %u", rc, m.head_len);
    off += m.head_len;
    atr_http_parser_reset(p);
    rc = atr_http_parse(p, in + off, sizeof in - 1 - off, &m, &status, &reason);
    T_CHECK(__LINE__, rc == ATR_DONE && m.body == ATR_BODY_LENGTH && m.content_length == 2 &&
            m.host.n == 1 && m.host.p[0] == 'b', "second: rc %d", rc);
    off += m.head_len + 2;
    atr_http_parser_reset(p);
    rc = atr_http_parse(p, in + off, sizeof in - 1 - off, &m, &status, &reason);
    T_CHECK(__LINE__, rc == ATR_DONE && off + m.head_len == sizeof in - 1 && m.host.p[0] == 'c',
            "third: rc %d", rc);
    /* Reset after an error gives a clean parser. */
    atr_http_parser_reset(p);
    rc = atr_http_parse(p, "GET  /", 6, &m, &status, &reason);
    T_CHECK(__LINE__, rc == ATR_ERROR && status == 400, "rc %d status %d", rc, status);
    rc = atr_http_parse(p, "GET  / HTTP/1.1\r\n", 17, &m, &status, &reason);
    T_CHECK(__LINE__, rc == ATR_ERROR && status == 400, "error is sticky: rc %d", rc);
    atr_http_parser_reset(p);
    rc = atr_http_parse(p, in, 28, &m, &status, &reason);
    T_CHECK(__LINE__, rc == ATR_DONE, "after reset: rc %d", rc);
    /* Reset in the middle of a head. */
    atr_http_parser_reset(p);
    rc = atr_http_parse(p, "POST /x HTTP/1.1\r\nHo", 20, &m, &status, &reason);
    T_CHECK(__LINE__, rc == ATR_AGAIN, "rc %d", rc);
    atr_http_parser_reset(p);
    rc = atr_http_parse(p, in, 28, &m, &status, &reason);
    T_CHECK(__LINE__, rc == ATR_DONE && m.method == ATR_M_GET, "after mid reset: rc %d", rc);
    atr_http_parser_free(p);
}

/* Response parser: the request method survives reset (1xx then final). */
static void test_response_reuse(void)
{
    static atr_http_msg_t m;
    static const char r1[] = "HTTP/1.1 100 Continue\r\n\r\n";
    static const char r2[] = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n";
    atr_http_parser_t *p = atr_http_parser_new(1, NULL);
    int status = 0, rc;
    const char *reason = NULL;
    atr_http_parser_set_request_method(p, ATR_M_HEAD);
    rc = atr_http_parse(p, r1, sizeof r1 - 1, &m, &status, &reason);
    T_CHECK(__LINE__, rc == ATR_DONE && m.status == 100 && m.body == ATR_BODY_NONE, "rc %d", rc);
    atr_http_parser_reset(p);
    rc = atr_http_parse(p, r2, sizeof r2 - 1, &m, &status, &reason);
    T_CHECK(__LINE__, rc == ATR_DONE && m.status == 200 && m.body == ATR_BODY_NONE, "rc %d", rc);
    atr_http_parser_set_request_method(p, ATR_M_GET);
    atr_http_parser_reset(p);
    rc = atr_http_parse(p, r2, sizeof r2 - 1, &m, &status, &reason);
    T_CHECK(__LINE__, rc == ATR_DONE && m.body == ATR_BODY_LENGTH && m.content_length == 9,
            "rc %d", rc);
    atr_http_parser_free(p);
}

static void test_helpers(void)
{
    static atr_http_msg_t m;
    static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Keep-Alive\r\n"
                             "connection: ,TE,\r\nX-Custom-Header: v\r\n\r\n";
    atr_http_parser_t *p = atr_http_parser_new(0, NULL);
    int status = 0, rc, c;
    const char *reason = NULL;
    const atr_http_header_t *h;
    rc = atr_http_parse(p, in, sizeof in - 1, &m, &status, &reason);
    T_CHECK(__LINE__, rc == ATR_DONE, "rc %d", rc);
    h = atr_http_find(&m, "x-custom-header");
    T_CHECK(__LINE__, h != NULL && h->value.n == 1 && h->value.p[0] == 'v', "find");
    T_CHECK(__LINE__, atr_http_find(&m, "x-custom") == NULL, "prefix must not match");
    T_CHECK(__LINE__, atr_http_find(&m, "host") == &m.headers[0], "first");
    T_CHECK(__LINE__, atr_http_connection_has(&m, "keep-alive"), "keep-alive");
    T_CHECK(__LINE__, atr_http_connection_has(&m, "te"), "te in second line");
    T_CHECK(__LINE__, atr_http_connection_has(&m, "foo"), "foo");
    T_CHECK(__LINE__, !atr_http_connection_has(&m, "close"), "close");
    T_CHECK(__LINE__, !atr_http_connection_has(&m, "fo"), "fo");
    for (c = 0; c < 256; c++) {
        int want = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                   (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
        T_CHECK(__LINE__, !atr_http_is_tchar((unsigned char)c) == !want, "tchar %d", c);
    }
    T_CHECK(__LINE__, atr_http_method_from(ATR_STR("OPTIONS")) == ATR_M_OPTIONS, "OPTIONS");
    T_CHECK(__LINE__, atr_http_method_from(ATR_STR("get")) == ATR_M_OTHER, "case-sensitive");
    atr_http_parser_free(p);
}

/* Field kinds: every name the filters and encoders treat specially gets its
 * kind whatever its case, everything else (prefixes included) is OTHER. */
static void test_field_kinds(void)
{
    static atr_http_msg_t m;
    static const struct { const char *name; enum atr_http_hkind kind; } want[] = {
        { "TE", ATR_HK_HOP }, { "Via", ATR_HK_VIA }, { "host", ATR_HK_HOST },
        { "Expect", ATR_HK_EXPECT }, { "Status", ATR_HK_STATUS },
        { "UPGRADE", ATR_HK_UPGRADE }, { "Trailer", ATR_HK_HOP },
        { "Forwarded", ATR_HK_FORWARDED }, { "Connection", ATR_HK_CONNECTION },
        { "Keep-Alive", ATR_HK_HOP }, { "Content-Length", ATR_HK_CONTENT_LENGTH },
        { "X-Forwarded-For", ATR_HK_X_FORWARDED_FOR },
        { "X-Forwarded-Host", ATR_HK_X_FORWARDED_HOST },
        { "Proxy-Connection", ATR_HK_HOP },
        { "X-Forwarded-Proto", ATR_HK_X_FORWARDED_PROTO },
        { "Proxy-Authenticate", ATR_HK_HOP }, { "Proxy-Authorization", ATR_HK_HOP },
        { "Location", ATR_HK_LOCATION },
        { "Vias", ATR_HK_OTHER }, { "X-Forwarded-Fo", ATR_HK_OTHER },
        { "Content-Type", ATR_HK_OTHER }, { "Hosts", ATR_HK_OTHER },
        /* '_' and '^' are tchars that OR 0x20 does not fold onto '-' or 't' */
        { "X_Forwarded_For", ATR_HK_OTHER }, { "Content_Length", ATR_HK_OTHER },
        { "Hos^", ATR_HK_OTHER },
        /* past the 16 bytes the vector scan takes, a tchar it leaves to the table */
        { "X-Very-Long-Name-With_Underscore!", ATR_HK_OTHER },
    };
    char in[1024];
    size_t n = (size_t)snprintf(in, sizeof in, "GET / HTTP/1.1\r\n");
    for (size_t i = 0; i < ATR_ARRAY_SIZE(want); i++)
        n += (size_t)snprintf(in + n, sizeof in - n, "%s: %s\r\n", want[i].name,
                              want[i].kind == ATR_HK_HOST ? "a" : want[i].kind == ATR_HK_CONNECTION
                              ? "keep-alive, Upgrade" : "1");
    n += (size_t)snprintf(in + n, sizeof in - n, "\r\n");
    atr_http_limits_t lim = { 0, 0, 64 };
    atr_http_parser_t *p = atr_http_parser_new(0, &lim);
    int status = 0, rc;
    const char *reason = NULL;
    uint32_t seen = 0;
    rc = atr_http_parse(p, in, n, &m, &status, &reason);
    T_CHECK(__LINE__, rc == ATR_DONE, "rc %d (%d %s)", rc, status, reason ? reason : "");
    T_CHECK(__LINE__, m.nheaders == ATR_ARRAY_SIZE(want), "%u fields", m.nheaders);
    for (uint32_t i = 0; rc == ATR_DONE && i < m.nheaders; i++) {
        T_CHECK(__LINE__, m.hkind[i] == want[i].kind, "%s: kind %d, want %d", want[i].name,
                m.hkind[i], want[i].kind);
        seen |= ATR_HK_BIT(want[i].kind);
    }
    T_CHECK(__LINE__, m.hkinds == seen, "hkinds %#x, want %#x", m.hkinds, seen);
    T_CHECK(__LINE__, !m.conn_lists, "keep-alive and upgrade list no field of their own");
    static const char listing[] = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-A\r\n\r\n";
    atr_http_parser_reset(p);
    rc = atr_http_parse(p, listing, sizeof listing - 1, &m, &status, &reason);
    T_CHECK(__LINE__, rc == ATR_DONE && m.conn_lists, "Connection: X-A lists a field");
    T_CHECK(__LINE__, m.hkinds == (ATR_HK_BIT(ATR_HK_HOST) | ATR_HK_BIT(ATR_HK_CONNECTION)),
            "hkinds of the next message %#x", m.hkinds);
    atr_http_parser_free(p);
}

/* A 30 KB head fed one byte per call (the tokenizer resumes where it
 * stopped; nothing is rescanned). */
static void test_linear(void)
{
    static atr_http_msg_t m;
    static char buf[30000];
    atr_http_limits_t lim = { 8192, 32768, 256 };
    atr_http_parser_t *p = atr_http_parser_new(0, &lim);
    size_t n = 0, i;
    int status = 0, rc = ATR_AGAIN;
    const char *reason = NULL;
    n += (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (i = 0; n < sizeof buf - 200; i++)
        n += (size_t)sprintf(buf + n, "X-%zu: %0200d\r\n", i, 7);
    n += (size_t)sprintf(buf + n, "\r\n");
    for (i = 1; i <= n && rc == ATR_AGAIN; i++)
        rc = atr_http_parse(p, buf, i, &m, &status, &reason);
    T_CHECK(__LINE__, rc == ATR_DONE && m.head_len == n, "rc %d status %d", rc, status);
    atr_http_parser_free(p);
}

static void bench(void)
{
    static atr_http_msg_t m;
    static const char head[] =
        "GET /api/v1/users/12345/profile?fields=name,email,avatar&lang=en HTTP/1.1\r\n"
        "Host: www.example.com\r\n"
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
        "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
        "Accept-Language: en-US,en;q=0.5\r\n"
        "Accept-Encoding: gzip, deflate, br\r\n"
        "Referer: https://www.example.com/home\r\n"
        "Cookie: session=abcdef0123456789; theme=dark\r\n"
        "Connection: keep-alive\r\n"
        "Upgrade-Insecure-Requests: 1\r\n"
        "Cache-Control: max-age=0\r\n"
        "\r\n";
    atr_http_parser_t *p = atr_http_parser_new(0, NULL);
    struct timespec a, b;
    int status, i, n = 1000000;
    const char *reason;
    double s;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (i = 0; i < n; i++) {
        atr_http_parser_reset(p);
        if (atr_http_parse(p, head, sizeof head - 1, &m, &status, &reason) != ATR_DONE)
            abort();
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    printf("%zu-byte head, %u fields: %.0f heads/s, %.1f ns/head, %.0f MB/s\n", sizeof head - 1,
           m.nheaders, n / s, s * 1e9 / n, (double)(sizeof head - 1) * n / s / 1e6);
    atr_http_parser_free(p);
}

/* CGI-family output: LF alone ends lines when the backend is a script. */
static void test_lenient_lf(void)
{
    static const struct {
        int line;
        const char *in;
        size_t len;
        int rc, status, cgi, lf_only;
    } cases[] = {
        { __LINE__, S("Content-Type: text/plain\nX-A: 1\n\nbody"), ATR_DONE, 200, 1, 1 },
        { __LINE__, S("Status: 404 Not Found\n\n"), ATR_DONE, 404, 1, 1 },
        { __LINE__, S("HTTP/1.1 202 Accepted\nX: y\n\n"), ATR_DONE, 202, 0, 1 },
        { __LINE__, S("HTTP/1.1 202\n\n"), ATR_DONE, 202, 0, 1 },
        { __LINE__, S("HTTP/1.1 202 \nX: y\n\n"), ATR_DONE, 202, 0, 1 },
        { __LINE__, S("HTTP/1.1\n\n"), ATR_ERROR, 502, 0, 0 },
        { __LINE__, S("HTTP/1.1 \n\n"), ATR_ERROR, 502, 0, 0 },
        { __LINE__, S("Location: /x\r\nX: 1\n\n"), ATR_DONE, 302, 1, 1 },
        { __LINE__, S("X: 1\r\n\r\n"), ATR_DONE, 200, 1, 0 },
        { __LINE__, S("X: a\rb\n\n"), ATR_ERROR, 502, 0, 0 },
        { __LINE__, S("X: a\0b\n\n"), ATR_ERROR, 502, 0, 0 },
        { __LINE__, S("X : a\n\n"), ATR_ERROR, 502, 0, 0 },
        { __LINE__, S(" X: a\n\n"), ATR_ERROR, 502, 0, 0 },
    };
    atr_http_msg_t *m = malloc(sizeof *m);
    for (size_t i = 0; i < ATR_ARRAY_SIZE(cases); i++) {
        atr_http_parser_t *p = atr_http_parser_new(1, NULL);
        atr_http_parser_t *strict = atr_http_parser_new(1, NULL);
        atr_http_parser_set_lenient_lf(p, 1);
        int status = 0;
        const char *why = NULL;
        int rc = atr_http_parse(p, cases[i].in, cases[i].len, m, &status, &why);
        T_CHECK(cases[i].line, rc == cases[i].rc, "rc %d (%s)", rc, why ? why : "");
        if (rc == ATR_DONE) {
            T_CHECK(cases[i].line, m->status == cases[i].status, "status %d", m->status);
            T_CHECK(cases[i].line, m->cgi_form == cases[i].cgi, "cgi_form %d", m->cgi_form);
        } else if (rc == ATR_ERROR) {
            T_CHECK(cases[i].line, status == cases[i].status, "status %d", status);
        }
        /* Without the flag, LF-only output is refused. */
        if (cases[i].lf_only)
            T_CHECK(cases[i].line,
                    atr_http_parse(strict, cases[i].in, cases[i].len, m, &status, &why) ==
                        ATR_ERROR, "the strict parser accepted LF-only lines");
        atr_http_parser_free(strict);
        atr_http_parser_free(p);
    }
    free(m);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) {
        bench();
        return 0;
    }
    run_cases(0, requests, ATR_ARRAY_SIZE(requests));
    run_cases(1, responses, ATR_ARRAY_SIZE(responses));
    test_pipelined();
    test_response_reuse();
    test_helpers();
    test_field_kinds();
    test_linear();
    test_lenient_lf();
    T_DONE();
}
