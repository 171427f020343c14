/* Upstream members on the control loop: the shared per-server state
 * registry (carried over reloads by upstream and member name) and the sets
 * of members built from the `server` lines and the DNS answers. */
#ifndef ATR_MEMBERS_H
#define ATR_MEMBERS_H

#include "net/gen.h"

/* The members of u now: one per plain `server` line, one per address of a
 * `resolve` line's last good answer (core/resolve.c), or a placeholder that
 * is always down for a name that never resolved. refs 1. */
atr_members_t *atr_members_build(const atr_conf_upstream_t *u);

/* 1 when a and b are the same members in the same order. */
int atr_members_same(const atr_members_t *a, const atr_members_t *b);

/* Set the admin state of every member of line `server` of `upstream` (its
 * DNS members too), now: the workers' next picks see it. A server set
 * ready again after a drain ramps up with slow_start. */
void atr_states_set_admin(const char *upstream, const char *server, enum atr_lb_admin admin);

/* Drop registry entries nothing but the registry uses any more. */
void atr_states_prune(void);

/* Free the registry (at exit, once every generation is gone). */
void atr_states_free(void);

#endif
