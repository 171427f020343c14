/* The method registry and the filtering every method shares: which servers a
 * request may use right now (up, not full, not tried, primaries before
 * backups). Methods only choose among what this file lets through. */
#include "balancer/balancer.h"

#include <stdlib.h>

#include "base/util.h"

/* The methods, one file each. Not static only because this array names
 * them, so they are declared here, beside it: adding a method touches its
 * file, the two lines here and meson.build (docs/balancer.md). */
extern const atr_lb_ops_t atr__lb_round_robin;
extern const atr_lb_ops_t atr__lb_least_conn;
extern const atr_lb_ops_t atr__lb_random2;
extern const atr_lb_ops_t atr__lb_hash;
extern const atr_lb_ops_t atr__lb_ewma;
extern const atr_lb_ops_t atr__lb_heartbeat;

/* Explicit list, in the order `-T` and error messages show them; the first
 * is the default. */
static const void *const methods[] = {
    &atr__lb_round_robin,
    &atr__lb_least_conn,
    &atr__lb_random2,
    &atr__lb_hash,
    &atr__lb_ewma,
    &atr__lb_heartbeat,
};

const atr_registry_t atr_lb_registry = { "balance method", methods, ATR_ARRAY_SIZE(methods) };

const atr_lb_ops_t *atr_lb_find(const char *name)
{
    return atr_registry_find(&atr_lb_registry, name);
}

const atr_lb_ops_t *atr_lb_ops_at(size_t i)
{
    return i < atr_lb_registry.n ? atr_lb_registry.entries[i] : NULL;
}

/* splitmix64: spreads small or similar seeds (worker 1, 2, 3) over the whole
 * state so the workers' sequences do not start out correlated. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void atr__lb_alias(const double *w, int n, uint32_t *prob, int *alias)
{
    double total = 0.0, *scaled = atr_xcalloc((size_t)n, sizeof(*scaled));
    int ns = 0, nl = 0, *small = atr_xcalloc((size_t)n, sizeof(*small));
    int *large = atr_xcalloc((size_t)n, sizeof(*large));
    for (int k = 0; k < n; k++)
        total += w[k];
    for (int k = 0; k < n; k++) {
        scaled[k] = w[k] * n / total;
        alias[k] = k;
        prob[k] = UINT32_MAX;
        if (scaled[k] < 1.0)
            small[ns++] = k;
        else
            large[nl++] = k;
    }
    while (ns > 0 && nl > 0) {
        int sm = small[--ns], lg = large[nl - 1];
        prob[sm] = (uint32_t)(scaled[sm] * 4294967296.0);
        alias[sm] = lg;
        scaled[lg] -= 1.0 - scaled[sm];
        if (scaled[lg] < 1.0) {
            nl--;
            small[ns++] = lg;
        }
    }
    free(scaled);
    free(small);
    free(large);
}

/* The primaries and, when their weights differ, Vose's alias table over
 * them, for atr__lb_draw_fast: a draw is then one uniform index and one
 * compare, O(1) whatever the weights (a binary search over cumulative
 * weights was 10 mispredicted branches a draw at 1,000 servers). */
static void primaries(atr_lb_t *lb)
{
    int equal = 1, n;

    lb->prim = atr_xcalloc((size_t)lb->nservers + 1, sizeof(*lb->prim));
    for (int i = 0; i < lb->nservers; i++) {
        if (lb->servers[i].backup)
            continue;
        if (lb->nprim > 0 && lb->servers[i].weight != lb->servers[lb->prim[0]].weight)
            equal = 0;
        lb->prim[lb->nprim++] = i;
    }
    if (equal)
        return;
    n = lb->nprim;
    double *w = atr_xcalloc((size_t)n, sizeof(*w));
    for (int k = 0; k < n; k++)
        w[k] = (double)lb->servers[lb->prim[k]].weight;
    lb->prob = atr_xcalloc((size_t)n, sizeof(*lb->prob));
    lb->alias = atr_xcalloc((size_t)n, sizeof(*lb->alias));
    atr__lb_alias(w, n, lb->prob, lb->alias);
    for (int k = 0; k < n; k++)
        lb->alias[k] = lb->prim[lb->alias[k]]; /* positions to server indices */
    free(w);
}

