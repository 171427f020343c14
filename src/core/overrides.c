/* Run-time changes over the config file (core/overrides.h). A handful at
 * most (an operator types them), so a plain array searched in order. */
#include "core/overrides.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

const atr_conf_server_t *atr_override_line(const atr_conf_upstream_t *u, const char *server)
{
    for (int j = 0; u != NULL && j < u->nservers; j++) {
        const atr_conf_server_t *sv = &u->servers[j];
        size_t n = strlen(sv->text);
        if (strncmp(server, sv->text, n) == 0 &&
            (server[n] == '\0' || (sv->resolve && server[n] == '/')))
            return sv;
    }
    return NULL;
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
    const atr_conf_server_t *sv = atr_override_line(u, o->server);
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

/* ---- control_state: one line per change, fields split by tabs ----
 *   UPSTREAM  SERVER  WEIGHT  ADMIN  REMOVED  ADDED  FILE_SIG
 * WEIGHT 0 = the file's; ADMIN ready|drain|disable; REMOVED 0|1; ADDED "-" or
 * the server line as `add server` takes it; FILE_SIG as atr_override_sig, "-"
 * for none (an added server). */

static const char *const admin_words[] = { "ready", "drain", "disable" };

/* The line `add server` would take for an added server. */
static void added_words(const atr_conf_server_t *sv, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s weight=%d", sv->text, sv->weight);
    if (sv->max_conns > 0 && n > 0 && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, " max_conns=%d", sv->max_conns);
    if (sv->slow_start > 0 && n > 0 && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, " slow_start=%llums",
                      (unsigned long long)sv->slow_start);
    if (sv->backup && n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, " backup");
}

int atr_overrides_save(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -errno;
    fputs("# atrium: changes made with atrium ctl (control_state); rewritten after each\n", f);
    for (int i = 0; i < ovr.n; i++) {
        const atr_override_t *o = ovr.v[i];
        char words[1024] = "-";
        if (o->added)
            added_words(&o->line, words, sizeof words);
        fprintf(f, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", o->upstream, o->server, o->weight,
                admin_words[o->admin], o->removed, words, o->file_sig[0] ? o->file_sig : "-");
    }
    int rc = ferror(f) ? -EIO : 0;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

/* One line of the file into a change: 0, or -1 when it makes no sense. */
static int load_line(char *line)
{
    char *f[7], *save = NULL;
    int n = 0;
    for (char *t = strtok_r(line, "\t", &save); t != NULL && n < 7; t = strtok_r(NULL, "\t", &save))
        f[n++] = t;
    if (n != 7)
        return -1;
    char *end;
    long weight = strtol(f[2], &end, 10);
    int admin = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(f[3], admin_words[i]) == 0)
            admin = i;
    if (*end != '\0' || weight < 0 || weight > 1000 || admin < 0 ||
        (strcmp(f[4], "0") != 0 && strcmp(f[4], "1") != 0))
        return -1;
    atr_conf_server_t line_sv;
    int added = strcmp(f[5], "-") != 0;
    if (added) {
        char *w[16], *s2 = NULL, err[256];
        int nw = 0;
        for (char *t = strtok_r(f[5], " ", &s2); t != NULL && nw < 16; t = strtok_r(NULL, " ", &s2))
            w[nw++] = t;
        if (nw == 0 || strcmp(w[0], f[1]) != 0 ||
            atr_conf_server_parse((const char *const *)w, nw, &line_sv, err, sizeof err) < 0)
            return -1;
    }
    if (atr_override_find(f[0], f[1]) != NULL) {
        if (added)
            free(line_sv.text);
        return -1; /* twice */
    }
    atr_override_t *o = atr_override_make(f[0], f[1], NULL);
    o->weight = (int)weight;
    o->admin = (enum atr_lb_admin)admin;
    o->removed = f[4][0] == '1';
    o->added = added;
    if (added)
        o->line = line_sv;
    snprintf(o->file_sig, sizeof o->file_sig, "%s", strcmp(f[6], "-") == 0 ? "" : f[6]);
    return 0;
}

int atr_overrides_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "control_state %s: %s", path, strerror(errno));
        return -1;
    }
    char line[4096];
    int lineno = 0, bad = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        if (load_line(line) < 0 && bad++ == 0)
            snprintf(err, errlen, "control_state %s:%d: not a change atrium wrote, skipped",
                     path, lineno);
    }
    fclose(f);
    return bad ? -1 : 0;
}

void atr_overrides_free(void)
{
    while (ovr.n > 0)
        remove_at(ovr.n - 1);
    free(ovr.v);
    ovr.v = NULL;
}
