/* Request-target paths (pure). */
#ifndef ATR_PATH_H
#define ATR_PATH_H

#include <stddef.h>
#include "base/util.h"

/* Percent-decode the path of a request-target (origin- or absolute-form),
 * resolve "." and ".." segments and collapse "//". The query is dropped.
 * Returns 0 with out[0..*outlen) (starts with '/'), or -1 when the target is
 * malformed, contains %00, climbs above the root or does not fit in cap. */
int atr_path_normalize(atr_str_t target, char *out, size_t cap, size_t *outlen);

#endif
