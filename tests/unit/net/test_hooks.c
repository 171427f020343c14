/* The hook lists (net/hooks.c): phases run in order, hooks within a phase by
 * order (first, middle, last) and then by when they were added; a hook that
 * declines lets the next run, one that takes the request stops the rest; log
 * hooks all run; per-generation hooks run init in order and free in reverse;
 * slots are handed out one each. */
#include "net/hooks.h"
#include "net/worker.h"
#include "t.h"

static char trace[64];
static int ntrace;
static int take_at; /* the hook id that takes the request, 0 = none */

static void mark(char id)
{
    trace[ntrace++] = id;
    trace[ntrace] = '\0';
}

#define HOOK(id)                                                              \
    static int hook_##id(atr_req_t *r)                                        \
    {                                                                         \
        (void)r;                                                              \
        mark(#id[0]);                                                         \
        return take_at == #id[0] ? ATR_HOOK_DONE : ATR_HOOK_DECLINED;         \
    }
HOOK(a)
HOOK(b)
HOOK(c)
HOOK(d)
HOOK(e)
HOOK(f)

static void log_x(atr_req_t *r) { (void)r; mark('x'); }
static void log_y(atr_req_t *r) { (void)r; mark('y'); }
static void init_1(atr_wgen_t *wg) { (void)wg; mark('1'); }
static void init_2(atr_wgen_t *wg) { (void)wg; mark('2'); }
static void free_1(atr_wgen_t *wg) { (void)wg; mark('8'); }
static void free_2(atr_wgen_t *wg) { (void)wg; mark('9'); }

int main(void)
{
    /* Added out of order on purpose. */
    atr_hook_request(ATR_PHASE_HANDLER, ATR_HOOK_LAST, hook_f);
    atr_hook_request(ATR_PHASE_ACCESS, ATR_HOOK_MIDDLE, hook_b);
    atr_hook_request(ATR_PHASE_HANDLER, ATR_HOOK_FIRST, hook_e);
    atr_hook_request(ATR_PHASE_ACCESS, ATR_HOOK_FIRST, hook_a);
    atr_hook_request(ATR_PHASE_REWRITE, ATR_HOOK_MIDDLE, hook_d);
    atr_hook_request(ATR_PHASE_ACCESS, ATR_HOOK_MIDDLE, hook_c); /* after b: same order */
    atr_hook_log(log_x);
    atr_hook_log(log_y);
    atr_hook_wgen(init_1, free_1);
    atr_hook_wgen(init_2, NULL);
    atr_hook_wgen(NULL, free_2);

    static const struct {
        int line;
        char take;
        const char *want;
        int result;
    } cases[] = {
        { __LINE__, 0, "abcdef", ATR_HOOK_DECLINED },
        { __LINE__, 'f', "abcdef", ATR_HOOK_DONE },
        { __LINE__, 'e', "abcde", ATR_HOOK_DONE },
        { __LINE__, 'c', "abc", ATR_HOOK_DONE },   /* access denies: nothing after runs */
        { __LINE__, 'a', "a", ATR_HOOK_DONE },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ntrace = 0;
        trace[0] = '\0';
        take_at = cases[i].take;
        int rc = atr_hooks_run_request(NULL);
        T_CHECK(cases[i].line, rc == cases[i].result && strcmp(trace, cases[i].want) == 0,
                "ran %s, returned %d", trace, rc);
    }

    ntrace = 0;
    atr_hooks_run_log(NULL);
    T_CHECK(__LINE__, strcmp(trace, "xy") == 0, "log hooks: %s", trace);

    ntrace = 0;
    atr_hooks_wgen_init(NULL);
    atr_hooks_wgen_free(NULL);
    T_CHECK(__LINE__, strcmp(trace, "1298") == 0, "init in order, free in reverse: %s", trace);

    int s0 = atr_wgen_slot_new(), s1 = atr_wgen_slot_new();
    T_CHECK(__LINE__, s0 == 0 && s1 == 1 && s1 < ATR_WGEN_SLOTS, "slots %d %d", s0, s1);
    T_DONE();
}
