/* Writing to a libuv stream the way every writer here does: try the write
 * directly first (most writes complete at once: no queueing, no callback),
 * and leave what did not fit for one queued uv_write. */
#ifndef ATR_STREAM_H
#define ATR_STREAM_H

#include <uv.h>

/* Write as much of (*bufs)[0..*n) as the socket takes now. Advances *bufs
 * and *n past what was written (the first remaining buffer may be trimmed).
 * Returns 0 when everything was written, 1 when some is left (queue it with
 * uv_write), or a negative libuv error. */
int atr_stream_try_write(uv_stream_t *s, uv_buf_t **bufs, unsigned *n);

#endif
