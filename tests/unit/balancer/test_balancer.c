/* Balancers: exact round-robin orders, weighted distributions, least_conn and
 * random2 load choices, and the shared filtering (down, full, tried, backup). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balancer/balancer.h"
#include "t.h"
#include "base/util.h"

#define MAXS 8
#define NOW 1000000u

/* A pool of up to MAXS servers described by small arrays (0 = default). */
typedef struct pool {
    int n;
    int weight[MAXS], max_conns[MAXS], backup[MAXS], active[MAXS], down[MAXS];
    int admin[MAXS]; /* enum atr_lb_admin: drained (1) or disabled (2) by the operator */
    int pending[MAXS]; /* a name's placeholder waiting for its first answer */
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
        atomic_store(&f->state[i].admin, p->admin[i]);
        atomic_store(&f->state[i].pending, p->pending[i]);
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
    /* drained or disabled by the operator: skipped like a down server */
    { __LINE__, "round_robin", { .n = 3, .weight = { 1, 1, 1 }, .admin = { 0, 1, 0 } }, NULL, "020202" },
    { __LINE__, "round_robin", { .n = 3, .weight = { 1, 4, 1 }, .admin = { 0, 2, 0 } }, NULL, "020202" },
    { __LINE__, "least_conn", { .n = 3, .weight = { 1, 1, 1 }, .admin = { 1, 0, 0 } }, NULL, "121212" },
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
    /* ewma before any response: the idle server wins, the busy one costs a penalty */
    { __LINE__, "ewma", { .n = 2, .weight = { 1, 1 }, .active = { 10, 0 } }, NULL, "11111111" },
    { __LINE__, "ewma", { .n = 2, .weight = { 1, 1 }, .active = { 0, 1 } }, NULL, "00000000" },
    /* hash: one key (0 from atr_lb_pick) always goes to the same server */
    { __LINE__, "hash", { .n = 1 }, NULL, "0000" },
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
    /* drained and disabled servers are never chosen, whatever else; not "full" either */
    { __LINE__, NULL, { .n = 3, .admin = { 1, 0, 2 } }, NULL, 1, 0 },
    { __LINE__, NULL, { .n = 2, .admin = { 1, 2 } }, NULL, -1, 0 },
    { __LINE__, NULL, { .n = 3, .backup = { 0, 0, 1 }, .admin = { 1, 2, 0 } }, NULL, 2, 0 },
    { __LINE__, NULL, { .n = 2, .admin = { 1, 0 }, .max_conns = { 0, 1 }, .active = { 0, 1 } }, NULL, -1, 1 },
    /* a name waiting for its first answer: the request waits (as for a full server),
     * unless another server takes it */
    { __LINE__, NULL, { .n = 1, .pending = { 1 } }, NULL, -1, 1 },
    { __LINE__, NULL, { .n = 2, .pending = { 1, 0 } }, NULL, 1, 0 },
    { __LINE__, NULL, { .n = 2, .pending = { 1, 0 }, .down = { 0, 1 } }, NULL, -1, 1 },
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

/* A new set of servers (DNS) goes on in round robin's sequence where the
 * set before left it, instead of starting every worker at its first server. */
static void test_carry(void)
{
    pool_t p = { .n = 4 };
    fixture_t a, b;
    setup(&a, "round_robin", &p, 1);
    setup(&b, "round_robin", &p, 1);
    int first = atr_lb_pick(a.lb, NOW, NULL, NULL), next = -1;
    for (int k = 0; k < 2; k++)
        next = atr_lb_pick(a.lb, NOW, NULL, NULL);
    next = atr_lb_pick(a.lb, NOW, NULL, NULL); /* the 4th: where a stands now */
    atr_lb_free(a.lb);
    setup(&a, "round_robin", &p, 1);
    for (int k = 0; k < 3; k++)
        atr_lb_pick(a.lb, NOW, NULL, NULL);
    atr_lb_carry(b.lb, a.lb);
    int after = atr_lb_pick(b.lb, NOW, NULL, NULL);
    T_CHECK(__LINE__, after == next && after != first, "carried: %d, expected %d (not %d)", after,
            next, first);
    atr_lb_free(a.lb);
    atr_lb_free(b.lb);
}

static const struct {
    int line;
    const char *name;
    int found;
} find_cases[] = {
    { __LINE__, "round_robin", 1 },
    { __LINE__, "least_conn", 1 },
    { __LINE__, "random2", 1 },
    { __LINE__, "hash", 1 },
    { __LINE__, "ewma", 1 },
    { __LINE__, "heartbeat", 1 },
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
    T_CHECK(__LINE__, n == 6, "%zu methods registered", n);
}


/* ---- hash: arguments, keys, placement ---- */

static const struct {
    int line;
    const char *method, *args; /* space-separated */
    int ok;
    const char *dump;          /* atr_lb_format, or the error's start */
} arg_cases[] = {
    { __LINE__, "hash", "", 1, "hash" },
    { __LINE__, "hash", "addr", 1, "hash" },
    { __LINE__, "hash", "addr consistent", 1, "hash" },
    { __LINE__, "hash", "consistent uri", 1, "hash uri" },
    { __LINE__, "hash", "header=X-User", 1, "hash header=X-User" },
    { __LINE__, "hash", "cookie=session consistent", 1, "hash cookie=session" },
    { __LINE__, "hash", "header=", 0, "invalid name in 'header='" },
    { __LINE__, "hash", "cookie=a,b", 0, "invalid name in 'cookie=a,b'" },
    { __LINE__, "hash", "uri addr", 0, "a second key 'addr'" },
    { __LINE__, "hash", "url", 0, "unknown hash key 'url'" },
    { __LINE__, "round_robin", "", 1, "round_robin" },
    { __LINE__, "ewma", "uri", 0, "'ewma' takes no argument" },
};

static void test_hash_args(void)
{
    for (size_t c = 0; c < ATR_ARRAY_SIZE(arg_cases); c++) {
        char buf[128], err[160] = "", out[160];
        const char *argv[8];
        int argc = 0, bad = -1, rc;
        atr_lb_args_t a;
        const atr_lb_ops_t *ops = atr_lb_find(arg_cases[c].method);

        snprintf(buf, sizeof(buf), "%s", arg_cases[c].args);
        for (char *w = strtok(buf, " "); w != NULL; w = strtok(NULL, " "))
            argv[argc++] = w;
        rc = atr_lb_parse_args(ops, &a, argv, argc, &bad, err, sizeof(err));
        T_CHECK(arg_cases[c].line, (rc == 0) == arg_cases[c].ok, "'%s': rc %d %s", arg_cases[c].args, rc, err);
        if (rc == 0) {
            atr_lb_format(ops, &a, out, sizeof(out));
            T_CHECK(arg_cases[c].line, strcmp(out, arg_cases[c].dump) == 0, "dump '%s'", out);
            T_CHECK(arg_cases[c].line, (a.key != ATR_LB_KEY_NONE) == (ops->parse != NULL), "key %d", a.key);
        } else {
            T_CHECK(arg_cases[c].line, strncmp(err, arg_cases[c].dump, strlen(arg_cases[c].dump)) == 0,
                    "error '%s'", err);
        }
    }
}

static const struct {
    int line;
    const char *header, *name, *value; /* value NULL: absent */
} cookie_cases[] = {
    { __LINE__, "session=abc", "session", "abc" },
    { __LINE__, "a=1; session=abc; b=2", "session", "abc" },
    { __LINE__, "a=1;session=abc ;b=2", "session", "abc" },
    { __LINE__, "xsession=abc; session=", "session", "" },
    { __LINE__, "sessionx=abc", "session", NULL },
    { __LINE__, "", "session", NULL },
    { __LINE__, "session", "session", NULL },
};

static void test_cookies(void)
{
    for (size_t c = 0; c < ATR_ARRAY_SIZE(cookie_cases); c++) {
        const char *h = cookie_cases[c].header, *v = NULL;
        size_t vlen = 0;
        int rc = atr_lb_cookie(h, strlen(h), cookie_cases[c].name, &v, &vlen);
        if (cookie_cases[c].value == NULL)
            T_CHECK(cookie_cases[c].line, rc < 0, "found '%.*s'", (int)vlen, v);
        else
            T_CHECK(cookie_cases[c].line, rc == 0 && vlen == strlen(cookie_cases[c].value) &&
                                              memcmp(v, cookie_cases[c].value, vlen) == 0,
                    "rc %d '%.*s'", rc, (int)vlen, v ? v : "");
    }
}

static size_t len_of(const char *s)
{
    return s != NULL ? strlen(s) : 0;
}

#define IN(a, u, h, c) { a, len_of(a), u, len_of(u), h, len_of(h), c, len_of(c) }

/* Each kind hashes its own input; a missing header or cookie hashes the address. */
static void test_key(void)
{
    atr_lb_args_t addr = { ATR_LB_KEY_ADDR, "" }, uri = { ATR_LB_KEY_URI, "" };
    atr_lb_args_t hdr = { ATR_LB_KEY_HEADER, "X-User" }, ck = { ATR_LB_KEY_COOKIE, "sid" };
    atr_lb_key_in_t full = IN("10.0.0.1", "/a?b", "alice", "x=1; sid=42"), bare = IN("10.0.0.1", "/a?b", NULL, NULL);
    atr_lb_key_in_t other = IN("10.0.0.2", "/a?c", "bob", "sid=43");
    uint64_t h_addr = atr_lb_hash("10.0.0.1", 8);

    T_CHECK(__LINE__, atr_lb_key(&addr, &full) == h_addr, "addr");
    T_CHECK(__LINE__, atr_lb_key(&uri, &full) == atr_lb_hash("/a?b", 4), "uri");
    T_CHECK(__LINE__, atr_lb_key(&hdr, &full) == atr_lb_hash("alice", 5), "header");
    T_CHECK(__LINE__, atr_lb_key(&ck, &full) == atr_lb_hash("42", 2), "cookie");
    T_CHECK(__LINE__, atr_lb_key(&hdr, &bare) == h_addr && atr_lb_key(&ck, &bare) == h_addr, "fallback");
    T_CHECK(__LINE__, atr_lb_key(&addr, &other) != h_addr && atr_lb_key(&ck, &other) != atr_lb_hash("42", 2),
            "different inputs, same hash");
}

#define NKEYS 10000
static const char *const names5[] = { "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80",
                                      "10.0.0.5:80" };

static uint64_t key_n(int k)
{
    char buf[32];
    int len = snprintf(buf, sizeof(buf), "client-%d", k);
    return atr_lb_hash(buf, (size_t)len);
}

static void setup_named(fixture_t *f, const char *method, const pool_t *p, const char *const *names)
{
    setup(f, "round_robin", p, 1); /* fills the arrays */
    atr_lb_free(f->lb);
    for (int i = 0; i < p->n; i++)
        f->srv[i].name = names[i];
    f->lb = atr_lb_new(atr_lb_find(method), f->srv, p->n, 1);
}

/* The same key goes to the same server, in another worker (seed) too. */
static void test_hash_same_key(void)
{
    pool_t p = { .n = 5 };
    fixture_t a, b;
    int differ = 0, counts[MAXS] = { 0 };

    setup_named(&a, "hash", &p, names5);
    setup_named(&b, "hash", &p, names5);
    atr_lb_free(b.lb);
    b.lb = atr_lb_new(atr_lb_find("hash"), a.srv, p.n, 999);
    for (int k = 0; k < NKEYS; k++) {
        int x = atr_lb_pick_key(a.lb, NOW, NULL, NULL, key_n(k));
        int y = atr_lb_pick_key(a.lb, NOW, NULL, NULL, key_n(k));
        int z = atr_lb_pick_key(b.lb, NOW, NULL, NULL, key_n(k));
        differ += x != y || x != z || x < 0;
        counts[x < 0 ? MAXS - 1 : x]++;
    }
    T_CHECK(__LINE__, differ == 0, "%d keys moved between picks", differ);
    for (int i = 0; i < 5; i++) /* and the keys do spread */
        T_CHECK(__LINE__, abs(counts[i] - NKEYS / 5) <= NKEYS / 50, "server %d: %d keys", i, counts[i]);
    atr_lb_free(a.lb);
    atr_lb_free(b.lb);
}

/* 10k keys over weights 1,2,3,4: each share within 10% of its weight's. */
static void test_hash_weights(void)
{
    pool_t p = { .n = 4, .weight = { 1, 2, 3, 4 } };
    fixture_t f;
    int counts[MAXS] = { 0 };

    setup_named(&f, "hash", &p, names5);
    for (int k = 0; k < NKEYS; k++)
        counts[atr_lb_pick_key(f.lb, NOW, NULL, NULL, key_n(k))]++;
    for (int i = 0; i < 4; i++) {
        int want = NKEYS * (i + 1) / 10;
        T_CHECK(__LINE__, abs(counts[i] - want) <= want / 10, "server %d: %d keys, want %d", i, counts[i], want);
    }
    atr_lb_free(f.lb);
}

/* Server 2 of 5 goes down: only its keys move, spread over the other four.
 * Server 2 removed from the config (the others renumbered): its keys move
 * and at most a few per cent of the others'. */
static void test_hash_remove(void)
{
    static int before[NKEYS];
    pool_t p5 = { .n = 5 }, p4 = { .n = 4 }, pdown = { .n = 5, .down = { 0, 0, 1, 0, 0 } };
    const char *const names4[] = { names5[0], names5[1], names5[3], names5[4] };
    const int renum[] = { 0, 1, -1, 2, 3 };
    int moved_other = 0, moved_own = 0, own = 0, spread[MAXS] = { 0 };
    fixture_t f;

    setup_named(&f, "hash", &p5, names5);
    for (int k = 0; k < NKEYS; k++)
        before[k] = atr_lb_pick_key(f.lb, NOW, NULL, NULL, key_n(k));
    atr_lb_free(f.lb);

    setup_named(&f, "hash", &pdown, names5);
    for (int k = 0; k < NKEYS; k++) {
        int now = atr_lb_pick_key(f.lb, NOW, NULL, NULL, key_n(k));
        if (before[k] == 2)
            spread[now]++, own++;
        else
            moved_other += now != before[k];
    }
    T_CHECK(__LINE__, moved_other == 0 && spread[2] == 0, "down: %d other keys moved, %d stayed", moved_other,
            spread[2]);
    for (int i = 0; i < 5; i++)
        if (i != 2)
            T_CHECK(__LINE__, abs(spread[i] - own / 4) <= own / 8, "down: server %d got %d of %d", i, spread[i], own);
    atr_lb_free(f.lb);

    moved_other = 0;
    setup_named(&f, "hash", &p4, names4);
    for (int k = 0; k < NKEYS; k++) {
        int now = atr_lb_pick_key(f.lb, NOW, NULL, NULL, key_n(k));
        if (before[k] == 2)
            moved_own++;
        else
            moved_other += now != renum[before[k]];
    }
    T_CHECK(__LINE__, moved_own + moved_other <= NKEYS / 5 + NKEYS / 20, "removed: %d + %d of %d keys moved",
            moved_own, moved_other, NKEYS);
    T_CHECK(__LINE__, moved_other <= NKEYS / 20, "removed: %d keys of other servers moved", moved_other);
    atr_lb_free(f.lb);
}

/* A key whose server is tried, full or down gets another server, the same
 * one every time, never an unusable one; backups keep their own table. */
static void test_hash_skip(void)
{
    pool_t p = { .n = 5, .max_conns = { 0, 0, 0, 1, 0 }, .active = { 0, 0, 0, 1, 0 }, .down = { 0, 1, 0, 0, 0 } };
    pool_t pb = { .n = 4, .backup = { 0, 0, 1, 1 }, .down = { 1, 1, 0, 0 } };
    int bad = 0, unstable = 0, backups[MAXS] = { 0 };
    fixture_t f;

    setup_named(&f, "hash", &p, names5);
    for (int k = 0; k < NKEYS; k++) {
        unsigned char tried[MAXS] = { 0 };
        int first = atr_lb_pick_key(f.lb, NOW, NULL, NULL, key_n(k)), again, second;
        bad += first < 0 || first == 1 || first == 3;
        tried[first < 0 ? 0 : first] = 1;
        second = atr_lb_pick_key(f.lb, NOW, tried, NULL, key_n(k));
        again = atr_lb_pick_key(f.lb, NOW, tried, NULL, key_n(k));
        bad += second < 0 || second == 1 || second == 3 || second == first;
        unstable += again != second;
    }
    T_CHECK(__LINE__, bad == 0 && unstable == 0, "%d unusable picks, %d unstable", bad, unstable);
    atr_lb_free(f.lb);

    setup_named(&f, "hash", &pb, names5);
    for (int k = 0; k < NKEYS; k++) {
        int s = atr_lb_pick_key(f.lb, NOW, NULL, NULL, key_n(k));
        backups[s < 0 ? MAXS - 1 : s]++;
    }
    T_CHECK(__LINE__, backups[2] + backups[3] == NKEYS && abs(backups[2] - backups[3]) <= NKEYS / 10,
            "backups got %d and %d", backups[2], backups[3]);
    atr_lb_free(f.lb);
}

/* ---- ewma ---- */

static void counts_of(atr_lb_t *lb, uint64_t now, int picks, int *count)
{
    for (int k = 0; k < picks; k++) {
        int idx = atr_lb_pick(lb, now, NULL, NULL);
        count[idx < 0 ? MAXS - 1 : idx]++;
    }
}

/* The slow server of three is never the cheaper of a pair; the two fast
 * ones share evenly. */
static void test_ewma_latency(void)
{
    pool_t p = { .n = 3 };
    int count[MAXS] = { 0 };
    fixture_t f;

    setup(&f, "ewma", &p, 5);
    atr_lb_observe(f.lb, 0, NOW, 50000);
    atr_lb_observe(f.lb, 1, NOW, 5000);
    atr_lb_observe(f.lb, 2, NOW, 5000);
    atr_lb_observe(f.lb, 7, NOW, 1); /* out of range: ignored */
    counts_of(f.lb, NOW, 30000, count);
    T_CHECK(__LINE__, count[0] == 0 && abs(count[1] - 15000) <= 750 && abs(count[2] - 15000) <= 750,
            "got %d %d %d", count[0], count[1], count[2]);
    atr_lb_free(f.lb);
}

/* A 100 ms spike loses to a 10 ms server with one request in flight; 60 s
 * (6 half-lives) later the spike has decayed to ~1.6 ms and wins. */
static void test_ewma_decay(void)
{
    pool_t p = { .n = 2, .active = { 0, 1 } };
    fixture_t f;
    int a, b;

    setup(&f, "ewma", &p, 5);
    atr_lb_observe(f.lb, 0, NOW, 100000);
    atr_lb_observe(f.lb, 1, NOW, 10000);
    a = atr_lb_pick(f.lb, NOW + 1000, NULL, NULL);
    atr_lb_observe(f.lb, 1, NOW + 60000, 10000);
    b = atr_lb_pick(f.lb, NOW + 60000, NULL, NULL);
    T_CHECK(__LINE__, a == 1 && b == 0, "after 1 s: %d, after 60 s: %d", a, b);
    atr_lb_free(f.lb);
}

/* One slow response counts at once; a fast one right after barely lowers it. */
static void test_ewma_peak(void)
{
    pool_t p = { .n = 2 };
    int count[MAXS] = { 0 };
    fixture_t f;

    setup(&f, "ewma", &p, 5);
    atr_lb_observe(f.lb, 0, NOW, 10000);
    atr_lb_observe(f.lb, 1, NOW, 10000);
    atr_lb_observe(f.lb, 0, NOW + 1, 200000);
    counts_of(f.lb, NOW + 1, 100, count);
    atr_lb_observe(f.lb, 0, NOW + 2, 1000);
    counts_of(f.lb, NOW + 2, 100, count);
    T_CHECK(__LINE__, count[1] == 200, "fast server got %d of 200", count[1]);
    atr_lb_free(f.lb);
}

/* A new set of the same servers in another order (a DNS change, a runtime
 * change) keeps what was learned: the slow server stays avoided. */
static void test_ewma_carry(void)
{
    pool_t p = { .n = 2 };
    fixture_t a, b;
    int count[MAXS] = { 0 };
    setup(&a, "ewma", &p, 5);
    atr_lb_observe(a.lb, 0, NOW, 50000); /* state[0] slow */
    atr_lb_observe(a.lb, 1, NOW, 5000);
    /* b: the same two states, swapped: its server 1 is a's server 0 */
    memset(&b, 0, sizeof b);
    b.srv[0] = a.srv[1];
    b.srv[1] = a.srv[0];
    b.lb = atr_lb_new(atr_lb_find("ewma"), b.srv, 2, 5);
    atr_lb_carry(b.lb, a.lb);
    counts_of(b.lb, NOW, 200, count);
    T_CHECK(__LINE__, count[0] == 200, "the fast server got %d of 200 after the carry", count[0]);
    atr_lb_free(a.lb);
    atr_lb_free(b.lb);
}

/* Equal costs: picks split by weight (the tie goes to the first draw). */
static void test_ewma_ties(void)
{
    pool_t p = { .n = 2 }, pw = { .n = 2, .weight = { 3, 1 } };
    int count[MAXS] = { 0 }, cw[MAXS] = { 0 };
    fixture_t f;

    setup(&f, "ewma", &p, 5);
    atr_lb_observe(f.lb, 0, NOW, 10000);
    atr_lb_observe(f.lb, 1, NOW, 10000);
    counts_of(f.lb, NOW, 20000, count);
    T_CHECK(__LINE__, abs(count[0] - 10000) <= 500, "got %d %d", count[0], count[1]);
    atr_lb_free(f.lb);

    setup(&f, "ewma", &pw, 5); /* never observed, idle: cost 0 for both */
    counts_of(f.lb, NOW, 20000, cw);
    T_CHECK(__LINE__, abs(cw[0] - 15000) <= 750, "weights 3,1 got %d %d", cw[0], cw[1]);
    atr_lb_free(f.lb);
}

int main(void)
{
    test_registry();
    test_sequences();
    test_picks();
    test_distributions();
    test_random2_filter();
    test_seeds();
    test_carry();
    test_hash_args();
    test_cookies();
    test_key();
    test_hash_same_key();
    test_hash_weights();
    test_hash_remove();
    test_hash_skip();
    test_ewma_latency();
    test_ewma_decay();
    test_ewma_peak();
    test_ewma_carry();
    test_ewma_ties();
    T_DONE();
}
