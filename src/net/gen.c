/* Generations: references and the shared server state they hold. */
#include "net/gen.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/socache.h"
#include "tls/ctx.h"

void atr_server_state_unref(atr_server_state_t *st)
{
    if (atomic_fetch_sub(&st->refs, 1) == 1)
        free(st);
}

const char *atr_member_state(const atr_member_t *m, atr_server_state_t *st, uint64_t now_ms)
{
    int admin = atomic_load(&st->admin);
    if (admin == ATR_LB_ADMIN_DRAIN)
        return "draining";
    if (admin == ATR_LB_ADMIN_DISABLED)
        return "disabled";
    if (m->addrlen == 0)
        return "unresolved";
    if (atomic_load(&st->down_until) > now_ms)
        return "down";
    if (atomic_load(&st->unhealthy))
        return "unhealthy";
    if (atomic_load(&st->ejected_until) > now_ms)
        return "ejected";
    return "up";
}

atr_members_t *atr_members_new(int n)
{
    atr_members_t *ms = atr_xcalloc(1, sizeof *ms);
    atomic_init(&ms->refs, 1);
    ms->n = n;
    ms->m = atr_xcalloc((size_t)n, sizeof *ms->m);
    ms->servers = atr_xcalloc((size_t)n, sizeof *ms->servers);
    return ms;
}

void atr_members_ref(atr_members_t *ms)
{
    atomic_fetch_add(&ms->refs, 1);
}

void atr_members_unref(atr_members_t *ms)
{
    if (ms == NULL || atomic_fetch_sub(&ms->refs, 1) != 1)
        return;
    for (int i = 0; i < ms->n; i++) {
        free(ms->m[i].name);
        if (ms->servers[i].state)
            atr_server_state_unref(ms->servers[i].state);
    }
    free(ms->m);
    free(ms->servers);
    free(ms);
}

/* One lock for every upstream's current-set pointer: taken a few times per
 * change and per generation a worker takes, never per request. */
static pthread_mutex_t members_lock = PTHREAD_MUTEX_INITIALIZER;

atr_members_t *atr_gen_members(const atr_gen_upstream_t *gu)
{
    pthread_mutex_lock(&members_lock);
    atr_members_t *ms = gu->members_;
    atr_members_ref(ms);
    pthread_mutex_unlock(&members_lock);
    return ms;
}

void atr_gen_set_members(atr_gen_upstream_t *gu, atr_members_t *ms)
{
    pthread_mutex_lock(&members_lock);
    atr_members_t *old = gu->members_;
    gu->members_ = ms;
    pthread_mutex_unlock(&members_lock);
    atr_members_unref(old);
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
        atr_members_unref(g->ups[i].members_);
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
