/* The small-object cache (Apache httpd's socache): get, set and delete of
 * short binary keys with small values and an expiry, behind an ops table so
 * that a user (TLS session resumption, later OCSP responses and rate-limit
 * counters) does not know where the bytes live. Providers (net/socache.h):
 * "shared" (in this process, shared by every worker thread) and "memcached".
 *
 * Two handles: an atr_socache_t per configuration, shared by all workers and
 * created on the control loop; an atr_socache_local_t per worker thread,
 * attached on that worker's loop, through which every call goes. A local is
 * used only on the thread that attached it.
 *
 * Answers are asynchronous: get's callback runs exactly once, possibly before
 * get returns (the shared provider answers at once, memcached answers at once
 * when it knows the answer is a miss), so a caller must be ready for both.
 * set and del are fire and forget: a cache may lose anything at any time, so
 * a user must treat every failure as a miss.
 *
 * Namespaces: one cache may serve several users; each prefixes its keys with
 * bytes of its own (e.g. "tls:" before a session ID).
 *
 * No libuv here (base/ is the lowest layer): the loop is a forward-declared
 * struct uv_loop_s; status codes are libuv's negative errno-style codes. */
#ifndef ATR_SOCACHE_H
#define ATR_SOCACHE_H

#include <stddef.h>
#include <stdint.h>

struct uv_loop_s;

/* Bounds every provider enforces: a longer key or a larger value is refused
 * (get answers < 0 at once, set and del return < 0). TLS sessions are about
 * 1-3 KiB. */
#define ATR_SOCACHE_KEY_MAX 250
#define ATR_SOCACHE_VAL_MAX (16 * 1024)
/* The longest ttl kept; longer ones are cut to it (memcached reads an
 * exptime past 30 days as a Unix time). ttl 0: no expiry (kept until
 * evicted or deleted). */
#define ATR_SOCACHE_TTL_MAX (30u * 24 * 3600)

typedef struct atr_socache atr_socache_t;
typedef struct atr_socache_local atr_socache_local_t;

/* The answer to a get. status 1: found, val/len valid only during the call
 * (copy what must outlive it); 0: miss; < 0: error or timeout (treat it as a
 * miss): UV_ETIMEDOUT no answer in time, UV_EHOSTDOWN server marked down
 * (nothing tried), UV_ECANCELED the local was detached, UV_ENOBUFS too many
 * requests waiting, UV_EINVAL key too long, UV_EPROTO a reply not
 * understood, or the connection's error (UV_ECONNREFUSED, UV_EOF: closed
 * by the server, ...). The callback may call the cache again
 * (get, set, del on the same local). */
typedef void (*atr_socache_get_cb)(void *arg, int status, const uint8_t *val, size_t len);

typedef struct atr_socache_ops {
    const char *name; /* "shared", "memcached" */
    /* On the worker thread that will use the local (loop is its loop). Never
     * NULL (allocation failure aborts). */
    atr_socache_local_t *(*attach)(atr_socache_t *c, struct uv_loop_s *loop);
    /* On the worker thread, before its loop closes: pending gets answer
     * UV_ECANCELED here (before detach returns), handles are closed and the
     * local is freed once they are (the loop must run on). l is gone for the
     * caller when detach returns. */
    void (*detach)(atr_socache_local_t *l);
    /* The key's bytes are copied before get returns; cb runs exactly once. */
    void (*get)(atr_socache_local_t *l, const uint8_t *key, size_t klen, atr_socache_get_cb cb,
                void *arg);
    /* Store a copy of val under key for ttl_s seconds (0: no expiry). 0:
     * accepted (not a promise it is kept), < 0: refused at once (too large,
     * server down, too much queued). Nothing is reported later. */
    int (*set)(atr_socache_local_t *l, const uint8_t *key, size_t klen, const uint8_t *val,
               size_t vlen, uint32_t ttl_s);
    /* Remove key; 0 accepted, < 0 refused at once (as set). */
    int (*del)(atr_socache_local_t *l, const uint8_t *key, size_t klen);
    /* On the control loop, after every local has been detached. */
    void (*free)(atr_socache_t *c);
} atr_socache_ops_t;

/* Providers embed these as their first members. */
struct atr_socache {
    const atr_socache_ops_t *ops;
};
struct atr_socache_local {
    atr_socache_t *cache;
};

/* The calls, through the ops of the cache the local belongs to. */
static inline atr_socache_local_t *atr_socache_attach(atr_socache_t *c, struct uv_loop_s *loop)
{
    return c->ops->attach(c, loop);
}

static inline void atr_socache_detach(atr_socache_local_t *l)
{
    l->cache->ops->detach(l);
}

static inline void atr_socache_get(atr_socache_local_t *l, const uint8_t *key, size_t klen,
                                   atr_socache_get_cb cb, void *arg)
{
    l->cache->ops->get(l, key, klen, cb, arg);
}

static inline int atr_socache_set(atr_socache_local_t *l, const uint8_t *key, size_t klen,
                                  const uint8_t *val, size_t vlen, uint32_t ttl_s)
{
    return l->cache->ops->set(l, key, klen, val, vlen, ttl_s);
}

static inline int atr_socache_del(atr_socache_local_t *l, const uint8_t *key, size_t klen)
{
    return l->cache->ops->del(l, key, klen);
}

static inline void atr_socache_free(atr_socache_t *c)
{
    c->ops->free(c);
}

#endif
