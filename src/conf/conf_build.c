/* From the generic directive tree (conf_parse.c) to an atr_conf_t: the
 * walker that checks each directive against its context's table, the value
 * parsers, the top-level directives, defaults, and the load/free entry
 * points. conf_upstream.c and conf_host.c build the blocks. Every message
 * names the offending token: "FILE:LINE:COL: what is wrong (what was
 * expected)". */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf/conf_priv.h"
#include "base/syslog.h"
#include "base/util.h"

int atr__conf_fail(atr__conf_bctx_t *b, const atr_conf_pos_t *pos, const char *fmt, ...)
{
    va_list ap;
    size_t used = b->err && b->nerrors > 0 ? strlen(b->err) : 0;
    if (b->nerrors >= ATR__CONF_MAX_ERRORS || (b->err && used > 0 && used + 80 >= b->errlen))
        return -1; /* enough to go on with (a later line would be cut before its message) */
    if (used > 0)
        b->err[used++] = '\n'; /* one line per error, in file order */
    va_start(ap, fmt);
    atr__conf_verr(b->err ? b->err + used : NULL, b->err ? b->errlen - used : 0, pos, fmt, ap);
    va_end(ap);
    b->nerrors++;
    return -1;
}

char *atr__conf_tokdup(atr__conf_bctx_t *b, const atr__conf_tok_t *t)
{
    return atr__conf_strndup(b->a, t->s, t->len);
}

char *atr__conf_pathdup(atr__conf_bctx_t *b, const atr__conf_tok_t *t)
{
    const char *file = t->pos.file;
    if (t->s[0] == '/' || file == NULL || access(file, F_OK) < 0)
        return atr__conf_tokdup(b, t); /* absolute, or a config given as a string (tests) */
    char dir[PATH_MAX], abs[PATH_MAX];
    const char *slash = strrchr(file, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == file ? 1 : (int)(slash - file), file);
    if (realpath(dir, abs) == NULL)
        snprintf(abs, sizeof abs, "%s", dir);
    size_t n = strlen(abs) + 1 + t->len + 1;
    char *out = atr__conf_alloc(b->a, n);
    snprintf(out, n, "%s%s%s", abs, strcmp(abs, "/") == 0 ? "" : "/", t->s);
    return out;
}

int atr__conf_d_file(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                     const atr__conf_directive_t *d, void *obj)
{
    if (n->args[0].len == 0)
        return atr__conf_fail(b, &n->args[0].pos, "'%s' needs a path", d->name);
    *(char **)(void *)((char *)obj + d->off) = atr__conf_pathdup(b, &n->args[0]);
    return 0;
}

int atr__conf_count(const atr__conf_node_t *list, const char *name)
{
    int n = 0;
    for (; list != NULL; list = list->next)
        n += strcmp(list->name.s, name) == 0;
    return n;
}

/* ---- values --------------------------------------------------------------- */

int atr__conf_uint(const char *s, uint64_t *out)
{
    int rc = atr__conf_digits(&s, out);
    return rc == -1 || *s != '\0' ? -1 : rc;
}

int atr__conf_number(atr__conf_bctx_t *b, const atr__conf_tok_t *t, const char *what, uint64_t lo,
                     uint64_t hi, uint64_t *out)
{
    int rc = atr__conf_uint(t->s, out);
    if (rc == -1)
        return atr__conf_fail(b, &t->pos, "invalid number '%s' for '%s' (expected %llu..%llu)",
                              t->s, what, (unsigned long long)lo, (unsigned long long)hi);
    if (rc == ATR_CONF_TOO_LARGE || *out < lo || *out > hi)
        return atr__conf_fail(b, &t->pos, "'%s' must be between %llu and %llu", what,
                              (unsigned long long)lo, (unsigned long long)hi);
    return 0;
}

static int get_size(atr__conf_bctx_t *b, const atr__conf_tok_t *t, const char *what, uint64_t lo,
                    uint64_t hi, uint64_t *out)
{
    char l[32], h[32];
    int rc = atr_conf_parse_size(t->s, out);
    if (rc == -1)
        return atr__conf_fail(b, &t->pos, "invalid size '%s' (expected e.g. 512, 64k, 1m)", t->s);
    if (rc == ATR_CONF_TOO_LARGE || *out < lo || *out > hi)
        return atr__conf_fail(b, &t->pos, "'%s' must be between %s and %s", what,
                              atr__conf_fmt_size(l, sizeof(l), lo),
                              atr__conf_fmt_size(h, sizeof(h), hi));
    return 0;
}

