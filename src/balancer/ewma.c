/* Peak EWMA with two choices (Finagle's and Linkerd's method): every server
 * has a latency estimate; a pick draws two distinct servers by weight and
 * takes the one of lower cost, estimate x (requests in flight + 1) / weight.
 *
 * The estimate is a moving average that forgets with a half-life of
 * HALF_LIFE_MS of wall time, not per sample, so a server that got few
 * requests is not stuck with an old verdict; and a response slower than the
 * estimate replaces it at once (the peak), so a server that turns slow is
 * avoided from its first slow answer rather than after several. Between
 * responses the estimate decays toward zero, so an avoided server is tried
 * again after a while and can prove it recovered.
 *
 * A server never heard from costs nothing while idle (it is tried soon, to
 * learn its latency) and PENALTY_US per request in flight while busy, so a
 * new or restarted server does not swallow a burst before its first answer.
 *
 * State is per worker (in this struct, like every method's), not shared in
 * atr_server_state_t: an observation is a read-modify-write of two values
 * on every response, which across workers would need a lock or a CAS loop
 * on a shared cache line; each worker sees enough responses of its own.
 * The in-flight count is the shared `active`, as for least_conn. */
#include "balancer/balancer.h"

#include <stdlib.h>

#include "base/util.h"

#define HALF_LIFE_MS 10000.0
#define PENALTY_US 1e7 /* per request in flight to a server never heard from */

typedef struct peak {
    double rtt_us;     /* the estimate at `at` */
    uint64_t at;       /* now_ms of the last observation; 0 with seen == 0 */
    int seen;
} peak_t;

typedef struct ewma {
    atr_lb_t super;
    peak_t *peak; /* per server */
} ewma_t;

static void init(atr_lb_t *lb)
{
    ewma_t *self = (ewma_t *)lb;
    self->peak = atr_xcalloc((size_t)lb->nservers, sizeof(*self->peak));
}

/* The share of the old estimate left after elapsed ms: 2^(-elapsed /
 * half-life). Whole half-lives halve; the fraction is a short series for
 * e^(-f ln 2), good to 1e-7, which spares linking libm into pure code. */
static double kept(uint64_t at, uint64_t now)
{
    double x = now > at ? (double)(now - at) / HALF_LIFE_MS : 0.0, y, term = 1.0, sum = 1.0;
    uint64_t whole = (uint64_t)x;

    if (whole >= 64)
        return 0.0;
    y = -(x - (double)whole) * 0.69314718055994531;
    for (int k = 1; k <= 9; k++) {
        term *= y / k;
        sum += term;
    }
    return sum / (double)(1ULL << whole);
}

static void observe(atr_lb_t *lb, int server, uint64_t now_ms, uint64_t rtt_us)
{
    peak_t *p = &((ewma_t *)lb)->peak[server];
    double rtt = (double)rtt_us;

    if (!p->seen || rtt > p->rtt_us) {
        p->rtt_us = rtt;
    } else {
        double w = kept(p->at, now_ms);
        p->rtt_us = p->rtt_us * w + rtt * (1.0 - w);
    }
    p->seen = 1;
    if (now_ms > p->at)
        p->at = now_ms;
}

static double cost(atr_lb_t *lb, int i)
{
    const peak_t *p = &((ewma_t *)lb)->peak[i];
    int active = atomic_load_explicit(&lb->servers[i].state->active, memory_order_relaxed);
    double est;

    if (active < 0)
        active = 0;
    if (!p->seen)
        return active * PENALTY_US / atr__lb_weight(lb, i);
    /* +1 us: a decayed estimate near 0 still lets the in-flight count count */
    est = p->rtt_us * kept(p->at, lb->now_ms) + 1.0;
    return est * (active + 1) / atr__lb_weight(lb, i);
}

static int pick(atr_lb_t *lb, const unsigned char *ok)
{
    int a = atr__lb_draw(lb, ok, -1, atr_lb_random(lb)), b;

    if (a < 0)
        return -1;
    b = atr__lb_draw(lb, ok, a, atr_lb_random(lb));
    if (b < 0)
        return a;
    /* a was drawn first and by weight: a tie going to a is a fair coin */
    return cost(lb, b) < cost(lb, a) ? b : a;
}

static int cheaper(atr_lb_t *lb, int b, int a)
{
    return cost(lb, b) < cost(lb, a);
}

/* The same choice without ok[]: draws in O(log n), each checked. */
static int pick_fast(atr_lb_t *lb)
{
    return atr__lb_two_choices_fast(lb, cheaper);
}

static void dispose(atr_lb_t *lb)
{
    free(((ewma_t *)lb)->peak);
}

/* A new set of members (DNS, a runtime change): each server that stays keeps
 * what this worker learned of it, found by its shared state (one per name).
 * The sets are built in the same order, so the search starts where the last
 * match left off: O(n) when little changed. */
static void carry(atr_lb_t *to, const atr_lb_t *from)
{
    ewma_t *t = (ewma_t *)to;
    const ewma_t *f = (const ewma_t *)from;
    int j = 0;
    for (int i = 0; i < to->nservers && from->nservers > 0; i++) {
        const atr_server_state_t *st = to->servers[i].state;
        for (int k = 0; k < from->nservers; k++) {
            int c = (j + k) % from->nservers;
            if (from->servers[c].state == st) {
                t->peak[i] = f->peak[c];
                j = c + 1;
                break;
            }
        }
    }
}

const atr_lb_ops_t atr__lb_ewma = {
    .name = "ewma",
    .size = sizeof(ewma_t),
    .init = init,
    .pick = pick,
    .dispose = dispose,
    .observe = observe,
    .carry = carry,
    .pick_fast = pick_fast,
};
