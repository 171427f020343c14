/* Start-up waits on the control loop, before any worker runs. */
#ifndef ATR_WAIT_H
#define ATR_WAIT_H

#include <stdint.h>
#include <uv.h>

/* Run loop until done() says so or timeout_ms passed; 1 when done() did.
 * done() is asked at least every 5 ms (it may watch other threads). Only
 * outside the loop's own callbacks (uv_run does not nest). */
int atr_wait_until(uv_loop_t *loop, uint64_t timeout_ms, int (*done)(void));

#endif
