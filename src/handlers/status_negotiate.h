/* Which form of the status page a request asks for: pure code over the
 * request-target and the Accept value, no I/O, no allocation (unit-tested in
 * tests/unit/handlers/test_status_negotiate.c). */
#ifndef ATR_STATUS_NEGOTIATE_H
#define ATR_STATUS_NEGOTIATE_H

#include "base/util.h"

enum atr_status_format {
    ATR_STATUS_PROMETHEUS = 0, /* text exposition format 0.0.4: scrapers, curl, no Accept */
    ATR_STATUS_HTML,           /* the page with graphs: browsers */
    ATR_STATUS_JSON,           /* what the page polls */
    ATR_STATUS_BAD_FORMAT      /* ?format= names none of the above: 400 */
};

/* The form for a request. An explicit `format=html|prometheus|json` in the
 * target's query decides alone (*by_accept = 0). Otherwise the Accept value
 * (empty when the request has none) decides among the media types it names
 * explicitly: text/html or application/xhtml+xml (HTML), text/plain or
 * application/openmetrics-text (Prometheus), application/json (JSON); the
 * highest q wins, a tie goes to the one named first, q=0 refuses a type, and
 * wildcards choose nothing (curl's `*` / `*`). With none of them named:
 * Prometheus, as before the page existed. *by_accept = 1 then: the answer
 * varies with Accept. Views are only read during the call. */
enum atr_status_format atr_status_negotiate(atr_str_t target, atr_str_t accept, int *by_accept);

/* The format's name as `format=` spells it ("html"); "" for the bad one. */
const char *atr_status_format_name(enum atr_status_format f);

#endif
