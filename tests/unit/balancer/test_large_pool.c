/* Pools of 1,000 servers, where the methods choose without looking at every
 * server (pick_fast): the same shares and the same key mapping as the full
 * filter gives, and never a server that may not take the request (down,
 * ejected, full, tried, a backup while primaries are up). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balancer/balancer.h"
#include "t.h"
#include "base/util.h"

#define N 1000
#define NOW 1000000u

typedef struct pool {
    atr_server_state_t *st;
    atr_lb_server_t srv[N];
    char names[N][24];
} pool_t;

/* weights 1, 2, 3 in turn; every tenth server (3, 13, ...) down if asked */
static pool_t *pool_new(int tenth_down)
{
    pool_t *p = calloc(1, sizeof(*p));
    p->st = aligned_alloc(64, sizeof(*p->st) * N);
    memset(p->st, 0, sizeof(*p->st) * N);
    for (int i = 0; i < N; i++) {
        p->srv[i].weight = 1 + i % 3;
        p->srv[i].state = &p->st[i];
        snprintf(p->names[i], sizeof p->names[i], "10.0.%d.%d:80", i / 250, i % 250);
        p->srv[i].name = p->names[i];
        if (tenth_down && i % 10 == 3)
            atomic_store(&p->st[i].down_until, NOW + 1);
    }
    return p;
}

static void pool_free(pool_t *p)
{
    free(p->st);
    free(p);
}

static uint64_t key_of(int k)
{
    uint64_t x = (uint64_t)k;
    return atr_lb_hash(&x, sizeof x);
}

/* round robin: a whole period gives every usable server exactly its weight */
static void test_round_robin_exact(void)
{
    for (int down = 0; down < 2; down++) {
        pool_t *p = pool_new(down);
        atr_lb_t *lb = atr_lb_new(atr_lb_find("round_robin"), p->srv, N, 1);
        static long count[N];
        long picks = 0, bad = 0;
        memset(count, 0, sizeof count);
        for (int i = 0; i < N; i++)
            if (!(down && i % 10 == 3))
                picks += 3L * p->srv[i].weight; /* three periods */
        for (long k = 0; k < picks; k++)
            count[atr_lb_pick(lb, NOW, NULL, NULL)]++;
        for (int i = 0; i < N; i++)
            bad += count[i] != ((down && i % 10 == 3) ? 0 : 3L * p->srv[i].weight);
        T_CHECK(__LINE__, bad == 0, "down=%d: %ld servers off their weight (server 0: %ld)", down,
                bad, count[0]);
        atr_lb_free(lb);
        pool_free(p);
    }
}

/* the drawing methods: shares by weight class, nothing unusable chosen */
static void test_draw_shares(void)
{
    static const char *const methods[] = { "random2", "ewma", "least_conn" };
    for (size_t m = 0; m < ATR_ARRAY_SIZE(methods); m++) {
        pool_t *p = pool_new(1);
        atr_lb_t *lb = atr_lb_new(atr_lb_find(methods[m]), p->srv, N, 7);
        /* least_conn looks at every server (9 us a pick here): fewer */
        long by_weight[4] = { 0 }, bad = 0, picks = m == 2 ? 60000 : 600000;
        for (long k = 0; k < picks; k++) {
            int s = atr_lb_pick(lb, NOW, NULL, NULL);
            if (s < 0 || s % 10 == 3)
                bad++;
            else
                by_weight[p->srv[s].weight]++;
        }
        T_CHECK(__LINE__, bad == 0, "%s: %ld picks of a down server", methods[m], bad);
        for (int w = 1; w <= 3; w++) {
            double share = (double)by_weight[w] / (double)picks;
            T_CHECK(__LINE__, share > w / 6.0 - 0.02 && share < w / 6.0 + 0.02,
                    "%s: weight %d got %.3f, want %.3f", methods[m], w, share, w / 6.0);
        }
        atr_lb_free(lb);
        pool_free(p);
    }
}

/* hash: a server going down moves its own keys and no other */
static void test_hash_moves_only_down_keys(void)
{
    pool_t *up = pool_new(0), *down = pool_new(1);
    atr_lb_t *a = atr_lb_new(atr_lb_find("hash"), up->srv, N, 1);
    atr_lb_t *b = atr_lb_new(atr_lb_find("hash"), down->srv, N, 2);
    int moved_wrongly = 0, moved = 0, to_down = 0;
    for (int k = 0; k < 100000; k++) {
        int x = atr_lb_pick_key(a, NOW, NULL, NULL, key_of(k));
        int y = atr_lb_pick_key(b, NOW, NULL, NULL, key_of(k));
        to_down += y % 10 == 3;
        if (x != y) {
            moved++;
            moved_wrongly += x % 10 != 3;
        }
    }
    T_CHECK(__LINE__, to_down == 0 && moved_wrongly == 0 && moved > 0,
            "to a down server %d, moved though up %d, moved %d", to_down, moved_wrongly, moved);
    atr_lb_free(a);
    atr_lb_free(b);
    pool_free(up);
    pool_free(down);
}

/* every method: a tried, full, ejected or backup server is never returned */
static void test_never_unusable(void)
{
    for (size_t m = 0; atr_lb_ops_at(m) != NULL; m++) {
        pool_t *p = pool_new(0);
        static unsigned char tried[N];
        long bad = 0;
        memset(tried, 0, sizeof tried);
        for (int i = 0; i < N; i++) {
            switch (i % 8) {
            case 1: tried[i] = 1; break;
            case 2: p->srv[i].max_conns = 1; atomic_store(&p->st[i].active, 1); break;
            case 3: atomic_store(&p->st[i].ejected_until, NOW + 1); break;
            case 4: p->srv[i].backup = 1; break;
            case 5: atomic_store(&p->st[i].unhealthy, 1); break;
            default: break;
            }
        }
        atr_lb_t *lb = atr_lb_new(atr_lb_ops_at(m), p->srv, N, 5);
        for (int k = 0; k < 50000; k++) {
            int s = atr_lb_pick_key(lb, NOW, tried, NULL, key_of(k));
            bad += s < 0 || (s % 8 >= 1 && s % 8 <= 5);
        }
        T_CHECK(__LINE__, bad == 0, "%s: %ld picks of a server it may not use",
                atr_lb_ops_at(m)->name, bad);
        atr_lb_free(lb);
        pool_free(p);
    }
}

int main(void)
{
    test_round_robin_exact();
    test_draw_shares();
    test_hash_moves_only_down_keys();
    test_never_unusable();
    T_DONE();
}
