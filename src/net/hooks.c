/* The hook lists (net/hooks.h): filled once before workers start, then
 * only read. */
#include "net/hooks.h"

#include <stdlib.h>

#include "base/log.h"
#include "net/worker.h"

typedef struct req_hook {
    atr_req_hook_fn fn;
    int order;
} req_hook_t;

static struct {
    req_hook_t req[ATR_NPHASES][ATR_MAX_HOOKS];
    int nreq[ATR_NPHASES];
    /* Every phase's hooks in the order they run, rebuilt at each
     * registration: a request walks one short array. */
    atr_req_hook_fn run[ATR_NPHASES * ATR_MAX_HOOKS];
    int nrun;
    atr_log_hook_fn log[ATR_MAX_HOOKS];
    int nlog;
    void (*wgen_init[ATR_MAX_HOOKS])(atr_wgen_t *wg);
    void (*wgen_free[ATR_MAX_HOOKS])(atr_wgen_t *wg);
    int nwgen;
    void (*exit[ATR_MAX_HOOKS])(atr_worker_t *w);
    int nexit;
    void (*members[ATR_MAX_HOOKS])(atr_wgen_t *wg);
    int nmembers;
    int nslots;
} hooks;

static void room(int n)
{
    if (n >= ATR_MAX_HOOKS) {
        ATR_CRIT("too many hooks (ATR_MAX_HOOKS %d)", ATR_MAX_HOOKS);
        abort();
    }
}

void atr_hook_request(enum atr_phase phase, enum atr_hook_order order, atr_req_hook_fn fn)
{
    req_hook_t *list = hooks.req[phase];
    int n = hooks.nreq[phase], i = n;
    room(n);
    while (i > 0 && list[i - 1].order > (int)order) { /* stable: after equals */
        list[i] = list[i - 1];
        i--;
    }
    list[i] = (req_hook_t){ fn, (int)order };
    hooks.nreq[phase] = n + 1;
    hooks.nrun = 0;
    for (int p = 0; p < ATR_NPHASES; p++)
        for (int k = 0; k < hooks.nreq[p]; k++)
            hooks.run[hooks.nrun++] = hooks.req[p][k].fn;
}

void atr_hook_log(atr_log_hook_fn fn)
{
    room(hooks.nlog);
    hooks.log[hooks.nlog++] = fn;
}

void atr_hook_wgen(void (*init)(atr_wgen_t *wg), void (*free_fn)(atr_wgen_t *wg))
{
    room(hooks.nwgen);
    hooks.wgen_init[hooks.nwgen] = init;
    hooks.wgen_free[hooks.nwgen] = free_fn;
    hooks.nwgen++;
}

void atr_hook_worker_exit(void (*fn)(atr_worker_t *w))
{
    room(hooks.nexit);
    hooks.exit[hooks.nexit++] = fn;
}

void atr_hook_members(void (*fn)(atr_wgen_t *wg))
{
    room(hooks.nmembers);
    hooks.members[hooks.nmembers++] = fn;
}

int atr_wgen_slot_new(void)
{
    if (hooks.nslots >= ATR_WGEN_SLOTS) {
        ATR_CRIT("too many per-generation slots (ATR_WGEN_SLOTS %d)", ATR_WGEN_SLOTS);
        abort();
    }
    return hooks.nslots++;
}

int atr_hooks_run_request(atr_req_t *r)
{
    for (int i = 0; i < hooks.nrun; i++)
        if (hooks.run[i](r) == ATR_HOOK_DONE)
            return ATR_HOOK_DONE;
    return ATR_HOOK_DECLINED;
}

void atr_hooks_run_log(atr_req_t *r)
{
    for (int i = 0; i < hooks.nlog; i++)
        hooks.log[i](r);
}

void atr_hooks_wgen_init(atr_wgen_t *wg)
{
    for (int i = 0; i < hooks.nwgen; i++)
        if (hooks.wgen_init[i])
            hooks.wgen_init[i](wg);
}

void atr_hooks_wgen_free(atr_wgen_t *wg)
{
    for (int i = hooks.nwgen; i-- > 0;) /* the reverse of init */
        if (hooks.wgen_free[i])
            hooks.wgen_free[i](wg);
}

void atr_hooks_worker_exit(atr_worker_t *w)
{
    for (int i = 0; i < hooks.nexit; i++)
        hooks.exit[i](w);
}

void atr_hooks_members(atr_wgen_t *wg)
{
    for (int i = 0; i < hooks.nmembers; i++)
        hooks.members[i](wg);
}
