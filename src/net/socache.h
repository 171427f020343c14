/* The providers of the small-object cache (base/socache.h). Both are created
 * on the control loop, used through locals attached on each worker's loop,
 * and freed with atr_socache_free once every local is detached. The loop
 * given to attach is a worker's (loop->data is its atr_worker_t: memcached's
 * connections take their buffers from the worker's caches). */
#ifndef ATR_NET_SOCACHE_H
#define ATR_NET_SOCACHE_H

#include <stdint.h>
#include <sys/socket.h>

#include "base/socache.h"

/* "shared": one hash table in this process for every worker thread, behind a
 * mutex, holding at most `bytes` (entries, keys and values counted; at least
 * 64 KiB is used). Expired entries are dropped when met; when a new entry
 * does not fit, the least recently used ones go. get answers before it
 * returns. Never NULL. */
atr_socache_t *atr_socache_shared_new(size_t bytes);

/* Tests only: read time (ms, monotonic) from now(arg) instead of the clock,
 * to test expiry without sleeping. Before any local is attached. */
void atr__socache_shared_clock(atr_socache_t *c, uint64_t (*now)(void *arg), void *arg);

/* "memcached": the n servers at addrs[] (TCP, copied), each key on one of
 * them by a consistent hash of the server addresses (stable across processes
 * that list the same servers, in any order; see socache_memcached.c). Every
 * worker opens its own connection to a server when it first needs it. A
 * request unanswered after timeout_ms (0: 200) answers UV_ETIMEDOUT and
 * closes that connection; a refused, failed or timed-out server is marked
 * down for a back-off (1 s), during which its keys miss at once. n is 1..64;
 * NULL when it is not. */
atr_socache_t *atr_socache_memcached_new(const struct sockaddr_storage *addrs, int n,
                                         uint64_t timeout_ms);

#endif
