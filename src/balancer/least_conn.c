/* Least connections: the server with the fewest requests in flight (all
 * workers) per unit of weight. Among servers tied for the lightest load the
 * choice is smooth weighted round robin, as in nginx: equal idle servers
 * alternate instead of the first one taking every request, and with
 * sequential traffic (everything idle) weights still hold. */
#include "balancer/balancer.h"

#include <stdlib.h>

#include "base/util.h"

typedef struct least_conn {
    atr_lb_t super;
    int64_t *current; /* smooth round-robin weights, moved only among the tied */
} least_conn_t;

static void init(atr_lb_t *lb)
{
    least_conn_t *self = (least_conn_t *)lb;
    self->current = atr_xcalloc((size_t)lb->nservers, sizeof(*self->current));
}

static int lightest(atr_lb_t *lb, const unsigned char *ok)
{
    int best = -1;
    for (int i = 0; i < lb->nservers; i++)
        if (ok[i] && (best < 0 || atr__lb_load_cmp(lb, i, best) < 0))
            best = i;
    return best;
}

static int pick(atr_lb_t *lb, const unsigned char *ok)
{
    least_conn_t *self = (least_conn_t *)lb;
    int best = lightest(lb, ok), chosen = -1;
    int64_t total = 0;

    if (best < 0)
        return -1;
    for (int i = 0; i < lb->nservers; i++) {
        if (!ok[i] || atr__lb_load_cmp(lb, i, best) != 0)
            continue;
        int64_t w = atr__lb_weight(lb, i);
        self->current[i] += w;
        total += w;
        if (chosen < 0 || self->current[i] > self->current[chosen])
            chosen = i;
    }
    /* Other workers move `active` between the two passes; if nothing
     * matched the lightest any more, the lightest is still a fine answer. */
    if (chosen < 0)
        return best;
    self->current[chosen] -= total;
    return chosen;
}

static void dispose(atr_lb_t *lb)
{
    free(((least_conn_t *)lb)->current);
}

const atr_lb_ops_t atr__lb_least_conn = {
    .name = "least_conn",
    .size = sizeof(least_conn_t),
    .init = init,
    .pick = pick,
    .dispose = dispose,
};
