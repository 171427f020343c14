/* `atrium -T`: the effective configuration, every default filled in, in the
 * config language itself, so that loading the dump dumps the same text. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "conf/conf_priv.h"

static void dump_tls_main(const atr_conf_t *c, FILE *out);
static void dump_heartbeat(const atr_conf_heartbeat_t *hb, FILE *out);

char *atr__conf_fmt_size(char *buf, size_t n, uint64_t v)
{
    static const struct {
        uint64_t mult;
        char unit;
    } units[] = {
        { 1ull << 30, 'g' },
        { 1ull << 20, 'm' },
        { 1ull << 10, 'k' },
    };
    for (size_t i = 0; v != 0 && i < sizeof(units) / sizeof(units[0]); i++) {
        if (v % units[i].mult == 0) {
            snprintf(buf, n, "%" PRIu64 "%c", v / units[i].mult, units[i].unit);
            return buf;
        }
    }
    snprintf(buf, n, "%" PRIu64, v);
    return buf;
}

char *atr__conf_fmt_duration(char *buf, size_t n, uint64_t ms)
{
    static const struct {
        uint64_t mult;
        const char *unit;
    } units[] = {
        { 86400000, "d" },
        { 3600000, "h" },
        { 60000, "m" },
        { 1000, "s" },
    };
    for (size_t i = 0; ms != 0 && i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms % units[i].mult == 0) {
            snprintf(buf, n, "%" PRIu64 "%s", ms / units[i].mult, units[i].unit);
            return buf;
        }
    }
    snprintf(buf, n, "%" PRIu64 "%s", ms, ms == 0 ? "s" : "ms");
    return buf;
}

/* A value as a bare word when the lexer would read it back as one,
 * otherwise double-quoted with \\ and \" escaped. */
