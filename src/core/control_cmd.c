/* The runtime API's commands (core/control.h, docs/control.md). Each takes
 * the words of one line and writes its answer; a refusal is one line that
 * starts "error: " and changes nothing. Server changes go through
 * core/overrides.h, so they are reported as differing from the file and
 * outlive reloads that leave the server alone. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backends/backend.h"
#include "base/log.h"
#include "base/util.h"
#include "core/control.h"
#include "core/members.h"
#include "core/overrides.h"
#include "http/headers.h"
#include "net/worker.h"

#ifndef ATR_VERSION
#define ATR_VERSION "dev"
#endif

#define MAX_WORDS 16

extern const atr_control_ops_t *atr__control_ops;

static int refuse(atr_buf_t *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(atr_buf_t *out, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    atr_buf_printf(out, "error: %s\n", msg);
    return -1;
}

/* After a change: keep it in control_state; a failure to is said, not hidden. */
static void saved(atr_buf_t *out)
{
    const char *path = NULL;
    int rc = atr__control_ops->save(&path);
    if (rc < 0)
        atr_buf_printf(out, "warning: not kept in control_state %s: %s (a restart loses it)\n",
                       path, strerror(-rc));
}

/* ---- finding what a command names ---------------------------------------- */

static const atr_gen_t *gen(void)
{
    return atr__control_ops->gen();
}

/* The upstream called name in the running generation (an index into
 * gen()->ups), or -1 with the refusal written. */
static int find_upstream(const char *name, atr_buf_t *out)
{
    const atr_conf_t *c = gen()->conf;
    for (int i = 0; i < c->nupstreams; i++)
        if (strcmp(c->upstreams[i].name, name) == 0)
            return i;
    atr_buf_t list = { 0 };
    for (int i = 0; i < c->nupstreams && list.n < 300; i++)
        atr_buf_printf(&list, "%s%s", i ? ", " : "", c->upstreams[i].name);
    atr_buf_put(&list, "", 1);
    refuse(out, "no upstream '%s' (upstreams: %s)", name, c->nupstreams ? list.p : "none");
    free(list.p);
    return -1;
}

/* The file's line `server` of u, or NULL. */
static const atr_conf_server_t *file_line(const atr_conf_upstream_t *u, const char *server)
{
    for (int j = 0; j < u->nservers; j++)
        if (strcmp(u->servers[j].text, server) == 0)
            return &u->servers[j];
    return NULL;
}

/* Server `server` of u as it runs now (a file line not removed, or one
 * added): 0, or -1 with the refusal written. *sv: the file's line or NULL. */
static int find_server(const atr_conf_upstream_t *u, const char *server,
                       const atr_conf_server_t **sv, atr_buf_t *out)
{
    const atr_override_t *o = atr_override_find(u->name, server);
    *sv = file_line(u, server);
    if ((*sv != NULL && !(o && o->removed)) || (o != NULL && o->added))
        return 0;
    if (*sv != NULL)
        return refuse(out, "upstream %s: server %s was removed at run time (add it back with "
                      "'add server %s %s')", u->name, server, u->name, server);
    const atr_conf_server_t *line = atr_override_line(u, server);
    if (line != NULL) /* one address of a resolve line: only drain/disable/enable take it */
        return refuse(out, "upstream %s: %s is one address of %s: this command takes the "
                      "line (all of its addresses)", u->name, server, line->text);
    return refuse(out, "upstream %s has no server '%s' ('show servers %s' lists them)", u->name,
                  server, u->name);
}

/* ---- show ------------------------------------------------------------------ */

static const char *admin_name(int admin)
{
    return admin == ATR_LB_ADMIN_DRAIN ? "draining" : admin == ATR_LB_ADMIN_DISABLED ? "disabled"
                                                                                   : "ready";
}

