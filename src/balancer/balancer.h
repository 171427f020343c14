/* Server selection. A balancing method is a `static const atr_lb_ops_t` plus a
 * per-worker state struct that embeds atr_lb_t as its first member (h2o's
 * balancer.h is the model). Methods are listed in an explicit registry array
 * in balancer.c. Balancers never see a socket: they pick an index.
 *
 * Threads: one atr_lb_t per (worker, upstream), used only by that worker's
 * loop. The per-server counters they read (atr_server_state_t) are shared by
 * every worker and are atomics on their own cache line. */
#ifndef ATR_BALANCER_H
#define ATR_BALANCER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Runtime state of one server, shared by all workers and carried over reloads
 * by (upstream name, server text). Owned by the control loop's registry,
 * refcounted so an old generation can still point at it. */
typedef struct atr_server_state {
    _Alignas(64) atomic_int active;     /* requests in flight on this server, all workers */
    atomic_uint_fast64_t down_until;    /* atr_now_ms() until which it is skipped; 0 = up */
    atomic_int refs;
    atomic_uint_fast64_t requests;      /* total requests sent (stats) */
    atomic_uint_fast64_t failures;      /* connect failures (stats) */
    atomic_int logged_down;             /* 1 while "server down" has been logged (log once per change) */
} atr_server_state_t;

/* What a balancer sees of one server: immutable for the life of the atr_lb_t. */
typedef struct atr_lb_server {
    int weight;                  /* >= 1 */
    int max_conns;               /* 0 = unlimited */
    int backup;
    atr_server_state_t *state;   /* shared; read with atomics */
} atr_lb_server_t;

typedef struct atr_lb atr_lb_t;

typedef struct atr_lb_ops {
    const char *name;            /* as written in `balance NAME;` */
    size_t size;                 /* sizeof the method's state struct (embeds atr_lb_t first) */
    /* Set up method state after the base fields are filled. */
    void (*init)(atr_lb_t *lb);
    /* Pick a server index among those with ok[i] != 0, or -1 when none.
     * ok[] already excludes servers that are down, full (max_conns) or
     * already tried for this request. */
    int (*pick)(atr_lb_t *lb, const unsigned char *ok);
} atr_lb_ops_t;

struct atr_lb {
    const atr_lb_ops_t *ops;
    atr_lb_server_t *servers;    /* borrowed from the caller, nservers entries */
    int nservers;
    uint64_t rng;                /* per-worker PRNG state (xorshift64*) for random methods */
};

/* Registry lookup by name; NULL when unknown. */
const atr_lb_ops_t *atr_lb_find(const char *name);

/* Create a balancer over servers[0..n) (array borrowed, must outlive it).
 * seed seeds the PRNG (use a per-worker value). Free with atr_lb_free. */
atr_lb_t *atr_lb_new(const atr_lb_ops_t *ops, atr_lb_server_t *servers, int n, uint64_t seed);
void atr_lb_free(atr_lb_t *lb);

/* Pick a server for a request at time now_ms. tried[] (n entries, may be
 * NULL) marks servers already tried for this request. Skips servers that are
 * down (down_until > now_ms) or at max_conns; backups are used only when no
 * non-backup server is usable. Returns an index, or -1 when none is usable,
 * with *all_full = 1 when the only obstacle was max_conns (the caller queues
 * then rather than answering 503 at once). */
int atr_lb_pick(atr_lb_t *lb, uint64_t now_ms, const unsigned char *tried, int *all_full);

/* Next PRNG value (xorshift64*), for methods. */
uint64_t atr_lb_random(atr_lb_t *lb);

#endif
