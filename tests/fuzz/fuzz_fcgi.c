/* libFuzzer target: the FastCGI record decoder (what an untrusted application
 * sends). The input is fed whole into a separate output buffer, in two
 * pieces split at a data-derived point (each piece in its own buffer,
 * decoded in place), and one byte per call; all three must produce the same
 * STDOUT, the same STDERR, the same result, end at the same offset and read
 * the same END_REQUEST statuses. */
#include "backends/fcgi_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

struct run {
    atr_fcgi_dec_t d;
    int rc;
    int fin;
    size_t end;    /* stream offset where DONE/ERROR left off */
    size_t fed;    /* stream offset of the next piece */
    uint64_t out_hash, err_hash;
    size_t nout, nerr;
};

static void hash(uint64_t *h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ (unsigned char)p[i]) * 1099511628211ULL;
}

static void on_err(void *arg, const char *p, size_t n)
{
    struct run *r = arg;
    CHECK(n > 0);
    hash(&r->err_hash, p, n);
    r->nerr += n;
}

static void start(struct run *r)
{
    memset(r, 0, sizeof *r);
    atr_fcgi_dec_init(&r->d, on_err, r);
    r->rc = ATR_AGAIN;
    r->out_hash = r->err_hash = 14695981039346656037ULL;
}

/* Feed one piece, copied into its own heap buffer (into reuse when given):
 * in place (separate == 0) or into a separate output buffer. */
static void feed(struct run *r, const uint8_t *src, size_t n, int separate, char *reuse)
{
    char *in = reuse ? reuse : malloc(n ? n : 1), *out = separate ? malloc(n ? n : 1) : in;
    size_t consumed = 99, produced = 99;

    if (n)
        memcpy(in, src, n);
    if (!r->fin) {
        r->rc = atr_fcgi_decode(&r->d, out, in, n, &consumed, &produced);
        CHECK(consumed <= n && produced <= consumed);
        hash(&r->out_hash, out, produced);
        r->nout += produced;
        if (r->rc == ATR_AGAIN) {
            CHECK(consumed == n);
        } else {
            CHECK(r->rc == ATR_DONE || r->rc == ATR_ERROR);
            r->end = r->fed + consumed;
            r->fin = 1;
        }
    }
    r->fed += n;
    if (separate)
        free(out);
    if (!reuse)
        free(in);
}

static int same(const struct run *a, const struct run *b)
{
    return a->rc == b->rc && a->end == b->end && a->out_hash == b->out_hash &&
           a->nout == b->nout && a->err_hash == b->err_hash && a->nerr == b->nerr &&
           a->d.protocol_status == b->d.protocol_status && a->d.app_status == b->d.app_status &&
           a->d.ended == b->d.ended && a->d.stdout_closed == b->d.stdout_closed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run whole, split, bytes;
    char *one;
    size_t k = size ? (size_t)(data[0] * 131u + data[size - 1] * 7u + size) % (size + 1) : 0;

    start(&whole);
    feed(&whole, data, size, 1, NULL);

    start(&split);
    feed(&split, data, k, 0, NULL);
    feed(&split, data + k, size - k, 0, NULL);

    start(&bytes);
    one = malloc(1);
    for (size_t i = 0; i < size && !bytes.fin; i++)
        feed(&bytes, data + i, 1, 0, one);
    free(one);

    if (!same(&whole, &split) || !same(&whole, &bytes)) {
        fprintf(stderr, "feeding changed the result: rc %d/%d/%d end %zu/%zu/%zu "
                        "stdout %zu/%zu/%zu stderr %zu/%zu/%zu (split at %zu)\n",
                whole.rc, split.rc, bytes.rc, whole.end, split.end, bytes.end, whole.nout,
                split.nout, bytes.nout, whole.nerr, split.nerr, bytes.nerr, k);
        abort();
    }
    /* Content can only come out of what went in, framing excluded. */
    CHECK(whole.nout + whole.nerr <= size);
    if (whole.rc == ATR_DONE) {
        CHECK(whole.d.ended && whole.end >= 16 && whole.end <= size);
        /* Further bytes are refused, an empty call stays DONE. */
        size_t c, p;
        char x = 0;
        CHECK(atr_fcgi_decode(&whole.d, &x, &x, 0, &c, &p) == ATR_DONE);
        CHECK(atr_fcgi_decode(&whole.d, &x, &x, 1, &c, &p) == ATR_ERROR);
    } else if (whole.rc == ATR_ERROR) {
        /* Errors are found on a complete header. */
        CHECK(whole.end >= 8 && whole.end <= size);
        CHECK(!whole.d.ended);
    }
    return 0;
}