static int get_duration(atr__conf_bctx_t *b, const atr__conf_tok_t *t, const char *what,
                        uint64_t lo, uint64_t hi, uint64_t *out)
{
    char l[32], h[32];
    int rc = atr_conf_parse_duration(t->s, out);
    if (rc == -1)
        return atr__conf_fail(b, &t->pos, "invalid duration '%s' (expected e.g. 750ms, 2s, 5m)",
                              t->s);
    if (rc == ATR_CONF_TOO_LARGE || *out < lo || *out > hi)
        return atr__conf_fail(b, &t->pos, "'%s' must be between %s and %s", what,
                              atr__conf_fmt_duration(l, sizeof(l), lo),
                              atr__conf_fmt_duration(h, sizeof(h), hi));
    return 0;
}

static int get_onoff(atr__conf_bctx_t *b, const atr__conf_tok_t *t, const char *what, int *out)
{
    if (strcmp(t->s, "on") == 0 || strcmp(t->s, "off") == 0) {
        *out = t->s[1] == 'n';
        return 0;
    }
    return atr__conf_fail(b, &t->pos, "invalid value '%s' for '%s' (expected on or off)", t->s,
                          what);
}

/* Index of `s` in a NULL-terminated list of words, or -1. */
int atr__conf_lookup(const char *const *words, const char *s)
{
    for (int i = 0; words[i] != NULL; i++)
        if (strcmp(words[i], s) == 0)
            return i;
    return -1;
}

/* A one-argument directive whose value lands in a field of `obj`. */
int atr__conf_set_value(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                        const atr__conf_directive_t *d, void *obj)
{
    char *field = (char *)obj + d->off;
    const atr__conf_tok_t *t = &n->args[0];
    uint64_t v;
    int on = 0;
    switch (d->kind) {
    case ATR__CONF_SIZE32:
    case ATR__CONF_SIZE64:
        if (get_size(b, t, d->name, d->lo, d->hi, &v) < 0)
            return -1;
        if (d->kind == ATR__CONF_SIZE32)
            *(uint32_t *)(void *)field = (uint32_t)v;
        else
            *(uint64_t *)(void *)field = v;
        return 0;
    case ATR__CONF_DURATION:
        return get_duration(b, t, d->name, d->lo, d->hi, (uint64_t *)(void *)field);
    case ATR__CONF_INT:
        if (atr__conf_number(b, t, d->name, d->lo, d->hi, &v) < 0)
            return -1;
        *(int *)(void *)field = (int)v;
        return 0;
    case ATR__CONF_ONOFF:
        if (get_onoff(b, t, d->name, &on) < 0)
            return -1;
        *(int *)(void *)field = on;
        return 0;
    default: return 0;
    }
}

/* RFC 9110 token characters: header names and the Via pseudonym. */
int atr__conf_is_token(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; s++)
        if (!isalnum((unsigned char)*s) && strchr("!#$%&'*+-.^_`|~", *s) == NULL)
            return 0;
    return 1;
}

/* ---- main context --------------------------------------------------------- */

/* `NAME N|auto` into an int field (offset d->off); auto is 0. */
static int d_int_or_auto(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                         const atr__conf_directive_t *d, void *obj)
{
    int *field = (int *)(void *)((char *)obj + d->off);
    uint64_t v;
    if (strcmp(n->args[0].s, "auto") == 0) {
        *field = 0;
        return 0;
    }
    if (atr__conf_uint(n->args[0].s, &v) < 0 || v < d->lo || v > d->hi)
        return atr__conf_fail(b, &n->args[0].pos,
                              "invalid value '%s' for '%s' (expected %llu..%llu or auto)",
                              n->args[0].s, d->name, (unsigned long long)d->lo,
                              (unsigned long long)d->hi);
    *field = (int)v;
    return 0;
}

static int d_user(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                  void *obj)
{
    atr_conf_t *c = obj;
    struct passwd pw, *res = NULL;
    char buf[16384];
    (void)d;
    int rc = getpwnam_r(n->args[0].s, &pw, buf, sizeof(buf), &res);
    if (res == NULL)
        return atr__conf_fail(b, &n->args[0].pos, "unknown user '%s'%s%s", n->args[0].s,
                              rc != 0 ? ": " : "", rc != 0 ? strerror(rc) : "");
    c->user = atr__conf_tokdup(b, &n->args[0]);
    return 0;
}

