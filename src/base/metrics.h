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

typedef struct atr_metrics {
    atomic_uint_fast64_t accepted;      /* client connections accepted */
    atomic_uint_fast64_t connections;   /* client connections open now */
    atomic_uint_fast64_t requests;      /* requests finished (answered or abandoned) */
    atomic_uint_fast64_t responses[5];  /* by status class: [0] = 1xx ... [4] = 5xx */
    atomic_uint_fast64_t bytes_sent;    /* response body bytes sent to clients */
    atomic_uint_fast64_t inflight;      /* requests from their first byte to their end (the
                                         * busy= of our heartbeats) */
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

/* The class index of a status, clamped to 1xx..5xx. */
static inline int atr_status_class(int status)
{
    int k = status / 100 - 1;
    return k < 0 ? 0 : k > 4 ? 4 : k;
}

#endif