/* How the server differs from the file, "-" when it does not. */
static void changes_text(const atr_override_t *o, const atr_conf_server_t *sv, char *buf,
                         size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    if (o != NULL && o->added)
        n += (size_t)snprintf(buf + n, cap - n, "added");
    if (o != NULL && o->weight > 0 && n < cap)
        n += (size_t)snprintf(buf + n, cap - n, "%sweight %d (file: %d)", n ? ", " : "",
                              o->weight, sv ? sv->weight : o->line.weight);
    if (o != NULL && o->admin != ATR_LB_ADMIN_READY && n < cap)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "",
                              o->admin == ATR_LB_ADMIN_DRAIN ? "drained" : "disabled");
    if (n == 0)
        snprintf(buf, cap, "-");
}

static void show_servers_of(int ui, atr_buf_t *out)
{
    const atr_gen_upstream_t *gu = &gen()->ups[ui];
    const atr_conf_upstream_t *u = gu->conf;
    atr_members_t *ms = atr_gen_members(gu);
    uint64_t now = atr_now_ms();
    for (int i = 0; i < ms->n; i++) {
        const atr_member_t *m = &ms->m[i];
        const atr_lb_server_t *s = &ms->servers[i];
        atr_server_state_t *st = s->state;
        const atr_conf_server_t *sv = m->line >= 0 ? &u->servers[m->line] : NULL;
        const char *line = sv ? sv->text : m->name;
        char changed[160];
        const atr_override_t *o = atr_override_find(u->name, line);
        if (o == NULL && sv != NULL && sv->resolve)
            o = atr_override_find(u->name, m->name); /* one address drained on its own */
        changes_text(o, sv, changed, sizeof changed);
        atr_buf_printf(out, "%s %s %s %d %d %llu %llu %llu %llu %s\n", u->name, m->name,
                       atr_member_state(m, st, now), s->weight, atomic_load(&st->active),
                       (unsigned long long)atomic_load(&st->requests),
                       (unsigned long long)atomic_load(&st->failures),
                       (unsigned long long)atomic_load(&st->errors),
                       (unsigned long long)atomic_load(&st->responses[4]), changed);
    }
    atr_members_unref(ms);
}

static int cmd_show_servers(char **w, int n, atr_buf_t *out)
{
    const atr_conf_t *c = gen()->conf;
    int only = -1;
    if (n > 3)
        return refuse(out, "usage: show servers [UPSTREAM]");
    if (n == 3 && (only = find_upstream(w[2], out)) < 0)
        return -1;
    atr_buf_puts(out, "upstream server state weight in_flight requests failures errors "
                      "responses_5xx changed\n");
    for (int i = 0; i < c->nupstreams; i++)
        if (only < 0 || only == i)
            show_servers_of(i, out);
    return 0;
}

static int cmd_show_upstreams(char **w, int n, atr_buf_t *out)
{
    const atr_gen_t *g = gen();
    (void)w;
    if (n != 2)
        return refuse(out, "usage: show upstreams");
    atr_buf_puts(out, "upstream protocol balance servers up in_flight requests\n");
    uint64_t now = atr_now_ms();
    for (int i = 0; i < g->conf->nupstreams; i++) {
        const atr_conf_upstream_t *u = g->ups[i].conf;
        atr_members_t *ms = atr_gen_members(&g->ups[i]);
        int up = 0, active = 0;
        uint64_t reqs = 0;
        for (int k = 0; k < ms->n; k++) {
            atr_server_state_t *st = ms->servers[k].state;
            up += strcmp(atr_member_state(&ms->m[k], st, now), "up") == 0;
            active += atomic_load(&st->active);
            reqs += atomic_load(&st->requests);
        }
        atr_buf_printf(out, "%s %s %s %d %d %d %llu\n", u->name, u->protocol->name,
                       u->balance->name, ms->n, up, active, (unsigned long long)reqs);
        atr_members_unref(ms);
    }
    return 0;
}

static int cmd_show_changes(char **w, int n, atr_buf_t *out)
{
    (void)w;
    if (n != 2)
        return refuse(out, "usage: show changes");
    atr_buf_puts(out, "upstream server change\n");
    atr_override_t *o;
    for (int i = 0; (o = atr_override_at(i)) != NULL; i++) {
        char changed[160];
        if (o->removed)
            snprintf(changed, sizeof changed, "removed");
        else
            changes_text(o, atr_override_line(atr_conf_find_upstream(gen()->conf, o->upstream),
                                              o->server),
                         changed, sizeof changed);
        atr_buf_printf(out, "%s %s %s\n", o->upstream, o->server, changed);
    }
    return 0;
}