int atr__conf_d_path(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                     const atr__conf_directive_t *d, void *obj)
{
    if (n->args[0].len == 0)
        return atr__conf_fail(b, &n->args[0].pos, "'%s' needs a path", d->name);
    *(char **)(void *)((char *)obj + d->off) = atr__conf_tokdup(b, &n->args[0]);
    return 0;
}

/* A threshold for error_log: debug up to crit, the names base/log.c gives
 * them. alert is not offered: it has never been a threshold the config took. */
static int log_level_arg(atr__conf_bctx_t *b, const atr__conf_tok_t *t, enum atr_log_level *out)
{
    const char *names[ATR_LOG_CRIT + 1];
    char list[128];
    enum atr_log_level lv;
    if (atr_log_level_find(t->s, &lv) == 0 && lv <= ATR_LOG_CRIT) {
        *out = lv;
        return 0;
    }
    for (size_t i = 0; i < ATR_ARRAY_SIZE(names); i++)
        names[i] = atr_log_level_name((enum atr_log_level)i);
    return atr__conf_fail(b, &t->pos, "unknown log level '%s' (expected %s)", t->s,
                          atr_words_join(names, ATR_ARRAY_SIZE(names), list, sizeof(list)));
}

/* A syslog target (base/syslog.h) into *out, spelled out in full as -T
 * prints it; or -1 with FILE:LINE:COL pointing into the word at the fault. */
static int syslog_arg(atr__conf_bctx_t *b, const atr__conf_tok_t *t, enum atr_syslog_use use,
                      char **out)
{
    atr_syslog_spec_t spec;
    char msg[512], text[320];
    size_t at;
    if (atr_syslog_parse(t->s, use, &spec, msg, sizeof msg, &at) < 0) {
        atr_conf_pos_t pos = t->pos;
        pos.col += (int)at + (t->quoted ? 1 : 0);
        return atr__conf_fail(b, &pos, "%s", msg);
    }
    atr_syslog_text(&spec, use, text, sizeof text);
    *out = atr__conf_strdup(b->a, text);
    return 0;
}

static int d_error_log(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                       const atr__conf_directive_t *d, void *obj)
{
    atr_conf_t *c = obj;
    if (atr_syslog_is(n->args[0].s)) {
        if (syslog_arg(b, &n->args[0], ATR_SYSLOG_ERROR_LOG, &c->error_log) < 0)
            return -1;
    } else if ((strcmp(n->args[0].s, "stderr") == 0 ? atr__conf_d_path
                                                     : atr__conf_d_file)(b, n, d, obj) < 0) {
        return -1;
    }
    c->error_log_pos = n->args[0].pos;
    if (n->nargs == 2 && log_level_arg(b, &n->args[1], &c->error_level) < 0)
        return -1;
    return 0;
}

static int d_access_log(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                        const atr__conf_directive_t *d, void *obj)
{
    atr_conf_t *c = obj;
    if (strcmp(n->args[0].s, "off") == 0) {
        if (n->nargs == 2)
            return atr__conf_fail(b, &n->args[1].pos, "'access_log off' takes no format");
        c->access_log = NULL;
        c->access_format = ATR_ACCESS_OFF;
        return 0;
    }
    int stream = strcmp(n->args[0].s, "stdout") == 0 || strcmp(n->args[0].s, "stderr") == 0;
    if (atr_syslog_is(n->args[0].s)) {
        if (syslog_arg(b, &n->args[0], ATR_SYSLOG_ACCESS_LOG, &c->access_log) < 0)
            return -1;
    } else if ((stream ? atr__conf_d_path : atr__conf_d_file)(b, n, d, obj) < 0) {
        return -1;
    }
    c->access_log_pos = n->args[0].pos;
    c->access_format = ATR_ACCESS_COMBINED;
    if (n->nargs == 2) {
        static const char *const formats[] = { "combined", "json", "timed", NULL };
        static const enum atr_access_format kinds[] = { ATR_ACCESS_COMBINED, ATR_ACCESS_JSON,
                                                        ATR_ACCESS_TIMED };
        int f = atr__conf_lookup(formats, n->args[1].s);
        if (f < 0)
            return atr__conf_fail(b, &n->args[1].pos,
                                  "unknown access log format '%s' (expected combined, timed or "
                                  "json)", n->args[1].s);
        c->access_format = kinds[f];
    }
    return 0;
}

