/* Power of two choices: draw two distinct usable servers at random (each
 * with probability proportional to its weight, like nginx's `random two`)
 * and send the request to the one with less load per unit of weight. Close
 * to least_conn's spread without every worker herding onto the same
 * momentarily idle server. */
#include "balancer/balancer.h"

typedef struct random2 {
    atr_lb_t super; /* the PRNG lives in the base */
} random2_t;

static int pick(atr_lb_t *lb, const unsigned char *ok)
{
    int a = atr__lb_draw(lb, ok, -1, atr_lb_random(lb)), b;

    if (a < 0)
        return -1;
    b = atr__lb_draw(lb, ok, a, atr_lb_random(lb));
    if (b < 0) /* a is the only usable server */
        return a;
    return atr__lb_load_cmp(lb, b, a) < 0 ? b : a;
}

static int lighter(atr_lb_t *lb, int b, int a)
{
    return atr__lb_load_cmp(lb, b, a) < 0;
}

/* The same choice without ok[]: draws in O(log n), each checked. */
static int pick_fast(atr_lb_t *lb)
{
    return atr__lb_two_choices_fast(lb, lighter);
}

const atr_lb_ops_t atr__lb_random2 = {
    .name = "random2",
    .size = sizeof(random2_t),
    .init = NULL,
    .pick = pick,
    .dispose = NULL,
    .pick_fast = pick_fast,
};
