/* Heartbeats on the control loop (core/heartbeat.c): the monitor's beats
 * published into the shared state of the servers they are about, and our
 * own beats made from the workers' load. docs/heartbeat.md. */
#ifndef ATR_HEARTBEAT_H
#define ATR_HEARTBEAT_H

#include <stddef.h>
#include <uv.h>

#include "net/gen.h"

/* What -t checks: heartbeat_listen can be bound (the socket is closed
 * again). 0, or -1 with "FILE:LINE:COL: message" in err. */
int atr_heartbeat_check(const atr_conf_t *conf, char *err, size_t errlen);

/* The part of applying conf that can fail, before anything changes: a new
 * heartbeat_listen address is bound (a kept one is not touched). 0, or -1
 * with FILE:LINE:COL in err. Follow with atr_heartbeat_apply, or with
 * atr_heartbeat_abort when the reload fails later. */
int atr_heartbeat_prepare(const atr_conf_t *conf, char *err, size_t errlen);
void atr_heartbeat_abort(void);

/* Run g's heartbeat directives: start, keep, change or stop the monitor
 * and the sender. g must stay alive until the next apply or stop. */
void atr_heartbeat_apply(uv_loop_t *loop, const atr_gen_t *g);

/* The node is draining (a graceful stop): from now on our beats say
 * ready=0, and one says it at once, so that balancers stop sending new
 * requests before the listeners are gone. */
void atr_heartbeat_drain(void);

/* Stop both (their handles close on the loop). */
void atr_heartbeat_stop(void);

#endif
