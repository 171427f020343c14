/* The configuration language: sizes and durations, good configs with every
 * directive and every default, includes (globs, order, loops, depth), one
 * bad config per error class with its exact "FILE:LINE:COL: message", and the
 * dump round trip. Every case names its line. */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "backends/backend.h"
#include "conf/conf.h"
#include "t.h"

/* A registered protocol's ops, by name. */
static const void *proto(const char *name)
{
    return atr_registry_find(&atr_backend_registry, name);
}

static char dir[PATH_MAX]; /* a scratch directory under /tmp */
static char err[1024];

/* ---- helpers ---------------------------------------------------------------- */

static void put(const char *rel, const char *text)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

static void mkd(const char *rel)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    if (mkdir(path, 0700) < 0) {
        perror(path);
        exit(2);
    }
}

/* Replace every "@D" in `in` by the scratch directory. */
static char *subst(const char *in)
{
    size_t n = strlen(in) + 1, dl = strlen(dir);
    for (const char *p = in; (p = strstr(p, "@D")) != NULL; p += 2)
        n += dl;
    char *out = malloc(n), *o = out;
    for (const char *p = in; *p != '\0';) {
        if (p[0] == '@' && p[1] == 'D') {
            memcpy(o, dir, dl);
            o += dl;
            p += 2;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

static atr_conf_t *load(const char *text)
{
    char *t = subst(text);
    atr_conf_t *c =
        atr_conf_load_string_ex("t.conf", t, strlen(t), ATR_CONF_NO_DNS, err, sizeof(err));
    free(t);
    return c;
}

static char *dump(const atr_conf_t *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    atr_conf_dump(c, f);
    fclose(f);
    return buf;
}

static unsigned port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)(const void *)ss)->sin6_port);
    return 0;
}

static const char *ip_of(const struct sockaddr_storage *ss, char *buf, size_t n)
{
    const void *a = ss->ss_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)(const void *)ss)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
    return inet_ntop(ss->ss_family, a, buf, (socklen_t)n);
}

#define MINIMAL "listen 8080;\nhost * { route / { return 200; } }\n"

/* ---- sizes and durations ------------------------------------------------- */

/* ok: 1 parses, 0 malformed, TOO_LARGE well formed beyond 64 bits */
#define TOO_LARGE 2
static int want_rc(int ok)
{
    return ok == 1 ? 0 : ok == TOO_LARGE ? ATR_CONF_TOO_LARGE : -1;
}

static void test_values(void)
{
    static const struct {
        int line;
        const char *s;
        int ok;
        uint64_t v;
    } sizes[] = {
        { __LINE__, "0", 1, 0 },
        { __LINE__, "512", 1, 512 },
        { __LINE__, "64k", 1, 65536 },
        { __LINE__, "64K", 1, 65536 },
        { __LINE__, "1m", 1, 1048576 },
        { __LINE__, "1M", 1, 1048576 },
        { __LINE__, "1g", 1, 1073741824 },
        { __LINE__, "3G", 1, 3221225472ull },
        { __LINE__, "18446744073709551615", 1, UINT64_MAX },
        { __LINE__, "18446744073709551616", TOO_LARGE, 0 },
        { __LINE__, "17179869184g", TOO_LARGE, 0 }, /* 2^34 g = 2^64: overflow */
        { __LINE__, "17179869183g", 1, 17179869183ull << 30 },
        { __LINE__, "", 0, 0 },
        { __LINE__, "k", 0, 0 },
        { __LINE__, "-1", 0, 0 },
        { __LINE__, "+1", 0, 0 },
        { __LINE__, "1 k", 0, 0 },
        { __LINE__, "1kb", 0, 0 },
        { __LINE__, "1t", 0, 0 },
        { __LINE__, "1.5m", 0, 0 },
        { __LINE__, "99999999999999999999x", 0, 0 }, /* malformed beats too large */
        { __LINE__, "0x10", 0, 0 },
    };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint64_t v = 12345;
        int rc = atr_conf_parse_size(sizes[i].s, &v);
        T_CHECK(sizes[i].line, rc == want_rc(sizes[i].ok), "'%s' rc %d", sizes[i].s, rc);
        if (sizes[i].ok == 1)
            T_CHECK(sizes[i].line, v == sizes[i].v, "'%s' = %llu", sizes[i].s,
                    (unsigned long long)v);
    }

    static const struct {
        int line;
        const char *s;
        int ok;
        uint64_t ms;
    } durs[] = {
        { __LINE__, "750ms", 1, 750 },
        { __LINE__, "0", 1, 0 },
        { __LINE__, "0ms", 1, 0 },
        { __LINE__, "2s", 1, 2000 },
        { __LINE__, "5m", 1, 300000 },
        { __LINE__, "1h", 1, 3600000 },
        { __LINE__, "1d", 1, 86400000 },
        { __LINE__, "30", 1, 30000 }, /* a bare number is seconds */
        { __LINE__, "1h30m", 1, 5400000 },
        { __LINE__, "1m500ms", 1, 60500 },
        { __LINE__, "2S", 1, 2000 },
        { __LINE__, "10MS", 1, 10 },
        { __LINE__, "18446744073709551615ms", 1, UINT64_MAX },
        { __LINE__, "18446744073709551615s", TOO_LARGE, 0 },
        { __LINE__, "213503982335d", TOO_LARGE, 0 },
        { __LINE__, "18446744073709551615ms1ms", TOO_LARGE, 0 },
        { __LINE__, "", 0, 0 },
        { __LINE__, "5x", 0, 0 },
        { __LINE__, "ms", 0, 0 },
        { __LINE__, "1h30", 0, 0 }, /* a bare number only on its own */
        { __LINE__, "-1s", 0, 0 },
        { __LINE__, "1.5s", 0, 0 },
        { __LINE__, "1 s", 0, 0 },
        { __LINE__, "1w", 0, 0 },
        { __LINE__, "99999999999999999999s5x", 0, 0 }, /* malformed beats too large */
    };
    for (size_t i = 0; i < sizeof(durs) / sizeof(durs[0]); i++) {
        uint64_t v = 12345;
        int rc = atr_conf_parse_duration(durs[i].s, &v);
        T_CHECK(durs[i].line, rc == want_rc(durs[i].ok), "'%s' rc %d", durs[i].s, rc);
        if (durs[i].ok == 1)
            T_CHECK(durs[i].line, v == durs[i].ms, "'%s' = %llu", durs[i].s, (unsigned long long)v);
    }
}

/* ---- defaults ---------------------------------------------------------------- */

