/* Balancers: exact round-robin orders, weighted distributions, least_conn and
 * random2 load choices, and the shared filtering (down, full, tried, backup). */
#include <stdlib.h>

#include "balancer/balancer.h"
#include "t.h"
#include "base/util.h"

#define MAXS 8
#define NOW 1000000u

/* A pool of up to MAXS servers described by small arrays (0 = default). */
typedef struct pool {
    int n;
    int weight[MAXS], max_conns[MAXS], backup[MAXS], active[MAXS], down[MAXS];
} pool_t;

typedef struct fixture {
    atr_server_state_t state[MAXS];
    atr_lb_server_t srv[MAXS];
    atr_lb_t *lb;
} fixture_t;

static void setup(fixture_t *f, const char *method, const pool_t *p, uint64_t seed)
{
    memset(f, 0, sizeof(*f));
    for (int i = 0; i < p->n; i++) {
        f->srv[i].weight = p->weight[i] ? p->weight[i] : 1;
        f->srv[i].max_conns = p->max_conns[i];
        f->srv[i].backup = p->backup[i];
        f->srv[i].state = &f->state[i];
        atomic_store(&f->state[i].active, p->active[i]);
        /* down[i] == 2: was down, the deadline has passed (usable again) */
        atomic_store(&f->state[i].down_until,
                     p->down[i] == 1 ? NOW + 1 : p->down[i] == 2 ? NOW : 0);
    }
    f->lb = atr_lb_new(atr_lb_find(method), f->srv, p->n, seed);
}

/* ---- exact sequences: each pick is released before the next (active stays) ---- */

static const struct {
    int line;
    const char *method;
    pool_t pool;
    const char *tried; /* "010": server 1 already tried, NULL: none */
    const char *expect; /* picks as digits */
} seq_cases[] = {
    { __LINE__, "round_robin", { .n = 3, .weight = { 1, 1, 1 } }, NULL, "012012012" },
    { __LINE__, "round_robin", { .n = 3, .weight = { 5, 1, 1 } }, NULL, "00102000010200" }, /* a a b a c a a */
    { __LINE__, "round_robin", { .n = 2, .weight = { 2, 1 } }, NULL, "010010" },
    { __LINE__, "round_robin", { .n = 1, .weight = { 1 } }, NULL, "0000" },
    { __LINE__, "round_robin", { .n = 3, .weight = { 1, 1, 1 }, .down = { 0, 1, 0 } }, NULL, "020202" },
    { __LINE__, "round_robin", { .n = 3, .weight = { 1, 1, 1 }, .down = { 0, 2, 0 } }, NULL, "012012" },
    { __LINE__, "round_robin", { .n = 3, .weight = { 1, 1, 1 } }, "100", "121212" },
    { __LINE__, "round_robin", { .n = 3, .weight = { 1, 1, 1 }, .backup = { 0, 0, 1 } }, NULL, "010101" },
    { __LINE__, "round_robin", { .n = 3, .weight = { 1, 1, 1 }, .max_conns = { 0, 1, 0 }, .active = { 0, 1, 0 } },
      NULL, "020202" },
    /* least_conn with everything idle: smooth round robin among the tied */
    { __LINE__, "least_conn", { .n = 3, .weight = { 1, 1, 1 } }, NULL, "012012012" },
    { __LINE__, "least_conn", { .n = 2, .weight = { 2, 1 } }, NULL, "010010" },
    { __LINE__, "least_conn", { .n = 3, .weight = { 1, 1, 1 }, .active = { 3, 0, 3 } }, NULL, "111111" },
    { __LINE__, "least_conn", { .n = 3, .weight = { 1, 1, 1 }, .active = { 2, 0, 0 } }, NULL, "121212" },
    /* 2 in flight on weight 3 is lighter than 1 on weight 1 */
    { __LINE__, "least_conn", { .n = 2, .weight = { 3, 1 }, .active = { 2, 1 } }, NULL, "0000" },
    { __LINE__, "least_conn", { .n = 2, .weight = { 3, 1 }, .active = { 4, 1 } }, NULL, "1111" },
    /* random2: both servers are always drawn, the idle one always wins */
    { __LINE__, "random2", { .n = 2, .weight = { 1, 1 }, .active = { 10, 0 } }, NULL, "11111111" },
    { __LINE__, "random2", { .n = 2, .weight = { 1, 1 }, .active = { 0, 7 } }, NULL, "00000000" },
    { __LINE__, "random2", { .n = 3, .weight = { 1, 1, 1 }, .down = { 1, 0, 1 } }, NULL, "1111" },
};

