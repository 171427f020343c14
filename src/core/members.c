/* Upstream members and their shared state (core/members.h). A member's
 * state (in flight, down, health, counters) is keyed by its upstream and its
 * name, so a reload, or a DNS answer that still holds its address, finds the
 * same state again. */
#include "core/members.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "core/overrides.h"
#include "core/resolve.h"

typedef struct state_entry {
    char *key;                 /* "upstream|member name" */
    atr_server_state_t *st;
} state_entry_t;

static struct {
    state_entry_t *v;
    int n;
    int running;               /* a generation runs: new states are servers added */
} states;

/* The state of member of upstream, made when new. A new one after startup is a
 * server joining a running pool, which slow_start ramps up, unless `joins` is
 * 0 (the first answer for a name: its members are the pool's first, as at
 * startup). */
static atr_server_state_t *state_get(const char *upstream, const char *member, int joins)
{
    /* The whole key, however long: a cut one would let two servers share
     * counters and down marks. */
    size_t n = strlen(upstream) + strlen(member) + 2;
    char *key = atr_xmalloc(n);
    snprintf(key, n, "%s|%s", upstream, member);
    for (int i = 0; i < states.n; i++) {
        if (strcmp(states.v[i].key, key) == 0) {
            free(key);
            atomic_fetch_add(&states.v[i].st->refs, 1);
            return states.v[i].st;
        }
    }
    atr_server_state_t *st = aligned_alloc(64, (sizeof *st + 63) & ~(size_t)63);
    if (st == NULL)
        abort();
    memset(st, 0, sizeof *st);
    atomic_store(&st->refs, 2); /* the registry's and the caller's */
    if (states.running && joins) /* added by a reload or a DNS answer */
        atr_lb_server_back(st, atr_now_ms());
    states.v = atr_xrealloc(states.v, (size_t)(states.n + 1) * sizeof *states.v);
    states.v[states.n].key = key;
    states.v[states.n].st = st;
    states.n++;
    return st;
}

void atr_states_prune(void)
{
    int j = 0;
    /* Called once a generation is committed: from then on a state that is
     * new belongs to a server that joins a running pool (not at startup,
     * where every server is new and none should ramp). */
    states.running = 1;
    for (int i = 0; i < states.n; i++) {
        if (atomic_load(&states.v[i].st->refs) == 1) {
            atr_server_state_unref(states.v[i].st);
            free(states.v[i].key);
        } else {
            states.v[j++] = states.v[i];
        }
    }
    states.n = j;
}

void atr_states_free(void)
{
    atr_states_prune();
    free(states.v);
    states.v = NULL;
    states.n = 0;
}

/* 1 when the registry holds a state for member of upstream. */
static int state_exists(const char *upstream, const char *member)
{
    size_t ul = strlen(upstream);
    for (int i = 0; i < states.n; i++)
        if (strncmp(states.v[i].key, upstream, ul) == 0 && states.v[i].key[ul] == '|' &&
            strcmp(states.v[i].key + ul + 1, member) == 0)
            return 1;
    return 0;
}

/* Member k of ms from server line sv (line j of u, or -1: added at run
 * time), reaching addr (NULL: the placeholder of a name that never resolved,
 * always down). joins: as for state_get. o: the operator's change to the
 * line, or NULL. */
static void member_set(atr_members_t *ms, int k, const atr_conf_upstream_t *u,
                       const atr_conf_server_t *sv, int j, const atr_override_t *o,
                       const struct sockaddr_storage *addr, socklen_t addrlen, const char *name,
                       int joins)
{
    atr_member_t *m = &ms->m[k];
    atr_lb_server_t *s = &ms->servers[k];
    m->line = j;
    m->name = atr_xstrdup(name);
    if (addr) {
        m->addr = *addr;
        m->addrlen = addrlen;
    }
    s->weight = o != NULL && o->weight > 0 ? o->weight : sv->weight > 0 ? sv->weight : 1;
    s->max_conns = sv->max_conns;
    s->backup = sv->backup;
    s->slow_start = (uint32_t)sv->slow_start;
    s->state = state_get(u->name, name, joins);
    s->name = m->name; /* hash places a member by its name, not its index */
    if (addr == NULL) {
        /* A placeholder: while its name's first lookup is out, requests wait
         * for the answer (a reload that adds a name must not answer 503 for
         * the milliseconds DNS takes); once the name failed, it is down. */
        int pending = !atr_resolve_answered(sv->host, sv->port);
        atomic_store(&s->state->pending, pending);
        atomic_store(&s->state->down_until, pending ? 0 : UINT64_MAX);
    }
    /* Only ever set here: a build for a config that is then refused must
     * not undo a drain; what clears it is `enable` or the file overruling
     * the change (atr_states_set_admin). */
    if (o != NULL && o->admin != ATR_LB_ADMIN_READY)
        atomic_store(&s->state->admin, (int)o->admin);
    /* one address of a `resolve` line drained or disabled on its own */
    const atr_override_t *om = sv->resolve ? atr_override_find(u->name, name) : NULL;
    if (om != NULL && om->admin != ATR_LB_ADMIN_READY)
        atomic_store(&s->state->admin, (int)om->admin);
}

