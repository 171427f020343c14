/* Shared by the forms of the status page (status.c: Prometheus text and the
 * answer; status_json.c: what the HTML page polls; the page itself is
 * generated from assets/ by tools/embed_assets.py). Worker thread only:
 * counters are read with atomics, generations and member sets through the
 * references the request holds. */
#ifndef ATR_STATUS_PRIV_H
#define ATR_STATUS_PRIV_H

#include "backends/backend.h"
#include "http/headers.h"
#include "net/worker.h"

/* The process counters of metrics.h summed over every worker. Latency
 * histograms are per bucket (not cumulative), in the order of
 * atr_lat_bounds_ms, the last bucket past its last bound. */
typedef struct atr_status_totals {
    uint64_t accepted, conns, requests, bytes, resp[5];
    uint64_t request_n[ATR_LAT_NB], request_sum_ms;
    uint64_t upstream_n[ATR_LAT_NB], upstream_sum_ms;
} atr_status_totals_t;

void atr__status_totals(atr_status_totals_t *t);

/* "1xx" .. "5xx" */
extern const char *const atr__status_classes[5];

/* Append the JSON form (docs/config.md, "status") for generation g to b.
 * Bounded: past ATR_STATUS_JSON_MAX bytes the remaining servers are left
 * out and counted in "servers_omitted"; names are cut at 256 bytes. */
#define ATR_STATUS_JSON_MAX (1u << 20)
void atr__status_json(atr_buf_t *b, const atr_gen_t *g);

/* The HTML page with its style and script inlined, and the
 * Content-Security-Policy that admits exactly them (hashes computed at build
 * time), from the generated status_page.c. */
extern const unsigned char atr__status_page[];
extern const size_t atr__status_page_len;
extern const char atr__status_page_csp[];

#endif