static int cmd_show_info(char **w, int n, atr_buf_t *out)
{
    const atr_gen_t *g = gen();
    (void)w;
    if (n != 2)
        return refuse(out, "usage: show info");
    uint64_t when = 0;
    const char *last = atr__control_ops->last_error(&when);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    atr_buf_printf(out, "version %s\npid %d\nuptime_seconds %llu\nworkers %d\nconfig %s\n"
                   "generation %llu\nreloads_ok %llu\nreloads_failed %llu\n",
                   ATR_VERSION, (int)getpid(),
                   (unsigned long long)((now_ms - atr_process.start_unix_ms) / 1000),
                   atr_process.nworkers, g->conf->path, (unsigned long long)g->id,
                   (unsigned long long)atomic_load(&atr_process.reloads_ok),
                   (unsigned long long)atomic_load(&atr_process.reloads_failed));
    if (last == NULL) {
        atr_buf_puts(out, "last_reload_error -\n");
    } else {
        char stamp[32];
        time_t t = (time_t)(when / 1000);
        struct tm tm;
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
        atr_buf_printf(out, "last_reload_error %s %s\n", stamp, last);
    }
    int changes = 0;
    while (atr_override_at(changes) != NULL)
        changes++;
    atr_buf_printf(out, "runtime_changes %d\n", changes);
    return 0;
}

/* ---- changes --------------------------------------------------------------- */

/* Resolve `VERB UPSTREAM SERVER` (w[at], w[at+1]) to the upstream (its index
 * in gen()->ups, returned), its conf and the file's line; with `address`,
 * SERVER may also be one address of a `resolve` line as `show servers` names
 * it ("TEXT/ADDR:PORT"). -1 with the refusal written. */
static int target(char **w, int at, int address, const atr_conf_upstream_t **u,
                  const atr_conf_server_t **sv, atr_buf_t *out)
{
    int ui = find_upstream(w[at], out);
    if (ui < 0)
        return -1;
    *u = gen()->ups[ui].conf;
    *sv = NULL;
    if (address) {
        atr_members_t *ms = atr_gen_members(&gen()->ups[ui]);
        for (int i = 0; i < ms->n && *sv == NULL; i++) {
            const atr_member_t *m = &ms->m[i];
            if (m->line >= 0 && (*u)->servers[m->line].resolve && strcmp(m->name, w[at + 1]) == 0)
                *sv = &(*u)->servers[m->line];
        }
        atr_members_unref(ms);
    }
    if (*sv == NULL && find_server(*u, w[at + 1], sv, out) < 0)
        return -1;
    return ui;
}

/* A change is made: the workers follow (the upstream `force` even with the
 * same members), the log and the answer say it, control_state keeps it. */
static int changed(atr_buf_t *out, const char *force, const char *upstream, const char *server,
                   const char *what)
{
    atr__control_ops->members_changed(force);
    ATR_NOTICE("control: upstream %s: server %s %s", upstream, server, what);
    atr_buf_printf(out, "ok: upstream %s: server %s %s\n", upstream, server, what);
    saved(out);
    return 0;
}

static int cmd_admin(char **w, int n, atr_buf_t *out)
{
    static const char *const verbs[] = { "enable", "drain", "disable" };
    enum atr_lb_admin admin = ATR_LB_ADMIN_READY;
    const atr_conf_upstream_t *u;
    const atr_conf_server_t *sv;
    for (int i = 0; i < 3; i++)
        if (strcmp(w[0], verbs[i]) == 0)
            admin = (enum atr_lb_admin)i;
    if (n != 3)
        return refuse(out, "usage: %s UPSTREAM SERVER", w[0]);
    if (target(w, 1, 1, &u, &sv, out) < 0)
        return -1;
    const atr_override_t *line = atr_override_find(u->name, sv->text);
    if (strcmp(w[2], sv->text) != 0 && line != NULL && line->admin != ATR_LB_ADMIN_READY)
        return refuse(out, "upstream %s: every address of %s is %s: '%s %s %s' first", u->name,
                      sv->text, admin_name(line->admin), "enable", u->name, sv->text);
    atr_override_t *o = atr_override_make(u->name, w[2], sv);
    o->admin = admin;
    atr_override_tidy(o); /* an enable of a server otherwise as the file says: nothing left */
    atr_states_set_admin(u->name, w[2], admin);
    /* a new set of the same members: its idle connections close */
    return changed(out, u->name, u->name, w[2],
                   admin == ATR_LB_ADMIN_READY ? "enabled" : admin_name(admin));
}

