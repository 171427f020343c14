/* A lazy deadline timer: one uv_timer_t per connection whose deadline moves
 * with the connection's phase (head, body, send, idle, ...) without a timer
 * heap operation per move. Setting a later deadline, or cancelling, touches
 * nothing; when the timer fires early it re-arms for what is left. A
 * keep-alive connection thus costs about no timer work per request (the
 * libuv timer heap showed up at several percent of a proxied request). */
#ifndef ATR_DEADLINE_H
#define ATR_DEADLINE_H

#include <stdint.h>
#include <uv.h>

typedef struct atr_deadline atr_deadline_t;
typedef void (*atr_deadline_cb)(atr_deadline_t *d, int kind);

struct atr_deadline {
    uv_timer_t timer;      /* close it with uv_close(&d->timer) like any handle */
    uint64_t due;          /* loop time (ms) at which `kind` expires */
    int kind;              /* the caller's tag for what is timed; 0 = nothing */
    atr_deadline_cb cb;
    void *data;            /* the owner */
};

void atr_deadline_init(uv_loop_t *loop, atr_deadline_t *d, atr_deadline_cb cb, void *data);

/* Time `kind` (non-zero) for ms from now, replacing whatever was timed.
 * kind 0 or ms 0 cancels. cb(d, kind) runs once when it expires. */
void atr_deadline_set(atr_deadline_t *d, int kind, uint64_t ms);

#endif
