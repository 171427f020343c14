/* Chunked decoder: a table of bodies, each fed whole, split in two at every
 * offset, and one byte at a time (each piece in its own buffer, so the data
 * views must point into the piece they came from); all must agree on the
 * result, the decoded data and where the body ended. */
#include "http/chunked.h"
#include "t.h"

#include <stdlib.h>

#define S(lit) lit, sizeof(lit) - 1

struct ccase {
    int line;
    const char *in;
    size_t len;
    int rc;            /* final: ATR_DONE, ATR_ERROR, or ATR_AGAIN (input ran out) */
    const char *data;  /* all data bytes handed out (before the error, if any) */
    size_t consumed;   /* ATR_DONE: where the next message starts */
    uint32_t max_line; /* 0: default */
    uint32_t max_trailer;
};

struct result {
    int rc;
    char data[4096];
    size_t ndata;
    size_t consumed;
    int stuck;
};

static void init(atr_chunked_t *d, const struct ccase *c)
{
    atr_chunked_init(d);
    if (c->max_line)
        d->max_line = c->max_line;
    if (c->max_trailer)
        d->max_trailer = c->max_trailer;
}

/* Feed in[from..to) as one piece in its own buffer. Returns 1 when finished. */
static int feed(atr_chunked_t *d, const char *in, size_t from, size_t to, struct result *r)
{
    size_t n = to - from, off = 0;
    char *piece = malloc(n ? n : 1);
    int fin = 0;
    memcpy(piece, in + from, n);
    while (off < n) {
        size_t used = 0;
        atr_str_t data = { NULL, 0 };
        int rc = atr_chunked_decode(d, piece + off, n - off, &used, &data);
        if (data.n) {
            if (data.p < piece + off || data.p + data.n > piece + off + used) {
                r->stuck = 1; /* data must be inside what was consumed */
                fin = 1;
                break;
            }
            memcpy(r->data + r->ndata, data.p, data.n);
            r->ndata += data.n;
        }
        off += used;
        r->rc = rc;
        if (rc == ATR_DONE) {
            r->consumed = from + off;
            fin = 1;
            break;
        }
        if (rc == ATR_ERROR) {
            fin = 1;
            break;
        }
        if (used == 0) {
            r->stuck = 1;
            fin = 1;
            break;
        }
    }
    free(piece);
    return fin;
}

static void run(const struct ccase *c, const size_t *cuts, size_t ncuts, struct result *r)
{
    atr_chunked_t d;
    size_t i, from = 0;
    memset(r, 0, sizeof *r);
    r->rc = ATR_AGAIN;
    init(&d, c);
    for (i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : c->len;
        if (feed(&d, c->in, from, to, r))
            return;
        from = to;
    }
}

static int same(const struct result *a, const struct result *b)
{
    return a->rc == b->rc && a->ndata == b->ndata && memcmp(a->data, b->data, a->ndata) == 0 &&
           a->consumed == b->consumed && !a->stuck && !b->stuck;
}

