/* Application processes an upstream starts itself (`spawn COMMAND
 * children=N;`): control-loop side. */
#ifndef ATR_SUPERVISOR_H
#define ATR_SUPERVISOR_H

#include <stdint.h>
#include <uv.h>

#include "conf/conf.h"

/* Make sure every spawn upstream of conf runs: keep the sets whose upstream,
 * command, children and socket are unchanged, start new ones (their socket
 * is bound here). 0, or -1 with "FILE:LINE:COL: message" in err when a
 * socket cannot be bound. */
int atr_spawn_apply(uv_loop_t *loop, const atr_conf_t *conf, char *err, size_t errlen);

/* The configuration that applied the sets is in force: their unix sockets,
 * bound at PATH.new, take the configured path (rename: a running set's
 * socket is replaced, never missing). */
void atr_spawn_commit(void);

/* Start children as this user (`user NAME` when Atrium runs as root); their
 * unix sockets are given to it too. */
void atr_spawn_set_user(uv_uid_t uid, uv_gid_t gid);

/* Stop the sets conf does not have (dropped by the configuration now in
 * force, or started by one that then failed to apply); conf may be NULL. */
void atr_spawn_prune(const atr_conf_t *conf);

/* Stop everything (shutdown): SIGTERM, SIGKILL after a grace period. */
void atr_spawn_stop_all(void);

#endif
