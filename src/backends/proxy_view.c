/* Views: what one worker chooses from for one upstream (a set of members,
 * its balancer, its idle connections per member). The members of a `resolve`
 * server change with DNS; the control loop publishes a new set
 * (atr_gen_set_members) and each worker makes a new view on its own loop.
 * The idle connections of members that stay move over; those of members that
 * left close; exchanges placed from the old view finish on it, and their
 * connections then join the new view if their member is still in it. A
 * member is the same member across sets when its shared state is the same
 * (the state is per upstream and member name, core/members.c). */
#include <stdlib.h>

#include "backends/proxy_priv.h"
#include "net/hooks.h"

atr_px_view_t *atr__px_view_new(atr_wgen_t *wg, int ups, atr_members_t *ms)
{
    static __thread uint64_t made; /* a new view's balancer starts elsewhere in its sequence */
    atr_px_view_t *v = atr_xcalloc(1, sizeof *v);
    v->refs = 1;
    v->ms = ms;
    v->lb = atr_lb_new(wg->gen->ups[ups].lb_ops, ms->servers, ms->n,
                       wg->w->seed + (uint64_t)ups * 7919 + made++ * 104729);
    v->pools = atr_xcalloc((size_t)ms->n, sizeof *v->pools);
    return v;
}

void atr__px_view_unref(atr_px_view_t *v)
{
    if (v == NULL || --v->refs > 0)
        return;
    /* Idle connections hold a reference: none are left. */
    atr_lb_free(v->lb);
    free(v->pools);
    atr_members_unref(v->ms);
    free(v);
}

int atr__px_view_find(const atr_px_view_t *to, const atr_px_view_t *from, int s)
{
    const atr_server_state_t *st = from->ms->servers[s].state;
    if (s < to->ms->n && to->ms->servers[s].state == st)
        return s; /* most changes keep the order of the members that stay */
    for (int i = 0; i < to->ms->n; i++)
        if (to->ms->servers[i].state == st)
            return i;
    return -1;
}

void atr__px_views_init(atr_wgen_t *wg)
{
    atr_px_wgen_t *pw = atr__pxw(wg);
    for (int i = 0; i < wg->gen->nups; i++)
        pw->views[i] = atr__px_view_new(wg, i, atr_gen_members(&wg->gen->ups[i]));
}

/* Close the idle connections of every member of v. */
static void close_idle(atr_px_view_t *v)
{
    for (int s = 0; s < v->ms->n; s++)
        atr__pool_close_idle(v, s);
}

void atr__px_views_free(atr_wgen_t *wg)
{
    atr_px_wgen_t *pw = atr__pxw(wg);
    for (int i = 0; i < wg->gen->nups; i++) {
        close_idle(pw->views[i]);
        atr__px_view_unref(pw->views[i]);
    }
}

/* Move the idle connections of `from` into `to` where their member stays. */
static void move_idle(atr_px_view_t *from, atr_px_view_t *to)
{
    for (int s = 0; s < from->ms->n; s++) {
        atr_pool_t *p = &from->pools[s];
        if (p->idle == NULL)
            continue;
        int t = atr__px_view_find(to, from, s);
        if (t < 0 || atomic_load(&from->ms->servers[s].state->admin) != ATR_LB_ADMIN_READY) {
            atr__pool_close_idle(from, s); /* it left, or the operator drained it */
            continue;
        }
        while (p->idle) {
            atr_bconn_t *bc = p->idle;
            p->idle = bc->next;
            p->nidle--;
            bc->next = to->pools[t].idle;
            to->pools[t].idle = bc;
            to->pools[t].nidle++;
            bc->server = t;
            bc->view = to;
            to->refs++;
            from->refs--; /* never the last: the generation's reference is still held */
        }
    }
}

void atr__px_members_changed(atr_wgen_t *wg)
{
    atr_px_wgen_t *pw = atr__pxw(wg);
    for (int i = 0; i < wg->gen->nups; i++) {
        atr_members_t *ms = atr_gen_members(&wg->gen->ups[i]);
        atr_px_view_t *old = pw->views[i];
        if (ms == old->ms) {
            atr_members_unref(ms);
            continue;
        }
        atr_px_view_t *v = atr__px_view_new(wg, i, ms);
        atr_lb_carry(v->lb, old->lb); /* go on in the sequence, not from its start */
        move_idle(old, v);
        pw->views[i] = v;
        atr__px_view_unref(old);
        atr__queue_kick(wg, i); /* new members may have room for those waiting */
    }
}
