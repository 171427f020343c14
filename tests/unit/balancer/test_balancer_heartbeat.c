/* balance heartbeat: the share of each server over many picks, from the
 * ready counts and beat ages in the shared state (as core/heartbeat.c
 * publishes them) and the latencies observed; a table of pools. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balancer/balancer.h"
#include "t.h"
#include "base/util.h"

#define MAXS 6
#define NOW 1000000u
#define PICKS 40000

enum { NEVER = -1 }; /* age: no beat ever */

static const struct {
    int line;
    int n;
    int ready[MAXS];
    int age_ms[MAXS];     /* age of the last beat at NOW; NEVER: none */
    int weight[MAXS];     /* 0 = 1 */
    int rtt_us[MAXS];     /* observed latency, 0 = none observed */
    int down[MAXS];       /* filtered out before the method sees it */
    int expect[MAXS];     /* picks of PICKS; -1 in slot MAXS-1 counts "no server" */
    int none;             /* picks that found no server */
    int tolerance;        /* per cent of each expected count */
} cases[] = {
    /* ready-weighted, as mod_lbmethod_heartbeat */
    { __LINE__, 3, { 10, 30, 60 }, { 0, 0, 0 }, { 0 }, { 0 }, { 0 }, { 4000, 12000, 24000 }, 0, 5 },
    /* ready=0 gets nothing at all */
    { __LINE__, 3, { 10, 0, 30 }, { 0, 0, 0 }, { 0 }, { 0 }, { 0 }, { 10000, 0, 30000 }, 0, 5 },
    /* a beat older than 10 s stops counting: a fresh one takes everything */
    { __LINE__, 2, { 50, 5 }, { 10001, 9999 }, { 0 }, { 0 }, { 0 }, { 0, 40000 }, 0, 0 },
    { __LINE__, 2, { 50, 5 }, { NEVER, 500 }, { 0 }, { 0 }, { 0 }, { 0, 40000 }, 0, 0 },
    /* a beat stamped ahead of the worker's clock is fresh */
    { __LINE__, 2, { 5, 5 }, { -100, 0 }, { 0 }, { 0 }, { 0 }, { 20000, 20000 }, 0, 5 },
    /* no fresh beat anywhere: configured weights decide */
    { __LINE__, 2, { 50, 5 }, { NEVER, 20000 }, { 1, 3 }, { 0 }, { 0 }, { 10000, 30000 }, 0, 5 },
    /* every fresh server full: the servers without a fresh beat, by weight */
    { __LINE__, 3, { 0, 0, 9 }, { 0, NEVER, 30000 }, { 1, 1, 1 }, { 0 }, { 0 }, { 0, 20000, 20000 }, 0, 5 },
    /* only full servers: nothing (503) */
    { __LINE__, 2, { 0, 0 }, { 0, 0 }, { 0 }, { 0 }, { 0 }, { 0, 0 }, PICKS, 0 },
    /* latency: four times slower (counting the 1 ms floor), a quarter of the share */
    { __LINE__, 2, { 10, 10 }, { 0, 0 }, { 0 }, { 9000, 39000 }, { 0 }, { 32000, 8000 }, 0, 5 },
    /* not measured yet counts as the fastest */
    { __LINE__, 3, { 10, 10, 10 }, { 0, 0, 0 }, { 0 }, { 9000, 19000, 0 }, { 0 }, { 16000, 8000, 16000 }, 0, 5 },
    /* ready and latency together: 30 slots at 30 ms = 10 slots at 10 ms */
    { __LINE__, 2, { 10, 30 }, { 0, 0 }, { 0 }, { 9000, 29000 }, { 0 }, { 20000, 20000 }, 0, 5 },
    /* sub-millisecond jitter moves little: 0.2 ms against 0.6 ms is 1.2 against 1.6 */
    { __LINE__, 2, { 10, 10 }, { 0, 0 }, { 0 }, { 200, 600 }, { 0 }, { 22857, 17143 }, 0, 5 },
    /* a down server is never offered, whatever it announces */
    { __LINE__, 3, { 100, 10, 10 }, { 0, 0, 0 }, { 0 }, { 0 }, { 1, 0, 0 }, { 0, 20000, 20000 }, 0, 5 },
};