static int d_via(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                 void *obj)
{
    atr_conf_t *c = obj;
    (void)d;
    if (strcmp(n->args[0].s, "off") == 0) {
        c->via = NULL;
        return 0;
    }
    if (!atr__conf_is_token(n->args[0].s))
        return atr__conf_fail(b, &n->args[0].pos, "invalid via name '%s' (expected a token or off)",
                              n->args[0].s);
    c->via = atr__conf_tokdup(b, &n->args[0]);
    return 0;
}

static int d_spool_dir(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                       const atr__conf_directive_t *d, void *obj)
{
    atr_conf_t *c = obj;
    (void)d;
    char *path = atr__conf_pathdup(b, &n->args[0]);
    if (atr__conf_need_dir(b, &n->args[0], path, "spool_dir") < 0)
        return -1;
    c->spool_dir = path;
    return 0;
}

/* `control PATH;`: the runtime API's unix socket (core/control.c). */
static int d_control(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                     const atr__conf_directive_t *d, void *obj)
{
    atr_conf_t *c = obj;
    struct sockaddr_un un;
    (void)d;
    char *path = atr__conf_pathdup(b, &n->args[0]);
    if (n->args[0].len == 0 || strlen(path) >= sizeof un.sun_path)
        return atr__conf_fail(b, &n->args[0].pos,
                              "invalid control socket path '%s' (1 to %zu bytes)", path,
                              sizeof un.sun_path - 1);
    c->control = path;
    c->control_pos = n->args[0].pos;
    return 0;
}

/* `control_state FILE;`: where run-time changes are kept (core/overrides.h). */
static int d_control_state(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                           const atr__conf_directive_t *d, void *obj)
{
    atr_conf_t *c = obj;
    if (atr__conf_d_file(b, n, &(atr__conf_directive_t){ .name = d->name,
                                                          .off = offsetof(atr_conf_t, control_state) },
                         obj) < 0)
        return -1;
    c->control_state_pos = n->args[0].pos;
    return 0;
}

/* `ambiguous_paths reject|allow;` */
static int d_ambiguous(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                       void *obj)
{
    atr_conf_t *c = obj;
    (void)d;
    if (strcmp(n->args[0].s, "reject") == 0 || strcmp(n->args[0].s, "allow") == 0) {
        c->allow_ambiguous_paths = n->args[0].s[0] == 'a';
        return 0;
    }
    return atr__conf_fail(b, &n->args[0].pos, "invalid ambiguous_paths '%s' (expected reject or "
                          "allow)", n->args[0].s);
}

/* `resolver ADDR[:PORT]...;` the DNS servers of `resolve` servers (port 53
 * unless given). */
static int d_resolver(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                      void *obj)
{
    atr_conf_t *c = obj;
    (void)d;
    c->resolvers = atr__conf_alloc(b->a, sizeof *c->resolvers * (size_t)n->nargs);
    c->nresolvers = 0;
    for (int i = 0; i < n->nargs; i++) {
        const char *a = n->args[i].s;
        char with_port[80];
        socklen_t len;
        struct sockaddr_storage *ss = &c->resolvers[c->nresolvers];
        if (atr__conf_parse_addr(a, ss, &len) < 0) {
            /* A bare address takes port 53: "10.0.0.1", "::1" or "[::1]". */
            snprintf(with_port, sizeof with_port, strchr(a, ':') && a[0] != '[' ? "[%s]:53" : "%s:53",
                     a);
            if (strlen(a) >= 64 || atr__conf_parse_addr(with_port, ss, &len) < 0)
                return atr__conf_fail(b, &n->args[i].pos, "invalid resolver address '%s' (expected "
                                      "IP or IP:PORT, e.g. 127.0.0.1:53 or [::1]:53)", a);
        }
        c->nresolvers++;
    }
    return 0;
}

/* ---- the main context's table and the walker ------------------------------ */

static int d_host(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                  void *obj)
{
    (void)d;
    (void)obj;
    b->hosts[b->nhosts++] = n; /* built once every upstream is known */
    return 0;
}

