/* A configuration generation: an immutable, refcounted bundle of a checked
 * config plus what it needs at run time (the access log handle, the shared
 * per-server state). The control loop builds it (core/runtime.c); workers
 * take a reference through their uv_async and drop it when no request uses
 * it any more. */
#ifndef ATR_GEN_H
#define ATR_GEN_H

#include <stdatomic.h>
#include <stdint.h>

#include "balancer/balancer.h"
#include "base/log.h"
#include "conf/conf.h"
#include "http/http_parse.h"

struct atr_tls_server; /* tls/ctx.h */
struct atr_tls_client;

/* One member of an upstream: where requests go. A `server` line is one
 * member, except a `resolve` one, which is one member per address of its
 * last good DNS answer (core/resolve.c), or a placeholder that is always
 * down while its name has never resolved. */
typedef struct atr_member {
    struct sockaddr_storage addr;
    socklen_t addrlen;             /* 0: a placeholder (never chosen) */
    int line;                      /* its `server` line: conf->servers[line] */
    char *name;                    /* the line's text, or "TEXT/ADDR:PORT" for a resolved one (owned) */
} atr_member_t;

/* The members of an upstream at one moment: immutable, refcounted, shared
 * by the control loop and every worker. A change of members is a new set;
 * each worker moves to it on its loop (net/hooks.h atr_hook_members) while
 * the requests already placed finish on the set they were placed from. */
typedef struct atr_members {
    atomic_int refs;
    int n;                         /* >= 1 */
    atr_member_t *m;               /* n entries */
    atr_lb_server_t *servers;      /* n entries for the balancer: ->name is m[i].name, ->state
                                    * a reference (shared per name, carried over reloads) */
} atr_members_t;

/* What member m (its shared state st) is at now_ms, in one word, as the
 * status page and `atrium ctl show servers` say it: the operator's state
 * first ("draining", "disabled"), then "unresolved" (a name that never
 * answered), "down", "unhealthy", "ejected", or "up". */
const char *atr_member_state(const atr_member_t *m, atr_server_state_t *st, uint64_t now_ms);

/* An empty set for n members (refs 1); the caller fills m[] and servers[]. */
atr_members_t *atr_members_new(int n);
void atr_members_ref(atr_members_t *ms);
void atr_members_unref(atr_members_t *ms);   /* any thread; NULL is fine */

typedef struct atr_gen_upstream {
    const atr_conf_upstream_t *conf;
    struct atr_tls_client *tls;     /* protocol https: the client context, else NULL */
    const atr_lb_ops_t *lb_ops;
    atr_members_t *members_;        /* the current set: read with atr_gen_members */
} atr_gen_upstream_t;

/* The upstream's current members, with a reference for the caller (any
 * thread; a short lock, never on a request's path: workers take it when a
 * change is announced and when they take a generation). */
atr_members_t *atr_gen_members(const atr_gen_upstream_t *gu);
/* Control loop: make ms the current set (takes the caller's reference). The
 * caller then tells the workers (atr_worker_members_changed). */
void atr_gen_set_members(atr_gen_upstream_t *gu, atr_members_t *ms);

/* A small-object cache (the TLS session cache) shared by generations while
 * their config says the same, and attached by each worker: refcounted,
 * freed (ops->free) by the last reference, after every worker detached. */
struct atr_socache;
typedef struct atr_gen_cache {
    struct atr_socache *cache;
    atomic_int refs;
} atr_gen_cache_t;
void atr_gen_cache_ref(atr_gen_cache_t *c);
void atr_gen_cache_unref(atr_gen_cache_t *c); /* NULL is fine */

typedef struct atr_gen {
    atomic_int refs;
    uint64_t id;
    atr_conf_t *conf;
    atr_access_log_t *access_log;   /* NULL when off */
    atr_gen_upstream_t *ups;        /* nups entries: conf->upstreams in order, then one per cgi route */
    int nups;
    atr_conf_upstream_t *cgi_ups;   /* the internal upstreams of `cgi DIR;` routes (owned) */
    const atr_conf_route_t **cgi_routes;
    int ncgi;
    atr_http_limits_t req_limits;
    atr_http_limits_t resp_limits;
    const atr_conf_host_t *default_host;
    int only_default_host;          /* no host has a name other than "*": no lookup per request */
    int max_conns;                  /* client connections per worker (max_connections or auto) */
    struct atr_tls_server *tls;     /* the hosts' TLS contexts; NULL when no host has TLS */
    atr_gen_cache_t *session_cache; /* tls_session_cache; NULL when off or no TLS (ref held) */
    char **tls_listens;             /* listener keys ("127.0.0.1:443") of `listen ... tls` */
    int ntls_listens;
} atr_gen_t;

/* 1 when the listener with this key takes TLS in g. */
int atr_gen_listener_tls(const atr_gen_t *g, const char *key);


/* Take/drop a reference (any thread). The last unref frees the generation. */
void atr_gen_ref(atr_gen_t *g);
void atr_gen_unref(atr_gen_t *g);

/* Drop a reference to a server's shared state; the last frees it. */
void atr_server_state_unref(atr_server_state_t *st);

/* Index into g->ups of the upstream a proxy or cgi route uses; -1 otherwise. */
int atr_gen_route_upstream(const atr_gen_t *g, const atr_conf_route_t *rt);

#endif