static socklen_t addr_len(const struct sockaddr_storage *a)
{
    return a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* The members line sv makes (a DNS line: one per address, or its placeholder). */
static int line_count(const atr_conf_server_t *sv)
{
    int na = 1;
    if (sv->resolve)
        atr_resolve_addrs(sv->host, sv->port, &na);
    return na > 0 ? na : 1;
}

/* How many members u has with the operator's changes; removals count only
 * with honour_removed (a reload could leave an upstream whose every server
 * was removed at run time: then they all come back rather than none). */
static int members_count(const atr_conf_upstream_t *u, int honour_removed)
{
    int n = 0;
    for (int j = 0; j < u->nservers; j++) {
        const atr_override_t *o = atr_override_find(u->name, u->servers[j].text);
        if (!(honour_removed && o != NULL && o->removed))
            n += line_count(&u->servers[j]);
    }
    const atr_override_t *o;
    for (int i = 0; (o = atr_override_at(i)) != NULL; i++)
        n += o->added && o->stale == NULL && strcmp(o->upstream, u->name) == 0;
    return n;
}

atr_members_t *atr_members_build(const atr_conf_upstream_t *u)
{
    int honour_removed = members_count(u, 1) > 0;
    atr_members_t *ms = atr_members_new(members_count(u, honour_removed));
    int k = 0;
    for (int j = 0; j < u->nservers; j++) {
        const atr_conf_server_t *sv = &u->servers[j];
        const atr_override_t *o = atr_override_find(u->name, sv->text);
        if (honour_removed && o != NULL && o->removed)
            continue;
        if (!sv->resolve) {
            member_set(ms, k++, u, sv, j, o, &sv->addr, sv->addrlen, sv->text, 1);
            continue;
        }
        int na;
        const struct sockaddr_storage *a = atr_resolve_addrs(sv->host, sv->port, &na);
        char name[512], at[80];
        snprintf(name, sizeof name, "%s (unresolved)", sv->text);
        /* the first answer for a name that never resolved is no server joining:
         * its members are the line's first, and ramp no more than at startup */
        int joins = !state_exists(u->name, name);
        if (na == 0)
            member_set(ms, k++, u, sv, j, o, NULL, 0, name, 0);
        for (int i = 0; i < na; i++) {
            snprintf(name, sizeof name, "%s/%s", sv->text, atr_sockaddr_text(&a[i], at, sizeof at));
            member_set(ms, k++, u, sv, j, o, &a[i], addr_len(&a[i]), name, joins);
        }
    }
    const atr_override_t *o;
    for (int i = 0; (o = atr_override_at(i)) != NULL; i++)
        if (o->added && o->stale == NULL && strcmp(o->upstream, u->name) == 0)
            member_set(ms, k++, u, &o->line, -1, o, &o->line.addr, o->line.addrlen,
                       o->line.text, 1);
    return ms;
}

int atr_members_same(const atr_members_t *a, const atr_members_t *b)
{
    if (a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; i++)
        if (a->servers[i].state != b->servers[i].state ||
            a->servers[i].weight != b->servers[i].weight)
            return 0;
    return 1;
}

/* 1 when registry key `key` ("upstream|member") belongs to line `server` of
 * `upstream`: the member of that name, one of its DNS answers
 * ("server/addr") or its placeholder ("server (unresolved)"). */
static int key_of_line(const char *key, const char *upstream, const char *server)
{
    size_t ul = strlen(upstream), sl = strlen(server);
    if (strncmp(key, upstream, ul) != 0 || key[ul] != '|' || strncmp(key + ul + 1, server, sl) != 0)
        return 0;
    const char *rest = key + ul + 1 + sl;
    return rest[0] == '\0' || rest[0] == '/' || strcmp(rest, " (unresolved)") == 0;
}

void atr_states_set_admin(const char *upstream, const char *server, enum atr_lb_admin admin)
{
    uint64_t now = atr_now_ms();
    for (int i = 0; i < states.n; i++) {
        if (!key_of_line(states.v[i].key, upstream, server))
            continue;
        atr_server_state_t *st = states.v[i].st;
        int was = atomic_exchange(&st->admin, (int)admin);
        if (was != ATR_LB_ADMIN_READY && admin == ATR_LB_ADMIN_READY)
            atr_lb_server_back(st, now); /* back in service: slow_start ramps it */
    }
}
