/* Passive outlier detection and slow start, on a fake clock: ejection after
 * failures in a row, the growing interval and its reset, the pool share cap,
 * picks that skip ejected servers (and use them when nothing else is left),
 * the effective weight's ramp and what each method makes of it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balancer/balancer.h"
#include "t.h"
#include "base/util.h"

#define MAXS 8
#define T0 1000000u

typedef struct fixture {
    atr_server_state_t state[MAXS];
    atr_lb_server_t srv[MAXS];
    int n;
} fixture_t;

static void setup(fixture_t *f, int n)
{
    memset(f, 0, sizeof(*f));
    f->n = n;
    for (int i = 0; i < n; i++) {
        f->srv[i].weight = 1;
        f->srv[i].state = &f->state[i];
    }
}

static const atr_lb_outlier_t O = { .consecutive = 3, .max_ejected = 50, .interval = 1000,
                                    .max_interval = 5000 };

static enum atr_lb_outlier_event res(fixture_t *f, int i, int failed, uint64_t now, uint64_t *len)
{
    return atr_lb_outlier_result(&O, f->srv, f->n, i, failed, now, len);
}

/* failures in a row eject; a good answer in between starts over */
static void test_eject_and_back(void)
{
    fixture_t f;
    uint64_t len = 0;
    setup(&f, 4);
    T_CHECK(__LINE__, res(&f, 0, 1, T0, &len) == ATR_LB_OUTLIER_NONE, "first failure");
    T_CHECK(__LINE__, res(&f, 0, 1, T0, &len) == ATR_LB_OUTLIER_NONE, "second failure");
    T_CHECK(__LINE__, res(&f, 0, 0, T0, &len) == ATR_LB_OUTLIER_NONE, "a success");
    T_CHECK(__LINE__, res(&f, 0, 1, T0, &len) == ATR_LB_OUTLIER_NONE, "1 after the success");
    T_CHECK(__LINE__, res(&f, 0, 1, T0, &len) == ATR_LB_OUTLIER_NONE, "2 after the success");
    T_CHECK(__LINE__, res(&f, 0, 1, T0 + 10, &len) == ATR_LB_OUTLIER_EJECTED, "3 in a row eject");
    T_CHECK(__LINE__, len == 1000, "first ejection lasts the interval, got %llu",
            (unsigned long long)len);
    T_CHECK(__LINE__, atomic_load(&f.state[0].ejected_until) == T0 + 1010, "until");
    T_CHECK(__LINE__, atomic_load(&f.state[0].ejections) == 1, "counted");
    /* what comes back from requests in flight while ejected is no news */
    for (int k = 0; k < 5; k++)
        T_CHECK(__LINE__, res(&f, 0, 1, T0 + 20, &len) == ATR_LB_OUTLIER_NONE, "while ejected");
    T_CHECK(__LINE__, res(&f, 0, 0, T0 + 20, &len) == ATR_LB_OUTLIER_NONE, "good while ejected");
    /* the first good answer after the end is "back", logged once */
    T_CHECK(__LINE__, res(&f, 0, 0, T0 + 1010, &len) == ATR_LB_OUTLIER_BACK, "back");
    T_CHECK(__LINE__, res(&f, 0, 0, T0 + 1011, &len) == ATR_LB_OUTLIER_NONE, "back only once");
    /* off: nothing ever happens */
    atr_lb_outlier_t off = O;
    off.consecutive = 0;
    for (int k = 0; k < 10; k++)
        T_CHECK(__LINE__, atr_lb_outlier_result(&off, f.srv, f.n, 1, 1, T0, NULL) ==
                              ATR_LB_OUTLIER_NONE, "off");
    T_CHECK(__LINE__, atomic_load(&f.state[1].ejected_until) == 0, "off never ejects");
}

/* Eject server i by failing it `consecutive` times at now; its length. */
static uint64_t eject_at(fixture_t *f, int i, uint64_t now)
{
    uint64_t len = 0;
    int ev = 0;
    for (int k = 0; k < O.consecutive; k++)
        ev = res(f, i, 1, now, &len);
    return ev == ATR_LB_OUTLIER_EJECTED ? len : 0;
}

/* ejections in a row double the interval up to max_interval; serving well
 * for as long as the last ejection lasted starts over */
static void test_growing_interval(void)
{
    static const uint64_t want[] = { 1000, 2000, 4000, 5000, 5000 };
    fixture_t f;
    uint64_t now = T0;
    setup(&f, 2);
    for (size_t k = 0; k < ATR_ARRAY_SIZE(want); k++) {
        uint64_t len = eject_at(&f, 0, now);
        T_CHECK(__LINE__, len == want[k], "ejection %zu lasted %llu, want %llu", k + 1,
                (unsigned long long)len, (unsigned long long)want[k]);
        now += len; /* fails again as soon as it is back */
    }
    /* back, serves well for less than the last ejection: the run holds */
    T_CHECK(__LINE__, res(&f, 0, 0, now + 4999, NULL) == ATR_LB_OUTLIER_BACK, "back");
    T_CHECK(__LINE__, atomic_load(&f.state[0].outlier_run) == 5, "run kept");
    /* serves well long enough: the next ejection is short again */
    T_CHECK(__LINE__, res(&f, 0, 0, now + 5000, NULL) == ATR_LB_OUTLIER_NONE, "good");
    T_CHECK(__LINE__, atomic_load(&f.state[0].outlier_run) == 0, "run reset");
    T_CHECK(__LINE__, eject_at(&f, 0, now + 6000) == 1000, "base interval again");
}

