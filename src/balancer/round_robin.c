/* Smooth weighted round robin, nginx's algorithm: on every pick each usable
 * server's current weight grows by its weight, the largest wins and gives
 * back the total. Weights 5,1,1 give a a b a c a a: the heavy server is
 * interleaved with the others instead of getting five requests in a row.
 *
 * That is O(n) per pick, so the common path walks a schedule instead: one
 * period of the same sequence over every primary, computed once, and a
 * cursor. A candidate that cannot take the request is passed over and the
 * next one tried, which keeps the shares of the usable servers in their
 * weights' proportions; a server ramping up (slow_start) is kept with the
 * share of its weight it has now. When FAST_TRIES candidates in a row are
 * unusable, or the period would be too long to store, the pick goes the
 * O(n) way over the filtered servers. */
#include "balancer/balancer.h"

#include <stdlib.h>

#include "base/util.h"

#define FAST_TRIES 8
#define MAX_PERIOD 65536         /* entries of the schedule (4 bytes each) */
#define MAX_BUILD (1ULL << 24)   /* period x primaries: the work of building it */

typedef struct round_robin {
    atr_lb_t super;
    int64_t *current; /* per server; only usable servers move */
    int *sched;       /* one period over the primaries; NULL: no fast path */
    uint32_t period, pos;
} round_robin_t;

static int gcd(int a, int b)
{
    while (b != 0) {
        int t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* The sequence smooth round robin gives when every primary is usable, over
 * the weights divided by their common divisor (2,4,6 repeats like 1,2,3). */
static void build_schedule(round_robin_t *self)
{
    atr_lb_t *lb = &self->super;
    int g = 0;
    uint64_t total = 0;
    int64_t *cur;

    for (int k = 0; k < lb->nprim; k++)
        g = gcd(g, lb->servers[lb->prim[k]].weight);
    for (int k = 0; k < lb->nprim; k++)
        total += (uint64_t)(lb->servers[lb->prim[k]].weight / g);
    if (total == 0 || total > MAX_PERIOD || total * (uint64_t)lb->nprim > MAX_BUILD)
        return;
    self->period = (uint32_t)total;
    self->sched = atr_xcalloc(total, sizeof(*self->sched));
    cur = atr_xcalloc((size_t)lb->nprim, sizeof(*cur));
    for (uint32_t p = 0; p < self->period; p++) {
        int best = 0;
        for (int k = 0; k < lb->nprim; k++) {
            cur[k] += lb->servers[lb->prim[k]].weight / g;
            if (cur[k] > cur[best])
                best = k;
        }
        cur[best] -= (int64_t)total;
        self->sched[p] = lb->prim[best];
    }
    free(cur);
}

static void init(atr_lb_t *lb)
{
    round_robin_t *self = (round_robin_t *)lb;
    self->current = atr_xcalloc((size_t)lb->nservers, sizeof(*self->current));
    build_schedule(self);
}

/* The cursor goes on where the set before left it (as a share of its
 * period): each worker keeps its own place in the sequence. */
static void carry(atr_lb_t *to, const atr_lb_t *from)
{
    round_robin_t *t = (round_robin_t *)to;
    const round_robin_t *f = (const round_robin_t *)from;
    if (t->period > 0 && f->period > 0)
        t->pos = (uint32_t)((uint64_t)f->pos * t->period / f->period);
}

static int pick(atr_lb_t *lb, const unsigned char *ok)
{
    round_robin_t *self = (round_robin_t *)lb;
    int64_t total = 0;
    int best = -1;

    for (int i = 0; i < lb->nservers; i++) {
        if (!ok[i])
            continue;
        int64_t w = atr__lb_weight(lb, i);
        self->current[i] += w;
        total += w;
        if (best < 0 || self->current[i] > self->current[best])
            best = i;
    }
    if (best >= 0)
        self->current[best] -= total;
    return best;
}

static int pick_fast(atr_lb_t *lb)
{
    round_robin_t *self = (round_robin_t *)lb;

    if (self->sched == NULL)
        return -1;
    for (int t = 0; t < FAST_TRIES; t++) {
        int i = self->sched[self->pos];
        if (++self->pos == self->period)
            self->pos = 0;
        if (atr__lb_usable(lb, i) &&
            (lb->servers[i].slow_start == 0 ||
             atr__lb_keep_ramping(lb, i, (uint32_t)atr_lb_random(lb))))
            return i;
    }
    return -1;
}

static void dispose(atr_lb_t *lb)
{
    free(((round_robin_t *)lb)->current);
    free(((round_robin_t *)lb)->sched);
}

const atr_lb_ops_t atr__lb_round_robin = {
    .name = "round_robin",
    .size = sizeof(round_robin_t),
    .init = init,
    .pick = pick,
    .dispose = dispose,
    .pick_fast = pick_fast,
    .carry = carry,
};
