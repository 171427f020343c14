/* Run-time changes over the config file (core/overrides.h). A handful at
 * most (an operator types them), so a plain array searched in order. */
#include "core/overrides.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "core/members.h"

static struct {
    atr_override_t **v;
    int n;
} ovr;

const atr_override_t *atr_override_find(const char *upstream, const char *server)
{
    for (int i = 0; i < ovr.n; i++) {
        const atr_override_t *o = ovr.v[i];
        if (!o->stale && strcmp(o->upstream, upstream) == 0 && strcmp(o->server, server) == 0)
            return o;
    }
    return NULL;
}

int atr_override_of_line(const char *server, const atr_conf_server_t *sv)
{
    size_t n = strlen(sv->text);
    return strncmp(server, sv->text, n) == 0 &&
           (server[n] == '\0' || (sv->resolve && server[n] == '/'));
}

void atr_override_sig(const atr_conf_server_t *sv, char *buf, size_t cap)
{
    snprintf(buf, cap, "weight=%d max_conns=%d backup=%d slow_start=%llu resolve=%d", sv->weight,
             sv->max_conns, sv->backup, (unsigned long long)sv->slow_start, sv->resolve);
}

atr_override_t *atr_override_make(const char *upstream, const char *server,
                                  const atr_conf_server_t *sv)
{
    atr_override_t *o = (atr_override_t *)atr_override_find(upstream, server);
    if (o != NULL)
        return o;
    o = atr_xcalloc(1, sizeof *o);
    o->upstream = atr_xstrdup(upstream);
    o->server = atr_xstrdup(server);
    if (sv != NULL)
        atr_override_sig(sv, o->file_sig, sizeof o->file_sig);
    ovr.v = atr_xrealloc(ovr.v, (size_t)(ovr.n + 1) * sizeof *ovr.v);
    ovr.v[ovr.n++] = o;
    return o;
}

static void override_free(atr_override_t *o)
{
    free(o->line.text); /* NULL unless it was added */
    free(o->upstream);
    free(o->server);
    free(o);
}

/* Remove entry i, keeping the order (`show changes` lists them as made). */
static void remove_at(int i)
{
    override_free(ovr.v[i]);
    memmove(&ovr.v[i], &ovr.v[i + 1], (size_t)(ovr.n - i - 1) * sizeof *ovr.v);
    ovr.n--;
}

void atr_override_tidy(atr_override_t *o)
{
    if (o->weight != 0 || o->admin != ATR_LB_ADMIN_READY || o->added || o->removed)
        return;
    for (int i = 0; i < ovr.n; i++)
        if (ovr.v[i] == o) {
            remove_at(i);
            return;
        }
}

atr_override_t *atr_override_at(int i)
{
    return i >= 0 && i < ovr.n ? ovr.v[i] : NULL;
}

/* The reason the next config overrules o, or NULL when o still applies. */
static const char *overruled(const atr_override_t *o, const atr_conf_t *next)
{
    const atr_conf_upstream_t *u = atr_conf_find_upstream(next, o->upstream);
    if (u == NULL)
        return "its upstream is gone from the config";
    const atr_conf_server_t *sv = NULL;
    for (int j = 0; j < u->nservers && sv == NULL; j++)
        if (atr_override_of_line(o->server, &u->servers[j]))
            sv = &u->servers[j];
    if (o->added)
        return sv != NULL ? "the config has the server now" : NULL;
    if (sv == NULL)
        return "the config no longer has the server";
    char sig[sizeof o->file_sig];
    atr_override_sig(sv, sig, sizeof sig);
    return strcmp(sig, o->file_sig) != 0 ? "the config changed the server" : NULL;
}

void atr_overrides_begin(const atr_conf_t *next)
{
    for (int i = 0; i < ovr.n; i++)
        ovr.v[i]->stale = overruled(ovr.v[i], next);
}

void atr_overrides_abort(void)
{
    for (int i = 0; i < ovr.n; i++)
        ovr.v[i]->stale = NULL;
}

void atr_overrides_commit(void)
{
    for (int i = 0; i < ovr.n;) {
        atr_override_t *o = ovr.v[i];
        if (!o->stale) {
            i++;
            continue;
        }
        ATR_NOTICE("upstream %s: server %s: the change made at run time is dropped: %s",
                   o->upstream, o->server, o->stale);
        atr_states_set_admin(o->upstream, o->server, ATR_LB_ADMIN_READY);
        remove_at(i);
    }
}

void atr_overrides_free(void)
{
    while (ovr.n > 0)
        remove_at(ovr.n - 1);
    free(ovr.v);
    ovr.v = NULL;
}
