/* Counters an operator reads through a `status;` route (Prometheus text
 * format, rendered by status.c).
 *
 * Each worker owns one atr_metrics_t and is its only writer, so an update is
 * a relaxed load and store (no locked instruction on the request path); the
 * status page, on any worker, reads every worker's set with relaxed loads.
 * The counters live in the worker, not in a generation, so they carry over
 * reloads. Per-server counters are in atr_server_state_t (balancer.h), shared
 * by all workers and carried over by name. */
#ifndef ATR_METRICS_H
#define ATR_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

/* Latency histograms: Prometheus's default buckets, upper bounds in ms
 * (0.005 s ... 10 s, then +Inf). Counts per bucket are kept apart (not
 * cumulative); the status page adds them up. */
#define ATR_LAT_NB 12
static const uint32_t atr_lat_bounds_ms[ATR_LAT_NB - 1] = { 5,   10,   25,   50,   100, 250,
                                                             500, 1000, 2500, 5000, 10000 };

typedef struct atr_lat {
    atomic_uint_fast64_t n[ATR_LAT_NB];
    atomic_uint_fast64_t sum_ms;
} atr_lat_t;

typedef struct atr_metrics {
    atomic_uint_fast64_t accepted;      /* client connections accepted */
    atomic_uint_fast64_t connections;   /* client connections open now */
    atomic_uint_fast64_t requests;      /* requests finished (answered or abandoned) */
    atomic_uint_fast64_t responses[5];  /* by status class: [0] = 1xx ... [4] = 5xx */
    atomic_uint_fast64_t bytes_sent;    /* response body bytes sent to clients */
    atomic_uint_fast64_t inflight;      /* requests from their first byte to their end (the
                                         * busy= of our heartbeats) */
    atr_lat_t request_ms;               /* first byte to the end of the answer (the loop's clock) */
    atr_lat_t upstream_ms;              /* request sent to the response's end (proxied ones) */
} atr_metrics_t;

/* Single-writer update: only the owning worker's loop calls these. */
static inline void atr_metric_add(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void atr_metric_sub(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - n,
                          memory_order_relaxed);
}

static inline uint64_t atr_metric_get(atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* Count one duration of ms milliseconds in h (single writer). */
static inline void atr_lat_add(atr_lat_t *h, uint64_t ms)
{
    int b = 0;
    while (b < ATR_LAT_NB - 1 && ms > atr_lat_bounds_ms[b])
        b++;
    atr_metric_add(&h->n[b], 1);
    atr_metric_add(&h->sum_ms, ms);
}

/* The class index of a status, clamped to 1xx..5xx. */
static inline int atr_status_class(int status)
{
    int k = status / 100 - 1;
    return k < 0 ? 0 : k > 4 ? 4 : k;
}

#endif