static void test_defaults(void)
{
    atr_conf_t *c = load("listen 8080;\n"
                         "upstream app { server 127.0.0.1:9001; }\n"
                         "host * { route / { proxy app; } route /s/ { static /tmp; } }\n");
    T_CHECK(__LINE__, c != NULL, "%s", err);
    if (c == NULL)
        return;
    T_CHECK(__LINE__, strcmp(c->path, "t.conf") == 0, "%s", c->path);
    T_CHECK(__LINE__, c->workers == 0, "%d", c->workers);
    T_CHECK(__LINE__, c->user == NULL && c->pid_file == NULL, "user/pid_file");
    T_CHECK(__LINE__, strcmp(c->error_log, "stderr") == 0, "%s", c->error_log);
    T_CHECK(__LINE__, c->error_level == ATR_LOG_INFO, "%d", c->error_level);
    T_CHECK(__LINE__, c->access_log == NULL && c->access_format == ATR_ACCESS_OFF, "access");
    T_CHECK(__LINE__, c->max_request_line == 8192, "%u", c->max_request_line);
    T_CHECK(__LINE__, c->max_header_size == 32768, "%u", c->max_header_size);
    T_CHECK(__LINE__, c->max_headers == 100, "%u", c->max_headers);
    T_CHECK(__LINE__, c->max_body_size == 1073741824ull, "%llu",
            (unsigned long long)c->max_body_size);
    T_CHECK(__LINE__, c->header_timeout == 10000, "%llu", (unsigned long long)c->header_timeout);
    T_CHECK(__LINE__, c->body_timeout == 60000, "%llu", (unsigned long long)c->body_timeout);
    T_CHECK(__LINE__, c->send_timeout == 60000, "%llu", (unsigned long long)c->send_timeout);
    T_CHECK(__LINE__, c->keepalive_timeout == 75000, "%llu",
            (unsigned long long)c->keepalive_timeout);
    T_CHECK(__LINE__, c->keepalive_requests == 1000, "%d", c->keepalive_requests);
    T_CHECK(__LINE__, c->drain_timeout == 30000, "%llu", (unsigned long long)c->drain_timeout);
    T_CHECK(__LINE__, c->buffer_size == 16384, "%u", c->buffer_size);
    T_CHECK(__LINE__, c->via != NULL && strcmp(c->via, "atrium") == 0, "via");
    T_CHECK(__LINE__, c->underscores_in_headers == 0, "underscores");

    T_CHECK(__LINE__, c->nlistens == 1 && c->listens[0].tls == 0, "listens");
    T_CHECK(__LINE__, c->nupstreams == 1, "%d", c->nupstreams);
    const atr_conf_upstream_t *u = &c->upstreams[0];
    T_CHECK(__LINE__, u->balance == atr_lb_find("round_robin") && u->protocol == proto("http"), "lb");
    T_CHECK(__LINE__, u->connect_timeout == 2000, "%llu", (unsigned long long)u->connect_timeout);
    T_CHECK(__LINE__, u->read_timeout == 60000, "%llu", (unsigned long long)u->read_timeout);
    T_CHECK(__LINE__, u->send_timeout == 60000, "%llu", (unsigned long long)u->send_timeout);
    T_CHECK(__LINE__, u->keepalive == ATR_KEEPALIVE_AUTO, "%d", u->keepalive);
    T_CHECK(__LINE__, u->keepalive_timeout == 60000, "%llu",
            (unsigned long long)u->keepalive_timeout);
    T_CHECK(__LINE__, u->keepalive_requests == 1000, "%d", u->keepalive_requests);
    T_CHECK(__LINE__, u->queue == 128, "%d", u->queue);
    T_CHECK(__LINE__, u->queue_timeout == 5000, "%llu", (unsigned long long)u->queue_timeout);
    T_CHECK(__LINE__, u->retries == 2, "%d", u->retries);
    T_CHECK(__LINE__, u->fail_timeout == 10000, "%llu", (unsigned long long)u->fail_timeout);
    T_CHECK(__LINE__, u->nservers == 1, "%d", u->nservers);
    const atr_conf_server_t *s = &u->servers[0];
    T_CHECK(__LINE__, s->weight == 1 && s->max_conns == 0 && !s->backup && !s->resolve, "server");
    T_CHECK(__LINE__, c->nhosts == 1 && c->hosts[0].nroutes == 2, "hosts");
    for (int i = 0; i < c->hosts[0].nroutes; i++) {
        const atr_conf_route_t *r = &c->hosts[0].routes[i];
        T_CHECK(__LINE__, strcmp(r->index, "index.html") == 0, "index %s", r->index);
        T_CHECK(__LINE__, r->nreq_hdr == 0 && r->nresp_hdr == 0, "headers");
    }
    T_CHECK(__LINE__, atr_conf_find_upstream(c, "app") == u, "find");
    T_CHECK(__LINE__, atr_conf_find_upstream(c, "nope") == NULL, "find");
    atr_conf_free(c);
}

/* ---- every directive --------------------------------------------------------- */

static const char *full_conf =
    "# every directive, with values that are not the defaults\n"
    "workers 4;\n"
    "user root;\n"
    "pid_file /run/atrium.pid;\n"
    "error_log /var/log/atrium/error.log warn;\n"
    "access_log '/var/log/atrium/access log' json;\n"
    "max_request_line 4k;\n"
    "max_header_size 64k;\n"
    "max_headers 50;\n"
    "max_body_size 0;\n"
    "header_timeout 750ms;\n"
    "body_timeout 2m;\n"
    "send_timeout 1h;\n"
    "keepalive_timeout 1d;\n"
    "keepalive_requests 7;\n"
    "drain_timeout 0;\n"
    "buffer_size 64K;\n"
    "via edge-1;\n"
    "underscores_in_headers on;\n"
    "tls_handshake_timeout 5s;\n"
    "tls_ticket_keys /etc/atrium/ticket.keys;\n"
    "tls_ticket_rotate 2h;\n"
    "tls_session_cache memcached 10.0.0.5:11211 [::1]:11212;\n"
    "listen 127.0.0.1:8080;\n"
    "listen [::1]:8443 tls;\n"
    "listen *:9000;\n"
    "listen 9001;\n"
    "upstream app {\n"
    "    balance least_conn;\n"
    "    protocol fastcgi;\n"
    "    server 127.0.0.1:9001;\n"
    "    server 10.0.0.2:9002 weight=2 max_conns=100 slow_start=30s;\n"
    "    server [::1]:9003 backup;\n"
    "    server unix:/run/app.sock;\n"
    "    server app.internal:8000 resolve;\n"
    "    connect_timeout 1s;\n"
    "    read_timeout 30s;\n"
    "    send_timeout 31s;\n"
    "    keepalive_timeout 32s;\n"
    "    queue_timeout 33s;\n"
    "    fail_timeout 34s;\n"
    "    outlier consecutive=7 interval=1500ms max_interval=1m max_ejected=34%;\n"
    "    keepalive 0;\n"
    "    keepalive_requests 9;\n"
    "    queue 0;\n"
    "    retries 0;\n"
    "}\n"
    "upstream \"other one\" { balance random2; protocol scgi; server 127.0.0.2:1; outlier off;\n"
    "    health_check path=/hz interval=500ms timeout=200ms fails=4 passes=3; }\n"
    "upstream unused { protocol https; server 127.0.0.3:443; tls_trust /etc/ca.pem;\n"
    "    tls_server_name backend.internal; tls_verify off;\n"
    "    tls_client_certificate /etc/c.pem; tls_client_key /etc/c.key; }\n"
    "host Example.COM www.example.com {\n"
    "    tls {\n"
    "        certificate /etc/ec.pem; key /etc/ec.key;\n"
    "        certificate /etc/rsa.pem; key '/etc/rsa key';\n"
    "        stapling /etc/ocsp.der;\n"
    "        client_certificate /etc/clients.pem; client_verify optional;\n"
    "        client_ocsp on; client_ocsp_fail open;\n"
    "    }\n"
    "    request_header set X-Host-A a;\n"
    "    response_header remove Server;\n"
    "    route / { proxy app; }\n"
    "    route /api/v1/ {\n"
    "        proxy \"other one\";\n"
    "        request_header add X-Route \"r 1\";\n"
    "        request_header remove Cookie;\n"
    "        response_header set Cache-Control 'no-store';\n"
    "    }\n"
    "    route /static/ { static @D/www; index home.htm; }\n"
    "    route /gone { return 410 \"it is \\\"gone\\\"\"; }\n"
    "    request_header set X-Host-B b;  # after the routes: still applies to all\n"
    "}\n"
    "host * { route / { return 301; } }\n"
    "host *.example.org { route / { return 204; } }\n";

