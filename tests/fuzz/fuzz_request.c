/* libFuzzer target: HTTP/1.1 request heads (and, with FUZZ_RESPONSE defined,
 * backend responses: fuzz_response.c includes this file).
 *
 * The input is a byte stream on one connection: heads are parsed, bodies are
 * framed as the parser decided (Content-Length or chunked), and the next
 * message follows, up to MAX_MSGS. The stream is fed three ways:
 *   - all at once;
 *   - in two pieces split at a data-derived point, the buffer moving between
 *     the calls (the parser must keep offsets, not pointers);
 *   - one byte per call;
 * and all three must find the same messages, the same framing and the same
 * body bytes (a desync between them is exactly a smuggling bug). Every
 * parsed head is also checked for invariants and re-serialised canonically,
 * and the canonical form must parse to the same interpretation. */
#include "http/chunked.h"
#include "http/http_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef FUZZ_RESPONSE
#define IS_RESPONSE 1
#else
#define IS_RESPONSE 0
#endif

#define MAX_MSGS 8

static const atr_http_limits_t limits = { 200, 2000, 20 };

/* Responses: half the inputs run in the CGI-family mode (LF alone ends a
 * line), chosen from the input length like the request method. */
static int lenient_lf;

#include "fuzz.h"

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h * 0x100000001b3ULL;
}

static uint64_t mix_bytes(uint64_t h, const char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        h = mix(h, (unsigned char)p[i]);
    return mix(h, n);
}

/* Body bytes: the same hash however the bytes were split into calls. */
static uint64_t mix_stream(uint64_t h, const char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ULL;
    return h;
}

static int is_tchar(unsigned char c)
{
    return atr_http_is_tchar(c);
}

/* A digest of the interpretation: what must not change when the same head
 * is fed differently or re-serialised. */
static uint64_t interp_digest(const atr_http_msg_t *m)
{
    uint64_t h = 1;
    h = mix(h, (uint64_t)m->method);
    h = mix_bytes(h, m->method_str.p, m->method_str.n);
    h = mix_bytes(h, m->target.p, m->target.n);
    h = mix(h, (uint64_t)m->status);
    h = mix_bytes(h, m->reason.p, m->reason.n);
    h = mix(h, (uint64_t)m->version_minor);
    h = mix(h, (uint64_t)m->body);
    h = mix(h, m->content_length);
    h = mix_bytes(h, m->host.p, m->host.n);
    h = mix_bytes(h, m->location.p, m->location.n);
    h = mix(h, (uint64_t)(m->keep_alive | m->conn_close << 1 | m->upgrade << 2 |
                          m->expect_continue << 3));
    h = mix(h, m->nheaders);
    for (uint32_t i = 0; i < m->nheaders; i++) {
        h = mix_bytes(h, m->headers[i].name.p, m->headers[i].name.n);
        h = mix_bytes(h, m->headers[i].value.p, m->headers[i].value.n);
    }
    return h;
}

static void check_view(const char *buf, uint32_t head_len, atr_str_t v)
{
    CHECK(v.n == 0 || (v.p >= buf && v.p + v.n <= buf + head_len));
}

static void check_msg(const char *buf, size_t avail, const atr_http_msg_t *m)
{
    uint32_t i;
    if (lenient_lf) {
        /* the head ends with an empty line, CRLF or LF alone */
        CHECK(m->head_len >= 2 && m->head_len <= avail && m->head_len <= limits.max_head);
        CHECK(buf[m->head_len - 1] == '\n' &&
              (buf[m->head_len - 2] == '\n' ||
               (m->head_len >= 3 && buf[m->head_len - 2] == '\r' && buf[m->head_len - 3] == '\n')));
    } else {
        CHECK(m->head_len >= 4 && m->head_len <= avail && m->head_len <= limits.max_head);
        CHECK(memcmp(buf + m->head_len - 4, "\r\n\r\n", 4) == 0);
    }
    CHECK(m->nheaders <= limits.max_headers);
    CHECK(m->version_minor == 0 || m->version_minor == 1);
    CHECK(m->body <= ATR_BODY_UNTIL_CLOSE);
    for (i = 0; i < m->nheaders; i++) {
        atr_str_t n = m->headers[i].name, v = m->headers[i].value;
        check_view(buf, m->head_len, n);
        check_view(buf, m->head_len, v);
        CHECK(n.n > 0);
        for (size_t k = 0; k < n.n; k++)
            CHECK(is_tchar((unsigned char)n.p[k]));
        for (size_t k = 0; k < v.n; k++) {
            unsigned char c = (unsigned char)v.p[k];
            CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
        }
        if (v.n) {
            CHECK(v.p[0] != ' ' && v.p[0] != '\t');
            CHECK(v.p[v.n - 1] != ' ' && v.p[v.n - 1] != '\t');
        }
    }
    check_view(buf, m->head_len, m->host);
    check_view(buf, m->head_len, m->location);
    check_view(buf, m->head_len, m->reason);
    if (!IS_RESPONSE) {
        check_view(buf, m->head_len, m->method_str);
        check_view(buf, m->head_len, m->target);
        CHECK(m->method_str.n >= 1 && m->method_str.n <= 32);
        CHECK(m->target.n >= 1);
        CHECK(m->body != ATR_BODY_UNTIL_CLOSE);
        CHECK(m->body != ATR_BODY_CHUNKED || m->version_minor == 1);
        CHECK(m->body != ATR_BODY_CHUNKED || atr_http_find(m, "content-length") == NULL);
        CHECK(m->version_minor == 0 || m->host.n > 0);
    } else {
        CHECK(m->status >= 100 && m->status <= 599);
        CHECK(m->body != ATR_BODY_LENGTH || atr_http_find(m, "transfer-encoding") == NULL);
    }
}

