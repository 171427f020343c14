/* Start-up waits (core/wait.h): the first OCSP staples, the first DNS
 * answers. */
#include "core/wait.h"

#include <stdlib.h>

#include "base/util.h"

static void wait_over(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

static void tick(uv_timer_t *t)
{
    (void)t; /* wakes the loop: done() may change on another thread */
}

int atr_wait_until(uv_loop_t *loop, uint64_t timeout_ms, int (*done)(void))
{
    if (done())
        return 1;
    int over = 0;
    uv_timer_t *t = atr_xmalloc(sizeof *t), *k = atr_xmalloc(sizeof *k);
    uv_timer_init(loop, t);
    uv_timer_init(loop, k);
    t->data = &over;
    uv_timer_start(t, wait_over, timeout_ms, 0);
    uv_timer_start(k, tick, 5, 5);
    while (!over && !done())
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
    uv_close((uv_handle_t *)k, (uv_close_cb)free);
    return done();
}