static void test_full(void)
{
    char ip[64];
    atr_conf_t *c = load(full_conf);
    T_CHECK(__LINE__, c != NULL, "%s", err);
    if (c == NULL)
        return;
    T_CHECK(__LINE__, c->workers == 4, "%d", c->workers);
    T_CHECK(__LINE__, strcmp(c->user, "root") == 0, "%s", c->user);
    T_CHECK(__LINE__, strcmp(c->pid_file, "/run/atrium.pid") == 0, "%s", c->pid_file);
    T_CHECK(__LINE__, strcmp(c->error_log, "/var/log/atrium/error.log") == 0, "%s", c->error_log);
    T_CHECK(__LINE__, c->error_level == ATR_LOG_WARN, "%d", c->error_level);
    T_CHECK(__LINE__, strcmp(c->access_log, "/var/log/atrium/access log") == 0, "%s",
            c->access_log);
    T_CHECK(__LINE__, c->access_format == ATR_ACCESS_JSON, "%d", c->access_format);
    T_CHECK(__LINE__, c->max_request_line == 4096, "%u", c->max_request_line);
    T_CHECK(__LINE__, c->max_header_size == 65536, "%u", c->max_header_size);
    T_CHECK(__LINE__, c->max_headers == 50, "%u", c->max_headers);
    T_CHECK(__LINE__, c->max_body_size == 0, "%llu", (unsigned long long)c->max_body_size);
    T_CHECK(__LINE__, c->header_timeout == 750, "%llu", (unsigned long long)c->header_timeout);
    T_CHECK(__LINE__, c->body_timeout == 120000, "%llu", (unsigned long long)c->body_timeout);
    T_CHECK(__LINE__, c->send_timeout == 3600000, "%llu", (unsigned long long)c->send_timeout);
    T_CHECK(__LINE__, c->keepalive_timeout == 86400000, "%llu",
            (unsigned long long)c->keepalive_timeout);
    T_CHECK(__LINE__, c->keepalive_requests == 7, "%d", c->keepalive_requests);
    T_CHECK(__LINE__, c->drain_timeout == 0, "%llu", (unsigned long long)c->drain_timeout);
    T_CHECK(__LINE__, c->buffer_size == 65536, "%u", c->buffer_size);
    T_CHECK(__LINE__, strcmp(c->via, "edge-1") == 0, "%s", c->via);
    T_CHECK(__LINE__, c->underscores_in_headers == 1, "underscores");

    /* listen */
    T_CHECK(__LINE__, c->nlistens == 4, "%d", c->nlistens);
    if (c->nlistens == 4) {
        const atr_conf_listen_t *l = c->listens;
        T_CHECK(__LINE__, strcmp(l[0].text, "127.0.0.1:8080") == 0, "%s", l[0].text);
        T_CHECK(__LINE__, l[0].addr.ss_family == AF_INET && port_of(&l[0].addr) == 8080, "l0");
        T_CHECK(__LINE__, strcmp(ip_of(&l[0].addr, ip, sizeof(ip)), "127.0.0.1") == 0, "%s", ip);
        T_CHECK(__LINE__, l[0].addrlen == sizeof(struct sockaddr_in) && !l[0].tls, "l0");
        T_CHECK(__LINE__, l[0].pos.line == 24 && l[0].pos.col == 1, "%d:%d", l[0].pos.line,
                l[0].pos.col);
        T_CHECK(__LINE__, strcmp(l[0].pos.file, "t.conf") == 0, "%s", l[0].pos.file);
        T_CHECK(__LINE__, l[1].addr.ss_family == AF_INET6 && port_of(&l[1].addr) == 8443, "l1");
        T_CHECK(__LINE__, strcmp(ip_of(&l[1].addr, ip, sizeof(ip)), "::1") == 0, "%s", ip);
        T_CHECK(__LINE__, l[1].addrlen == sizeof(struct sockaddr_in6) && l[1].tls == 1, "l1");
        T_CHECK(__LINE__, strcmp(ip_of(&l[2].addr, ip, sizeof(ip)), "0.0.0.0") == 0, "%s", ip);
        T_CHECK(__LINE__, port_of(&l[2].addr) == 9000, "l2");
        T_CHECK(__LINE__, strcmp(ip_of(&l[3].addr, ip, sizeof(ip)), "0.0.0.0") == 0, "%s", ip);
        T_CHECK(__LINE__, port_of(&l[3].addr) == 9001 && strcmp(l[3].text, "9001") == 0, "l3");
    }

    /* upstreams */
    T_CHECK(__LINE__, c->nupstreams == 3, "%d", c->nupstreams);
    const atr_conf_upstream_t *u = atr_conf_find_upstream(c, "app");
    T_CHECK(__LINE__, u == &c->upstreams[0], "app");
    if (u != NULL) {
        T_CHECK(__LINE__, u->balance == atr_lb_find("least_conn") && u->protocol == proto("fastcgi"),
                "lb");
        T_CHECK(__LINE__, u->connect_timeout == 1000 && u->read_timeout == 30000, "timeouts");
        T_CHECK(__LINE__, u->send_timeout == 31000 && u->keepalive_timeout == 32000, "timeouts");
        T_CHECK(__LINE__, u->queue_timeout == 33000 && u->fail_timeout == 34000, "timeouts");
        T_CHECK(__LINE__, u->keepalive == 0 && u->keepalive_requests == 9, "keepalive");
        T_CHECK(__LINE__, u->queue == 0 && u->retries == 0, "queue");
        T_CHECK(__LINE__, u->nservers == 5, "%d", u->nservers);
        T_CHECK(__LINE__, u->pos.line == 28 && u->pos.col == 1, "pos");
    }
    if (u != NULL && u->nservers == 5) {
        const atr_conf_server_t *s = u->servers;
        T_CHECK(__LINE__, strcmp(s[0].text, "127.0.0.1:9001") == 0 && port_of(&s[0].addr) == 9001,
                "s0");
        T_CHECK(__LINE__, s[0].weight == 1 && s[0].max_conns == 0, "s0");
        T_CHECK(__LINE__, s[1].weight == 2 && s[1].max_conns == 100 && !s[1].backup, "s1");
        T_CHECK(__LINE__, strcmp(ip_of(&s[1].addr, ip, sizeof(ip)), "10.0.0.2") == 0, "%s", ip);
        T_CHECK(__LINE__, s[2].addr.ss_family == AF_INET6 && s[2].backup, "s2");
        T_CHECK(__LINE__, port_of(&s[2].addr) == 9003, "s2");
        const struct sockaddr_un *un = (const struct sockaddr_un *)(const void *)&s[3].addr;
        T_CHECK(__LINE__, un->sun_family == AF_UNIX, "s3");
        T_CHECK(__LINE__, strcmp(un->sun_path, "/run/app.sock") == 0, "%s", un->sun_path);
        T_CHECK(__LINE__, strcmp(s[3].text, "unix:/run/app.sock") == 0, "%s", s[3].text);
        T_CHECK(__LINE__, s[4].resolve == 1 && s[4].addrlen == 0, "s4 resolve");
        T_CHECK(__LINE__, strcmp(s[4].text, "app.internal:8000") == 0, "%s", s[4].text);
        T_CHECK(__LINE__, s[4].pos.line == 35 && s[4].pos.col == 5, "%d:%d", s[4].pos.line,
                s[4].pos.col);
    }
    const atr_conf_upstream_t *o = atr_conf_find_upstream(c, "other one");
    T_CHECK(__LINE__, o != NULL && o->balance == atr_lb_find("random2"), "other");
    T_CHECK(__LINE__, o != NULL && o->protocol == proto("scgi"), "other");
    o = atr_conf_find_upstream(c, "unused");
    T_CHECK(__LINE__, o != NULL && o->protocol == proto("https"), "unused");

    /* hosts and routes */
    T_CHECK(__LINE__, c->nhosts == 3, "%d", c->nhosts);
    if (c->nhosts == 3) {
        const atr_conf_host_t *h = &c->hosts[0];
        T_CHECK(__LINE__, h->nnames == 2 && strcmp(h->names[0], "example.com") == 0, "names");
        T_CHECK(__LINE__, strcmp(h->names[1], "www.example.com") == 0, "%s", h->names[1]);
        T_CHECK(__LINE__, h->nroutes == 4, "%d", h->nroutes);
        static const char *const order[] = { "/api/v1/", "/static/", "/gone", "/" };
        for (int i = 0; i < 4 && i < h->nroutes; i++)
            T_CHECK(__LINE__, strcmp(h->routes[i].prefix, order[i]) == 0, "%d: %s", i,
                    h->routes[i].prefix);
        if (h->nroutes == 4) {
            const atr_conf_route_t *api = &h->routes[0], *st = &h->routes[1];
            const atr_conf_route_t *gone = &h->routes[2], *root = &h->routes[3];
            T_CHECK(__LINE__, api->kind == ATR_ROUTE_PROXY, "api");
            T_CHECK(__LINE__, api->upstream == atr_conf_find_upstream(c, "other one"), "api");
            T_CHECK(__LINE__, root->kind == ATR_ROUTE_PROXY && root->upstream == u, "root");
            /* host operations first (both, even the one written after the routes) */
            T_CHECK(__LINE__, api->nreq_hdr == 4, "%d", api->nreq_hdr);
            if (api->nreq_hdr == 4) {
                T_CHECK(__LINE__, strcmp(api->req_hdr[0].name, "X-Host-A") == 0, "h0");
                T_CHECK(__LINE__, strcmp(api->req_hdr[1].name, "X-Host-B") == 0, "h1");
                T_CHECK(__LINE__, api->req_hdr[2].op == ATR_HDR_ADD, "h2");
                T_CHECK(__LINE__, strcmp(api->req_hdr[2].value, "r 1") == 0, "h2");
                T_CHECK(__LINE__, api->req_hdr[3].op == ATR_HDR_REMOVE, "h3");
                T_CHECK(__LINE__, api->req_hdr[3].value == NULL, "h3");
            }
            T_CHECK(__LINE__, api->nresp_hdr == 2, "%d", api->nresp_hdr);
            if (api->nresp_hdr == 2) {
                T_CHECK(__LINE__, api->resp_hdr[0].op == ATR_HDR_REMOVE, "r0");
                T_CHECK(__LINE__, strcmp(api->resp_hdr[0].name, "Server") == 0, "r0");
                T_CHECK(__LINE__, api->resp_hdr[1].op == ATR_HDR_SET, "r1");
                T_CHECK(__LINE__, strcmp(api->resp_hdr[1].value, "no-store") == 0, "r1");
            }
            T_CHECK(__LINE__, root->nreq_hdr == 2 && root->nresp_hdr == 1, "root headers");
            T_CHECK(__LINE__, st->kind == ATR_ROUTE_STATIC, "static");
            T_CHECK(__LINE__, strcmp(st->index, "home.htm") == 0, "%s", st->index);
            T_CHECK(__LINE__, strncmp(st->static_root, dir, strlen(dir)) == 0, "%s",
                    st->static_root);
            T_CHECK(__LINE__, gone->kind == ATR_ROUTE_RETURN && gone->return_status == 410, "ret");
            T_CHECK(__LINE__, strcmp(gone->return_body, "it is \"gone\"") == 0, "%s",
                    gone->return_body);
        }
        T_CHECK(__LINE__, strcmp(c->hosts[1].names[0], "*") == 0, "default host");
        T_CHECK(__LINE__, c->hosts[1].routes[0].return_status == 301, "301");
        T_CHECK(__LINE__, c->hosts[1].routes[0].return_body == NULL, "no body");
        T_CHECK(__LINE__, strcmp(c->hosts[2].names[0], "*.example.org") == 0, "wildcard");
    }
    atr_conf_free(c);
}