/* Write the head canonically (what the proxy would forward) and parse it
 * again: same interpretation. */
static void check_reserialised(const atr_http_msg_t *m, enum atr_http_method req_method)
{
    static atr_http_msg_t m2;
    static char out[4096];
    size_t n = 0;
    uint32_t i;
    int rc, status = 0;
    const char *reason = NULL;
    atr_http_parser_t *p;
    atr_http_limits_t big = { 4096, 4096, limits.max_headers };

#define PUT(s, len)                                                           \
    do {                                                                      \
        CHECK(n + (len) <= sizeof out);                                       \
        memcpy(out + n, (s), (len));                                          \
        n += (len);                                                           \
    } while (0)
    if (!IS_RESPONSE) {
        PUT(m->method_str.p, m->method_str.n);
        PUT(" ", 1);
        PUT(m->target.p, m->target.n);
        PUT(m->version_minor ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n", 11);
    } else if (!m->cgi_form) {
        char sl[32];
        int k = snprintf(sl, sizeof sl, "HTTP/1.%d %03d ", m->version_minor, m->status);
        PUT(sl, (size_t)k);
        PUT(m->reason.p, m->reason.n);
        PUT("\r\n", 2);
    }
    for (i = 0; i < m->nheaders; i++) {
        PUT(m->headers[i].name.p, m->headers[i].name.n);
        PUT(": ", 2);
        PUT(m->headers[i].value.p, m->headers[i].value.n);
        PUT("\r\n", 2);
    }
    PUT("\r\n", 2);
#undef PUT
    p = atr_http_parser_new(IS_RESPONSE, &big);
    atr_http_parser_set_request_method(p, req_method);
    atr_http_parser_set_lenient_lf(p, lenient_lf);
    rc = atr_http_parse(p, out, n, &m2, &status, &reason);
    if (rc != ATR_DONE) {
        fprintf(stderr, "canonical head does not parse (%d %d %s):\n%.*s", rc, status,
                reason ? reason : "", (int)n, out);
        abort();
    }
    CHECK(m2.head_len == n);
    /* head_len and view addresses differ; everything else must not. */
    CHECK(interp_digest(m) == interp_digest(&m2));
    CHECK(m->cgi_form == m2.cgi_form);
    atr_http_parser_free(p);
}

/* One connection's worth of parsing over a growing buffer. */
struct conn {
    atr_http_parser_t *hp;
    atr_chunked_t ch;
    enum { C_HEAD, C_LENGTH, C_CHUNKED, C_CLOSE, C_END } state;
    uint64_t remaining;
    size_t start; /* first byte not yet consumed */
    int nmsgs;
    uint64_t digest;
    uint64_t body; /* all body bytes, streamed */
    enum atr_http_method req_method;
    int check; /* check invariants and re-serialise (first schedule only) */
};

static void conn_init(struct conn *c, enum atr_http_method req_method, int check)
{
    memset(c, 0, sizeof *c);
    c->hp = atr_http_parser_new(IS_RESPONSE, &limits);
    c->req_method = req_method;
    atr_http_parser_set_request_method(c->hp, req_method);
    atr_http_parser_set_lenient_lf(c->hp, lenient_lf);
    c->digest = 7;
    c->check = check;
}

/* buf[0..have) is everything received so far; consume what we can. */
static void conn_run(struct conn *c, const char *buf, size_t have)
{
    static atr_http_msg_t m;
    while (c->state != C_END && c->start < have) {
        size_t avail = have - c->start;
        const char *in = buf + c->start;
        switch (c->state) {
        case C_HEAD: {
            int status = 0;
            const char *reason = NULL;
            int rc = atr_http_parse(c->hp, in, avail, &m, &status, &reason);
            if (rc == ATR_AGAIN)
                return;
            if (rc == ATR_ERROR) {
                CHECK(reason != NULL);
                CHECK(IS_RESPONSE ? status == 502
                                  : (status == 400 || status == 414 || status == 431 ||
                                     status == 501 || status == 505));
                c->digest = mix(c->digest, 1000 + (uint64_t)status);
                c->state = C_END;
                return;
            }
            CHECK(rc == ATR_DONE);
            if (c->check) {
                check_msg(in, avail, &m);
                check_reserialised(&m, c->req_method);
            }
            c->digest = mix(c->digest, interp_digest(&m));
            c->digest = mix(c->digest, m.head_len);
            c->start += m.head_len;
            c->nmsgs++;
            if (m.body == ATR_BODY_LENGTH) {
                c->state = C_LENGTH;
                c->remaining = m.content_length;
            } else if (m.body == ATR_BODY_CHUNKED) {
                c->state = C_CHUNKED;
                atr_chunked_init(&c->ch);
            } else if (m.body == ATR_BODY_UNTIL_CLOSE) {
                c->state = C_CLOSE;
            }
            if (c->state == C_HEAD || (c->state == C_LENGTH && c->remaining == 0)) {
                c->state = c->nmsgs < MAX_MSGS ? C_HEAD : C_END;
                atr_http_parser_reset(c->hp);
            }
            break;
        }
        case C_LENGTH: {
            size_t take = avail < c->remaining ? avail : (size_t)c->remaining;
            c->body = mix_stream(c->body, in, take);
            c->remaining -= take;
            c->start += take;
            if (c->remaining == 0) {
                c->state = c->nmsgs < MAX_MSGS ? C_HEAD : C_END;
                atr_http_parser_reset(c->hp);
            }
            break;
        }
        case C_CHUNKED: {
            size_t used = 0;
            atr_str_t d = { NULL, 0 };
            int rc = atr_chunked_decode(&c->ch, in, avail, &used, &d);
            CHECK(used <= avail);
            CHECK(d.n == 0 || (d.p >= in && d.p + d.n <= in + used));
            c->body = mix_stream(c->body, d.p, d.n);
            c->start += used;
            if (rc == ATR_ERROR) {
                c->digest = mix(c->digest, 2000);
                c->state = C_END;
            } else if (rc == ATR_DONE) {
                c->state = c->nmsgs < MAX_MSGS ? C_HEAD : C_END;
                atr_http_parser_reset(c->hp);
            } else {
                CHECK(used > 0);
            }
            break;
        }
        case C_CLOSE:
            c->body = mix_stream(c->body, in, avail);
            c->start = have;
            return;
        case C_END:
            return;
        }
    }
}

static uint64_t conn_finish(struct conn *c)
{
    uint64_t d = mix(mix(mix(c->digest, c->body), (uint64_t)c->state), (uint64_t)c->nmsgs);
    atr_http_parser_free(c->hp);
    return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum atr_http_method methods[] = { ATR_M_GET, ATR_M_HEAD, ATR_M_CONNECT };
    const char *in = (const char *)data;
    enum atr_http_method rm = IS_RESPONSE ? methods[size % 3] : ATR_M_OTHER;
    lenient_lf = IS_RESPONSE && (size / 3) % 2;
    struct conn c;
    uint64_t whole, split, bytes;
    size_t k, i;
    char *a, *b, *one;

    /* All at once. */
    a = malloc(size ? size : 1);
    memcpy(a, in, size);
    conn_init(&c, rm, 1);
    conn_run(&c, a, size);
    whole = conn_finish(&c);
    free(a);

    /* Two pieces at a data-derived point; the buffer moves in between. */
    k = size ? (size_t)(data[0] * 131u + data[size - 1] * 7u + size) % (size + 1) : 0;
    a = malloc(k ? k : 1);
    memcpy(a, in, k);
    conn_init(&c, rm, 0);
    conn_run(&c, a, k);
    b = malloc(size ? size : 1);
    memcpy(b, in, size);
    free(a);
    conn_run(&c, b, size);
    split = conn_finish(&c);
    free(b);

    /* One byte per call. */
    one = malloc(size ? size : 1);
    memcpy(one, in, size);
    conn_init(&c, rm, 0);
    for (i = 1; i <= size; i++)
        conn_run(&c, one, i);
    bytes = conn_finish(&c);
    free(one);

    if (whole != split || whole != bytes) {
        fprintf(stderr, "feeding changed the result: whole %llx split@%zu %llx bytes %llx\n",
                (unsigned long long)whole, k, (unsigned long long)split,
                (unsigned long long)bytes);
        abort();
    }
    return 0;
}
