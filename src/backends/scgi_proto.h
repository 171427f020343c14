/* SCGI (specs-digest §3.2) from the web-server side: the request's netstring
 * header block. Pure code over bytes; the backend glue is scgi.c. */
#ifndef ATR_SCGI_PROTO_H
#define ATR_SCGI_PROTO_H

#include <stddef.h>

#include "backends/cgi_env.h"

/* The netstring header block: CONTENT_LENGTH first (from env, "0" when
 * absent), then "SCGI" "1", then every other variable of env (an SCGI
 * variable in env is not repeated). env is borrowed for the call. Returns a
 * malloc'ed "LEN:...," and its length in *len. */
char *atr_scgi_encode_request(const atr_cgi_env_t *env, size_t *len);

#endif