/* ---- good configs that must load, and round-trip through the dump ---------- */

static const struct {
    int line;
    const char *text;
} good[] = {
    { __LINE__, MINIMAL },
    { __LINE__, "listen 8080;host *{route /{return 200;}}" }, /* no spaces needed */
    { __LINE__, "\xef\xbb\xbflisten 8080; # a BOM, then a comment\n"
                "host * { route / { return 200 'a;b{c}#d'; } }" },
    { __LINE__, "listen 8080; access_log stdout; error_log stderr debug;\n"
                "host * { route / { return 200; } }" },
    { __LINE__, "listen 8080; access_log off; via off; workers 1;\n"
                "host * { route / { return 599; } }" },
    { __LINE__, "listen [::]:80; listen 0.0.0.0:80; listen [::1]:80;\n"
                "host * { route / { return 200; } }" },
    { __LINE__, "listen 8080;\n"
                "upstream a { server 127.0.0.1:1; server 127.0.0.1:2 weight=1000 max_conns=1000000 "
                "backup resolve; }\n"
                "host a.test:8080 [::1] { route / { proxy a; } }" },
    { __LINE__, "listen 8080; max_body_size 18446744073709551615; header_timeout 1h30m;\n"
                "host * { route / { return 200 \"\\\\ and \\\" and ' and \\'\"; } }" },
    { __LINE__, "listen 8080; host * { route / { return 200 \"\"; } }" },
    { __LINE__, "listen 8080; control /run/a.sock; control_state /var/lib/a/changes;\n"
                "host * { route / { return 200; } }" },
    { __LINE__, "listen 8080; host * { route '/a b' { return 200 \"\t\r\"; } }" },
    { __LINE__, "listen 8080; host * { route / { return 200; request_header set X \"\"; } }" },
    { __LINE__, "listen 8080; heartbeat_listen 239.0.0.1:27999; heartbeat_send [ff02::1]:27999;\n"
                "heartbeat_interval 250ms; heartbeat_key @D/hb.key; heartbeat_storage @D/hb.dat;\n"
                "heartbeat_max_servers 10; upstream a { balance heartbeat; server 10.0.0.1:80; }\n"
                "host * { route / { proxy a; } }" },
};

static void test_good(void)
{
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int line = good[i].line;
        atr_conf_t *c = load(good[i].text);
        T_CHECK(line, c != NULL, "%s", err);
        if (c == NULL)
            continue;
        char *d1 = dump(c);
        atr_conf_t *c2 =
            atr_conf_load_string_ex("t.conf", d1, strlen(d1), ATR_CONF_NO_DNS, err, sizeof(err));
        T_CHECK(line, c2 != NULL, "dump does not load: %s\n%s", err, d1);
        if (c2 != NULL) {
            char *d2 = dump(c2);
            T_CHECK(line, strcmp(d1, d2) == 0, "dumps differ:\n%s\n----\n%s", d1, d2);
            free(d2);
            atr_conf_free(c2);
        }
        free(d1);
        atr_conf_free(c);
    }
}