static int cmd_set_weight(char **w, int n, atr_buf_t *out)
{
    const atr_conf_upstream_t *u;
    const atr_conf_server_t *sv;
    if (n != 5)
        return refuse(out, "usage: set weight UPSTREAM SERVER 1..1000|file");
    if (target(w, 2, 0, &u, &sv, out) < 0)
        return -1;
    char *end;
    long v = strtol(w[4], &end, 10);
    int file = strcmp(w[4], "file") == 0;
    if (!file && (*end != '\0' || end == w[4] || v < 1 || v > 1000))
        return refuse(out, "invalid weight '%s' (expected 1..1000, or file for the file's)", w[4]);
    atr_override_t *o = atr_override_make(u->name, w[3], sv);
    if (o->added) /* the line is all there is of it: change it there */
        o->line.weight = file ? o->line.weight : (int)v;
    else
        o->weight = file || (sv && v == sv->weight) ? 0 : (int)v;
    int now = o->added ? o->line.weight : o->weight ? o->weight : sv->weight;
    atr_override_tidy(o);
    char what[32];
    snprintf(what, sizeof what, "weight %d", now);
    return changed(out, NULL, u->name, w[3], what);
}

static int cmd_add_server(char **w, int n, atr_buf_t *out)
{
    if (n < 4)
        return refuse(out, "usage: add server UPSTREAM ADDRESS [weight=N] [max_conns=N] "
                      "[slow_start=DURATION] [backup]");
    int ui = find_upstream(w[2], out);
    if (ui < 0)
        return -1;
    const atr_conf_upstream_t *u = gen()->ups[ui].conf;
    const atr_conf_server_t *sv = file_line(u, w[3]);
    atr_override_t *o = (atr_override_t *)atr_override_find(u->name, w[3]);
    if (sv != NULL && o != NULL && o->removed) {
        if (n > 4)
            return refuse(out, "server %s is the config file's: it comes back with the file's "
                          "settings (no parameters)", w[3]);
        o->removed = 0;
        atr_override_tidy(o);
    } else if (sv != NULL || (o != NULL && o->added)) {
        return refuse(out, "upstream %s already has server %s", u->name, w[3]);
    } else {
        atr_conf_server_t line;
        char err[300];
        if (u->spawn_argv != NULL || u->protocol->tls)
            return refuse(out, "upstream %s: servers are added in the config file for this "
                          "upstream (%s)", u->name,
                          u->spawn_argv ? "its servers are processes it starts"
                                        : "https servers take their TLS name from the file");
        if (atr_conf_server_parse((const char *const *)&w[3], n - 3, &line, err, sizeof err) < 0)
            return refuse(out, "%s", err);
        o = atr_override_make(u->name, w[3], NULL);
        o->added = 1;
        o->line = line;
    }
    return changed(out, NULL, u->name, w[3], "added");
}

static int cmd_remove_server(char **w, int n, atr_buf_t *out)
{
    const atr_conf_upstream_t *u;
    const atr_conf_server_t *sv;
    if (n != 4)
        return refuse(out, "usage: remove server UPSTREAM SERVER");
    int ui = target(w, 2, 0, &u, &sv, out);
    if (ui < 0)
        return -1;
    atr_members_t *ms = atr_gen_members(&gen()->ups[ui]);
    int others = 0;
    for (int i = 0; i < ms->n; i++) {
        const char *line = ms->m[i].line >= 0 ? u->servers[ms->m[i].line].text : ms->m[i].name;
        others += strcmp(line, w[3]) != 0;
    }
    atr_members_unref(ms);
    if (others == 0)
        return refuse(out, "server %s is the last of upstream %s: drain or disable it instead",
                      w[3], u->name);
    atr_override_t *o = atr_override_make(u->name, w[3], sv);
    if (o->added) {
        o->added = 0; /* forgotten: nothing of it was in the file */
        o->weight = 0;
        o->admin = ATR_LB_ADMIN_READY;
    } else {
        o->removed = 1;
    }
    atr_override_tidy(o);
    return changed(out, NULL, u->name, w[3], "removed"); /* its requests in flight finish */
}