static void test_shares(void)
{
    for (size_t c = 0; c < ATR_ARRAY_SIZE(cases); c++) {
        atr_server_state_t state[MAXS];
        atr_lb_server_t srv[MAXS];
        int count[MAXS] = { 0 }, none = 0;

        memset(state, 0, sizeof state);
        memset(srv, 0, sizeof srv);
        for (int i = 0; i < cases[c].n; i++) {
            srv[i].weight = cases[c].weight[i] ? cases[c].weight[i] : 1;
            srv[i].state = &state[i];
            atomic_store(&state[i].hb_ready, cases[c].ready[i]);
            if (cases[c].age_ms[i] != NEVER)
                atomic_store(&state[i].hb_seen_ms, (uint64_t)((int64_t)NOW - cases[c].age_ms[i]));
            if (cases[c].down[i])
                atomic_store(&state[i].down_until, NOW + 1);
        }
        atr_lb_t *lb = atr_lb_new(atr_lb_find("heartbeat"), srv, cases[c].n, 77);
        for (int i = 0; i < cases[c].n; i++)
            for (int k = 0; cases[c].rtt_us[i] && k < 20; k++)
                atr_lb_observe(lb, i, NOW, (uint64_t)cases[c].rtt_us[i]);
        for (int k = 0; k < PICKS; k++) {
            int idx = atr_lb_pick(lb, NOW, NULL, NULL);
            if (idx < 0)
                none++;
            else
                count[idx]++;
        }
        T_CHECK(cases[c].line, none == cases[c].none, "%d picks found no server", none);
        for (int i = 0; i < cases[c].n; i++) {
            int want = cases[c].expect[i], slack = want * cases[c].tolerance / 100;
            T_CHECK(cases[c].line, abs(count[i] - want) <= slack, "server %d got %d, want %d +- %d",
                    i, count[i], want, slack);
        }
        atr_lb_free(lb);
    }
}

/* Server 1's picks of 10000 at now. */
static int picks_of_1(atr_lb_t *lb, uint64_t now)
{
    int n = 0;
    for (int k = 0; k < 10000; k++)
        n += atr_lb_pick(lb, now, NULL, NULL) == 1;
    return n;
}

/* The moving average follows a server that turns slow, then recovers; the
 * excess of a server not heard from fades out over 10 s. */
static void test_latency_moves(void)
{
    atr_server_state_t state[2];
    atr_lb_server_t srv[2];
    int before, slow, half, faded, after;

    memset(state, 0, sizeof state);
    memset(srv, 0, sizeof srv);
    for (int i = 0; i < 2; i++) {
        srv[i].weight = 1;
        srv[i].state = &state[i];
        atomic_store(&state[i].hb_ready, 10);
        atomic_store(&state[i].hb_seen_ms, NOW);
    }
    atr_lb_t *lb = atr_lb_new(atr_lb_find("heartbeat"), srv, 2, 3);
    for (int k = 0; k < 10; k++) {
        atr_lb_observe(lb, 0, NOW, 9000);
        atr_lb_observe(lb, 1, NOW, 9000);
    }
    before = picks_of_1(lb, NOW);
    for (int k = 0; k < 10; k++)
        atr_lb_observe(lb, 1, NOW, 99000);
    /* the fast path's table follows latencies within 100 ms (TABLE_MS) */
    slow = picks_of_1(lb, NOW + 100); /* ~94 ms against 9: about 9% */
    half = picks_of_1(lb, NOW + 5000); /* half the excess left: ~52 ms, about 16% */
    faded = picks_of_1(lb, NOW + 10000);
    for (int k = 0; k < 30; k++)
        atr_lb_observe(lb, 1, NOW, 9000);
    after = picks_of_1(lb, NOW);
    T_CHECK(__LINE__, abs(before - 5000) < 300 && slow < 1300 && half > 1300 && half < 2200 &&
                      abs(faded - 5000) < 300 && abs(after - 5000) < 400,
            "server 1's picks of 10000: %d, slow %d, 5 s later %d, 10 s later %d, recovered %d",
            before, slow, half, faded, after);
    atr_lb_free(lb);
}

int main(void)
{
    test_shares();
    test_latency_moves();
    T_DONE();
}