static void test_dump(void)
{
    atr_conf_t *c = load(full_conf);
    T_CHECK(__LINE__, c != NULL, "%s", err);
    if (c == NULL)
        return;
    char *d1 = dump(c);
    atr_conf_t *c2 =
        atr_conf_load_string_ex("t.conf", d1, strlen(d1), ATR_CONF_NO_DNS, err, sizeof(err));
    T_CHECK(__LINE__, c2 != NULL, "%s\n%s", err, d1);
    if (c2 != NULL) {
        char *d2 = dump(c2);
        T_CHECK(__LINE__, strcmp(d1, d2) == 0, "dumps differ:\n%s\n----\n%s", d1, d2);
        free(d2);
        atr_conf_free(c2);
    }
    /* a few exact lines of the effective config */
    static const char *const lines[] = {
        "workers 4;\n",
        "access_log \"/var/log/atrium/access log\" json;\n",
        "header_timeout 750ms;\n",
        "drain_timeout 0s;\n",
        "buffer_size 64k;\n",
        "listen [::1]:8443 tls;\n",
        "tls_handshake_timeout 5s;\n",
        "tls_ticket_keys /etc/atrium/ticket.keys;\n",
        "tls_session_cache memcached 10.0.0.5:11211 [::1]:11212;\n",
        "    tls_server_name backend.internal;\n    tls_verify off;\n"
        "    tls_client_certificate /etc/c.pem;\n    tls_client_key /etc/c.key;\n",
        "    tls {\n        certificate /etc/ec.pem;\n        key /etc/ec.key;\n"
        "        certificate /etc/rsa.pem;\n        key \"/etc/rsa key\";\n"
        "        stapling /etc/ocsp.der;\n        client_certificate /etc/clients.pem;\n"
        "        client_verify optional;\n        client_ocsp on;\n"
        "        client_ocsp_fail open;\n    }\n",
        "upstream \"other one\" {\n",
        "    health_check path=/hz interval=500ms timeout=200ms fails=4 passes=3;\n",
        "    server 10.0.0.2:9002 weight=2 max_conns=100 slow_start=30s;\n",
        "    server app.internal:8000 weight=1 max_conns=0 resolve;\n",
        "    outlier consecutive=7 interval=1500ms max_interval=1m max_ejected=34% errors=gateway;\n",
        "    outlier off;\n",
        "host example.com www.example.com {\n",
        "        return 410 \"it is \\\"gone\\\"\";\n",
        "        request_header set X-Host-B b;\n",
        "        index home.htm;\n",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        T_CHECK(__LINE__, strstr(d1, lines[i]) != NULL, "missing %s in\n%s", lines[i], d1);
    free(d1);
    atr_conf_free(c);

    /* and the defaults, spelled out */
    c = load(MINIMAL);
    T_CHECK(__LINE__, c != NULL, "%s", err);
    if (c == NULL)
        return;
    d1 = dump(c);
    static const char *const defaults = "# effective configuration of t.conf\n"
                                        "workers auto;\n"
                                        "error_log stderr info;\n"
                                        "access_log off;\n"
                                        "max_request_line 8k;\n"
                                        "max_header_size 32k;\n"
                                        "max_headers 100;\n"
                                        "max_body_size 1g;\n"
                                        "header_timeout 10s;\n"
                                        "body_timeout 1m;\n"
                                        "send_timeout 1m;\n"
                                        "keepalive_timeout 75s;\n"
                                        "keepalive_requests 1000;\n"
                                        "max_connections auto;\n"
                                        "drain_timeout 30s;\n"
                                        "buffer_size 16k;\n"
                                        "resolve_ttl_min 1s;\n"
                                        "resolve_ttl_max 5m;\n"
                                        "resolve_max 64;\n"
                                        "via atrium;\n"
                                        "underscores_in_headers off;\n"
                                        "ambiguous_paths reject;\n"
                                        "cgi_max_procs 64;\n"
                                        "stderr_log_rate 100;\n"
                                        "spool_dir /tmp;\n"
                                        "cgi_queue 256;\n"
                                        "cgi_timeout 30s;\n"
                                        "tls_handshake_timeout 10s;\n"
                                        "tls_ticket_rotate 1h;\n"
                                        "tls_session_cache shared 10m;\n"
                                        "heartbeat_interval 1s;\n"
                                        "heartbeat_max_servers 1024;\n"
                                        "\n"
                                        "listen 8080;\n"
                                        "\n"
                                        "host * {\n"
                                        "    route / {\n"
                                        "        return 200;\n"
                                        "    }\n"
                                        "}\n";
    T_CHECK(__LINE__, strcmp(d1, defaults) == 0, "got\n%s", d1);
    free(d1);
    atr_conf_free(c);
}

/* ---- bad configs: exact messages ------------------------------------------- */

#define H "host * { route / { return 200; } }\n"

static const struct {
    int line;
    const char *text;
    const char *msg; /* "@D" stands for the scratch directory */
} bad[] = {
    /* lexical and syntax */
    { __LINE__, "listen 8080\n}", "t.conf:2:1: unexpected '}', expected ';'" },
    { __LINE__, "listen 8080;\nhost * {\n  route / { return 200; }\n",
      "t.conf:2:8: unexpected end of file, expected '}'" },
    { __LINE__, "listen 8080;\nhost * { route / {\n return 200;",
      "t.conf:2:18: unexpected end of file, expected '}'" },
    { __LINE__, "listen 8080", "t.conf:1:12: unexpected end of file, expected ';'" },
    { __LINE__, "listen 8080;\n  via \"abc\n;", "t.conf:2:7: unterminated string" },
    { __LINE__, "via 'abc", "t.conf:1:5: unterminated string" },
    { __LINE__, "via \"a\\qb\";",
      "t.conf:1:7: invalid escape '\\q' in string (expected \\\\, \\\" or \\')" },
    { __LINE__, "{", "t.conf:1:1: unexpected '{', expected a directive name" },
    { __LINE__, "listen 8080;;", "t.conf:1:13: unexpected ';', expected a directive name" },
    { __LINE__, "\"listen\" 8080;",
      "t.conf:1:1: unexpected string \"listen\", expected a directive name" },
    { __LINE__, "listen 8080; }", "t.conf:1:14: unexpected '}', no block is open" },
    { __LINE__, "listen 80\x01\x00;", "t.conf:1:11: unexpected NUL byte" },
    /* directives, arguments, blocks */
    { __LINE__, MINIMAL "foo bar;", "t.conf:3:1: unknown directive 'foo' at top level" },
    { __LINE__, MINIMAL "upstream u {\n server 127.0.0.1:1;\n  foo 1;\n}",
      "t.conf:5:3: unknown directive 'foo' in upstream block" },
    { __LINE__, "listen 8080; host * { route / { return 200; } foo; }",
      "t.conf:1:47: unknown directive 'foo' in host block" },
    { __LINE__, "listen 8080; host * { route / { return 200; foo; } }",
      "t.conf:1:45: unknown directive 'foo' in route block" },
    { __LINE__, MINIMAL "server 127.0.0.1:1;",
      "t.conf:3:1: 'server' is not allowed at top level (it belongs in an upstream block)" },
    { __LINE__, "listen 8080; host * { route / { return 200; } proxy x; }",
      "t.conf:1:47: 'proxy' is not allowed in host block (it belongs in a route block)" },
    { __LINE__, "listen 8080 tls x;", "t.conf:1:17: 'listen' takes 1 or 2 arguments" },
    { __LINE__, "listen;", "t.conf:1:1: 'listen' takes 1 or 2 arguments" },
    { __LINE__, "workers;", "t.conf:1:1: 'workers' takes 1 argument" },
    { __LINE__, "workers 1 2;", "t.conf:1:11: 'workers' takes 1 argument" },
    { __LINE__, "host { }", "t.conf:1:1: 'host' takes at least 1 argument" },
    { __LINE__,
      "listen 8080; upstream u { server 127.0.0.1:1 backup resolve weight=1 max_conns=1 "
      "slow_start=1s x; }",
      "t.conf:1:96: 'server' takes 1 to 6 arguments" },
    { __LINE__, "upstream u;", "t.conf:1:1: 'upstream' takes a block, expected '{'" },
    { __LINE__, "listen 8080 { }", "t.conf:1:13: 'listen' takes no block, expected ';'" },
    { __LINE__, "workers 2;\nworkers 3;", "t.conf:2:1: duplicate 'workers' (first at t.conf:1:1)" },
    { __LINE__, "listen 8080; upstream u { server 127.0.0.1:1; balance random2; balance random2; }",
      "t.conf:1:64: duplicate 'balance' (first at t.conf:1:47)" },
    /* values */
    { __LINE__, "workers 0;",
      "t.conf:1:9: invalid value '0' for 'workers' (expected 1..1024 or auto)" },
    { __LINE__, "workers many;",
      "t.conf:1:9: invalid value 'many' for 'workers' (expected 1..1024 or auto)" },
    { __LINE__, "user no-such-user-here;", "t.conf:1:6: unknown user 'no-such-user-here'" },
    { __LINE__, "pid_file '';", "t.conf:1:10: 'pid_file' needs a path" },
    { __LINE__, "error_log stderr loud;",
      "t.conf:1:18: unknown log level 'loud' (expected debug, info, notice, warn, error or crit)" },
    { __LINE__, "access_log stdout xml;",
      "t.conf:1:19: unknown access log format 'xml' (expected combined, timed or json)" },
    { __LINE__, "access_log off json;", "t.conf:1:16: 'access_log off' takes no format" },
    { __LINE__, "max_request_line 8q;",
      "t.conf:1:18: invalid size '8q' (expected e.g. 512, 64k, 1m)" },
    { __LINE__, "max_request_line 2m;",
      "t.conf:1:18: 'max_request_line' must be between 64 and 1m" },
    { __LINE__, "buffer_size 1k;", "t.conf:1:13: 'buffer_size' must be between 4k and 1m" },
    { __LINE__, "max_body_size 99999999999999999999;",
      "t.conf:1:15: 'max_body_size' must be between 0 and 18446744073709551615" },
    { __LINE__, "header_timeout 99999999999999999999d;",
      "t.conf:1:16: 'header_timeout' must be between 1ms and 365d" },
    { __LINE__, "max_headers 99999999999999999999;",
      "t.conf:1:13: 'max_headers' must be between 1 and 256" },
    { __LINE__, "max_headers 257;", "t.conf:1:13: 'max_headers' must be between 1 and 256" },
    { __LINE__, "max_headers -1;",
      "t.conf:1:13: invalid number '-1' for 'max_headers' (expected 1..256)" },
    { __LINE__, "header_timeout 5x;",
      "t.conf:1:16: invalid duration '5x' (expected e.g. 750ms, 2s, 5m)" },
    { __LINE__, "header_timeout 0;", "t.conf:1:16: 'header_timeout' must be between 1ms and 365d" },
    { __LINE__, "drain_timeout 366d;", "t.conf:1:15: 'drain_timeout' must be between 0s and 365d" },
    { __LINE__, "via 'a b';", "t.conf:1:5: invalid via name 'a b' (expected a token or off)" },
    { __LINE__, "underscores_in_headers yes;",
      "t.conf:1:24: invalid value 'yes' for 'underscores_in_headers' (expected on or off)" },
    /* listen */
    { __LINE__, "listen localhost:80;",
      "t.conf:1:8: invalid listen address 'localhost:80' (expected e.g. 127.0.0.1:8080, "
      "[::1]:8080, *:8080 or 8080)" },
    { __LINE__, "listen 70000;",
      "t.conf:1:8: invalid listen address '70000' (expected e.g. 127.0.0.1:8080, [::1]:8080, "
      "*:8080 or 8080)" },
    { __LINE__, "listen 127.1:80;",
      "t.conf:1:8: invalid listen address '127.1:80' (expected e.g. 127.0.0.1:8080, [::1]:8080, "
      "*:8080 or 8080)" },
    { __LINE__, "listen ::1:80;",
      "t.conf:1:8: invalid listen address '::1:80' (expected e.g. 127.0.0.1:8080, [::1]:8080, "
      "*:8080 or 8080)" },
    { __LINE__, "listen 80 ssl;", "t.conf:1:11: unknown listen parameter 'ssl' (expected tls)" },
    /* TLS */
    { __LINE__, "listen 8443 tls;\n" H,
      "t.conf:1:1: listen 8443 tls: no host has a tls block (expected tls { certificate FILE; "
      "key FILE; } in a host)" },
    { __LINE__, "listen 80;\nhost * { tls { } route / { return 200; } }",
      "t.conf:2:10: tls block has no certificate (expected certificate FILE; key FILE;)" },
    { __LINE__, "listen 80;\nhost * { tls { certificate a.pem; } route / { return 200; } }",
      "t.conf:2:28: certificate a.pem has no key (expected key FILE; after it)" },
    { __LINE__, "listen 80;\nhost * { tls { certificate a; certificate b; key c; } route / { return 200; } }",
      "t.conf:2:31: certificate a has no key (expected key FILE; after each certificate)" },
    { __LINE__, "listen 80;\nhost * { tls { key k; certificate a; } route / { return 200; } }",
      "t.conf:2:16: key without a certificate before it" },
    { __LINE__, "listen 80;\nhost * { tls { certificate a; key k; client_verify required; } route / { return 200; } }",
      "t.conf:2:10: client_verify needs client_certificate FILE (the CAs client certificates must "
      "chain to)" },
    { __LINE__, "listen 80;\nhost * { tls { certificate a; key k; client_verify maybe; } route / { return 200; } }",
      "t.conf:2:52: invalid client_verify 'maybe' (expected off, optional or required)" },
    { __LINE__, "listen 80;\nhost * { tls { certificate a; key k; client_ocsp on; } route / { return 200; } }",
      "t.conf:2:10: client_ocsp needs client certificates (client_certificate FILE;)" },
    { __LINE__, "tls_session_cache shared 1k;\nlisten 80;\n" H,
      "t.conf:1:26: invalid tls_session_cache size '1k' (expected 64k to 64g, e.g. 10m)" },
    { __LINE__, "tls_session_cache memcached example.com:11211;\nlisten 80;\n" H,
      "t.conf:1:29: invalid memcached address 'example.com:11211' (expected IP:PORT, e.g. "
      "10.0.0.5:11211)" },
    { __LINE__, "tls_session_cache redis;\nlisten 80;\n" H,
      "t.conf:1:19: invalid tls_session_cache (expected off, shared SIZE or memcached "
      "ADDR:PORT...)" },
    { __LINE__, "listen 80;\nhost * { route / { tls { } return 200; } }",
      "t.conf:2:20: 'tls' is not allowed in route block (it belongs in a host block)" },
    { __LINE__, "listen 127.0.0.1:8080;\nlisten 127.0.0.1:8080 tls;",
      "t.conf:2:8: duplicate listen 127.0.0.1:8080 (first at t.conf:1:1)" },
    { __LINE__, "listen 8080;\n  listen *:8080;",
      "t.conf:2:10: duplicate listen *:8080 (first at t.conf:1:1)" },
    { __LINE__, "listen [::1]:80; listen [0:0::1]:80;",
      "t.conf:1:25: duplicate listen [0:0::1]:80 (first at t.conf:1:1)" },
    { __LINE__, H, "t.conf:2:1: no listen directive (expected e.g. listen 8080;)" },
    { __LINE__, "", "t.conf:1:1: no listen directive (expected e.g. listen 8080;)" },
    { __LINE__, "listen 8080;\n",
      "t.conf:2:1: no host block (expected e.g. host * { route / { ... } })" },
    /* upstream and server (unknown balance and protocol names: test_registries,
     * whose expected lists come from the registries) */
    { __LINE__, "listen 8080;\nupstream app { }\n" H, "t.conf:2:1: upstream 'app' has no server" },
    { __LINE__,
      "listen 8080; upstream a { server 127.0.0.1:1; } upstream a { server 127.0.0.1:2; }",
      "t.conf:1:58: duplicate upstream 'a' (first at t.conf:1:14)" },
    { __LINE__, "listen 8080; upstream a { server 127.0.0.1:1; server 127.0.0.1:1 backup; }",
      "t.conf:1:54: duplicate server 127.0.0.1:1 in upstream 'a' (first at t.conf:1:27)" },
    { __LINE__, "listen 8080; upstream a { server 127.0.0.1; }",
      "t.conf:1:34: invalid server address '127.0.0.1' (expected IP:PORT, [IPv6]:PORT, unix:/path "
      "or host:PORT)" },
    { __LINE__, "listen 8080; upstream a { server 127.0.0.1:0; }",
      "t.conf:1:34: invalid server address '127.0.0.1:0' (expected IP:PORT, [IPv6]:PORT, "
      "unix:/path or host:PORT)" },
    { __LINE__, "listen 8080; upstream a { server [::g]:80; }",
      "t.conf:1:34: invalid IPv6 address in '[::g]:80' (expected IP:PORT, [IPv6]:PORT, unix:/path "
      "or host:PORT)" },
    { __LINE__, "listen 8080; upstream a { server bad_host!:80; }",
      "t.conf:1:34: invalid server address 'bad_host!:80' (expected IP:PORT, [IPv6]:PORT, "
      "unix:/path or host:PORT)" },
    { __LINE__, "listen 8080; upstream a { server unix:; }",
      "t.conf:1:34: invalid unix socket path '' (1 to 107 bytes)" },
    { __LINE__, "listen 8080; upstream a { server unix:/x resolve; }",
      "t.conf:1:34: 'resolve' does not apply to unix sockets" },
    { __LINE__, "listen 8080;\nupstream a {\n    server app.internal:80;\n}",
      "t.conf:3:12: cannot resolve 'app.internal': DNS lookups are disabled" },
    { __LINE__, "listen 8080; upstream a { server 127.0.0.1:1 weight=0; }",
      "t.conf:1:46: 'weight' must be between 1 and 1000" },
    { __LINE__, "listen 8080; upstream a { server 127.0.0.1:1 weight=x; }",
      "t.conf:1:46: invalid number 'x' for 'weight' (expected 1..1000)" },
    { __LINE__, "listen 8080; upstream a { server 127.0.0.1:1 max_conns=1000001; }",
      "t.conf:1:46: 'max_conns' must be between 0 and 1000000" },
    { __LINE__, "listen 8080; upstream a { server 127.0.0.1:1 weight; }",
      "t.conf:1:46: unknown server parameter 'weight' (expected weight=N, max_conns=N, "
      "slow_start=DURATION, backup or resolve)" },
    { __LINE__, "listen 8080; upstream a { server 127.0.0.1:1 backup=1; }",
      "t.conf:1:46: unknown server parameter 'backup=1' (expected weight=N, max_conns=N, "
      "slow_start=DURATION, backup or resolve)" },
    { __LINE__, "listen 8080; upstream a { server 127.0.0.1:1 backup backup; }",
      "t.conf:1:53: duplicate server parameter 'backup'" },
    { __LINE__, "listen 8080; upstream a { server 127.0.0.1:1; keepalive_timeout 1x; }",
      "t.conf:1:65: invalid duration '1x' (expected e.g. 750ms, 2s, 5m)" },
    { __LINE__, "listen 8080; upstream a { server 127.0.0.1:1 slow_start=2h; }",
      "t.conf:1:46: invalid slow_start '2h' (expected a duration up to 1h, e.g. 30s; 0s = none)" },
    { __LINE__, "listen 8080; upstream a { server 127.0.0.1:1; outlier max_ejected=50; }",
      "t.conf:1:55: invalid outlier parameter 'max_ejected=50' (expected off, or "
      "consecutive=1..1000, interval=100ms..1h, max_interval=100ms..1d, max_ejected=1%..100%, "
      "errors=gateway|5xx)" },
    { __LINE__, "listen 8080; upstream a { server 127.0.0.1:1; outlier consecutive=0; }",
      "t.conf:1:55: invalid outlier parameter 'consecutive=0' (expected off, or "
      "consecutive=1..1000, interval=100ms..1h, max_interval=100ms..1d, max_ejected=1%..100%, "
      "errors=gateway|5xx)" },
    { __LINE__, "listen 8080; upstream a { server 127.0.0.1:1; outlier off 1; }",
      "t.conf:1:55: invalid outlier parameter 'off' (expected off, or "
      "consecutive=1..1000, interval=100ms..1h, max_interval=100ms..1d, max_ejected=1%..100%, "
      "errors=gateway|5xx)" },
    { __LINE__, "listen 8080; upstream a { server 127.0.0.1:1; outlier interval=10m; }",
      "t.conf:1:47: outlier max_interval is shorter than its interval" },
    { __LINE__, "listen 8080; upstream a { server 127.0.0.1:1; retries 101; }",
      "t.conf:1:55: 'retries' must be between 0 and 100" },
    /* host and route */
    { __LINE__, "listen 8080;\nhost * { }",
      "t.conf:2:1: host * has no route (expected route PREFIX { ... })" },
    { __LINE__,
      "listen 8080;\nhost * { route / { return 200; } }\nhost * { route / { return 200; } }",
      "t.conf:3:6: duplicate host name '*' (first at t.conf:2:1)" },
    { __LINE__,
      "listen 8080;\nhost a.com * { route / { return 200; } }\nhost b.com A.COM { route / { return "
      "200; } }",
      "t.conf:3:12: duplicate host name 'a.com' (first at t.conf:2:1)" },
    { __LINE__, "listen 8080; host a.com a.com { route / { return 200; } }",
      "t.conf:1:25: duplicate host name 'a.com' (first at t.conf:1:14)" },
    { __LINE__, "listen 8080; host a*b { route / { return 200; } }",
      "t.conf:1:19: invalid host name 'a*b' (expected e.g. example.com, *.example.com or *)" },
    { __LINE__, "listen 8080; host * { route api { return 200; } }",
      "t.conf:1:29: route prefix 'api' must start with '/' (or be *.EXT, e.g. *.php)" },
    { __LINE__, "listen 8080;\nhost * {\n route /a { return 200; }\n route /a { return 201; }\n}",
      "t.conf:4:8: duplicate route /a (first at t.conf:3:2)" },
    { __LINE__, "listen 8080; host * { route / { } }",
      "t.conf:1:23: route / has no handler (expected proxy, static, cgi, return or status)" },
    { __LINE__, "listen 8080; host * { route / { request_header remove X; } }",
      "t.conf:1:23: route / has no handler (expected proxy, static, cgi, return or status)" },
    { __LINE__, "listen 8080; host * { route / { return 200; static /tmp; } }",
      "t.conf:1:45: route / already has a handler ('return' at t.conf:1:33); a route takes exactly "
      "one of proxy, static, cgi, return or status" },
    { __LINE__, "listen 8080; host * { route / { return 200; return 201; } }",
      "t.conf:1:45: duplicate 'return' (first at t.conf:1:33)" },
    { __LINE__,
      "listen 8080; upstream app { server 127.0.0.1:1; }\nhost * { route / { proxy ap; } }",
      "t.conf:2:26: unknown upstream 'ap' in proxy" },
    { __LINE__, "listen 8080; host * { route / {\n  static /nope; } }",
      "t.conf:2:10: static root '/nope': No such file or directory" },
    { __LINE__, "listen 8080; host * { route / { static @D/file; } }",
      "t.conf:1:40: static root '@D/file': Not a directory" },
    { __LINE__, "listen 8080; host * { route / { return 200; index a; } }",
      "t.conf:1:45: 'index' only applies to static routes and proxy routes with a root" },
    { __LINE__, "listen 8080; upstream a { server 127.0.0.1:1; } host * { route / { return 200; root /srv; } }",
      "t.conf:1:80: 'root' only applies to proxy routes" },
    { __LINE__, "listen 8080; upstream a { server 127.0.0.1:1; } host * { route / { proxy a; root srv; } }",
      "t.conf:1:82: root 'srv' must be an absolute path" },
    { __LINE__, "listen 8080; host * { route / { static /tmp; index a/b; } }",
      "t.conf:1:52: invalid index 'a/b' (expected a file name)" },
    { __LINE__, "listen 8080; host * { route / { return 99; } }",
      "t.conf:1:40: invalid status '99' (expected 200..599)" },
    /* an interim status is not an answer; 204 and 304 have no body */
    { __LINE__, "listen 8080; host * { route / { return 100; } }",
      "t.conf:1:40: invalid status '100' (expected 200..599)" },
    { __LINE__, "listen 8080; host * { route / { return 204 oops; } }",
      "t.conf:1:44: status 204 has no body" },
    { __LINE__, "listen 8080; host * { route / { return 600; } }",
      "t.conf:1:40: invalid status '600' (expected 200..599)" },
    { __LINE__, "listen 8080; host * { route / { return 200 a b; } }",
      "t.conf:1:46: 'return' takes 1 or 2 arguments" },
    { __LINE__, "listen 8080; host * { route / { return 200; request_header put X y; } }",
      "t.conf:1:60: invalid operation 'put' for 'request_header' (expected set, add or remove)" },
    { __LINE__, "listen 8080; host * { route / { return 200; request_header set X; } }",
      "t.conf:1:45: 'request_header set' takes a name and a value" },
    { __LINE__, "listen 8080; host * { route / { return 200; response_header add X; } }",
      "t.conf:1:45: 'response_header add' takes a name and a value" },
    { __LINE__, "listen 8080; host * { route / { return 200; response_header remove X y; } }",
      "t.conf:1:70: 'response_header remove' takes only a name" },
    { __LINE__, "listen 8080; host * { request_header set 'X Y' 1; route / { return 200; } }",
      "t.conf:1:42: invalid header name 'X Y' (expected a token)" },
    { __LINE__, "listen 8080; host * { route / { return 200; request_header set X-A \"a\rb\"; } }",
      "t.conf:1:68: invalid header value (control character)" },
    { __LINE__,
      "listen 8080; host * { route / { return 200; request_header set Content-Length 1; } }",
      "t.conf:1:64: 'Content-Length' frames the message and cannot be changed with "
      "'request_header'" },
    /* includes (see also test_includes) */
    { __LINE__, "listen 8080;\n  include @D/missing.conf;",
      "t.conf:2:11: cannot open '@D/missing.conf': No such file or directory" },
    { __LINE__, "include;", "t.conf:1:1: 'include' takes 1 argument" },
    { __LINE__, "include a b;", "t.conf:1:1: 'include' takes 1 argument" },
    { __LINE__, "include x { }", "t.conf:1:11: 'include' takes no block, expected ';'" },
    { __LINE__, "include '';", "t.conf:1:9: empty include path" },
    { __LINE__, "include @D;", "t.conf:1:9: cannot open '@D': Is a directory" },
    /* heartbeats */
    { __LINE__, MINIMAL "heartbeat_listen 239.0.0.1;",
      "t.conf:3:18: invalid heartbeat_listen address '239.0.0.1' (expected IP:PORT, e.g. "
      "239.0.0.1:27999)" },
    { __LINE__, MINIMAL "heartbeat_send 0.0.0.0:27999;",
      "t.conf:3:16: heartbeat_send needs a destination, not the wildcard '0.0.0.0:27999' (a "
      "multicast group or a monitor's address)" },
    { __LINE__, MINIMAL "heartbeat_key @D/missing.key;",
      "t.conf:3:15: heartbeat_key '@D/missing.key': No such file or directory" },
    { __LINE__, MINIMAL "heartbeat_key @D/short.key;",
      "t.conf:3:15: heartbeat_key '@D/short.key': the key is 5 bytes (expected 16 to 4096)" },
    { __LINE__, MINIMAL "heartbeat_listen 239.0.0.1:27999; heartbeat_storage @D/none/hb.dat;",
      "t.conf:3:53: heartbeat_storage '@D/none/hb.dat': directory @D/none: No such file or "
      "directory" },
    { __LINE__, MINIMAL "heartbeat_storage @D/hb.dat;",
      "t.conf:3:19: heartbeat_storage needs heartbeat_listen (it records the beats received)" },
    { __LINE__, MINIMAL "heartbeat_interval 10ms;",
      "t.conf:3:20: 'heartbeat_interval' must be between 100ms and 365d" },
    { __LINE__, MINIMAL "heartbeat_max_servers 0;",
      "t.conf:3:23: 'heartbeat_max_servers' must be between 1 and 1000000" },
    { __LINE__, MINIMAL "heartbeat_send 10.0.0.1:1;\nheartbeat_send 10.0.0.1:2;",
      "t.conf:4:1: duplicate 'heartbeat_send' (first at t.conf:3:1)" },
    { __LINE__, "listen 8080;\ninclude @D/bad/*.conf;",
      "@D/bad/b.conf:2:3: unknown directive 'nope' at top level" },
    { __LINE__, "include @D/loop_a.conf;",
      "@D/loop_b.conf:1:9: include loop: '@D/loop_a.conf' is already being read" },
    { __LINE__, "include @D/self.conf;",
      "@D/self.conf:1:9: include loop: '@D/self.conf' is already being read" },
    { __LINE__, "include @D/deep0.conf;",
      "@D/deep15.conf:1:9: includes nested more than 16 deep (include loop?)" },
};

static void test_bad(void)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* the NUL case carries its length in the literal */
        const char *text = bad[i].text;
        char *want = subst(bad[i].msg);
        atr_conf_t *c;
        if (strncmp(text, "listen 80\x01", 10) == 0) {
            c = atr_conf_load_string_ex("t.conf", text, 12, ATR_CONF_NO_DNS, err, sizeof(err));
        } else {
            c = load(text);
        }
        T_CHECK(bad[i].line, c == NULL, "loaded, expected %s", want);
        T_CHECK(bad[i].line, strcmp(err, want) == 0, "\n  got  %s\n  want %s", err, want);
        T_CHECK(bad[i].line, strchr(err, '\n') == NULL, "newline in %s", err);
        atr_conf_free(c);
        free(want);
    }
}

