/* lbbench: CPU per server choice of every balancing method, for a pool of
 * a few servers against one of many (issue 12: choosing stays O(1) or
 * O(log n) with 1,000 members). Not a test: it prints, asserts nothing.
 *
 *     lbbench [PICKS] [SIZES...]      default 2000000 picks, sizes 3 1000
 *     LBBENCH_METHOD=NAME lbbench ... only that method
 *
 * Each pick is what the proxy core does around it: atr_lb_pick_key with a
 * fresh key, then the slot taken and given back (state->active). Scenarios:
 * every server up; a tenth of them down (every tenth, so the method's first
 * candidate is sometimes unusable); one server ramping up (slow_start).
 * CPU time of the process (CLOCK_PROCESS_CPUTIME_ID), ns per pick. Uses
 * only the public balancer API, so the same file builds against an older
 * tree for a before/after comparison. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "balancer/balancer.h"

#define NOW 1000000u

static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

enum scenario { ALL_UP, TENTH_DOWN, ONE_RAMPING, NSCENARIOS };
static const char *const scenario_names[] = { "all up", "1/10 down", "1 ramping" };

/* ns per pick of method over n servers in scenario sc; *spread receives the
 * share of picks that went to the busiest server, as a sanity check. */
static double run(const atr_lb_ops_t *ops, int n, enum scenario sc, long picks, double *spread)
{
    atr_server_state_t *st = aligned_alloc(64, ((size_t)n * sizeof(*st) + 63) & ~(size_t)63);
    atr_lb_server_t *srv = calloc((size_t)n, sizeof(*srv));
    long *count = calloc((size_t)n, sizeof(*count)), best = 0;
    uint64_t key = 0x9e3779b97f4a7c15ULL;

    memset(st, 0, (size_t)n * sizeof(*st));
    for (int i = 0; i < n; i++) {
        srv[i].weight = 1 + i % 3;
        srv[i].state = &st[i];
        if (sc == TENTH_DOWN && i % 10 == 3 % n)
            atomic_store(&st[i].down_until, NOW + 1);
    }
#ifdef ATR_LB_WSCALE /* a tree with slow_start */
    if (sc == ONE_RAMPING) {
        srv[0].slow_start = 10000;
        atomic_store(&st[0].back_at, NOW - 5000);
    }
#endif
    atr_lb_t *lb = atr_lb_new(ops, srv, n, 42);
    double t0 = cpu_ns();
    for (long k = 0; k < picks; k++) {
        key = key * 6364136223846793005ULL + 1442695040888963407ULL;
        int s = atr_lb_pick_key(lb, NOW, NULL, NULL, key >> 11);
        if (s >= 0) {
            atomic_fetch_add(&st[s].active, 1);
            count[s]++;
            atomic_fetch_sub(&st[s].active, 1);
        }
    }
    double ns = (cpu_ns() - t0) / (double)picks;
    for (int i = 0; i < n; i++)
        if (count[i] > best)
            best = count[i];
    *spread = (double)best / (double)picks;
    atr_lb_free(lb);
    free(count);
    free(srv);
    free(st);
    return ns;
}

int main(int argc, char **argv)
{
    long picks = argc > 1 ? atol(argv[1]) : 2000000;
    int sizes[8] = { 3, 1000 }, nsizes = 2;

    if (argc > 2) {
        nsizes = 0;
        for (int i = 2; i < argc && nsizes < 8; i++)
            sizes[nsizes++] = atoi(argv[i]);
    }
    printf("%-12s %-10s", "method", "scenario");
    for (int z = 0; z < nsizes; z++)
        printf("  n=%-5d ns/pick busiest", sizes[z]);
    printf("\n");
    const char *only = getenv("LBBENCH_METHOD"); /* one method, e.g. under perf */
    for (size_t m = 0; atr_lb_ops_at(m) != NULL; m++) {
        if (only != NULL && strcmp(only, atr_lb_ops_at(m)->name) != 0)
            continue;
        for (int sc = 0; sc < NSCENARIOS; sc++) {
            printf("%-12s %-10s", atr_lb_ops_at(m)->name, scenario_names[sc]);
            for (int z = 0; z < nsizes; z++) {
                double spread, ns = run(atr_lb_ops_at(m), sizes[z], sc, picks, &spread);
                printf("  %15.1f %6.1f%%", ns, spread * 100);
            }
            printf("\n");
        }
    }
    return 0;
}
