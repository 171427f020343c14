/* Least connections: the server with the fewest requests in flight (all
 * workers) per unit of weight. Among servers tied for the lightest load the
 * choice is smooth weighted round robin, as in nginx: equal idle servers
 * alternate instead of the first one taking every request, and with
 * sequential traffic (everything idle) weights still hold.
 *
 * The lightest needs every server's count, so an exact pick is O(n):
 * nginx's least_conn is too, and HAProxy's tree is kept by one process that
 * sees every connection change, where here other workers move the counts.
 * Up to EXACT_MAX primaries the pick is exact: one pass reads each count
 * once, compares it with the lightest so far by cross-multiplying, and
 * lists the tied; the round robin then runs over that list. Past it (a
 * large DNS pool), the pick is the lightest of SAMPLE servers drawn by
 * weight, O(1): the least loaded of a sample, as Envoy's least_request
 * (with 2), which keeps loads within a request or two of the exact choice
 * while 1,000 servers cost what 8 do. */
#include "balancer/balancer.h"

#include <stdlib.h>

#include "base/util.h"

typedef struct least_conn {
    atr_lb_t super;
    int64_t *current; /* smooth round-robin weights, moved only among the tied */
    int *tied;        /* scratch: the servers tied for the lightest load */
} least_conn_t;

static void init(atr_lb_t *lb)
{
    least_conn_t *self = (least_conn_t *)lb;
    self->current = atr_xcalloc((size_t)lb->nservers, sizeof(*self->current));
    self->tied = atr_xcalloc((size_t)lb->nservers + 1, sizeof(*self->tied));
}

/* The lightest of the servers with ok[i] set (ok NULL: the usable
 * primaries), ties broken by smooth round robin; -1 when there is none. */
static int scan(atr_lb_t *lb, const unsigned char *ok)
{
    least_conn_t *self = (least_conn_t *)lb;
    int64_t best_active = 0, best_weight = 1, total = 0;
    int ntied = 0, chosen = -1;

    for (int i = 0; i < lb->nservers; i++) {
        if (ok != NULL ? !ok[i] : !atr__lb_usable(lb, i))
            continue;
        int64_t a = atomic_load_explicit(&lb->servers[i].state->active, memory_order_relaxed);
        int64_t w = atr__lb_weight(lb, i);
        if (ntied == 0 || a * best_weight < best_active * w) { /* lighter: a new list */
            best_active = a;
            best_weight = w;
            ntied = 0;
        } else if (a * best_weight > best_active * w) {
            continue;
        }
        self->tied[ntied++] = i;
    }
    for (int k = 0; k < ntied; k++) {
        int i = self->tied[k];
        int64_t w = atr__lb_weight(lb, i);
        self->current[i] += w;
        total += w;
        if (chosen < 0 || self->current[i] > self->current[chosen])
            chosen = i;
    }
    if (chosen >= 0)
        self->current[chosen] -= total;
    return chosen;
}

#define EXACT_MAX 128
#define SAMPLE 8

/* The lightest of SAMPLE usable primaries drawn by weight; -1 when draws
 * keep missing (the caller then picks exactly). */
static int sample(atr_lb_t *lb)
{
    int best = -1;
    int64_t best_active = 0, best_weight = 1;
    for (int k = 0; k < SAMPLE; k++) {
        int i = atr__lb_draw_fast(lb, -1);
        if (i < 0)
            break;
        int64_t a = atomic_load_explicit(&lb->servers[i].state->active, memory_order_relaxed);
        int64_t w = atr__lb_weight(lb, i);
        if (best < 0 || a * best_weight < best_active * w) {
            best = i;
            best_active = a;
            best_weight = w;
        }
    }
    return best;
}

static int pick(atr_lb_t *lb, const unsigned char *ok)
{
    return scan(lb, ok);
}

static int pick_fast(atr_lb_t *lb)
{
    return lb->nprim > EXACT_MAX ? sample(lb) : scan(lb, NULL);
}

static void dispose(atr_lb_t *lb)
{
    free(((least_conn_t *)lb)->current);
    free(((least_conn_t *)lb)->tied);
}

const atr_lb_ops_t atr__lb_least_conn = {
    .name = "least_conn",
    .size = sizeof(least_conn_t),
    .init = init,
    .pick = pick,
    .dispose = dispose,
    .pick_fast = pick_fast,
};
