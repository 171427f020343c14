/* Generations: references and the shared server state they hold. */
#include "net/gen.h"

#include <stdlib.h>
#include <string.h>

#include "base/socache.h"
#include "tls/ctx.h"

void atr_server_state_unref(atr_server_state_t *st)
{
    if (atomic_fetch_sub(&st->refs, 1) == 1)
        free(st);
}

void atr_gen_cache_ref(atr_gen_cache_t *c)
{
    atomic_fetch_add(&c->refs, 1);
}

void atr_gen_cache_unref(atr_gen_cache_t *c)
{
    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    atr_socache_free(c->cache);
    free(c);
}

void atr_gen_ref(atr_gen_t *g)
{
    atomic_fetch_add(&g->refs, 1);
}

void atr_gen_unref(atr_gen_t *g)
{
    if (atomic_fetch_sub(&g->refs, 1) != 1)
        return;
    for (int i = 0; i < g->nups; i++) {
        atr_tls_client_free(g->ups[i].tls);
        for (int j = 0; j < g->ups[i].conf->nservers; j++)
            atr_server_state_unref(g->ups[i].servers[j].state);
        free(g->ups[i].servers);
    }
    for (int k = 0; k < g->ncgi; k++) {
        free(g->cgi_ups[k].name);
        free(g->cgi_ups[k].servers);
    }
    free(g->cgi_ups);
    free(g->cgi_routes);
    free(g->ups);
    atr_tls_server_free(g->tls);
    atr_gen_cache_unref(g->session_cache);
    for (int i = 0; i < g->ntls_listens; i++)
        free(g->tls_listens[i]);
    free(g->tls_listens);
    if (g->access_log)
        atr_access_log_unref(g->access_log);
    atr_conf_free(g->conf);
    free(g);
}

int atr_gen_listener_tls(const atr_gen_t *g, const char *key)
{
    for (int i = 0; i < g->ntls_listens; i++)
        if (strcmp(g->tls_listens[i], key) == 0)
            return 1;
    return 0;
}

int atr_gen_route_upstream(const atr_gen_t *g, const atr_conf_route_t *rt)
{
    if (rt->kind == ATR_ROUTE_PROXY)
        return (int)(rt->upstream - g->conf->upstreams);
    for (int k = 0; k < g->ncgi; k++)
        if (g->cgi_routes[k] == rt)
            return g->conf->nupstreams + k;
    return -1;
}