/* never more than max_ejected of the pool, and never all of it */
static void test_cap(void)
{
    static const struct {
        int line, n, max_ejected, want;
    } cases[] = {
        { __LINE__, 4, 50, 2 }, { __LINE__, 3, 50, 1 }, { __LINE__, 1, 50, 0 },
        { __LINE__, 2, 100, 1 }, { __LINE__, 8, 10, 0 }, { __LINE__, 8, 25, 2 },
    };
    for (size_t c = 0; c < ATR_ARRAY_SIZE(cases); c++) {
        fixture_t f;
        atr_lb_outlier_t o = O;
        int ejected = 0;
        o.max_ejected = cases[c].max_ejected;
        setup(&f, cases[c].n);
        for (int i = 0; i < f.n; i++)
            for (int k = 0; k < 10; k++)
                ejected += atr_lb_outlier_result(&o, f.srv, f.n, i, 1, T0, NULL) ==
                           ATR_LB_OUTLIER_EJECTED;
        T_CHECK(cases[c].line, ejected == cases[c].want, "n=%d max %d%%: %d ejected, want %d",
                cases[c].n, cases[c].max_ejected, ejected, cases[c].want);
        /* a server ends its ejection: another one may go */
        if (cases[c].want > 0) {
            uint64_t later = T0 + 1000;
            int more = 0;
            for (int k = 0; k < 3; k++)
                more += atr_lb_outlier_result(&o, f.srv, f.n, f.n - 1, 1, later, NULL) ==
                        ATR_LB_OUTLIER_EJECTED;
            T_CHECK(cases[c].line, more == 1, "after the first ejections ended: %d", more);
        }
    }
}

/* picks skip ejected servers; when only ejected ones are left they are used */
static void test_picks(void)
{
    for (size_t m = 0; atr_lb_ops_at(m) != NULL; m++) {
        const char *name = atr_lb_ops_at(m)->name;
        fixture_t f;
        int count[MAXS] = { 0 }, full = -1;
        setup(&f, 3);
        atomic_store(&f.state[1].ejected_until, T0 + 1);
        atr_lb_t *lb = atr_lb_new(atr_lb_ops_at(m), f.srv, f.n, 3);
        for (int k = 0; k < 300; k++) {
            int idx = atr_lb_pick_key(lb, T0, NULL, NULL, (uint64_t)k * 0x9e3779b97f4a7c15ULL);
            count[idx < 0 ? MAXS - 1 : idx]++;
        }
        T_CHECK(__LINE__, count[1] == 0 && count[0] + count[2] == 300, "%s: %d %d %d", name,
                count[0], count[1], count[2]);
        /* the ejection is over: it is chosen again */
        int seen = 0;
        for (int k = 0; k < 300; k++)
            seen += atr_lb_pick_key(lb, T0 + 1, NULL, NULL, (uint64_t)k * 0x9e3779b97f4a7c15ULL) == 1;
        T_CHECK(__LINE__, seen > 0, "%s: back after the ejection", name);
        /* every primary ejected (beyond any cap): still a server, not -1 */
        for (int i = 0; i < 3; i++)
            atomic_store(&f.state[i].ejected_until, T0 + 1);
        T_CHECK(__LINE__, atr_lb_pick(lb, T0, NULL, &full) >= 0 && full == 0, "%s: panic", name);
        /* ejected and down: down wins, the ejected one is used */
        atomic_store(&f.state[0].down_until, T0 + 1);
        atomic_store(&f.state[2].down_until, T0 + 1);
        T_CHECK(__LINE__, atr_lb_pick(lb, T0, NULL, NULL) == 1, "%s: the only one not down", name);
        atr_lb_free(lb);
        /* an ejected primary with a backup up: the backup, before panic */
        setup(&f, 2);
        f.srv[1].backup = 1;
        atomic_store(&f.state[0].ejected_until, T0 + 1);
        lb = atr_lb_new(atr_lb_ops_at(m), f.srv, f.n, 3);
        T_CHECK(__LINE__, atr_lb_pick(lb, T0, NULL, NULL) == 1, "%s: backup first", name);
        atr_lb_free(lb);
    }
}

/* ---- slow start ---- */