atr_lb_t *atr_lb_new(const atr_lb_ops_t *ops, atr_lb_server_t *servers, int n, uint64_t seed)
{
    atr_lb_t *lb = atr_xcalloc(1, ops->size);
    lb->ops = ops;
    lb->servers = servers;
    lb->nservers = n;
    lb->rng = mix(seed);
    if (lb->rng == 0) /* xorshift never leaves 0 */
        lb->rng = 0x9e3779b97f4a7c15ULL;
    lb->ok = atr_xcalloc((size_t)n, 1);
    primaries(lb);
    if (ops->init != NULL)
        ops->init(lb);
    return lb;
}

void atr_lb_free(atr_lb_t *lb)
{
    if (lb == NULL)
        return;
    if (lb->ops->dispose != NULL)
        lb->ops->dispose(lb);
    free(lb->ok);
    free(lb->prim);
    free(lb->prob);
    free(lb->alias);
    free(lb);
}

uint64_t atr_lb_random(atr_lb_t *lb)
{
    uint64_t x = lb->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    lb->rng = x;
    return x * 0x2545f4914f6cdd1dULL;
}

int atr__lb_load_cmp(const atr_lb_t *lb, int a, int b)
{
    const atr_lb_server_t *sa = &lb->servers[a], *sb = &lb->servers[b];
    int64_t la = (int64_t)atomic_load_explicit(&sa->state->active, memory_order_relaxed) *
                 atr__lb_weight(lb, b);
    int64_t lb_ = (int64_t)atomic_load_explicit(&sb->state->active, memory_order_relaxed) *
                  atr__lb_weight(lb, a);
    return (la > lb_) - (la < lb_);
}

int atr__lb_draw(const atr_lb_t *lb, const unsigned char *ok, int skip, uint64_t r)
{
    uint64_t total = 0;
    int last = -1;

    for (int i = 0; i < lb->nservers; i++)
        if (ok[i] && i != skip)
            total += atr__lb_weight(lb, i);
    if (total == 0)
        return -1;
    r %= total;
    for (int i = 0; i < lb->nservers; i++) {
        if (!ok[i] || i == skip)
            continue;
        last = i;
        uint64_t w = atr__lb_weight(lb, i);
        if (r < w)
            return i;
        r -= w;
    }
    return last;
}

/* Draws before atr__lb_draw_fast and the methods' fast paths give up: with
 * a quarter of the pool unusable, 8 misses in a row happen once in 65536
 * picks, and then the pick is only as slow as it was before. */
#define FAST_TRIES 8

/* A primary by configured weight: a uniform position from the high bits of
 * r (a multiply, no division), then the alias table's coin from the low. */
static int draw_static(const atr_lb_t *lb, uint64_t r)
{
    int k = (int)(((r >> 32) * (uint64_t)lb->nprim) >> 32);
    if (lb->prob == NULL || (uint32_t)r < lb->prob[k])
        return lb->prim[k];
    return lb->alias[k];
}

int atr__lb_keep_ramping(atr_lb_t *lb, int i, uint32_t r)
{
    const atr_lb_server_t *s = &lb->servers[i];
    uint64_t full = (uint64_t)s->weight * ATR_LB_WSCALE;

    if (s->slow_start == 0)
        return 1;
    return (((uint64_t)r * full) >> 32) < atr__lb_weight(lb, i);
}

int atr__lb_draw_fast(atr_lb_t *lb, int skip)
{
    /* skip is redrawn rather than cut out of the table: when that keeps
     * failing (a heavy skip), the caller's O(n) fallback draws exactly. */
    for (int t = 0; t < FAST_TRIES && lb->nprim > 0; t++) {
        int i = draw_static(lb, atr_lb_random(lb));
        if (i != skip && atr__lb_usable(lb, i) &&
            (lb->servers[i].slow_start == 0 ||
             atr__lb_keep_ramping(lb, i, (uint32_t)atr_lb_random(lb))))
            return i;
    }
    return -1;
}

/* Fill lb->ok for the servers of one class (backup or not). Returns how many
 * are usable; *full counts those skipped only because of max_conns,
 * *ejected those skipped only because outlier detection ejected them
 * (ignored with eject_ok). */
