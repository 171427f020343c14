/* Passive outlier detection and slow start: what the workers learn from
 * real traffic, kept in the servers' shared states (atomics, no lock).
 *
 * A server whose responses fail `consecutive` times in a row, counted
 * across workers, is ejected: skipped by every method for an interval that
 * doubles with each ejection in a row (interval, 2x, 4x ... max_interval),
 * like Envoy's outlier detection. The run of ejections is forgotten once the
 * server has served as long as its last ejection lasted without being
 * ejected again, so a server that failed once long ago starts from the base
 * interval. Ejection is capped by a share of the pool, and atr_lb_pick
 * ignores it altogether when it leaves nothing to choose from: it is advice
 * from traffic, never a reason to answer 503.
 *
 * The ejection's end is when the server comes back for slow_start, so the
 * ramp needs no event: back_at is set to ejected_until at ejection time. */
#include "balancer/balancer.h"

void atr_lb_server_back(atr_server_state_t *st, uint64_t now_ms)
{
    atomic_store_explicit(&st->back_at, now_ms ? now_ms : 1, memory_order_relaxed);
}

uint32_t atr__lb_ramp(const atr_lb_server_t *s, uint64_t back, uint64_t now_ms)
{
    uint64_t full = (uint64_t)s->weight * ATR_LB_WSCALE;
    uint64_t elapsed = now_ms > back ? now_ms - back : 0;
    uint64_t w = full * elapsed / s->slow_start, floor = full / 32;

    /* From a small share rather than zero: the server gets a few requests at
     * once, which is what tells a flapping server from a recovered one. */
    if (floor == 0)
        floor = 1;
    return (uint32_t)(w > floor ? w : floor);
}

/* The length of the run-th ejection in a row (run >= 1). */
static uint64_t ejection_length(const atr_lb_outlier_t *o, int run)
{
    uint64_t t = o->interval;
    for (int k = 1; k < run && t < o->max_interval; k++)
        t *= 2;
    return t < o->max_interval ? t : o->max_interval;
}

/* How many of the pool's servers are ejected at now_ms. O(n), but only when
 * a server is about to be ejected, never per request. */
static int ejected_count(const atr_lb_server_t *servers, int n, uint64_t now_ms)
{
    int k = 0;
    for (int j = 0; j < n; j++)
        k += atomic_load_explicit(&servers[j].state->ejected_until, memory_order_relaxed) > now_ms;
    return k;
}

/* Eject servers[i] when the pool can spare it: 1 when this call did. */
static int eject(const atr_lb_outlier_t *o, const atr_lb_server_t *servers, int n, int i,
                 uint64_t now_ms, uint64_t *interval)
{
    atr_server_state_t *st = servers[i].state;
    uint64_t old = atomic_load(&st->ejected_until);
    int run = atomic_load(&st->outlier_run) + 1;
    uint64_t len = ejection_length(o, run), until = now_ms + len;
    int cap = (int)((int64_t)n * o->max_ejected / 100);

    if (cap > n - 1) /* never the whole pool */
        cap = n - 1;
    if (old > now_ms || cap <= 0)
        return 0;
    /* One worker wins the server; then the cap is checked with this
     * ejection counted, and undone when two workers raced past it: both
     * may undo, and the next failure tries again, but the pool never stays
     * ejected beyond the cap. */
    if (!atomic_compare_exchange_strong(&st->ejected_until, &old, until))
        return 0;
    if (ejected_count(servers, n, now_ms) > cap) {
        atomic_compare_exchange_strong(&st->ejected_until, &until, old);
        return 0;
    }
    atomic_store(&st->outlier_fails, 0);
    atomic_store(&st->outlier_run, run);
    atomic_fetch_add(&st->ejections, 1);
    atomic_store(&st->back_at, until); /* slow start from the ejection's end */
    atomic_store(&st->logged_ejected, 1);
    if (interval != NULL)
        *interval = len;
    return 1;
}

/* A good response: the run of failures is over; the run of ejections too
 * once the server has stayed in as long as its last ejection kept it out. */
static enum atr_lb_outlier_event good(atr_server_state_t *st, uint64_t now_ms)
{
    enum atr_lb_outlier_event ev = ATR_LB_OUTLIER_NONE;

    if (atomic_load_explicit(&st->outlier_fails, memory_order_relaxed) != 0)
        atomic_store_explicit(&st->outlier_fails, 0, memory_order_relaxed);
    if (atomic_load_explicit(&st->logged_ejected, memory_order_relaxed) == 0)
        return ev;
    uint64_t until = atomic_load(&st->ejected_until);
    if (now_ms < until) /* an answer to a request sent before the ejection */
        return ev;
    if (atomic_exchange(&st->logged_ejected, 0) == 1)
        ev = ATR_LB_OUTLIER_BACK;
    return ev;
}

enum atr_lb_outlier_event atr_lb_outlier_result(const atr_lb_outlier_t *o,
                                                const atr_lb_server_t *servers, int n, int i,
                                                int failed, uint64_t now_ms, uint64_t *interval)
{
    atr_server_state_t *st;

    if (o == NULL || o->consecutive <= 0 || i < 0 || i >= n)
        return ATR_LB_OUTLIER_NONE;
    st = servers[i].state;
    if (!failed) {
        int run = atomic_load_explicit(&st->outlier_run, memory_order_relaxed);
        if (run > 0) {
            uint64_t until = atomic_load_explicit(&st->ejected_until, memory_order_relaxed);
            if (now_ms >= until + ejection_length(o, run))
                atomic_store_explicit(&st->outlier_run, 0, memory_order_relaxed);
        }
        return good(st, now_ms);
    }
    if (atomic_load_explicit(&st->ejected_until, memory_order_relaxed) > now_ms)
        return ATR_LB_OUTLIER_NONE; /* in flight when it was ejected: no news */
    if (atomic_fetch_add(&st->outlier_fails, 1) + 1 < o->consecutive)
        return ATR_LB_OUTLIER_NONE;
    return eject(o, servers, n, i, now_ms, interval) ? ATR_LB_OUTLIER_EJECTED
                                                     : ATR_LB_OUTLIER_NONE;
}
