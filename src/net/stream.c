#include "net/stream.h"

int atr_stream_try_write(uv_stream_t *s, uv_buf_t **bufs, unsigned *n)
{
    uv_buf_t *b = *bufs;
    unsigned left = *n;
    while (left > 0) {
        int rc = uv_try_write(s, b, left);
        if (rc == UV_EAGAIN)
            break;
        if (rc < 0)
            return rc;
        size_t done = (size_t)rc;
        while (left > 0 && done >= b->len) {
            done -= b->len;
            b++;
            left--;
        }
        if (left > 0) {
            b->base += done;
            b->len -= done;
            if (rc == 0)
                break;
        }
    }
    *bufs = b;
    *n = left;
    return left > 0;
}