static void test_sequences(void)
{
    for (size_t c = 0; c < ATR_ARRAY_SIZE(seq_cases); c++) {
        fixture_t f;
        unsigned char tried[MAXS] = { 0 };
        char got[64] = { 0 };
        size_t len = strlen(seq_cases[c].expect);

        setup(&f, seq_cases[c].method, &seq_cases[c].pool, 42);
        for (int i = 0; seq_cases[c].tried && seq_cases[c].tried[i]; i++)
            tried[i] = seq_cases[c].tried[i] == '1';
        for (size_t k = 0; k < len; k++) {
            int idx = atr_lb_pick(f.lb, NOW, seq_cases[c].tried ? tried : NULL, NULL);
            got[k] = idx < 0 ? '-' : (char)('0' + idx);
        }
        T_CHECK(seq_cases[c].line, strcmp(got, seq_cases[c].expect) == 0, "%s: got %s, want %s",
                seq_cases[c].method, got, seq_cases[c].expect);
        atr_lb_free(f.lb);
    }
}

/* ---- single picks: filtering, backups, all_full ---- */

static const struct {
    int line;
    const char *method; /* NULL: every method */
    pool_t pool;
    const char *tried;
    int expect, all_full;
} pick_cases[] = {
    /* everything down */
    { __LINE__, NULL, { .n = 2, .down = { 1, 1 } }, NULL, -1, 0 },
    { __LINE__, NULL, { .n = 0 }, NULL, -1, 0 },
    /* only max_conns blocks: queue rather than 503 */
    { __LINE__, NULL, { .n = 2, .max_conns = { 1, 2 }, .active = { 1, 2 } }, NULL, -1, 1 },
    { __LINE__, NULL, { .n = 2, .max_conns = { 1, 0 }, .active = { 1, 0 }, .down = { 0, 1 } }, NULL, -1, 1 },
    /* tried and down are not "full" */
    { __LINE__, NULL, { .n = 2, .max_conns = { 1, 0 }, .active = { 1, 0 } }, "01", -1, 1 },
    { __LINE__, NULL, { .n = 2 }, "11", -1, 0 },
    { __LINE__, NULL, { .n = 2, .max_conns = { 1, 1 }, .active = { 1, 0 } }, "01", -1, 1 },
    /* backups: only when every primary is down or tried */
    { __LINE__, NULL, { .n = 3, .backup = { 0, 0, 1 }, .down = { 1, 1, 0 } }, NULL, 2, 0 },
    { __LINE__, NULL, { .n = 3, .backup = { 0, 0, 1 }, .down = { 1, 0, 0 } }, "010", 2, 0 },
    { __LINE__, NULL, { .n = 3, .backup = { 0, 0, 1 }, .down = { 1, 0, 0 } }, NULL, 1, 0 },
    { __LINE__, NULL, { .n = 3, .backup = { 1, 0, 1 }, .down = { 0, 0, 1 } }, NULL, 1, 0 },
    { __LINE__, NULL, { .n = 2, .backup = { 0, 1 }, .down = { 1, 1 } }, NULL, -1, 0 },
    /* a full primary holds the request among primaries: queue, not backup */
    { __LINE__, NULL, { .n = 2, .backup = { 0, 1 }, .max_conns = { 1, 0 }, .active = { 1, 0 } }, NULL, -1, 1 },
    /* primaries down, backup full */
    { __LINE__, NULL, { .n = 2, .backup = { 0, 1 }, .max_conns = { 0, 1 }, .active = { 0, 1 }, .down = { 1, 0 } },
      NULL, -1, 1 },
    /* only backups configured */
    { __LINE__, NULL, { .n = 2, .backup = { 1, 1 }, .down = { 1, 0 } }, NULL, 1, 0 },
    /* a down_until in the past is up again */
    { __LINE__, NULL, { .n = 2, .down = { 1, 2 } }, NULL, 1, 0 },
    /* max_conns not reached */
    { __LINE__, NULL, { .n = 2, .max_conns = { 5, 5 }, .active = { 5, 4 } }, NULL, 1, 0 },
};

