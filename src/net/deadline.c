#include "net/deadline.h"

static void fire(uv_timer_t *t)
{
    atr_deadline_t *d = t->data;
    if (d->kind == 0)
        return; /* cancelled since armed: let the timer rest */
    uint64_t now = uv_now(t->loop);
    if (now < d->due) {
        uv_timer_start(t, fire, d->due - now, 0); /* moved later since armed */
        return;
    }
    int kind = d->kind;
    d->kind = 0;
    d->cb(d, kind);
}

void atr_deadline_init(uv_loop_t *loop, atr_deadline_t *d, atr_deadline_cb cb, void *data)
{
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    d->due = 0;
    d->kind = 0;
    d->cb = cb;
    d->data = data;
}

void atr_deadline_set(atr_deadline_t *d, int kind, uint64_t ms)
{
    if (kind == 0 || ms == 0) {
        d->kind = 0;
        return;
    }
    uint64_t now = uv_now(d->timer.loop);
    d->kind = kind;
    d->due = now + ms;
    /* Re-arm only when the armed expiry is later than the new deadline. */
    if (!uv_is_active((uv_handle_t *)&d->timer) ||
        now + uv_timer_get_due_in(&d->timer) > d->due)
        uv_timer_start(&d->timer, fire, ms, 0);
}
