/* Active health checks on the control loop (core/health.c). */
#ifndef ATR_HEALTH_H
#define ATR_HEALTH_H

#include <uv.h>

#include "net/gen.h"

/* Check the members of g's upstreams that have `health_check`: checks of
 * members that stay go on, new members get theirs, the rest stop (those of
 * the generation before, of members that left). Call it for each new
 * generation and after a change of members. g must outlive the checks
 * (until the next atr_health_apply or atr_health_stop). */
void atr_health_apply(uv_loop_t *loop, const atr_gen_t *g);

/* Stop every check (their handles close on the loop). */
void atr_health_stop(void);

#endif