#define MAIN atr_conf_t
static const atr__conf_directive_t main_tab[] = {
    { "workers", 1, 1, 0, 0, d_int_or_auto, ATR__CONF_NONE, offsetof(MAIN, workers), 1, 1024 },
    ATR__CONF_ONE("user", d_user),
    { "pid_file", 1, 1, 0, 0, atr__conf_d_file, ATR__CONF_NONE, offsetof(MAIN, pid_file), 0, 0 },
    { "error_log", 1, 2, 0, 0, d_error_log, ATR__CONF_NONE, offsetof(MAIN, error_log), 0, 0 },
    { "access_log", 1, 2, 0, 0, d_access_log, ATR__CONF_NONE, offsetof(MAIN, access_log), 0, 0 },
    ATR__CONF_SIZE("max_request_line", MAIN, max_request_line, 64, 1 * ATR__MB),
    ATR__CONF_SIZE("max_header_size", MAIN, max_header_size, 1 * ATR__KB, 64 * ATR__MB),
    ATR__CONF_INT("max_headers", MAIN, max_headers, 1, 256),
    ATR__CONF_SIZE("max_body_size", MAIN, max_body_size, 0, UINT64_MAX),
    ATR__CONF_DUR("header_timeout", MAIN, header_timeout, 1),
    ATR__CONF_DUR("body_timeout", MAIN, body_timeout, 1),
    ATR__CONF_DUR("send_timeout", MAIN, send_timeout, 1),
    ATR__CONF_DUR("keepalive_timeout", MAIN, keepalive_timeout, 1),
    ATR__CONF_DUR("drain_timeout", MAIN, drain_timeout, 0),
    ATR__CONF_INT("keepalive_requests", MAIN, keepalive_requests, 1, 1000000000),
    { "max_connections", 1, 1, 0, 0, d_int_or_auto, ATR__CONF_NONE,
      offsetof(MAIN, max_connections), 1, 10000000 },
    ATR__CONF_SIZE("buffer_size", MAIN, buffer_size, 4 * ATR__KB, 1 * ATR__MB),
    ATR__CONF_ONE("via", d_via),
    ATR__CONF_ONOFF("underscores_in_headers", MAIN, underscores_in_headers),
    ATR__CONF_ONE("ambiguous_paths", d_ambiguous),
    ATR__CONF_INT("cgi_max_procs", MAIN, cgi_max_procs, 1, 100000),
    ATR__CONF_INT("cgi_queue", MAIN, cgi_queue, 0, 1000000),
    ATR__CONF_DUR("cgi_timeout", MAIN, cgi_timeout, 1),
    ATR__CONF_INT("stderr_log_rate", MAIN, stderr_log_rate, 1, 1000000),
    ATR__CONF_ONE("spool_dir", d_spool_dir),
    ATR__CONF_ONE("control", d_control),
    ATR__CONF_ONE("control_state", d_control_state),
    ATR__CONF_DUR("tls_handshake_timeout", MAIN, tls_handshake_timeout, 1),
    { "tls_ticket_keys", 1, 1, 0, 0, atr__conf_d_tls_file, ATR__CONF_NONE,
      offsetof(MAIN, tls_ticket_keys), offsetof(MAIN, tls_ticket_keys_pos), 0 },
    ATR__CONF_DUR("tls_ticket_rotate", MAIN, tls_ticket_rotate, 60000),
    { "tls_session_cache", 1, 17, 0, 0, atr__conf_d_session_cache, ATR__CONF_NONE, 0, 0, 0 },
    { "resolver", 1, 8, 0, 0, d_resolver, ATR__CONF_NONE, 0, 0, 0 },
    ATR__CONF_DUR("resolve_ttl_min", MAIN, resolve_ttl_min, 1000),
    ATR__CONF_DUR("resolve_ttl_max", MAIN, resolve_ttl_max, 1000),
    ATR__CONF_INT("resolve_max", MAIN, resolve_max, 1, 4096),
    ATR__CONF_ONE("heartbeat_listen", atr__conf_d_hb_addr),
    ATR__CONF_ONE("heartbeat_send", atr__conf_d_hb_addr),
    ATR__CONF_DUR("heartbeat_interval", MAIN, hb.interval, 100),
    ATR__CONF_ONE("heartbeat_key", atr__conf_d_hb_key),
    ATR__CONF_ONE("heartbeat_storage", atr__conf_d_hb_storage),
    ATR__CONF_INT("heartbeat_max_servers", MAIN, hb.max_servers, 1, 1000000),
    { "listen", 1, 2, 0, 1, atr__conf_d_listen, ATR__CONF_NONE, 0, 0, 0 },
    { "upstream", 1, 1, 1, 1, atr__conf_d_upstream, ATR__CONF_NONE, 0, 0, 0 },
    { "host", 1, -1, 1, 1, d_host, ATR__CONF_NONE, 0, 0, 0 },
};
static const size_t main_ntab = ATR_ARRAY_SIZE(main_tab);