static int cmd_reload(char **w, int n, atr_buf_t *out)
{
    char err[1024] = "";
    (void)w;
    if (n != 1)
        return refuse(out, "usage: reload");
    if (atr__control_ops->reload(err, sizeof err) < 0)
        return refuse(out, "reload failed, generation %llu keeps running: %s",
                      (unsigned long long)gen()->id, err);
    atr_buf_printf(out, "ok: generation %llu active\n", (unsigned long long)gen()->id);
    return 0;
}

static int cmd_reopen(char **w, int n, atr_buf_t *out)
{
    (void)w;
    if (n != 1)
        return refuse(out, "usage: reopen");
    atr__control_ops->reopen();
    atr_buf_puts(out, "ok: log files reopened\n");
    return 0;
}

static int cmd_help(char **w, int n, atr_buf_t *out);

static const struct command {
    const char *w0, *w1;        /* the command's first word(s); w1 NULL: one word */
    int (*run)(char **w, int n, atr_buf_t *out);
    const char *usage;
} commands[] = {
    { "show", "info", cmd_show_info, "show info                  version, uptime, generation, last reload error" },
    { "show", "upstreams", cmd_show_upstreams, "show upstreams             one line per upstream" },
    { "show", "servers", cmd_show_servers, "show servers [UPSTREAM]    state, weight, in flight, counters, changes" },
    { "show", "changes", cmd_show_changes, "show changes               what differs from the config file" },
    { "set", "weight", cmd_set_weight, "set weight UPSTREAM SERVER N|file" },
    { "drain", NULL, cmd_admin, "drain UPSTREAM SERVER      no new requests; those in flight finish" },
    { "disable", NULL, cmd_admin, "disable UPSTREAM SERVER    drain, and stop its health checks" },
    { "enable", NULL, cmd_admin, "enable UPSTREAM SERVER     back in service" },
    { "add", "server", cmd_add_server, "add server UPSTREAM ADDRESS [weight=N] [max_conns=N] [slow_start=D] [backup]" },
    { "remove", "server", cmd_remove_server, "remove server UPSTREAM SERVER" },
    { "reload", NULL, cmd_reload, "reload                     read the config file again" },
    { "reopen", NULL, cmd_reopen, "reopen                     reopen the log files" },
    { "help", NULL, cmd_help, "help                       this list" },
};

static int cmd_help(char **w, int n, atr_buf_t *out)
{
    (void)w;
    (void)n;
    for (size_t i = 0; i < ATR_ARRAY_SIZE(commands); i++)
        atr_buf_printf(out, "%s\n", commands[i].usage);
    return 0;
}

int atr_control_run(const char *line, atr_buf_t *out)
{
    char copy[4097], *w[MAX_WORDS], *save = NULL;
    int n = 0;
    snprintf(copy, sizeof copy, "%s", line);
    for (char *t = strtok_r(copy, " \t", &save); t != NULL; t = strtok_r(NULL, " \t", &save)) {
        if (n == MAX_WORDS)
            return refuse(out, "too many words (at most %d)", MAX_WORDS);
        w[n++] = t;
    }
    if (n == 0)
        return refuse(out, "no command ('help' lists them)");
    for (size_t i = 0; i < ATR_ARRAY_SIZE(commands); i++) {
        const struct command *c = &commands[i];
        if (strcmp(w[0], c->w0) == 0 && (c->w1 == NULL || (n > 1 && strcmp(w[1], c->w1) == 0)))
            return c->run(w, n, out);
    }
    return refuse(out, "unknown command '%s%s%s' ('help' lists them)", w[0], n > 1 ? " " : "",
                  n > 1 ? w[1] : "");
}
