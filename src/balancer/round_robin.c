/* Smooth weighted round robin, nginx's algorithm: on every pick each usable
 * server's current weight grows by its weight, the largest wins and gives
 * back the total. Weights 5,1,1 give a a b a c a a: the heavy server is
 * interleaved with the others instead of getting five requests in a row. */
#include "balancer/balancer.h"

#include <stdlib.h>

#include "base/util.h"

typedef struct round_robin {
    atr_lb_t super;
    int64_t *current; /* per server; only usable servers move */
} round_robin_t;

static void init(atr_lb_t *lb)
{
    round_robin_t *self = (round_robin_t *)lb;
    self->current = atr_xcalloc((size_t)lb->nservers, sizeof(*self->current));
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

static void dispose(atr_lb_t *lb)
{
    free(((round_robin_t *)lb)->current);
}

const atr_lb_ops_t atr__lb_round_robin = {
    .name = "round_robin",
    .size = sizeof(round_robin_t),
    .init = init,
    .pick = pick,
    .dispose = dispose,
};