static void test_picks(void)
{
    for (size_t c = 0; c < ATR_ARRAY_SIZE(pick_cases); c++) {
        for (size_t m = 0; atr_lb_ops_at(m) != NULL; m++) {
            const char *name = atr_lb_ops_at(m)->name;
            unsigned char tried[MAXS] = { 0 };
            fixture_t f;
            int full = -1, idx;

            if (pick_cases[c].method && strcmp(pick_cases[c].method, name) != 0)
                continue;
            setup(&f, name, &pick_cases[c].pool, 7);
            for (int i = 0; pick_cases[c].tried && pick_cases[c].tried[i]; i++)
                tried[i] = pick_cases[c].tried[i] == '1';
            idx = atr_lb_pick(f.lb, NOW, pick_cases[c].tried ? tried : NULL, &full);
            T_CHECK(pick_cases[c].line, idx == pick_cases[c].expect && full == pick_cases[c].all_full,
                    "%s: got %d all_full=%d, want %d all_full=%d", name, idx, full,
                    pick_cases[c].expect, pick_cases[c].all_full);
            atr_lb_free(f.lb);
        }
    }
}

/* ---- distributions over many picks ---- */

enum { RELEASE, HOLD }; /* after a pick: release at once, or keep it in flight */

static const struct {
    int line;
    const char *method;
    pool_t pool;
    int mode, picks;
    int expect[MAXS];
    int tolerance; /* per cent of each expected count */
} dist_cases[] = {
    { __LINE__, "round_robin", { .n = 3, .weight = { 5, 1, 1 } }, RELEASE, 7000, { 5000, 1000, 1000 }, 0 },
    { __LINE__, "round_robin", { .n = 3, .weight = { 1, 2, 4 } }, RELEASE, 7000, { 1000, 2000, 4000 }, 0 },
    { __LINE__, "round_robin", { .n = 4, .weight = { 1, 1, 1, 1 } }, RELEASE, 7000, { 1750, 1750, 1750, 1750 }, 0 },
    /* held requests: least_conn keeps the in-flight counts level */
    { __LINE__, "least_conn", { .n = 3, .weight = { 1, 1, 1 } }, HOLD, 300, { 100, 100, 100 }, 0 },
    { __LINE__, "least_conn", { .n = 3, .weight = { 1, 1, 1 }, .active = { 30, 0, 0 } }, HOLD, 60, { 0, 30, 30 }, 0 },
    { __LINE__, "least_conn", { .n = 2, .weight = { 3, 1 } }, HOLD, 400, { 300, 100 }, 0 },
    { __LINE__, "least_conn", { .n = 3, .weight = { 5, 1, 1 } }, RELEASE, 7000, { 5000, 1000, 1000 }, 0 },
    /* random2: roughly even when idle, weighted by weight, level when held */
    { __LINE__, "random2", { .n = 3, .weight = { 1, 1, 1 } }, RELEASE, 30000, { 10000, 10000, 10000 }, 5 },
    { __LINE__, "random2", { .n = 4, .weight = { 1, 1, 1, 1 } }, RELEASE, 40000, { 10000, 10000, 10000, 10000 }, 5 },
    { __LINE__, "random2", { .n = 2, .weight = { 3, 1 } }, RELEASE, 40000, { 30000, 10000 }, 5 },
    { __LINE__, "random2", { .n = 3, .weight = { 1, 1, 1 } }, HOLD, 3000, { 1000, 1000, 1000 }, 2 },
};