static const struct context {
    const char *where;   /* "unknown directive 'x' in upstream block" */
    const char *belongs; /* "... is not allowed at top level (it belongs in a route block)" */
    const atr__conf_directive_t *tab;
    const size_t *n;
} contexts[ATR__CONF_NCTX] = {
    { "at top level", "at top level", main_tab, &main_ntab },
    { "in upstream block", "in an upstream block", atr__conf_upstream_tab,
      &atr__conf_upstream_ntab },
    { "in host block", "in a host block", atr__conf_host_tab, &atr__conf_host_ntab },
    { "in route block", "in a route block", atr__conf_route_tab, &atr__conf_route_ntab },
    { "in tls block", "in a tls block", atr__conf_tls_tab, &atr__conf_tls_ntab },
};

static const atr__conf_directive_t *find(enum atr__conf_ctx ctx, const char *name)
{
    for (size_t i = 0; i < *contexts[ctx].n; i++)
        if (strcmp(contexts[ctx].tab[i].name, name) == 0)
            return &contexts[ctx].tab[i];
    return NULL;
}

/* Edit distance (insertions, deletions, substitutions, swaps of neighbours)
 * between two short names; 99 when either is long. */
static int distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    int d[33][33];
    if (la > 32 || lb > 32)
        return 99;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            int best = sub < del ? sub : del;
            best = best < ins ? best : ins;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* The directive of ctx closest to name, when it is close enough to be a typo. */
static const char *nearest(enum atr__conf_ctx ctx, const char *name)
{
    const char *best = NULL;
    int bd = (int)strlen(name) / 4 + 1;
    for (size_t i = 0; i < *contexts[ctx].n; i++) {
        int dd = distance(name, contexts[ctx].tab[i].name);
        if (dd <= bd && (best == NULL || dd < bd)) {
            best = contexts[ctx].tab[i].name;
            bd = dd;
        }
    }
    return best;
}

static int unknown(atr__conf_bctx_t *b, enum atr__conf_ctx ctx, const atr__conf_node_t *n)
{
    for (int o = 0; o < ATR__CONF_NCTX; o++)
        if (find((enum atr__conf_ctx)o, n->name.s) != NULL)
            return atr__conf_fail(b, &n->name.pos, "'%s' is not allowed %s (it belongs %s)",
                                  n->name.s, contexts[ctx].where, contexts[o].belongs);
    const char *near = nearest(ctx, n->name.s);
    if (near != NULL)
        return atr__conf_fail(b, &n->name.pos, "unknown directive '%s' %s (did you mean '%s'?)",
                              n->name.s, contexts[ctx].where, near);
    return atr__conf_fail(b, &n->name.pos, "unknown directive '%s' %s", n->name.s,
                          contexts[ctx].where);
}

static int bad_count(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d)
{
    const atr_conf_pos_t *pos =
        n->nargs > d->nmax && d->nmax >= 0 ? &n->args[d->nmax].pos : &n->name.pos;
    const char *s = d->nmax == 1 ? "" : "s";
    if (d->nmax < 0)
        return atr__conf_fail(b, pos, "'%s' takes at least %d argument%s", d->name, d->nmin,
                              d->nmin == 1 ? "" : "s");
    if (d->nmin == d->nmax)
        return atr__conf_fail(b, pos, "'%s' takes %d argument%s", d->name, d->nmin, s);
    if (d->nmax == d->nmin + 1)
        return atr__conf_fail(b, pos, "'%s' takes %d or %d arguments", d->name, d->nmin, d->nmax);
    return atr__conf_fail(b, pos, "'%s' takes %d to %d arguments", d->name, d->nmin, d->nmax);
}

/* Arguments on a line after the directive's name, in a directive that then
 * fails: most likely a ';' left out at the end of the name's line. */
static int missing_semicolon(atr__conf_bctx_t *b, const atr__conf_node_t *n)
{
    int k = 0;
    while (k < n->nargs && n->args[k].pos.line == n->name.pos.line)
        k++;
    if (k == n->nargs && !(n->block && n->brace.line > n->name.pos.line))
        return 0;
    const atr__conf_tok_t *last = k > 0 ? &n->args[k - 1] : &n->name;
    atr_conf_pos_t at = last->pos;
    at.col += (int)last->len;
    char said[80];
    int m = snprintf(said, sizeof said, "%s", n->name.s);
    for (int i = 0; i < k && m > 0 && (size_t)m < sizeof said; i++)
        m += snprintf(said + m, sizeof said - (size_t)m, " %s", n->args[i].s);
    atr__conf_fail(b, &at, "missing ';' after '%s'", said);
    return 1;
}

