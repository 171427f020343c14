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

typedef struct atr_gen_upstream {
    const atr_conf_upstream_t *conf;
    struct atr_tls_client *tls;     /* protocol https: the client context, else NULL */
    const atr_lb_ops_t *lb_ops;
    atr_lb_server_t *servers;   /* conf->nservers entries; ->state shared, carried over by name */
} atr_gen_upstream_t;

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