static const struct ccase cases[] = {
    /* ---- valid */
    { __LINE__, S("5\r\nhello\r\n0\r\n\r\n"), ATR_DONE, "hello", 15, 0, 0 },
    { __LINE__, S("5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), ATR_DONE, "hello", 15, 0, 0 },
    { __LINE__, S("1\r\na\r\n2\r\nbc\r\n3\r\ndef\r\n0\r\n\r\n"), ATR_DONE, "abcdef", 26, 0, 0 },
    { __LINE__, S("A\r\n0123456789\r\na\r\n9876543210\r\n0\r\n\r\n"), ATR_DONE,
      "01234567899876543210", 35, 0, 0 },
    { __LINE__, S("0005\r\nhello\r\n0000\r\n\r\n"), ATR_DONE, "hello", 21, 0, 0 },
    { __LINE__, S("00000000000000000000001\r\nx\r\n0\r\n\r\n"), ATR_DONE, "x", 33, 0, 0 },
    { __LINE__, S("5;foo=bar\r\nhello\r\n0;last\r\n\r\n"), ATR_DONE, "hello", 28, 0, 0 },
    { __LINE__, S("5 ;a=\"b c\"\r\nhello\r\n0\r\n\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S("5;a=\"b c\"; d\r\nhello\r\n0\r\n\r\n"), ATR_DONE, "hello", 26, 0, 0 },
    { __LINE__, S("5;\x80\xff\r\nhello\r\n0\r\n\r\n"), ATR_DONE, "hello", 18, 0, 0 },
    { __LINE__, S("0\r\nX-Trailer: v\r\nY:z\r\nZ:\r\n\r\n"), ATR_DONE, "", 28, 0, 0 },
    { __LINE__, S("3\r\nabc\r\n0\r\nChecksum: 1234 \t\r\n\r\nnext"), ATR_DONE, "abc", 31, 0, 0 },
    { __LINE__, S("0\r\n\r\n"), ATR_DONE, "", 5, 0, 0 },
    /* ---- incomplete */
    { __LINE__, S(""), ATR_AGAIN, "", 0, 0, 0 },
    { __LINE__, S("5\r\nhel"), ATR_AGAIN, "hel", 0, 0, 0 },
    { __LINE__, S("5\r\nhello\r\n0\r\n"), ATR_AGAIN, "hello", 0, 0, 0 },
    { __LINE__, S("fffffffffffffff\r\nabc"), ATR_AGAIN, "abc", 0, 0, 0 },
    { __LINE__, S("FFFFFFFFFFFFFFF\r\nabc"), ATR_AGAIN, "abc", 0, 0, 0 },
    /* ---- size line */
    { __LINE__, S("1000000000000000\r\nabc"), ATR_ERROR, "", 0, 0, 0 },   /* 16 digits */
    { __LINE__, S("ffffffffffffffffffff\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S("g\r\nabc"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S(" 5\r\nhello\r\n0\r\n\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S("5 \r\nhello\r\n0\r\n\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S("5\t\r\nhello\r\n0\r\n\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S("-5\r\nhello\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S("+5\r\nhello\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S("0x5\r\nhello\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S("\r\n5\r\nhello\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S(";x\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S("5;a\x01\r\nhello\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S("5;a\0\r\nhello\r\n"), ATR_ERROR, "", 0, 0, 0 },
    /* ---- line ends */
    { __LINE__, S("5\nhello\r\n0\r\n\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S("5;x\nhello\r\n0\r\n\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S("5\rhello\r\n0\r\n\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S("5\r\nhello\n0\r\n\r\n"), ATR_ERROR, "hello", 0, 0, 0 },
    { __LINE__, S("5\r\nhello\r0\r\n\r\n"), ATR_ERROR, "hello", 0, 0, 0 },
    { __LINE__, S("5\r\nhelloX\r\n0\r\n\r\n"), ATR_ERROR, "hello", 0, 0, 0 },
    { __LINE__, S("3\r\nhello\r\n0\r\n\r\n"), ATR_ERROR, "hel", 0, 0, 0 },
    { __LINE__, S("5\r\nhello\r\n0\r\n\n"), ATR_ERROR, "hello", 0, 0, 0 },
    { __LINE__, S("5\r\nhello\r\n0\n\r\n"), ATR_ERROR, "hello", 0, 0, 0 },
    { __LINE__, S("0\r\n\rx"), ATR_ERROR, "", 0, 0, 0 },
    /* ---- trailers */
    { __LINE__, S("0\r\nX: y\n\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S("0\r\nX: y\r\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S("0\r\nX: a\r\n b\r\n\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S("0\r\n\tX: a\r\n\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S("0\r\nX\r\n\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S("0\r\n: a\r\n\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S("0\r\nX : a\r\n\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S("0\r\nX: a\0\r\n\r\n"), ATR_ERROR, "", 0, 0, 0 },
    { __LINE__, S("0\r\nX(: a\r\n\r\n"), ATR_ERROR, "", 0, 0, 0 },
    /* ---- limits */
    { __LINE__, S("5;abcdef\r\nhello\r\n0\r\n\r\n"), ATR_DONE, "hello", 22, 8, 0 },   /* line == 8 */
    { __LINE__, S("5;abcdefg\r\nhello\r\n0\r\n\r\n"), ATR_ERROR, "", 0, 8, 0 },
    { __LINE__, S("0000000005\r\nhello\r\n0\r\n\r\n"), ATR_ERROR, "", 0, 8, 0 },
    { __LINE__, S("5;abcdefg"), ATR_ERROR, "", 0, 8, 0 }, /* no need to wait for CR */
    { __LINE__, S("0\r\nAB: 12\r\n\r\n"), ATR_DONE, "", 13, 0, 8 },   /* trailer == 8 */
    { __LINE__, S("0\r\nAB: 123\r\n\r\n"), ATR_ERROR, "", 0, 0, 8 },
    { __LINE__, S("0\r\nA: 1\r\nB: 2\r\n\r\n"), ATR_ERROR, "", 0, 0, 8 },
};

static void test_table(void)
{
    size_t i, k;
    for (i = 0; i < ATR_ARRAY_SIZE(cases); i++) {
        const struct ccase *c = &cases[i];
        struct result whole, other;
        size_t *cuts = malloc((c->len + 1) * sizeof *cuts);
        run(c, NULL, 0, &whole);
        T_CHECK(c->line, !whole.stuck, "no progress");
        T_CHECK(c->line, whole.rc == c->rc, "rc %d, want %d", whole.rc, c->rc);
        T_CHECK(c->line, whole.ndata == strlen(c->data) &&
                memcmp(whole.data, c->data, whole.ndata) == 0,
                "data '%.*s', want '%s'", (int)whole.ndata, whole.data, c->data);
        T_CHECK(c->line, c->rc != ATR_DONE || whole.consumed == c->consumed,
                "consumed %zu, want %zu", whole.consumed, c->consumed);
        for (k = 0; k <= c->len; k++) {
            run(c, &k, 1, &other);
            if (!same(&whole, &other)) {
                T_CHECK(c->line, 0, "split at %zu differs: rc %d data %zu consumed %zu", k,
                        other.rc, other.ndata, other.consumed);
                break;
            }
        }
        for (k = 0; k < c->len; k++)
            cuts[k] = k + 1;
        run(c, cuts, c->len ? c->len - 1 : 0, &other);
        T_CHECK(c->line, same(&whole, &other), "byte-at-a-time differs: rc %d data %zu",
                other.rc, other.ndata);
        free(cuts);
    }
}

/* Once done (or failed), the decoder stays so and consumes nothing. */
static void test_sticky(void)
{
    atr_chunked_t d;
    size_t used = 99;
    atr_str_t data;
    int rc;
    atr_chunked_init(&d);
    rc = atr_chunked_decode(&d, "0\r\n\r\n", 5, &used, &data);
    T_CHECK(__LINE__, rc == ATR_DONE && used == 5, "rc %d used %zu", rc, used);
    rc = atr_chunked_decode(&d, "5\r\n", 3, &used, &data);
    T_CHECK(__LINE__, rc == ATR_DONE && used == 0 && data.n == 0, "rc %d used %zu", rc, used);
    atr_chunked_init(&d);
    rc = atr_chunked_decode(&d, "x", 1, &used, &data);
    T_CHECK(__LINE__, rc == ATR_ERROR, "rc %d", rc);
    rc = atr_chunked_decode(&d, "0\r\n\r\n", 5, &used, &data);
    T_CHECK(__LINE__, rc == ATR_ERROR && data.n == 0, "rc %d", rc);
    /* A big chunk streams through in pieces without copying. */
    {
        static char big[100000];
        atr_chunked_init(&d);
        rc = atr_chunked_decode(&d, "186a0\r\n", 7, &used, &data);
        T_CHECK(__LINE__, rc == ATR_AGAIN && used == 7 && data.n == 0, "rc %d", rc);
        rc = atr_chunked_decode(&d, big, 60000, &used, &data);
        T_CHECK(__LINE__, rc == ATR_AGAIN && used == 60000 && data.p == big && data.n == 60000,
                "rc %d n %zu", rc, data.n);
        rc = atr_chunked_decode(&d, big, 40000, &used, &data);
        T_CHECK(__LINE__, rc == ATR_AGAIN && data.n == 40000, "rc %d", rc);
        rc = atr_chunked_decode(&d, "\r\n0\r\n\r\n", 7, &used, &data);
        T_CHECK(__LINE__, rc == ATR_DONE && used == 7, "rc %d", rc);
    }
}

static void test_size_line(void)
{
    static const struct {
        int line;
        uint64_t n;
        const char *want;
    } t[] = {
        { __LINE__, 0, "0\r\n" },
        { __LINE__, 1, "1\r\n" },
        { __LINE__, 255, "ff\r\n" },
        { __LINE__, 4096, "1000\r\n" },
        { __LINE__, UINT64_C(0x123456789abcdef0), "123456789abcdef0\r\n" },
        { __LINE__, UINT64_MAX, "ffffffffffffffff\r\n" },
    };
    size_t i;
    for (i = 0; i < ATR_ARRAY_SIZE(t); i++) {
        char out[24];
        size_t n = atr_chunked_size_line(out, t[i].n);
        T_CHECK(t[i].line, n == strlen(t[i].want) && memcmp(out, t[i].want, n) == 0,
                "got '%.*s'", (int)n, out);
    }
}

int main(void)
{
    test_table();
    test_sticky();
    test_size_line();
    T_DONE();
}