/* `balance` and `protocol` take exactly the names of their registry: each
 * loads as that entry and dumps as its name; an unknown one is refused with
 * the registry's names listed; the default is the registry's first entry.
 * error_log takes debug..crit as named by the log's own table. */
/* The ops pointer at offset `field` of the first upstream. */
static const void *upstream_ops(const atr_conf_t *c, size_t field)
{
    return *(const void *const *)(const void *)((const char *)&c->upstreams[0] + field);
}

static void registry_directive(int line, const char *directive, const atr_registry_t *reg,
                               size_t field)
{
    char text[256], want[256], names[128];
    for (size_t i = 0; i < reg->n; i++) {
        const char *name = atr_registry_name(reg->entries[i]);
        snprintf(text, sizeof(text),
                 "listen 8080; upstream u { %s %s; server 127.0.0.1:1; }\n"
                 "host * { route / { proxy u; } }",
                 directive, name);
        atr_conf_t *c = load(text);
        T_CHECK(line, c != NULL, "%s %s: %s", directive, name, err);
        if (c == NULL)
            continue;
        T_CHECK(line, upstream_ops(c, field) == reg->entries[i], "%s %s: another entry", directive,
                name);
        char *d = dump(c);
        snprintf(want, sizeof(want), "    %s %s;\n", directive, name);
        T_CHECK(line, strstr(d, want) != NULL, "%s %s: not in dump:\n%s", directive, name, d);
        free(d);
        atr_conf_free(c);
    }
    atr_conf_t *c = load("listen 8080; upstream u { server 127.0.0.1:1; }\n"
                         "host * { route / { proxy u; } }");
    T_CHECK(line, c != NULL, "%s", err);
    if (c != NULL) {
        T_CHECK(line, upstream_ops(c, field) == reg->entries[0], "%s: default is not the first entry",
                directive);
        atr_conf_free(c);
    }
    snprintf(text, sizeof(text), "listen 8080; upstream u { %s nope; }", directive);
    snprintf(want, sizeof(want), "t.conf:1:%zu: unknown %s 'nope' (expected %s)",
             27 + strlen(directive) + 1, reg->kind, atr_registry_names(reg, names, sizeof(names)));
    c = load(text);
    T_CHECK(line, c == NULL && strcmp(err, want) == 0, "\n  got  %s\n  want %s", err, want);
    atr_conf_free(c);
}

