/* Request-target paths (pure). */
#ifndef ATR_PATH_H
#define ATR_PATH_H

#include <stddef.h>
#include "base/util.h"

/* Percent-decode the path of a request-target (origin- or absolute-form),
 * resolve "." and ".." segments and collapse "//". The query is dropped.
 * Returns 0 with out[0..*outlen) (starts with '/'); ATR_PATH_AMBIGUOUS, with
 * out set as well, when the target holds an encoding a backend may read
 * otherwise than this (an encoded '/', a "." or ".." segment with an
 * encoded dot, a '#'); or -1 when the target is malformed, contains %00,
 * climbs above the root or does not fit in cap. */
#define ATR_PATH_AMBIGUOUS 1
int atr_path_normalize(atr_str_t target, char *out, size_t cap, size_t *outlen);

/* Percent-encode a decoded path for a request line: every byte outside
 * RFC 3986's pchar and '/' (and every '%') as %XX. Returns the length
 * written to out, or -1 when cap is too small (3 * n always fits). */
int atr_path_encode(const char *path, size_t n, char *out, size_t cap);

#endif
