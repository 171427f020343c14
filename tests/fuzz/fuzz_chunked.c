/* libFuzzer target: the chunked decoder. The input is a chunked body (and
 * whatever follows it), fed whole, in two pieces split at a data-derived
 * point (each piece in its own buffer), and one byte per call; all three must
 * hand out the same data, end at the same place and agree on errors. Small
 * limits so that the extension and trailer bounds are reached. */
#include "http/chunked.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

struct run {
    atr_chunked_t d;
    int rc;
    int fin;
    size_t consumed; /* stream offset where ATR_DONE ended */
    size_t fed;      /* stream offset of the next piece */
    uint64_t hash;
    size_t ndata;
};

static void start(struct run *r)
{
    memset(r, 0, sizeof *r);
    atr_chunked_init(&r->d);
    r->d.max_line = 64;
    r->d.max_trailer = 256;
    r->rc = ATR_AGAIN;
    r->hash = 14695981039346656037ULL;
}

/* Feed one piece, copied into its own heap buffer (into reuse when given):
 * data views must point inside the piece they came from. */
static void feed(struct run *r, const char *src, size_t n, char *reuse)
{
    char *piece = reuse ? reuse : malloc(n ? n : 1);
    size_t off = 0;
    memcpy(piece, src, n);
    while (!r->fin && off < n) {
        size_t used = 0;
        atr_str_t data = { NULL, 0 };
        r->rc = atr_chunked_decode(&r->d, piece + off, n - off, &used, &data);
        CHECK(used <= n - off);
        CHECK(data.n == 0 || (data.p >= piece + off && data.p + data.n <= piece + off + used));
        for (size_t i = 0; i < data.n; i++)
            r->hash = (r->hash ^ (unsigned char)data.p[i]) * 1099511628211ULL;
        r->ndata += data.n;
        off += used;
        if (r->rc == ATR_DONE) {
            r->consumed = r->fed + off;
            r->fin = 1;
        } else if (r->rc == ATR_ERROR) {
            r->fin = 1;
        } else {
            CHECK(used > 0); /* progress */
        }
    }
    r->fed += n;
    if (!reuse)
        free(piece);
}

static int same(const struct run *a, const struct run *b)
{
    return a->rc == b->rc && a->consumed == b->consumed && a->hash == b->hash &&
           a->ndata == b->ndata;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    struct run whole, split, bytes;
    size_t k = size ? (size_t)(data[0] * 131u + data[size - 1] * 7u + size) % (size + 1) : 0;

    char *one = malloc(1);

    start(&whole);
    feed(&whole, in, size, NULL);

    start(&split);
    feed(&split, in, k, NULL);
    feed(&split, in + k, size - k, NULL);

    start(&bytes);
    for (size_t i = 0; i < size; i++)
        feed(&bytes, in + i, 1, one);
    free(one);

    if (!same(&whole, &split) || !same(&whole, &bytes)) {
        fprintf(stderr, "feeding changed the result: rc %d/%d/%d consumed %zu/%zu/%zu "
                        "data %zu/%zu/%zu (split at %zu)\n",
                whole.rc, split.rc, bytes.rc, whole.consumed, split.consumed, bytes.consumed,
                whole.ndata, split.ndata, bytes.ndata, k);
        abort();
    }
    /* Done means the body ended at a CRLF CRLF inside the input. */
    if (whole.rc == ATR_DONE)
        CHECK(whole.consumed >= 5 && whole.consumed <= size &&
              memcmp(in + whole.consumed - 4, "\r\n\r\n", 4) == 0);
    return 0;
}
