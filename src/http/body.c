/* Message body decoding shared by both directions: a Content-Length count,
 * the chunked decoder, or read-until-close. Data comes back as views into the
 * input; the caller's encoder frames it again for the other side. */
#include "http/body.h"

void atr_body_init(atr_body_t *b, enum atr_http_body framing, uint64_t length)
{
    memset(b, 0, sizeof *b);
    switch (framing) {
    case ATR_BODY_LENGTH:
        b->mode = ATR_BM_LENGTH;
        b->remaining = length;
        b->done = length == 0;
        break;
    case ATR_BODY_CHUNKED:
        b->mode = ATR_BM_CHUNKED;
        atr_chunked_init(&b->chunked);
        break;
    case ATR_BODY_UNTIL_CLOSE:
        b->mode = ATR_BM_CLOSE;
        break;
    default:
        b->mode = ATR_BM_NONE;
        b->done = 1;
        break;
    }
}

int atr_body_decode(atr_body_t *b, const char *in, size_t len, size_t *consumed,
                    atr_str_t *out, int max, int *nout)
{
    size_t off = 0;
    int n = 0, rc = ATR_AGAIN;
    *nout = 0;
    *consumed = 0;
    if (b->done)
        return ATR_DONE;
    switch (b->mode) {
    case ATR_BM_LENGTH: {
        size_t take = (size_t)ATR_MIN((uint64_t)len, b->remaining);
        if (take > 0 && max > 0) {
            out[n++] = (atr_str_t){ in, take };
            off = take;
            b->remaining -= take;
            b->total += take;
        }
        if (b->remaining == 0) {
            b->done = 1;
            rc = ATR_DONE;
        }
        break;
    }
    case ATR_BM_CLOSE:
        if (len > 0 && max > 0) {
            out[n++] = (atr_str_t){ in, len };
            off = len;
            b->total += len;
        }
        break;
    case ATR_BM_CHUNKED:
        while (off < len && n < max) {
            size_t used = 0;
            atr_str_t d = { NULL, 0 };
            rc = atr_chunked_decode(&b->chunked, in + off, len - off, &used, &d);
            if (rc == ATR_ERROR)
                return ATR_ERROR;
            off += used;
            if (d.n > 0) {
                out[n++] = d;
                b->total += d.n;
            }
            if (rc == ATR_DONE) {
                b->done = 1;
                break;
            }
            if (used == 0)
                break;
        }
        break;
    default:
        b->done = 1;
        rc = ATR_DONE;
        break;
    }
    *consumed = off;
    *nout = n;
    return rc;
}
