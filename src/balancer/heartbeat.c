/* balance heartbeat: mod_lbmethod_heartbeat's choice, a random draw weighted
 * by the idle capacity (`ready`) each server announced in its last beat
 * (core/heartbeat.c publishes beats into the shared server state), so that
 * servers with more free slots get more requests without the one with the
 * most getting all of them. What Apache's method lacks:
 *
 * - ready=0 means no new requests. Apache draws from [0, sum] inclusive, so
 *   a server at 0 still wins a draw that lands on its boundary.
 * - Measured latency lowers a server's share: its ready count is scaled by
 *   (fastest + FLOOR_US) / (its own estimate + FLOOR_US). A slot that turns
 *   requests around twice as slowly absorbs half as many per second (Little's
 *   law), which is what the draw should be proportional to. The estimate is
 *   a per-worker moving average of the times ops->observe reports (no shared
 *   cache line written per response, as in ewma.c); a server not measured
 *   yet counts as fast as the fastest. Two guards against noise, since a
 *   server whose share fell gets few responses to correct its estimate
 *   with: FLOOR_US keeps sub-millisecond jitter (0.2 ms against 0.6 ms) from
 *   tripling a share, and without new responses an estimate's excess over
 *   the fastest fades out over FADE_MS, so a server judged on one slow
 *   answer is soon offered its full share again and measured anew.
 * - A server with no fresh beat (none, or older than ATR_LB_HB_FRESH_MS, as
 *   Apache's LBM_HEARTBEAT_MAX_LASTSEEN) is not a candidate while any server
 *   has fresh data with ready > 0, as in Apache; when none has (beats are not
 *   arriving at all, or every fresh server is full) the method falls back to
 *   the servers without fresh data, by configured weight, rather than
 *   refusing every request as Apache does. A server whose fresh beat says
 *   ready=0 is never chosen: when only such servers remain, no server is
 *   (the request is answered 503).
 *
 * Apache quarters the ready of a server with busy=0 ("likely just started
 * up"); an idle server also has busy=0, so that heuristic mostly penalises
 * idle servers, and it is not copied. The configured weight plays no part
 * while beats count, as in Apache: the server's own report is its capacity. */
#include "balancer/balancer.h"

#include <stdlib.h>

#include "base/util.h"

/* The weight of a new latency sample in the moving average (TCP's srtt
 * uses 1/8; a balancer should react within a handful of responses). */
#define ALPHA 0.25
/* Added to every estimate: differences well under a millisecond are noise
 * next to a network hop, not a reason to move load. */
#define FLOOR_US 1000.0
/* How long an estimate's excess over the fastest takes to fade out when the
 * server gives no new response. */
#define FADE_MS 10000

typedef struct est {
    double rtt_us; /* the moving average, 0 before the first response */
    uint64_t at;   /* now_ms of the last response */
} est_t;

/* How long the fast path's table of weights serves before it is built
 * again from the latest beats and latencies: beats come once a second. */
#define TABLE_MS 100
/* Draws from the table before the exact O(n) pick takes over. */
#define TABLE_TRIES 8

typedef struct hb {
    atr_lb_t super;
    est_t *est; /* per server */
    double *w;  /* per server: scratch for a pick's weights */
    /* The fast path: an alias table over the servers with weight, as of
     * built_ms (pick_fast draws from it and checks the server is usable). */
    int *idx, *alias, ntab;
    uint32_t *prob;
    uint64_t built_ms;
    unsigned epoch;  /* atr_lb_hb_epoch the table was built at */
    int built;
} hb_t;

atomic_uint atr_lb_hb_epoch;

static void init(atr_lb_t *lb)
{
    hb_t *self = (hb_t *)lb;
    self->est = atr_xcalloc((size_t)lb->nservers, sizeof *self->est);
    self->w = atr_xcalloc((size_t)lb->nservers, sizeof *self->w);
    self->idx = atr_xcalloc((size_t)lb->nservers + 1, sizeof *self->idx);
    self->alias = atr_xcalloc((size_t)lb->nservers + 1, sizeof *self->alias);
    self->prob = atr_xcalloc((size_t)lb->nservers + 1, sizeof *self->prob);
}

static void dispose(atr_lb_t *lb)
{
    hb_t *self = (hb_t *)lb;
    free(self->est);
    free(self->w);
    free(self->idx);
    free(self->alias);
    free(self->prob);
}

static void observe(atr_lb_t *lb, int server, uint64_t now_ms, uint64_t rtt_us)
{
    est_t *e = &((hb_t *)lb)->est[server];
    double x = rtt_us > 0 ? (double)rtt_us : 1.0;
    e->rtt_us = e->rtt_us == 0.0 ? x : e->rtt_us + ALPHA * (x - e->rtt_us);
    if (now_ms > e->at)
        e->at = now_ms;
}

/* Server i's estimate at now, its excess over fastest faded by its age;
 * fastest when it has none. */