static void word(FILE *out, const char *s)
{
    int bare = *s != '\0';
    for (const char *p = s; *p != '\0' && bare; p++)
        bare = strchr(" \t\r\n\v\f;{}#\"'\\", *p) == NULL;
    if (bare) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

/* `NAME VALUE;` for a top-level word-valued directive; nothing when value is
 * NULL (not set). */
static void word_line(FILE *out, const char *name, const char *value)
{
    if (value == NULL)
        return;
    fprintf(out, "%s ", name);
    word(out, value);
    fputs(";\n", out);
}

static void size(FILE *out, const char *indent, const char *name, uint64_t v)
{
    char buf[32];
    fprintf(out, "%s%s %s;\n", indent, name, atr__conf_fmt_size(buf, sizeof(buf), v));
}

static void duration(FILE *out, const char *indent, const char *name, uint64_t ms)
{
    char buf[32];
    fprintf(out, "%s%s %s;\n", indent, name, atr__conf_fmt_duration(buf, sizeof(buf), ms));
}

static void dump_main(const atr_conf_t *c, FILE *out)
{
    if (c->workers == 0)
        fputs("workers auto;\n", out);
    else
        fprintf(out, "workers %d;\n", c->workers);
    word_line(out, "user", c->user);
    word_line(out, "pid_file", c->pid_file);
    fputs("error_log ", out);
    word(out, c->error_log);
    fprintf(out, " %s;\n", atr_log_level_name(c->error_level));
    if (c->access_log == NULL || c->access_format == ATR_ACCESS_OFF) {
        fputs("access_log off;\n", out);
    } else {
        fputs("access_log ", out);
        word(out, c->access_log);
        fprintf(out, " %s;\n", c->access_format == ATR_ACCESS_JSON    ? "json"
                                : c->access_format == ATR_ACCESS_TIMED ? "timed"
                                                                       : "combined");
    }
    size(out, "", "max_request_line", c->max_request_line);
    size(out, "", "max_header_size", c->max_header_size);
    fprintf(out, "max_headers %u;\n", (unsigned)c->max_headers);
    size(out, "", "max_body_size", c->max_body_size);
    duration(out, "", "header_timeout", c->header_timeout);
    duration(out, "", "body_timeout", c->body_timeout);
    duration(out, "", "send_timeout", c->send_timeout);
    duration(out, "", "keepalive_timeout", c->keepalive_timeout);
    fprintf(out, "keepalive_requests %d;\n", c->keepalive_requests);
    if (c->max_connections > 0)
        fprintf(out, "max_connections %d;\n", c->max_connections);
    else
        fputs("max_connections auto;\n", out);
    duration(out, "", "drain_timeout", c->drain_timeout);
    size(out, "", "buffer_size", c->buffer_size);
    if (c->nresolvers > 0) {
        char buf[80];
        fputs("resolver", out);
        for (int i = 0; i < c->nresolvers; i++)
            fprintf(out, " %s", atr_sockaddr_text(&c->resolvers[i], buf, sizeof buf));
        fputs(";\n", out);
    }
    duration(out, "", "resolve_ttl_min", c->resolve_ttl_min);
    duration(out, "", "resolve_ttl_max", c->resolve_ttl_max);
    fprintf(out, "resolve_max %d;\n", c->resolve_max);
    fputs("via ", out);
    if (c->via != NULL)
        word(out, c->via); /* quoted when it needs to be: "a#b" must not dump as a comment */
    else
        fputs("off", out);
    fputs(";\n", out);
    fprintf(out, "underscores_in_headers %s;\n", c->underscores_in_headers ? "on" : "off");
    fprintf(out, "ambiguous_paths %s;\n", c->allow_ambiguous_paths ? "allow" : "reject");
    fprintf(out, "cgi_max_procs %d;\n", c->cgi_max_procs);
    fprintf(out, "stderr_log_rate %u;\n", c->stderr_log_rate);
    word_line(out, "spool_dir", c->spool_dir);
    word_line(out, "control", c->control);
    word_line(out, "control_state", c->control_state);
    fprintf(out, "cgi_queue %d;\n", c->cgi_queue);
    duration(out, "", "cgi_timeout", c->cgi_timeout);
    dump_tls_main(c, out);
    dump_heartbeat(&c->hb, out);
    fputc('\n', out);
    for (int i = 0; i < c->nlistens; i++)
        fprintf(out, "listen %s%s;\n", c->listens[i].text, c->listens[i].tls ? " tls" : "");
}

/* `IN NAME VALUE;` when value is set. */
static void opt_word(FILE *out, const char *in, const char *name, const char *value)
{
    if (value == NULL)
        return;
    fprintf(out, "%s%s ", in, name);
    word(out, value);
    fputs(";\n", out);
}

static void dump_tls_main(const atr_conf_t *c, FILE *out)
{
    char buf[64];
    duration(out, "", "tls_handshake_timeout", c->tls_handshake_timeout);
    opt_word(out, "", "tls_ticket_keys", c->tls_ticket_keys);
    duration(out, "", "tls_ticket_rotate", c->tls_ticket_rotate);
    switch (c->tls_session_cache) {
    case ATR_SESSION_CACHE_OFF: fputs("tls_session_cache off;\n", out); break;
    case ATR_SESSION_CACHE_SHARED:
        fprintf(out, "tls_session_cache shared %s;\n",
                atr__conf_fmt_size(buf, sizeof buf, c->tls_session_cache_size));
        break;
    case ATR_SESSION_CACHE_MEMCACHED:
        fputs("tls_session_cache memcached", out);
        for (int i = 0; i < c->ntls_memcached; i++)
            fprintf(out, " %s", atr_sockaddr_text(&c->tls_memcached[i], buf, sizeof buf));
        fputs(";\n", out);
        break;
    }
}

static void dump_heartbeat(const atr_conf_heartbeat_t *hb, FILE *out)
{
    opt_word(out, "", "heartbeat_listen", hb->listen);
    opt_word(out, "", "heartbeat_send", hb->send);
    duration(out, "", "heartbeat_interval", hb->interval);
    opt_word(out, "", "heartbeat_key", hb->key_file);
    opt_word(out, "", "heartbeat_storage", hb->storage);
    fprintf(out, "heartbeat_max_servers %d;\n", hb->max_servers);
}

static void dump_tls_upstream(const atr_conf_upstream_t *u, FILE *out)
{
    const char *in = "    ";
    opt_word(out, in, "tls_trust", u->tls_trust);
    opt_word(out, in, "tls_server_name", u->tls_server_name);
    fprintf(out, "%stls_verify %s;\n", in, u->tls_verify ? "on" : "off");
    opt_word(out, in, "tls_client_certificate", u->tls_client_cert);
    opt_word(out, in, "tls_client_key", u->tls_client_key);
}

static void dump_tls_host(const atr_conf_tls_t *t, FILE *out)
{
    static const char *const verify[] = { "off", "optional", "required" };
    const char *in = "        ";
    fputs("    tls {\n", out);
    for (int i = 0; i < t->ncerts; i++) {
        opt_word(out, in, "certificate", t->certs[i].cert);
        opt_word(out, in, "key", t->certs[i].key);
    }
    if (t->stapling_file)
        opt_word(out, in, "stapling", t->stapling_file);
    else
        fprintf(out, "%sstapling %s;\n", in, t->stapling ? "on" : "off");
    opt_word(out, in, "client_certificate", t->client_ca);
    fprintf(out, "%sclient_verify %s;\n", in, verify[t->client_verify]);
    fprintf(out, "%sclient_ocsp %s;\n", in, t->client_ocsp ? "on" : "off");
    fprintf(out, "%sclient_ocsp_fail %s;\n", in, t->client_ocsp_fail_open ? "open" : "closed");
    fputs("    }\n", out);
}

static void dump_outlier(const atr_lb_outlier_t *o, const char *in, FILE *out)
{
    char iv[32], mx[32];
    if (o->consecutive == 0) {
        fprintf(out, "%soutlier off;\n", in);
        return;
    }
    fprintf(out, "%soutlier consecutive=%d interval=%s max_interval=%s max_ejected=%d%% errors=%s;\n",
            in, o->consecutive, atr__conf_fmt_duration(iv, sizeof iv, o->interval),
            atr__conf_fmt_duration(mx, sizeof mx, o->max_interval), o->max_ejected,
            o->all_5xx ? "5xx" : "gateway");
}

static void dump_upstream(const atr_conf_upstream_t *u, FILE *out)
{
    const char *in = "    ";
    fputs("\nupstream ", out);
    word(out, u->name);
    fputs(" {\n", out);
    char lb[128];
    atr_lb_format(u->balance, &u->balance_args, lb, sizeof(lb));
    fprintf(out, "%sbalance %s;\n", in, lb);
    fprintf(out, "%sprotocol %s;\n", in, atr_registry_name(u->protocol));
    duration(out, in, "connect_timeout", u->connect_timeout);
    duration(out, in, "read_timeout", u->read_timeout);
    duration(out, in, "send_timeout", u->send_timeout);
    if (u->keepalive == ATR_KEEPALIVE_AUTO)
        fprintf(out, "%skeepalive auto;\n", in);
    else
        fprintf(out, "%skeepalive %d;\n", in, u->keepalive);
    duration(out, in, "keepalive_timeout", u->keepalive_timeout);
    fprintf(out, "%skeepalive_requests %d;\n", in, u->keepalive_requests);
    if (u->spawn_argv != NULL) {
        fprintf(out, "%sspawn", in);
        for (int i = 0; u->spawn_argv[i] != NULL; i++) {
            fputc(' ', out);
            word(out, u->spawn_argv[i]);
        }
        fprintf(out, " children=%d;\n", u->spawn_children);
    }
    fprintf(out, "%squeue %d;\n", in, u->queue);
    duration(out, in, "queue_timeout", u->queue_timeout);
    fprintf(out, "%sretries %d;\n", in, u->retries);
    duration(out, in, "fail_timeout", u->fail_timeout);
    if (u->hc_path) {
        char iv[32], to[32];
        fprintf(out, "%shealth_check path=%s interval=%s timeout=%s fails=%d passes=%d;\n", in,
                u->hc_path, atr__conf_fmt_duration(iv, sizeof iv, u->hc_interval),
                atr__conf_fmt_duration(to, sizeof to, u->hc_timeout), u->hc_fails, u->hc_passes);
    }
    dump_outlier(&u->outlier, in, out);
    dump_tls_upstream(u, out);
    for (int i = 0; i < u->nservers; i++) {
        const atr_conf_server_t *s = &u->servers[i];
        char ss[48] = "";
        if (s->slow_start) {
            char d[32];
            snprintf(ss, sizeof ss, " slow_start=%s",
                     atr__conf_fmt_duration(d, sizeof d, s->slow_start));
        }
        fprintf(out, "%sserver ", in);
        word(out, s->text);
        fprintf(out, " weight=%d max_conns=%d%s%s%s;\n", s->weight, s->max_conns, ss,
                s->backup ? " backup" : "", s->resolve ? " resolve" : "");
    }
    fputs("}\n", out);
}

static void dump_headers(FILE *out, const char *dir, const atr_hdr_op_t *h, int n)
{
    static const char *const ops[] = { "set", "add", "remove" };
    for (int i = 0; i < n; i++) {
        fprintf(out, "        %s %s ", dir, ops[h[i].op]);
        word(out, h[i].name);
        if (h[i].value != NULL) {
            fputc(' ', out);
            word(out, h[i].value);
        }
        fputs(";\n", out);
    }
}

static void dump_route(const atr_conf_route_t *r, FILE *out)
{
    fputs("    route ", out);
    word(out, r->prefix);
    fputs(" {\n", out);
    switch (r->kind) {
    case ATR_ROUTE_PROXY:
        fputs("        proxy ", out);
        word(out, r->upstream->name);
        if (r->proxy_prefix != NULL) {
            fputc(' ', out);
            word(out, r->proxy_prefix);
        }
        fputs(";\n", out);
        if (r->root != NULL) {
            fputs("        root ", out);
            word(out, r->root);
            fputs(";\n        index ", out);
            word(out, r->index);
            fputs(";\n", out);
        }
        break;
    case ATR_ROUTE_STATIC:
        fputs("        static ", out);
        word(out, r->static_root);
        fputs(";\n        index ", out);
        word(out, r->index);
        fputs(";\n", out);
        break;
    case ATR_ROUTE_CGI:
        fputs("        cgi ", out);
        word(out, r->cgi_dir);
        fputs(";\n", out);
        break;
    case ATR_ROUTE_STATUS:
        fputs("        status;\n", out);
        break;
    case ATR_ROUTE_RETURN:
        fprintf(out, "        return %d", r->return_status);
        if (r->return_body != NULL) {
            fputc(' ', out);
            word(out, r->return_body);
        }
        fputs(";\n", out);
        break;
    }
    atr__conf_dump_acl(r->acl, r->nacl, out);
    if (r->try_dir != NULL) {
        fputs("        try_files ", out);
        word(out, r->try_dir);
        fputs(";\n", out);
    }
    dump_headers(out, "request_header", r->req_hdr, r->nreq_hdr);
    dump_headers(out, "response_header", r->resp_hdr, r->nresp_hdr);
    fputs("    }\n", out);
}

void atr_conf_dump(const atr_conf_t *c, FILE *out)
{
    fputs("# effective configuration of ", out);
    for (const char *p = c->path != NULL ? c->path : "(string)"; *p != '\0'; p++)
        fputc((unsigned char)*p < 0x20 ? '?' : *p, out);
    fputc('\n', out);
    dump_main(c, out);
    for (int i = 0; i < c->nupstreams; i++)
        dump_upstream(&c->upstreams[i], out);
    for (int i = 0; i < c->nhosts; i++) {
        const atr_conf_host_t *h = &c->hosts[i];
        fputs("\nhost", out);
        for (int j = 0; j < h->nnames; j++) {
            fputc(' ', out);
            word(out, h->names[j]);
        }
        fputs(" {\n", out);
        if (h->tls)
            dump_tls_host(h->tls, out);
        for (int j = 0; j < h->nroutes; j++)
            dump_route(&h->routes[j], out);
        fputs("}\n", out);
    }
}
