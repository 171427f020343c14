/* TLS for a generation: the server contexts of its hosts, the client
 * contexts of its https upstreams, which listeners take TLS, and the
 * ticket keys it asks for. Built before a generation commits (a bad file
 * refuses the start or the reload and the running generation keeps
 * serving), and by `-t`. */
#include "core/tls_setup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "base/log.h"
#include "base/socache.h"
#include "base/util.h"
#include "net/socache.h"
#include "net/tls.h"
#include "tls/ctx.h"
#include "tls/tickets.h"

static int build_clients(atr_gen_t *g, char *err, size_t errlen)
{
    for (int i = 0; i < g->conf->nupstreams; i++) {
        const atr_conf_upstream_t *u = &g->conf->upstreams[i];
        if (!u->protocol->tls)
            continue;
        g->ups[i].tls = atr_tls_client_new(u, err, errlen);
        if (g->ups[i].tls == NULL)
            return -1;
    }
    return 0;
}

int atr_tls_gen_build(atr_gen_t *g, atr_tls_ticket_keys_t *keys, char *err, size_t errlen)
{
    const atr_conf_t *conf = g->conf;
    atr_tls_sessions_register();
    atr_tls_ocsp_register();
    g->tls = atr_tls_server_new(conf, err, errlen);
    if (g->tls == NULL && err[0] != '\0')
        return -1;
    if (build_clients(g, err, errlen) < 0)
        return -1;
    g->tls_listens = atr_xcalloc((size_t)conf->nlistens + 1, sizeof *g->tls_listens);
    for (int i = 0; i < conf->nlistens; i++) {
        char key[80];
        if (conf->listens[i].tls)
            g->tls_listens[g->ntls_listens++] =
                atr_xstrdup(atr_sockaddr_text(&conf->listens[i].addr, key, sizeof key));
    }
    keys->n = 0;
    if (conf->tls_ticket_keys &&
        atr_tls_tickets_load(conf->tls_ticket_keys, &conf->tls_ticket_keys_pos, keys, err,
                             errlen) < 0)
        return -1;
    return 0;
}

/* The session cache the last generation used, kept while the config says
 * the same thing (a reload keeps the sessions). */
static struct {
    char key[1024];
    atr_gen_cache_t *cache;
} kept;

static void cache_key(const atr_conf_t *c, char *key, size_t n)
{
    size_t used = (size_t)snprintf(key, n, "%d %llu", (int)c->tls_session_cache,
                                   (unsigned long long)c->tls_session_cache_size);
    for (int i = 0; i < c->ntls_memcached && used < n; i++) {
        char a[64];
        used += (size_t)snprintf(key + used, n - used, " %s",
                                 atr_sockaddr_text(&c->tls_memcached[i], a, sizeof a));
    }
}

void atr_tls_gen_session_cache(atr_gen_t *g)
{
    const atr_conf_t *c = g->conf;
    char key[sizeof kept.key];
    if (g->tls == NULL || c->tls_session_cache == ATR_SESSION_CACHE_OFF)
        return;
    cache_key(c, key, sizeof key);
    if (kept.cache == NULL || strcmp(key, kept.key) != 0) {
        atr_socache_t *sc = c->tls_session_cache == ATR_SESSION_CACHE_SHARED
                                ? atr_socache_shared_new(c->tls_session_cache_size)
                                : atr_socache_memcached_new(c->tls_memcached, c->ntls_memcached, 0);
        if (sc == NULL) {
            ATR_ERROR("tls_session_cache: cannot create it; sessions are not kept");
            return;
        }
        atr_gen_cache_unref(kept.cache);
        kept.cache = atr_xcalloc(1, sizeof *kept.cache);
        kept.cache->cache = sc;
        atomic_store(&kept.cache->refs, 1);
        snprintf(kept.key, sizeof kept.key, "%s", key);
    }
    atr_gen_cache_ref(kept.cache);
    g->session_cache = kept.cache;
}

void atr_tls_release(void)
{
    atr_gen_cache_unref(kept.cache);
    kept.cache = NULL;
}

void atr_tls_gen_commit(const atr_gen_t *g, const atr_tls_ticket_keys_t *keys, uint64_t now_ms)
{
    atr_tls_tickets_use(keys->n > 0 ? keys : NULL);
    atr_tls_tickets_rotate(now_ms, g->conf->tls_ticket_rotate);
}

int atr_tls_check(const atr_conf_t *conf, char *err, size_t errlen)
{
    atr_gen_t g = { .conf = (atr_conf_t *)conf };
    atr_gen_upstream_t *ups = atr_xcalloc((size_t)conf->nupstreams + 1, sizeof *ups);
    atr_tls_ticket_keys_t keys;
    g.ups = ups;
    int rc = atr_tls_gen_build(&g, &keys, err, errlen);
    for (int i = 0; i < conf->nupstreams; i++)
        atr_tls_client_free(ups[i].tls);
    free(ups);
    atr_tls_server_free(g.tls);
    for (int i = 0; i < g.ntls_listens; i++)
        free(g.tls_listens[i]);
    free(g.tls_listens);
    return rc;
}
