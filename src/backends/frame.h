/* Request-body framing for each backend wire format: the ops' frame_body
 * (backend.h) for HTTP/1.1, FastCGI and the protocols whose body goes as it
 * is. Pure code over bytes: it fills struct iovec entries (the core hands
 * them to the loop's gather write) and never sees a socket. */
#ifndef ATR_FRAME_H
#define ATR_FRAME_H

#include <sys/uio.h>

#include "http/http_parse.h"

/* Framing bytes per view (the core's scratch array, backend.h). */
#define ATR_FRAME_SCRATCH 24

/* Each framer: frame the views v[0..n) (empty ones are skipped) into out[],
 * pointing the entries at the views themselves, at static bytes, or at
 * scratch[i] (view i's framing bytes, written here); last = 1 ends the body.
 * The entries borrow the views and scratch, which must outlive the write.
 * Returns the number of entries. */

/* HTTP/1.1: with body ATR_BODY_CHUNKED each view becomes a chunk (size line,
 * data, CRLF) and last adds the last chunk "0\r\n\r\n" (at most 3*n+1
 * entries); otherwise as atr_frame_raw. */
int atr_frame_http(enum atr_http_body body, const atr_str_t *v, int n, int last,
                   char (*scratch)[ATR_FRAME_SCRATCH], struct iovec *out);

/* FastCGI: each view (at most ATR_FCGI_MAX_CONTENT bytes) becomes a STDIN
 * record, last adds the empty STDIN record that ends the stream (at most
 * 2*n+1 entries). body is not used: the length went ahead in the PARAMS. */
int atr_frame_fcgi(enum atr_http_body body, const atr_str_t *v, int n, int last,
                   char (*scratch)[ATR_FRAME_SCRATCH], struct iovec *out);

/* SCGI, CGI: the views as they are, nothing at the end (the length went
 * ahead as CONTENT_LENGTH); at most n entries. body, last and scratch are
 * not used. */
int atr_frame_raw(enum atr_http_body body, const atr_str_t *v, int n, int last,
                  char (*scratch)[ATR_FRAME_SCRATCH], struct iovec *out);

#endif