static int filter(atr_lb_t *lb, int backup, uint64_t now_ms, const unsigned char *tried, int *full,
                  int *ejected, int eject_ok)
{
    int nok = 0;
    for (int i = 0; i < lb->nservers; i++) {
        const atr_lb_server_t *s = &lb->servers[i];
        lb->ok[i] = 0;
        if ((s->backup != 0) != backup || (tried != NULL && tried[i]))
            continue;
        if (atr_lb_out_of_service(s->state, now_ms))
            continue;
        if (!eject_ok &&
            atomic_load_explicit(&s->state->ejected_until, memory_order_relaxed) > now_ms) {
            (*ejected)++;
            continue;
        }
        if ((s->max_conns > 0 &&
             atomic_load_explicit(&s->state->active, memory_order_relaxed) >= s->max_conns) ||
            atomic_load_explicit(&s->state->pending, memory_order_relaxed)) {
            (*full)++; /* soon free, or soon resolved: the request waits in the queue */
            continue;
        }
        lb->ok[i] = 1;
        nok++;
    }
    return nok;
}

int atr_lb_pick(atr_lb_t *lb, uint64_t now_ms, const unsigned char *tried, int *all_full)
{
    return atr_lb_pick_key(lb, now_ms, tried, all_full, 0);
}

void atr_lb_carry(atr_lb_t *to, const atr_lb_t *from)
{
    if (to->ops == from->ops && to->ops->carry != NULL)
        to->ops->carry(to, from);
}

void atr_lb_observe(atr_lb_t *lb, int server, uint64_t now_ms, uint64_t rtt_us)
{
    if (lb->ops->observe != NULL && server >= 0 && server < lb->nservers)
        lb->ops->observe(lb, server, now_ms, rtt_us);
}

/* Primaries, else backups when no primary is merely full: the method's
 * choice among the class offered, or -1. */
static int offer(atr_lb_t *lb, const unsigned char *tried, int *full, int *ejected, int eject_ok)
{
    if (filter(lb, 0, lb->now_ms, tried, full, ejected, eject_ok) > 0)
        return lb->ops->pick(lb, lb->ok);
    if (*full == 0 && filter(lb, 1, lb->now_ms, tried, full, ejected, eject_ok) > 0)
        return lb->ops->pick(lb, lb->ok);
    return -1;
}

int atr_lb_pick_key(atr_lb_t *lb, uint64_t now_ms, const unsigned char *tried, int *all_full,
                    uint64_t key)
{
    int full = 0, ejected = 0, idx;

    lb->now_ms = now_ms;
    lb->key = key;
    lb->tried = tried;
    /* The common path: the method's own candidates, checked one by one. */
    if (lb->ops->pick_fast != NULL && (idx = lb->ops->pick_fast(lb)) >= 0) {
        if (all_full != NULL)
            *all_full = 0;
        return idx;
    }
    idx = offer(lb, tried, &full, &ejected, 0);
    /* Ejected servers are left out unless that leaves nothing to try (a
     * merely full server still means: queue). Then they are offered as if
     * not ejected, Envoy's panic mode: ejection is a guess from traffic,
     * a 503 a certainty. */
    if (idx < 0 && full == 0 && ejected > 0)
        idx = offer(lb, tried, &full, &ejected, 1);
    if (all_full != NULL)
        *all_full = idx < 0 && full > 0;
    return idx;
}

int atr__lb_two_choices_fast(atr_lb_t *lb, int (*prefer)(atr_lb_t *lb, int b, int a))
{
    int a = atr__lb_draw_fast(lb, -1), b, full = 0, ejected = 0;

    if (a < 0)
        return -1;
    b = atr__lb_draw_fast(lb, a);
    if (b < 0) {
        /* Few usable besides a, or none: choose among them the O(n) way
         * rather than start over, which would favour whatever a was not
         * (a heavy a is the one whose partner is hard to find). */
        if (filter(lb, 0, lb->now_ms, lb->tried, &full, &ejected, 0) > 0)
            b = atr__lb_draw(lb, lb->ok, a, atr_lb_random(lb));
        if (b < 0)
            return a;
    }
    return prefer(lb, b, a) ? b : a;
}
