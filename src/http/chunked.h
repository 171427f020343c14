/* Chunked transfer-coding decoder (RFC 9112 §7.1), strict: a hand-written
 * state machine over bytes, zero-copy (data comes back as views into the
 * input). Used for request bodies from clients and response bodies from
 * backends alike. Chunk extensions are read and dropped (bounded length),
 * trailers are read and dropped (bounded length); the proxy re-emits its own
 * chunk framing, never the peer's bytes. */
#ifndef ATR_CHUNKED_H
#define ATR_CHUNKED_H

#include <stddef.h>
#include <stdint.h>
#include "base/util.h"

typedef struct atr_chunked {
    int state;
    uint64_t remaining;   /* data bytes left in the current chunk */
    uint32_t line_len;    /* bytes seen on the current size/ext/trailer line */
    uint32_t trailer_len; /* bytes of trailer section so far */
    uint32_t max_line;    /* limit for a chunk-size line incl. extensions (default 4096) */
    uint32_t max_trailer; /* limit for the trailer section (default 8192) */
    int digits;           /* hex digits in the current size */
} atr_chunked_t;

/* Start decoding a new body. */
void atr_chunked_init(atr_chunked_t *d);

/* Decode from in[0..len). Consumes framing bytes and at most one run of data.
 * Returns:
 *   ATR_AGAIN  all of in[0..*consumed) was used; if data->n > 0 it is a view of
 *              body bytes inside in[] (call again with the rest);
 *              when *consumed == len more input is needed;
 *   ATR_DONE   the last chunk and trailers are complete; *consumed bytes were
 *              used (bytes after them belong to the next message); data->n may
 *              be 0;
 *   ATR_ERROR  malformed framing (bad hex, size overflow past 2^63, bare LF or
 *              CR, extension or trailer over its limit): answer 400 (request) or
 *              502 (response) and close. */
int atr_chunked_decode(atr_chunked_t *d, const char *in, size_t len,
                       size_t *consumed, atr_str_t *data);

/* Write the chunk-size line for n data bytes ("%zx\r\n") into out (>= 20
 * bytes); returns its length. The terminator is "\r\n" after the data, and the
 * last chunk is "0\r\n\r\n". */
size_t atr_chunked_size_line(char *out, uint64_t n);

#endif