static int run_one(atr__conf_bctx_t *b, enum atr__conf_ctx ctx, const atr__conf_node_t *n,
                   void *obj, atr_conf_pos_t *seen)
{
    const atr__conf_directive_t *d = find(ctx, n->name.s);
    if (d == NULL)
        return unknown(b, ctx, n);
    size_t i = (size_t)(d - contexts[ctx].tab);
    if (!d->multi && seen[i].file != NULL)
        return atr__conf_fail(b, &n->name.pos, "duplicate '%s' (first at %s:%d:%d)", d->name,
                              seen[i].file, seen[i].line, seen[i].col);
    seen[i] = n->name.pos;
    int count_bad = n->nargs < d->nmin || (d->nmax >= 0 && n->nargs > d->nmax);
    if ((count_bad || (!d->block && n->block)) && missing_semicolon(b, n))
        return -1;
    if (count_bad)
        return bad_count(b, n, d);
    if (d->block && !n->block)
        return atr__conf_fail(b, &n->name.pos, "'%s' takes a block, expected '{'", d->name);
    if (!d->block && n->block)
        return atr__conf_fail(b, &n->brace, "'%s' takes no block, expected ';'", d->name);
    return d->fn(b, n, d, obj);
}

int atr__conf_run_block(atr__conf_bctx_t *b, enum atr__conf_ctx ctx, const atr__conf_node_t *list,
                        void *obj)
{
    atr_conf_pos_t seen[64]; /* per table entry: where it was first written */
    memset(seen, 0, sizeof(seen));
    int failed = 0;
    /* A bad directive is reported and the walk goes on with the next one:
     * -t lists every mistake at once (the load fails all the same). */
    for (const atr__conf_node_t *n = list; n != NULL; n = n->next)
        failed |= run_one(b, ctx, n, obj, seen) < 0;
    return failed ? -1 : 0;
}

/* ---- the whole conf ------------------------------------------------------- */

static void conf_defaults(atr_conf_t *c, atr__conf_arena_t *a)
{
    c->workers = 0;
    c->error_log = atr__conf_strdup(a, "stderr");
    c->error_level = ATR_LOG_INFO;
    c->access_log = NULL;
    c->access_format = ATR_ACCESS_OFF;
    c->max_request_line = 8 * 1024;
    c->max_header_size = 32 * 1024;
    c->max_headers = 100;
    c->max_body_size = 1ull << 30;
    c->header_timeout = 10000;
    c->body_timeout = 60000;
    c->send_timeout = 60000;
    c->keepalive_timeout = 75000;
    c->keepalive_requests = 1000;
    c->drain_timeout = 30000;
    c->resolve_ttl_min = 1000;
    c->resolve_ttl_max = 300000;
    c->resolve_max = 64;
    c->buffer_size = 16 * 1024;
    c->via = atr__conf_strdup(a, "atrium");
    c->underscores_in_headers = 0;
    c->cgi_max_procs = 64;
    c->cgi_queue = 256;
    c->cgi_timeout = 30000;
    c->stderr_log_rate = 100;
    c->spool_dir = atr__conf_strdup(a, "/tmp");
    c->tls_handshake_timeout = 10000;
    c->tls_ticket_rotate = 3600000;
    c->tls_session_cache = ATR_SESSION_CACHE_SHARED;
    c->tls_session_cache_size = 10 * ATR__MB;
    c->hb.interval = 1000;
    c->hb.max_servers = 1024;
}

/* Where the main file ends, for "nothing was said" errors. */
static atr_conf_pos_t end_of(const char *file, const char *text, size_t len)
{
    atr_conf_pos_t pos = { file, 1, 1 };
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n') {
            pos.line++;
            pos.col = 1;
        } else {
            pos.col++;
        }
    }
    return pos;
}

