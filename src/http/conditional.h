/* Conditional and range requests (RFC 9110 §13, §14): the pure parts a
 * handler serving representations of its own needs (handlers/static.c).
 * No I/O, no clock. */
#ifndef ATR_CONDITIONAL_H
#define ATR_CONDITIONAL_H

#include <stdint.h>
#include <time.h>

#include "base/util.h"

/* If-None-Match's value against the current entity tag (quoted, e.g.
 * "\"5f3a-1c\""): 1 when it lists it (weak comparison: W/ prefixes ignored)
 * or is "*", else 0. */
int atr_http_etag_listed(atr_str_t if_none_match, const char *etag);

/* An HTTP-date (IMF-fixdate, and the obsolete RFC 850 and asctime forms a
 * recipient must accept) into *out (seconds since the epoch, UTC). 0, or -1
 * when it is none of them. */
int atr_http_parse_date(atr_str_t s, time_t *out);

/* The Range header against a representation of size bytes. Returns
 *   1  one satisfiable byte range: [*first, *last] (inclusive);
 *   0  ignore it and send the whole (not bytes=, malformed, several ranges);
 *  -1  none of the ranges is satisfiable (416). */
int atr_http_parse_range(atr_str_t s, uint64_t size, uint64_t *first, uint64_t *last);

#endif