static void test_registries(void)
{
    registry_directive(__LINE__, "balance", &atr_lb_registry,
                       offsetof(atr_conf_upstream_t, balance));
    registry_directive(__LINE__, "protocol", &atr_backend_registry,
                       offsetof(atr_conf_upstream_t, protocol));
    for (enum atr_log_level l = ATR_LOG_DEBUG; l <= ATR_LOG_ALERT; l++) {
        char text[128], want[64];
        snprintf(text, sizeof(text), "error_log stderr %s; listen 8080;\n"
                 "host * { route / { return 204; } }", atr_log_level_name(l));
        atr_conf_t *c = load(text);
        if (l == ATR_LOG_ALERT) { /* never a threshold the config took */
            T_CHECK(__LINE__, c == NULL && strstr(err, "unknown log level 'alert'") != NULL,
                    "%s", err);
        } else {
            T_CHECK(__LINE__, c != NULL && c->error_level == l, "%s: %s", text, err);
        }
        if (c != NULL) {
            char *d = dump(c);
            snprintf(want, sizeof(want), "error_log stderr %s;\n", atr_log_level_name(l));
            T_CHECK(__LINE__, strstr(d, want) != NULL, "not in dump:\n%s", d);
            free(d);
        }
        atr_conf_free(c);
    }
}