static double estimate(const est_t *e, uint64_t now, double fastest)
{
    uint64_t age = now > e->at ? now - e->at : 0;
    if (e->rtt_us == 0.0 || e->rtt_us <= fastest || age >= FADE_MS)
        return e->rtt_us == 0.0 || age >= FADE_MS ? fastest : e->rtt_us;
    return fastest + (e->rtt_us - fastest) * (1.0 - (double)age / FADE_MS);
}

/* A server by w[] (total > 0 is their sum); -1 when none has weight. */
static int draw(atr_lb_t *lb, const double *w, double total)
{
    double r = (double)(atr_lb_random(lb) >> 11) * (1.0 / 9007199254740992.0) * total;
    int last = -1;
    for (int i = 0; i < lb->nservers; i++) {
        if (w[i] <= 0.0)
            continue;
        last = i;
        if (r < w[i])
            return i;
        r -= w[i];
    }
    return last; /* rounding left r just past the end */
}

/* w[i] = announced ready, scaled by latency, for the candidates with a
 * fresh beat; returns the sum. */
static double beat_weights(atr_lb_t *lb, const unsigned char *ok)
{
    hb_t *self = (hb_t *)lb;
    double fastest = 0.0, total = 0.0;
    for (int i = 0; i < lb->nservers; i++) {
        atr_server_state_t *st = lb->servers[i].state;
        self->w[i] = 0.0;
        if (!ok[i] || !atr_lb_hb_fresh(st, lb->now_ms))
            continue;
        int ready = atomic_load_explicit(&st->hb_ready, memory_order_relaxed);
        if (ready <= 0)
            continue;
        self->w[i] = ready;
        double e = self->est[i].rtt_us;
        if (e > 0.0 && (fastest == 0.0 || e < fastest))
            fastest = e;
    }
    for (int i = 0; i < lb->nservers; i++) {
        if (self->w[i] > 0.0)
            self->w[i] *=
                (fastest + FLOOR_US) / (estimate(&self->est[i], lb->now_ms, fastest) + FLOOR_US);
        total += self->w[i];
    }
    return total;
}

/* w[i] = configured weight for the candidates without a fresh beat. */
static double fallback_weights(atr_lb_t *lb, const unsigned char *ok)
{
    hb_t *self = (hb_t *)lb;
    double total = 0.0;
    for (int i = 0; i < lb->nservers; i++) {
        int fresh = atr_lb_hb_fresh(lb->servers[i].state, lb->now_ms);
        self->w[i] = ok[i] && !fresh ? (double)atr__lb_weight(lb, i) : 0.0; /* slow_start too */
        total += self->w[i];
    }
    return total;
}

static int pick(atr_lb_t *lb, const unsigned char *ok)
{
    hb_t *self = (hb_t *)lb;
    double total = beat_weights(lb, ok);
    if (total <= 0.0)
        total = fallback_weights(lb, ok);
    return total > 0.0 ? draw(lb, self->w, total) : -1;
}

/* The table pick_fast draws from: the weights pick would give if every
 * primary were usable, now. O(n), once per TABLE_MS at most. */
static void build_table(atr_lb_t *lb)
{
    hb_t *self = (hb_t *)lb;
    for (int i = 0; i < lb->nservers; i++)
        lb->ok[i] = !lb->servers[i].backup; /* scratch: the filter refills it before pick */
    if (beat_weights(lb, lb->ok) <= 0.0)
        fallback_weights(lb, lb->ok);
    self->ntab = 0;
    for (int i = 0; i < lb->nservers; i++)
        if (self->w[i] > 0.0) {
            self->w[self->ntab] = self->w[i];
            self->idx[self->ntab++] = i;
        }
    if (self->ntab > 0)
        atr__lb_alias(self->w, self->ntab, self->prob, self->alias);
    self->built_ms = lb->now_ms;
    self->epoch = atomic_load_explicit(&atr_lb_hb_epoch, memory_order_relaxed);
    self->built = 1;
}

/* O(1) for any pool size: a draw from the table, kept when the server is
 * usable now; after a few misses (servers gone down or full since the
 * table was built), the exact pick over every server. */
static int pick_fast(atr_lb_t *lb)
{
    hb_t *self = (hb_t *)lb;
    if (!self->built || lb->now_ms - self->built_ms >= TABLE_MS || lb->now_ms < self->built_ms ||
        atomic_load_explicit(&atr_lb_hb_epoch, memory_order_relaxed) != self->epoch)
        build_table(lb); /* aged, or a beat changed the weights (ready=0 takes effect at once) */
    for (int t = 0; t < TABLE_TRIES && self->ntab > 0; t++) {
        uint64_t r = atr_lb_random(lb);
        int k = (int)(((r >> 32) * (uint64_t)self->ntab) >> 32);
        int i = self->idx[(uint32_t)r < self->prob[k] ? k : self->alias[k]];
        if (atr__lb_usable(lb, i))
            return i;
    }
    return -1;
}

const atr_lb_ops_t atr__lb_heartbeat = {
    .name = "heartbeat",
    .size = sizeof(hb_t),
    .init = init,
    .pick = pick,
    .pick_fast = pick_fast,
    .dispose = dispose,
    .observe = observe,
};