static int build(atr__conf_bctx_t *b, const atr__conf_node_t *root, atr_conf_pos_t eof)
{
    atr_conf_t *c = b->c;
    int nl = atr__conf_count(root, "listen"), nu = atr__conf_count(root, "upstream");
    int nh = atr__conf_count(root, "host");
    c->listens = atr__conf_alloc(b->a, sizeof(*c->listens) * (size_t)(nl ? nl : 1));
    c->upstreams = atr__conf_alloc(b->a, sizeof(*c->upstreams) * (size_t)(nu ? nu : 1));
    c->hosts = atr__conf_alloc(b->a, sizeof(*c->hosts) * (size_t)(nh ? nh : 1));
    b->hosts = atr__conf_alloc(b->a, sizeof(*b->hosts) * (size_t)(nh ? nh : 1));
    int failed = atr__conf_run_block(b, ATR__CONF_MAIN, root, c) < 0;
    for (int i = 0; i < b->nhosts; i++)
        failed |= atr__conf_build_host(b, b->hosts[i]) < 0;
    if (failed)
        return -1; /* the checks of the whole assume its parts were whole */
    if (c->nlistens == 0)
        return atr__conf_fail(b, &eof, "no listen directive (expected e.g. listen 8080;)");
    if (c->nhosts == 0)
        return atr__conf_fail(b, &eof, "no host block (expected e.g. host * { route / { ... } })");
    if (atr__conf_check_heartbeat(b) < 0)
        return -1;
    return atr__conf_check_tls(b);
}

static atr_conf_t *load(const char *file, const char *text, size_t len, const char *dir,
                        const char *canon, unsigned flags, char *err, size_t errlen)
{
    atr__conf_whole_t *w = atr_xcalloc(1, sizeof(*w));
    atr_conf_t *c = &w->conf;
    atr__conf_node_t *root = NULL;
    atr__conf_bctx_t b = { &w->arena, c, flags, err, errlen, NULL, 0, 0 };

    const char *fname = atr__conf_strdup(&w->arena, file);
    if (dir != NULL)
        dir = atr__conf_strdup(&w->arena, dir);
    if (canon != NULL)
        canon = atr__conf_strdup(&w->arena, canon);
    c->path = atr__conf_strdup(&w->arena, file);
    conf_defaults(c, &w->arena);
    if (atr__conf_parse(&w->arena, fname, text, len, dir, canon, &root, err, errlen) < 0) {
        atr_conf_free(c);
        return NULL;
    }
    if (flags & ATR_CONF_CONTROL_ONLY) {
        for (const atr__conf_node_t *n = root; n != NULL; n = n->next)
            if (strcmp(n->name.s, "control") == 0 && n->nargs == 1 && !n->block)
                d_control(&b, n, NULL, c);
        return c;
    }
    if (build(&b, root, end_of(fname, text, len)) < 0) {
        atr_conf_free(c);
        return NULL;
    }
    return c;
}

atr_conf_t *atr_conf_load_string_ex(const char *name, const char *text, size_t len, unsigned flags,
                                    char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    return load(name, text, len, NULL, NULL, flags, err, errlen);
}

atr_conf_t *atr_conf_load_string(const char *name, const char *text, size_t len, char *err,
                                 size_t errlen)
{
    return atr_conf_load_string_ex(name, text, len, 0, err, errlen);
}

atr_conf_t *atr_conf_load(const char *path, char *err, size_t errlen)
{
    return atr_conf_load_ex(path, 0, err, errlen);
}

atr_conf_t *atr_conf_load_ex(const char *path, unsigned flags, char *err, size_t errlen)
{
    char *text, *dir = NULL, *canon;
    size_t len;
    atr_conf_pos_t top = { path, 1, 1 };
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    int rc = atr_read_file(path, ATR__CONF_MAX_FILE, &text, &len);
    if (rc < 0) {
        atr__conf_err(err, errlen, &top, "cannot open '%s': %s", path,
                      rc == -EFBIG ? "file too large (more than 16m)" : strerror(-rc));
        return NULL;
    }
    const char *slash = strrchr(path, '/');
    if (slash != NULL)
        dir = slash == path ? atr_xstrdup("/") : atr_xstrndup(path, (size_t)(slash - path));
    canon = realpath(path, NULL);
    atr_conf_t *c = load(path, text, len, dir, canon, flags, err, errlen);
    free(canon);
    free(dir);
    free(text);
    return c;
}

void atr_conf_free(atr_conf_t *c)
{
    if (c == NULL)
        return;
    atr__conf_whole_t *w = (atr__conf_whole_t *)c;
    atr__conf_arena_free(&w->arena);
    free(w);
}

const atr_conf_upstream_t *atr_conf_find_upstream(const atr_conf_t *c, const char *name)
{
    for (int i = 0; i < c->nupstreams; i++)
        if (strcmp(c->upstreams[i].name, name) == 0)
            return &c->upstreams[i];
    return NULL;
}
