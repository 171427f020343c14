/* Health-check probes per backend protocol (backends/probe.c): the request
 * bytes of a GET of a path, and the status read from the answer so far.
 * The protocols' ops (backend.h probe_request, probe_status) point here. */
#ifndef ATR_PROBE_H
#define ATR_PROBE_H

#include <stddef.h>

/* A GET of path (with its query, if any) for Host host: malloc'ed bytes
 * and *len, or NULL when they cannot be encoded (a path too long). */
char *atr_probe_http_request(const char *path, const char *host, size_t *len);
char *atr_probe_fcgi_request(const char *path, const char *host, size_t *len);
char *atr_probe_scgi_request(const char *path, const char *host, size_t *len);

/* The status the answer's first n bytes p[0..n) give: > 0 the status, 0
 * when more bytes are needed, -1 when it is no answer of the protocol. eof:
 * no more bytes will come (then 0 is never returned). */
int atr_probe_http_status(const char *p, size_t n, int eof);
int atr_probe_fcgi_status(const char *p, size_t n, int eof);
int atr_probe_scgi_status(const char *p, size_t n, int eof);

#endif
