/* The end of a net/ test's worker: close what is left on its loop, run the
 * close callbacks, and check that the loop closes with no handle left. */
#ifndef ATR_TEST_WORKER_END_H
#define ATR_TEST_WORKER_END_H

#include <stdlib.h>

#include "net/worker.h"
#include "t.h"

static void worker_end_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void worker_end(atr_worker_t *w)
{
    uv_walk(&w->loop, worker_end_close, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    atr_cache_flush(w);
    T_CHECK(__LINE__, uv_loop_close(&w->loop) == 0, "loop closed with handles left");
    uv_mutex_destroy(&w->lock);
    free(w);
}

#endif