/* Nesting is bounded before the grammar's stack is. */
static void test_nesting(void)
{
    char text[256] = "";
    for (int i = 0; i < 33; i++)
        strcat(text, "a {");
    atr_conf_t *c = load(text);
    T_CHECK(__LINE__, c == NULL && strcmp(err, "t.conf:1:99: blocks nested more than 32 deep") == 0,
            "%s", err);
    text[96] = '\0'; /* 32 levels: parses, then fails on the directive */
    c = load(text);
    T_CHECK(__LINE__,
            c == NULL && strcmp(err, "t.conf:1:96: unexpected end of file, expected '}'") == 0,
            "%s", err);
}

/* ---- includes ----------------------------------------------------------------- */

static void test_includes(void)
{
    char path[PATH_MAX * 2];
    atr_conf_t *c;

    /* relative globs from a file, sorted order, includes inside blocks */
    mkd("site");
    mkd("site/conf.d");
    put("site/main.conf", "include conf.d/*.conf;\n"
                          "include conf.d/*.none; # no match: fine\n"
                          "upstream app {\n    include servers.inc;\n}\n"
                          "host * { route / { proxy app; } }\n");
    put("site/conf.d/b.conf", "listen 8002;\n");
    put("site/conf.d/a.conf", "listen 8001;\n# a comment\ninclude ../more/c.conf;\n");
    put("site/conf.d/c.txt", "this is not included;\n");
    mkd("site/more");
    put("site/more/c.conf", "listen 8003;");
    put("site/servers.inc", "server 127.0.0.1:9001;\nserver 127.0.0.1:9002;\n");
    snprintf(path, sizeof(path), "%s/site/main.conf", dir);
    c = atr_conf_load(path, err, sizeof(err));
    T_CHECK(__LINE__, c != NULL, "%s", err);
    if (c != NULL) {
        T_CHECK(__LINE__, c->nlistens == 3, "%d", c->nlistens);
        static const unsigned ports[] = { 8001, 8003, 8002 }; /* a.conf includes c.conf */
        for (int i = 0; i < c->nlistens && i < 3; i++)
            T_CHECK(__LINE__, port_of(&c->listens[i].addr) == ports[i], "%d: %u", i,
                    port_of(&c->listens[i].addr));
        T_CHECK(__LINE__, c->nlistens == 3 && strstr(c->listens[0].pos.file, "conf.d/a.conf"), "%s",
                c->listens[0].pos.file);
        T_CHECK(__LINE__, c->nlistens == 3 && strstr(c->listens[1].pos.file, "more/c.conf"), "%s",
                c->listens[1].pos.file);
        T_CHECK(__LINE__, c->nupstreams == 1 && c->upstreams[0].nservers == 2, "servers");
        T_CHECK(__LINE__, strcmp(c->path, path) == 0, "%s", c->path);
        atr_conf_free(c);
    }

    /* an error inside an included file names that file */
    put("site/conf.d/d.conf", "listen 8004;\nlisten 8001;\n");
    c = atr_conf_load(path, err, sizeof(err));
    char want[PATH_MAX * 5];
    snprintf(
        want, sizeof(want),
        "%s/site/conf.d/d.conf:2:8: duplicate listen 8001 (first at %s/site/conf.d/a.conf:1:1)",
        dir, dir);
    T_CHECK(__LINE__, c == NULL && strcmp(err, want) == 0, "\n  got  %s\n  want %s", err, want);
    atr_conf_free(c);

    /* the main file itself */
    snprintf(path, sizeof(path), "%s/site/none.conf", dir);
    c = atr_conf_load(path, err, sizeof(err));
    snprintf(want, sizeof(want), "%s:1:1: cannot open '%s': No such file or directory", path, path);
    T_CHECK(__LINE__, c == NULL && strcmp(err, want) == 0, "\n  got  %s\n  want %s", err, want);

    /* a relative main path: includes resolve against its directory */
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) != NULL && chdir(dir) == 0) {
        c = atr_conf_load("site/main.conf", err, sizeof(err));
        T_CHECK(__LINE__, c == NULL, "d.conf still duplicates");
        T_CHECK(__LINE__,
                strcmp(err, "site/conf.d/d.conf:2:8: duplicate listen 8001 (first at "
                            "site/conf.d/a.conf:1:1)") == 0,
                "%s", err);
        atr_conf_free(c);
        /* load_string: includes relative to the current directory */
        const char *s = "include site/more/c.conf;\n" H;
        c = atr_conf_load_string("s.conf", s, strlen(s), err, sizeof(err));
        T_CHECK(__LINE__, c != NULL && c->nlistens == 1, "%s", err);
        atr_conf_free(c);
        if (chdir(cwd) != 0)
            perror("chdir");
    }
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/atr-test-conf-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
    mkd("www");
    put("file", "x");
    put("hb.key", "0123456789abcdef-secret\n\n");
    put("short.key", "short\n");
    mkd("bad");
    put("bad/a.conf", "workers 2;\n");
    put("bad/b.conf", "\n  nope;\n");
    char *t = subst("include @D/loop_b.conf;\n");
    put("loop_a.conf", t);
    free(t);
    t = subst("include @D/loop_a.conf;\n");
    put("loop_b.conf", t);
    free(t);
    t = subst("include @D/self.conf;\n");
    put("self.conf", t);
    free(t);
    for (int i = 0; i < 20; i++) { /* 20 distinct files, each including the next */
        char name[32], text[PATH_MAX * 2];
        snprintf(name, sizeof(name), "deep%d.conf", i);
        snprintf(text, sizeof(text), "include %s/deep%d.conf;\n", dir, i + 1);
        put(name, text);
    }
}

static void teardown(void)
{
    char cmd[PATH_MAX + 16];
    if (strncmp(dir, "/tmp/atr-test-conf-", 19) != 0)
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

int main(void)
{
    atr_conf_use_protocols(&atr_backend_registry); /* as main.c does */
    setup();
    test_values();
    test_defaults();
    test_full();
    test_good();
    test_dump();
    test_bad();
    test_registries();
    test_nesting();
    test_includes();
    teardown();
    T_DONE();
}
