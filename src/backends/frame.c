/* Request-body framing per wire format (frame.h). */
#include "backends/frame.h"

#include "backends/fcgi_proto.h"
#include "http/chunked.h"

static struct iovec iov(const void *p, size_t n)
{
    return (struct iovec){ .iov_base = (void *)p, .iov_len = n };
}

int atr_frame_http(enum atr_http_body body, const atr_str_t *v, int n, int last,
                   char (*scratch)[ATR_FRAME_SCRATCH], struct iovec *out)
{
    int nb = 0;
    if (body != ATR_BODY_CHUNKED)
        return atr_frame_raw(body, v, n, last, scratch, out);
    for (int i = 0; i < n; i++) {
        if (v[i].n == 0)
            continue;
        out[nb++] = iov(scratch[i], atr_chunked_size_line(scratch[i], v[i].n));
        out[nb++] = iov(v[i].p, v[i].n);
        out[nb++] = iov("\r\n", 2);
    }
    if (last)
        out[nb++] = iov("0\r\n\r\n", 5);
    return nb;
}

int atr_frame_fcgi(enum atr_http_body body, const atr_str_t *v, int n, int last,
                   char (*scratch)[ATR_FRAME_SCRATCH], struct iovec *out)
{
    static const unsigned char stdin_end[ATR_FCGI_HEADER_LEN] = { 1, ATR_FCGI_STDIN, 0, 1,
                                                                  0, 0, 0, 0 };
    int nb = 0;
    (void)body;
    for (int i = 0; i < n; i++) {
        if (v[i].n == 0)
            continue;
        atr_fcgi_stdin_header((unsigned char *)scratch[i], v[i].n);
        out[nb++] = iov(scratch[i], ATR_FCGI_HEADER_LEN);
        out[nb++] = iov(v[i].p, v[i].n);
    }
    if (last)
        out[nb++] = iov(stdin_end, ATR_FCGI_HEADER_LEN);
    return nb;
}

int atr_frame_raw(enum atr_http_body body, const atr_str_t *v, int n, int last,
                  char (*scratch)[ATR_FRAME_SCRATCH], struct iovec *out)
{
    int nb = 0;
    (void)body;
    (void)last;
    (void)scratch;
    for (int i = 0; i < n; i++)
        if (v[i].n > 0)
            out[nb++] = iov(v[i].p, v[i].n);
    return nb;
}