static void test_ramp(void)
{
    static const struct {
        int line;
        int weight;
        uint32_t slow_start;
        uint64_t back, now;
        uint32_t want;
    } cases[] = {
        { __LINE__, 1, 0, T0, T0, 256 },                 /* no slow_start: full */
        { __LINE__, 1, 10000, 0, T0, 256 },              /* never left: full */
        { __LINE__, 1, 10000, T0, T0, 8 },               /* just back: 1/32 */
        { __LINE__, 1, 10000, T0, T0 + 1000, 25 },       /* 10% */
        { __LINE__, 2, 10000, T0, T0 + 5000, 256 },      /* half of 2 */
        { __LINE__, 4, 10000, T0, T0 + 9999, 1023 },
        { __LINE__, 4, 10000, T0, T0 + 10000, 1024 },    /* over */
        { __LINE__, 1, 10000, T0 + 500, T0, 8 },         /* ejected until later: the floor */
    };
    for (size_t c = 0; c < ATR_ARRAY_SIZE(cases); c++) {
        atr_server_state_t st;
        atr_lb_server_t s = { .weight = cases[c].weight, .slow_start = cases[c].slow_start,
                              .state = &st };
        memset(&st, 0, sizeof st);
        atomic_store(&st.back_at, cases[c].back);
        uint32_t w = atr_lb_weight_at(&s, cases[c].now);
        T_CHECK(cases[c].line, w == cases[c].want, "got %u, want %u", w, cases[c].want);
    }
    atr_server_state_t st;
    memset(&st, 0, sizeof st);
    atr_lb_server_back(&st, 0); /* time 0 is still "came back" */
    T_CHECK(__LINE__, atomic_load(&st.back_at) != 0, "back at 0");
}

/* The share server 1 (slow_start 10s, back at T0) gets of `picks` at T0 +
 * at, beside server 0 (same weight, no slow start), in per cent. */
static int share(const char *method, uint64_t at, int picks)
{
    fixture_t f;
    int got = 0;
    setup(&f, 2);
    f.srv[1].slow_start = 10000;
    atomic_store(&f.state[1].back_at, T0);
    atr_lb_t *lb = atr_lb_new(atr_lb_find(method), f.srv, f.n, 99);
    for (int k = 0; k < picks; k++)
        got += atr_lb_pick_key(lb, T0 + at, NULL, NULL,
                               atr_lb_hash(&(uint64_t){ (uint64_t)k }, sizeof(uint64_t))) == 1;
    atr_lb_free(lb);
    return got * 100 / picks;
}

static void test_ramp_shares(void)
{
    /* weights 256 : 25.6 -> 9%, 256 : 128 -> 33%, then 50% */
    static const struct {
        int line;
        const char *method;
        uint64_t at;
        int lo, hi;
    } cases[] = {
        { __LINE__, "round_robin", 0, 2, 4 },
        { __LINE__, "round_robin", 1000, 8, 10 },
        { __LINE__, "round_robin", 5000, 32, 34 },
        { __LINE__, "round_robin", 10000, 50, 50 },
        { __LINE__, "least_conn", 5000, 32, 34 },
        { __LINE__, "least_conn", 20000, 50, 50 },
        { __LINE__, "random2", 0, 0, 8 },
        { __LINE__, "random2", 10000, 45, 55 },
        { __LINE__, "ewma", 10000, 40, 60 },
        { __LINE__, "hash", 0, 0, 4 },      /* of its keys: 1/32 */
        { __LINE__, "hash", 5000, 20, 30 }, /* half of its half */
        { __LINE__, "hash", 10000, 45, 55 },
    };
    for (size_t c = 0; c < ATR_ARRAY_SIZE(cases); c++) {
        int s = share(cases[c].method, cases[c].at, 20000);
        T_CHECK(cases[c].line, s >= cases[c].lo && s <= cases[c].hi, "%s at +%llums: %d%%",
                cases[c].method, (unsigned long long)cases[c].at, s);
    }
    /* random2's draw is by effective weight too: the ramping server is drawn
     * less, so it shares less than half well before the end */
    T_CHECK(__LINE__, share("random2", 2000, 20000) < 40, "random2 ramp");
}

/* hash: the keys a ramping server takes only grow with its weight */
static void test_hash_ramp_monotone(void)
{
    fixture_t f;
    int lost = 0, gained = 0;
    setup(&f, 3);
    f.srv[2].slow_start = 10000;
    atomic_store(&f.state[2].back_at, T0);
    atr_lb_t *lb = atr_lb_new(atr_lb_find("hash"), f.srv, f.n, 1);
    for (uint64_t k = 0; k < 5000; k++) {
        uint64_t key = atr_lb_hash(&k, sizeof k);
        int early = atr_lb_pick_key(lb, T0 + 3000, NULL, NULL, key);
        int late = atr_lb_pick_key(lb, T0 + 7000, NULL, NULL, key);
        lost += early == 2 && late != 2;
        gained += early != 2 && late == 2;
    }
    T_CHECK(__LINE__, lost == 0 && gained > 0, "lost %d gained %d", lost, gained);
    atr_lb_free(lb);
}

int main(void)
{
    test_eject_and_back();
    test_growing_interval();
    test_cap();
    test_picks();
    test_ramp();
    test_ramp_shares();
    test_hash_ramp_monotone();
    T_DONE();
}