static void test_distributions(void)
{
    for (size_t c = 0; c < ATR_ARRAY_SIZE(dist_cases); c++) {
        const pool_t *p = &dist_cases[c].pool;
        int count[MAXS] = { 0 }, bad = 0;
        fixture_t f;

        setup(&f, dist_cases[c].method, p, 12345);
        for (int k = 0; k < dist_cases[c].picks; k++) {
            int idx = atr_lb_pick(f.lb, NOW, NULL, NULL);
            if (idx < 0 || idx >= p->n) {
                bad++;
                continue;
            }
            count[idx]++;
            if (dist_cases[c].mode == HOLD)
                atomic_fetch_add(&f.state[idx].active, 1);
        }
        T_CHECK(dist_cases[c].line, bad == 0, "%s: %d failed picks", dist_cases[c].method, bad);
        for (int i = 0; i < p->n; i++) {
            int want = dist_cases[c].expect[i];
            int slack = want * dist_cases[c].tolerance / 100;
            T_CHECK(dist_cases[c].line, abs(count[i] - want) <= slack, "%s: server %d got %d, want %d +- %d",
                    dist_cases[c].method, i, count[i], want, slack);
        }
        atr_lb_free(f.lb);
    }
}

/* random2 over a mixed pool: never a down, full or tried server. */
static void test_random2_filter(void)
{
    pool_t p = { .n = 6, .max_conns = { 0, 1, 0, 0, 0, 0 }, .active = { 0, 1, 0, 0, 0, 0 },
                 .down = { 1, 0, 0, 0, 0, 2 } };
    unsigned char tried[MAXS] = { 0, 0, 1, 0, 0, 0 };
    int count[MAXS] = { 0 };
    fixture_t f;

    setup(&f, "random2", &p, 99);
    for (int k = 0; k < 30000; k++) {
        int idx = atr_lb_pick(f.lb, NOW, tried, NULL);
        count[idx < 0 ? MAXS - 1 : idx]++;
    }
    T_CHECK(__LINE__, count[0] == 0 && count[1] == 0 && count[2] == 0 && count[MAXS - 1] == 0,
            "picked down=%d full=%d tried=%d none=%d", count[0], count[1], count[2], count[MAXS - 1]);
    for (int i = 3; i < 6; i++)
        T_CHECK(__LINE__, abs(count[i] - 10000) <= 500, "server %d got %d", i, count[i]);
    atr_lb_free(f.lb);
}

/* Different seeds give different random2 sequences (per-worker PRNGs). */
static void test_seeds(void)
{
    pool_t p = { .n = 4 };
    fixture_t a, b;
    int same = 0;

    setup(&a, "random2", &p, 1);
    setup(&b, "random2", &p, 2);
    for (int k = 0; k < 64; k++)
        same += atr_lb_pick(a.lb, NOW, NULL, NULL) == atr_lb_pick(b.lb, NOW, NULL, NULL);
    T_CHECK(__LINE__, same < 40, "seeds 1 and 2 agreed on %d of 64 picks", same);
    T_CHECK(__LINE__, atr_lb_random(a.lb) != atr_lb_random(b.lb), "same PRNG output");
    atr_lb_free(a.lb);
    atr_lb_free(b.lb);

    setup(&a, "random2", &p, 0); /* seed 0 must not stick the PRNG at 0 */
    T_CHECK(__LINE__, atr_lb_random(a.lb) != 0 || atr_lb_random(a.lb) != 0, "PRNG stuck at 0");
    atr_lb_free(a.lb);
}

static const struct {
    int line;
    const char *name;
    int found;
} find_cases[] = {
    { __LINE__, "round_robin", 1 },
    { __LINE__, "least_conn", 1 },
    { __LINE__, "random2", 1 },
    { __LINE__, "random", 0 },
    { __LINE__, "ROUND_ROBIN", 0 },
    { __LINE__, "", 0 },
};

static void test_registry(void)
{
    size_t n = 0;
    for (size_t c = 0; c < ATR_ARRAY_SIZE(find_cases); c++) {
        const atr_lb_ops_t *ops = atr_lb_find(find_cases[c].name);
        T_CHECK(find_cases[c].line, (ops != NULL) == find_cases[c].found, "find(\"%s\")", find_cases[c].name);
        if (ops != NULL)
            T_CHECK(find_cases[c].line, strcmp(ops->name, find_cases[c].name) == 0, "name %s", ops->name);
    }
    while (atr_lb_ops_at(n) != NULL)
        n++;
    T_CHECK(__LINE__, n == 3, "%zu methods registered", n);
}

int main(void)
{
    test_registry();
    test_sequences();
    test_picks();
    test_distributions();
    test_random2_filter();
    test_seeds();
    T_DONE();
}
