/* Writing to a libuv stream the way every writer here does: try the write
 * directly first (most writes complete at once: no queueing, no callback),
 * and leave what did not fit for one queued uv_write. */
#ifndef ATR_STREAM_H
#define ATR_STREAM_H

#include <stddef.h>
#include <sys/uio.h>
#include <uv.h>

/* Write as much of (*bufs)[0..*n) as the socket takes now. Advances *bufs
 * and *n past what was written (the first remaining buffer may be trimmed).
 * Returns 0 when everything was written, 1 when some is left (queue it with
 * uv_write), or a negative libuv error. */
int atr_stream_try_write(uv_stream_t *s, uv_buf_t **bufs, unsigned *n);

/* The loop's buffers for iov[] as it is, no copy: pure encoders fill struct
 * iovec, and on Unix libuv's uv_buf_t has struct iovec's layout (uv/unix.h:
 * "May be cast to struct iovec"). The asserts keep that true. */
_Static_assert(sizeof(uv_buf_t) == sizeof(struct iovec), "uv_buf_t is not an iovec");
_Static_assert(offsetof(uv_buf_t, base) == offsetof(struct iovec, iov_base),
               "uv_buf_t.base is not iov_base");
_Static_assert(offsetof(uv_buf_t, len) == offsetof(struct iovec, iov_len),
               "uv_buf_t.len is not iov_len");
static inline uv_buf_t *atr_stream_bufs(struct iovec *iov)
{
    return (uv_buf_t *)iov;
}

#endif
