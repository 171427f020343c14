/* DNS pools on the control loop: every `server NAME:PORT resolve` name is
 * asked for again when its answer's TTL runs out (within resolve_ttl_min and
 * resolve_ttl_max); each change of its set of addresses is announced so the
 * upstreams' members can follow. A failed lookup keeps the last good answer
 * (serve-stale) and is retried; a name that never resolved has no addresses
 * (its server stays down) and is retried. Answers are kept across reloads by
 * name and port. */
#ifndef ATR_RESOLVE_H
#define ATR_RESOLVE_H

#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <uv.h>

#include "conf/conf.h"

/* Resolve the names conf's `resolve` servers use, with conf's resolvers and
 * limits: names new to it are asked for now, the others keep their answers
 * and timers, names conf no longer uses are forgotten. changed() runs on the
 * loop after any name's set of addresses changed. Call it when conf is
 * committed (a reload that fails must not forget the running names). When
 * c-ares refuses new resolvers, that is logged and the channel before stays.
 * A name's first failure is announced too (its placeholder goes down). */
void atr_resolve_apply(uv_loop_t *loop, const atr_conf_t *conf, void (*changed)(void));

/* The last good answer for host:port: its addresses (sorted, with the port),
 * or NULL with *n 0 when it never resolved. Valid until the loop runs again. */
const struct sockaddr_storage *atr_resolve_addrs(const char *host, int port, int *n);

/* 0 while host:port's first lookup has not ended (or the name is new to the
 * config being applied), 1 once it answered or failed. */
int atr_resolve_answered(const char *host, int port);

/* Run the loop until every name had its first answer (or failure), at most
 * timeout_ms: at start, so the first requests find the members. */
void atr_resolve_wait_first(uv_loop_t *loop, uint64_t timeout_ms);

/* Forget every name and close the channel. */
void atr_resolve_stop(void);

/* -t: ask for every name conf uses, on a loop of its own; a warning line
 * per name that does not resolve ("FILE:LINE:COL: warning: ...") goes to
 * out. Returns how many did not. */
int atr_resolve_check(const atr_conf_t *conf, FILE *out);

#endif
