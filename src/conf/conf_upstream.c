/* The network side of the config: `listen` addresses (main context) and
 * `upstream` blocks with their `server`s. Addresses are checked and resolved
 * here, at load, so that a bad one is a config error with a position. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "conf/conf_priv.h"
#include "base/util.h"

/* ---- addresses ------------------------------------------------------------ */

/* "HOST:PORT" or "[V6]:PORT" into host (without brackets) and port. */
static int split_hostport(const char *s, char *host, size_t hostsz, int *bracketed, unsigned *port)
{
    const char *colon;
    uint64_t p;
    *bracketed = s[0] == '[';
    if (*bracketed) {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        colon = close + 1;
        s++;
        if ((size_t)(close - s) >= hostsz)
            return -1;
        memcpy(host, s, (size_t)(close - s));
        host[close - s] = '\0';
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || (size_t)(colon - s) >= hostsz)
            return -1;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    if (atr__conf_uint(colon + 1, &p) < 0 || p < 1 || p > 65535)
        return -1;
    *port = (unsigned)p;
    return 0;
}

static int numeric_addr(const char *host, int family, unsigned port, struct sockaddr_storage *ss,
                        socklen_t *len)
{
    struct addrinfo hints, *res = NULL;
    struct in_addr a4;
    if (family == AF_INET && inet_pton(AF_INET, host, &a4) != 1)
        return -1; /* only dotted quads: getaddrinfo would take "127.1" and "0x7f.1" */
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST;
    if (host[0] == '\0' || getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL)
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)(void *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons((uint16_t)port);
    return 0;
}

static int is_hostname(const char *s)
{
    if (*s == '\0' || *s == '-' || *s == '.')
        return 0;
    for (; *s != '\0'; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' && *s != '_')
            return 0;
    return 1;
}

#define LISTEN_EXPECTED "(expected e.g. 127.0.0.1:8080, [::1]:8080, *:8080 or 8080)"

static int parse_listen_addr(const char *s, atr_conf_listen_t *l)
{
    char host[256];
    int br;
    unsigned port;
    uint64_t p;
    if (atr__conf_uint(s, &p) == 0) {
        if (p < 1 || p > 65535)
            return -1;
        strcpy(host, "*");
        port = (unsigned)p;
        br = 0;
    } else if (split_hostport(s, host, sizeof(host), &br, &port) < 0) {
        return -1;
    }
    if (!br && strcmp(host, "*") == 0)
        strcpy(host, "0.0.0.0");
    return numeric_addr(host, br ? AF_INET6 : AF_INET, port, &l->addr, &l->addrlen);
}

int atr__conf_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[256];
    int br;
    unsigned port;
    if (split_hostport(s, host, sizeof(host), &br, &port) < 0)
        return -1;
    return numeric_addr(host, br ? AF_INET6 : AF_INET, port, ss, len);
}

static int same_sockaddr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return 0;
}

int atr__conf_d_listen(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                       const atr__conf_directive_t *d, void *obj)
{
    atr_conf_t *c = obj;
    atr_conf_listen_t *l = &c->listens[c->nlistens];
    const atr__conf_tok_t *t = &n->args[0];
    (void)d;
    memset(l, 0, sizeof(*l));
    if (parse_listen_addr(t->s, l) < 0)
        return atr__conf_fail(b, &t->pos, "invalid listen address '%s' " LISTEN_EXPECTED, t->s);
    if (n->nargs == 2) {
        if (strcmp(n->args[1].s, "tls") != 0)
            return atr__conf_fail(b, &n->args[1].pos,
                                  "unknown listen parameter '%s' (expected tls)", n->args[1].s);
        l->tls = 1;
    }
    for (int i = 0; i < c->nlistens; i++) {
        const atr_conf_pos_t *f = &c->listens[i].pos;
        if (same_sockaddr(&c->listens[i].addr, &l->addr))
            return atr__conf_fail(b, &t->pos, "duplicate listen %s (first at %s:%d:%d)", t->s,
                                  f->file, f->line, f->col);
    }
    l->text = atr__conf_tokdup(b, t);
    l->pos = n->name.pos;
    c->nlistens++;
    return 0;
}

/* ---- upstream ------------------------------------------------------------- */

/* Until the layer that implements protocols registers them, none is known. */
static const atr_registry_t no_protocols = { "protocol", NULL, 0 };
static const atr_registry_t *protocols = &no_protocols;

void atr_conf_use_protocols(const atr_registry_t *reg)
{
    protocols = reg != NULL ? reg : &no_protocols;
}

/* The entry of reg named by t into *out, or the error listing every name the
 * registry holds. */
static int registry_arg(atr__conf_bctx_t *b, const atr__conf_tok_t *t, const atr_registry_t *reg,
                        const void **out)
{
    char names[256];
    *out = atr_registry_find(reg, t->s);
    if (*out != NULL)
        return 0;
    return atr__conf_fail(b, &t->pos, "unknown %s '%s' (expected %s)", reg->kind, t->s,
                          atr_registry_names(reg, names, sizeof(names)));
}

static int d_balance(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                     void *obj)
{
    atr_conf_upstream_t *u = obj;
    const char *argv[8];
    char msg[160];
    const void *m;
    int bad;
    (void)d;
    if (registry_arg(b, &n->args[0], &atr_lb_registry, &m) < 0)
        return -1;
    for (int i = 1; i < n->nargs; i++)
        argv[i - 1] = n->args[i].s;
    if (atr_lb_parse_args(m, &u->balance_args, argv, n->nargs - 1, &bad, msg, sizeof(msg)) < 0)
        return atr__conf_fail(b, &n->args[bad + 1 < n->nargs ? bad + 1 : 0].pos, "%s", msg);
    u->balance = m;
    return 0;
}

static int d_protocol(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                      const atr__conf_directive_t *d, void *obj)
{
    atr_conf_upstream_t *u = obj;
    const void *p;
    (void)d;
    if (registry_arg(b, &n->args[0], protocols, &p) < 0)
        return -1;
    u->protocol = p;
    return 0;
}

static int server_param(atr__conf_bctx_t *b, const atr__conf_tok_t *t, atr_conf_server_t *s,
                        unsigned *seen)
{
    /* the first three take a value */
    static const char *const names[] = { "weight", "max_conns", "slow_start", "backup", "resolve",
                                         NULL };
    const char *eq = strchr(t->s, '=');
    size_t klen = eq != NULL ? (size_t)(eq - t->s) : t->len;
    int i;
    for (i = 0; names[i] != NULL; i++)
        if (strlen(names[i]) == klen && memcmp(names[i], t->s, klen) == 0)
            break;
    if (names[i] == NULL || (i < 3) != (eq != NULL))
        return atr__conf_fail(
            b, &t->pos,
            "unknown server parameter '%s' (expected weight=N, max_conns=N, slow_start=DURATION, "
            "backup or resolve)",
            t->s);
    if (*seen & (1u << i))
        return atr__conf_fail(b, &t->pos, "duplicate server parameter '%s'", names[i]);
    *seen |= 1u << i;
    atr__conf_tok_t v = *t;
    uint64_t x;
    v.s = eq != NULL ? eq + 1 : t->s;
    switch (i) {
    case 0:
        if (atr__conf_number(b, &v, "weight", 1, 1000, &x) < 0)
            return -1;
        s->weight = (int)x;
        return 0;
    case 1:
        if (atr__conf_number(b, &v, "max_conns", 0, 1000000, &x) < 0)
            return -1;
        s->max_conns = (int)x;
        return 0;
    case 2:
        if (atr_conf_parse_duration(v.s, &x) < 0 || x > 3600000)
            return atr__conf_fail(b, &t->pos, "invalid slow_start '%s' (expected a duration "
                                  "up to 1h, e.g. 30s; 0s = none)", v.s);
        s->slow_start = x;
        return 0;
    case 3: s->backup = 1; return 0;
    default: s->resolve = 1; return 0;
    }
}

#define SERVER_EXPECTED "(expected IP:PORT, [IPv6]:PORT, unix:/path or host:PORT)"

static int server_addr(atr__conf_bctx_t *b, const atr__conf_tok_t *t, atr_conf_server_t *s)
{
    char host[256];
    int br;
    unsigned port;
    if (strncmp(t->s, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)(void *)&s->addr;
        size_t plen = t->len - 5;
        if (plen == 0 || plen >= sizeof(un->sun_path))
            return atr__conf_fail(b, &t->pos, "invalid unix socket path '%s' (1 to %zu bytes)",
                                  t->s + 5, sizeof(un->sun_path) - 1);
        if (s->resolve)
            return atr__conf_fail(b, &t->pos, "'resolve' does not apply to unix sockets");
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, t->s + 5, plen + 1);
        s->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
        return 0;
    }
    if (split_hostport(t->s, host, sizeof(host), &br, &port) < 0)
        return atr__conf_fail(b, &t->pos, "invalid server address '%s' " SERVER_EXPECTED, t->s);
    int numeric = numeric_addr(host, br ? AF_INET6 : AF_INET, port, &s->addr, &s->addrlen) == 0;
    if (br && !numeric)
        return atr__conf_fail(b, &t->pos, "invalid IPv6 address in '%s' " SERVER_EXPECTED, t->s);
    if (!numeric && !is_hostname(host))
        return atr__conf_fail(b, &t->pos, "invalid server address '%s' " SERVER_EXPECTED, t->s);
    if (s->resolve) { /* the DNS pool fills the members in; no address now */
        memset(&s->addr, 0, sizeof(s->addr));
        s->addrlen = 0;
        s->host = atr__conf_strdup(b->a, host);
        s->port = port;
        return 0;
    }
    if (numeric)
        return 0;
    if (b->flags & ATR_CONF_NO_DNS)
        return atr__conf_fail(b, &t->pos, "cannot resolve '%s': DNS lookups are disabled", host);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || res == NULL)
        return atr__conf_fail(b, &t->pos, "cannot resolve '%s': %s", host,
                              rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    memcpy(&s->addr, res->ai_addr, res->ai_addrlen);
    s->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    if (s->addr.ss_family == AF_INET)
        ((struct sockaddr_in *)(void *)&s->addr)->sin_port = htons((uint16_t)port);
    else if (s->addr.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)(void *)&s->addr)->sin6_port = htons((uint16_t)port);
    return 0;
}

static int d_server(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                    void *obj)
{
    atr_conf_upstream_t *u = obj;
    atr_conf_server_t *s = &u->servers[u->nservers];
    unsigned seen = 0;
    (void)d;
    memset(s, 0, sizeof(*s));
    s->weight = 1;
    for (int i = 1; i < n->nargs; i++)
        if (server_param(b, &n->args[i], s, &seen) < 0)
            return -1;
    if (server_addr(b, &n->args[0], s) < 0)
        return -1;
    for (int i = 0; i < u->nservers; i++) {
        const atr_conf_pos_t *f = &u->servers[i].pos;
        if (strcmp(u->servers[i].text, n->args[0].s) == 0)
            return atr__conf_fail(b, &n->args[0].pos,
                                  "duplicate server %s in upstream '%s' (first at %s:%d:%d)",
                                  n->args[0].s, u->name, f->file, f->line, f->col);
    }
    s->text = atr__conf_tokdup(b, &n->args[0]);
    s->pos = n->name.pos;
    u->nservers++;
    return 0;
}

int atr_conf_server_parse(const char *const *words, int n, atr_conf_server_t *out, char *err,
                          size_t errlen)
{
    atr__conf_arena_t a = { 0 };
    atr__conf_bctx_t b = { .a = &a, .flags = ATR_CONF_NO_DNS, .err = err, .errlen = errlen };
    unsigned seen = 0;
    int rc = 0;
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(out, 0, sizeof *out);
    out->weight = 1;
    if (n < 1)
        return atr__conf_err(err, errlen, NULL, "a server needs an address " SERVER_EXPECTED);
    for (int i = 0; i < n && rc == 0; i++) {
        /* no position: the message is the operator's answer, not a file's */
        atr__conf_tok_t t = { .s = words[i], .len = strlen(words[i]) };
        if (i > 0)
            rc = server_param(&b, &t, out, &seen);
        else if (strncmp(words[0], "unix:", 5) != 0 && atr__conf_parse_addr(words[0], &ss, &sl) < 0)
            rc = atr__conf_err(err, errlen, NULL, "'%s' is not an address (expected IP:PORT, "
                               "[IPv6]:PORT or unix:/path; a name to resolve belongs in the "
                               "config file)", words[0]);
    }
    if (rc == 0 && out->resolve)
        rc = atr__conf_err(err, errlen, NULL, "'resolve' belongs in the config file");
    atr__conf_tok_t t = { .s = words[0], .len = strlen(words[0]) };
    if (rc == 0)
        rc = server_addr(&b, &t, out);
    atr__conf_arena_free(&a);
    if (rc < 0)
        return -1;
    out->text = atr_xstrdup(words[0]);
    return 0;
}

/* spawn COMMAND [ARG...] [children=N] */
static int d_spawn(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                   void *obj)
{
    atr_conf_upstream_t *u = obj;
    int argc = 0;
    (void)d;
    if (n->args[0].s[0] != '/')
        return atr__conf_fail(b, &n->args[0].pos, "spawn command '%s' must be an absolute path",
                              n->args[0].s);
    u->spawn_argv = atr__conf_alloc(b->a, sizeof(char *) * (size_t)(n->nargs + 1));
    u->spawn_children = 1;
    for (int i = 0; i < n->nargs; i++) {
        const atr__conf_tok_t *t = &n->args[i];
        if (i > 0 && strncmp(t->s, "children=", 9) == 0) {
            uint64_t v;
            if (atr__conf_uint(t->s + 9, &v) < 0 || v < 1 || v > 1024)
                return atr__conf_fail(b, &t->pos, "invalid '%s' (expected children=1..1024)",
                                      t->s);
            u->spawn_children = (int)v;
            continue;
        }
        u->spawn_argv[argc++] = atr__conf_tokdup(b, t);
    }
    u->spawn_argv[argc] = NULL;
    u->spawn_pos = n->name.pos;
    return 0;
}

/* A request target to write as is: visible ASCII only. */
static int plain_target(const char *s)
{
    for (; *s; s++)
        if (*s <= 0x20 || *s >= 0x7f)
            return 0;
    return 1;
}

/* health_check [path=/P] [interval=D] [timeout=D] [fails=N] [passes=N] */
static int d_health_check(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                          const atr__conf_directive_t *d, void *obj)
{
    atr_conf_upstream_t *u = obj;
    (void)d;
    u->hc_path = atr__conf_strdup(b->a, "/");
    u->hc_interval = 2000;
    u->hc_timeout = 1000;
    u->hc_fails = 3;
    u->hc_passes = 2;
    for (int i = 0; i < n->nargs; i++) {
        const atr__conf_tok_t *t = &n->args[i];
        const char *eq = strchr(t->s, '=');
        uint64_t v;
        size_t k = eq ? (size_t)(eq - t->s) : 0;
        if (eq && k == 4 && strncmp(t->s, "path", 4) == 0 && eq[1] == '/' && plain_target(eq + 1))
            u->hc_path = atr__conf_strdup(b->a, eq + 1);
        else if (eq && k == 8 && strncmp(t->s, "interval", 8) == 0 &&
                 atr_conf_parse_duration(eq + 1, &v) == 0 && v >= 100 && v <= 3600000)
            u->hc_interval = v;
        else if (eq && k == 7 && strncmp(t->s, "timeout", 7) == 0 &&
                 atr_conf_parse_duration(eq + 1, &v) == 0 && v >= 10 && v <= 60000)
            u->hc_timeout = v;
        else if (eq && k == 5 && strncmp(t->s, "fails", 5) == 0 &&
                 atr__conf_uint(eq + 1, &v) == 0 && v >= 1 && v <= 100)
            u->hc_fails = (int)v;
        else if (eq && k == 6 && strncmp(t->s, "passes", 6) == 0 &&
                 atr__conf_uint(eq + 1, &v) == 0 && v >= 1 && v <= 100)
            u->hc_passes = (int)v;
        else
            return atr__conf_fail(b, &t->pos, "invalid health_check parameter '%s' (expected "
                                  "path=/PATH, interval=100ms..1h, timeout=10ms..1m, fails=1..100 "
                                  "or passes=1..100)", t->s);
    }
    return 0;
}

/* One `outlier` parameter KEY=VALUE into *o: 0, or -1 (the caller reports). */
static int outlier_param(const char *s, atr_lb_outlier_t *o)
{
    const char *eq = strchr(s, '=');
    size_t k = eq ? (size_t)(eq - s) : 0;
    uint64_t v;
    if (eq == NULL)
        return -1;
    if (k == 11 && strncmp(s, "consecutive", k) == 0 && atr__conf_uint(eq + 1, &v) == 0 &&
        v >= 1 && v <= 1000)
        o->consecutive = (int)v;
    else if (k == 8 && strncmp(s, "interval", k) == 0 &&
             atr_conf_parse_duration(eq + 1, &v) == 0 && v >= 100 && v <= 3600000)
        o->interval = v;
    else if (k == 12 && strncmp(s, "max_interval", k) == 0 &&
             atr_conf_parse_duration(eq + 1, &v) == 0 && v >= 100 && v <= 86400000)
        o->max_interval = v;
    else if (k == 6 && strncmp(s, "errors", k) == 0 &&
             (strcmp(eq + 1, "5xx") == 0 || strcmp(eq + 1, "gateway") == 0))
        o->all_5xx = eq[1] == '5';
    else if (k == 11 && strncmp(s, "max_ejected", k) == 0) {
        char num[8];
        size_t n = strlen(eq + 1);
        if (n < 2 || n > sizeof num || eq[n] != '%')
            return -1;
        memcpy(num, eq + 1, n - 1);
        num[n - 1] = '\0';
        if (atr__conf_uint(num, &v) < 0 || v < 1 || v > 100)
            return -1;
        o->max_ejected = (int)v;
    } else
        return -1;
    return 0;
}

/* outlier off | outlier [consecutive=N] [interval=D] [max_interval=D] [max_ejected=P%] */
static int d_outlier(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                     void *obj)
{
    atr_conf_upstream_t *u = obj;
    (void)d;
    if (n->nargs == 1 && strcmp(n->args[0].s, "off") == 0) {
        u->outlier.consecutive = 0;
        return 0;
    }
    if (u->outlier.consecutive == 0) /* `outlier off;` then `outlier ...;`: the defaults again */
        u->outlier.consecutive = 5;
    for (int i = 0; i < n->nargs; i++)
        if (outlier_param(n->args[i].s, &u->outlier) < 0)
            return atr__conf_fail(b, &n->args[i].pos, "invalid outlier parameter '%s' (expected "
                                  "off, or consecutive=1..1000, interval=100ms..1h, "
                                  "max_interval=100ms..1d, max_ejected=1%%..100%%, "
                                  "errors=gateway|5xx)", n->args[i].s);
    if (u->outlier.max_interval < u->outlier.interval)
        return atr__conf_fail(b, &n->name.pos, "outlier max_interval is shorter than its interval");
    return 0;
}

/* keepalive auto|N */
static int d_keepalive(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                       const atr__conf_directive_t *d, void *obj)
{
    atr_conf_upstream_t *u = obj;
    uint64_t v;
    (void)d;
    if (strcmp(n->args[0].s, "auto") == 0) {
        u->keepalive = ATR_KEEPALIVE_AUTO;
        return 0;
    }
    if (atr__conf_uint(n->args[0].s, &v) < 0 || v > 10000)
        return atr__conf_fail(b, &n->args[0].pos, "invalid value '%s' for 'keepalive' (expected "
                              "auto or 0..10000)", n->args[0].s);
    u->keepalive = (int)v;
    return 0;
}

static void upstream_defaults(atr_conf_upstream_t *u)
{
    u->balance = atr_lb_ops_at(0);
    u->protocol = protocols->n > 0 ? protocols->entries[0] : NULL;
    u->connect_timeout = 2000;
    u->read_timeout = 60000;
    u->send_timeout = 60000;
    u->keepalive = ATR_KEEPALIVE_AUTO;
    u->keepalive_timeout = 60000;
    u->keepalive_requests = 1000;
    u->queue = 128;
    u->queue_timeout = 5000;
    u->retries = 2;
    u->tls_verify = 1;
    u->fail_timeout = 10000;
    u->outlier.consecutive = 5;
    u->outlier.interval = 10000;
    u->outlier.max_interval = 300000;
    u->outlier.max_ejected = 50;
}

int atr__conf_d_upstream(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                         const atr__conf_directive_t *d, void *obj)
{
    atr_conf_t *c = obj;
    atr_conf_upstream_t *u = &c->upstreams[c->nupstreams];
    const atr__conf_tok_t *t = &n->args[0];
    (void)d;
    if (t->len == 0)
        return atr__conf_fail(b, &t->pos, "empty upstream name");
    for (int i = 0; i < c->nupstreams; i++) {
        const atr_conf_pos_t *f = &c->upstreams[i].pos;
        if (strcmp(c->upstreams[i].name, t->s) == 0)
            return atr__conf_fail(b, &t->pos, "duplicate upstream '%s' (first at %s:%d:%d)", t->s,
                                  f->file, f->line, f->col);
    }
    memset(u, 0, sizeof(*u)); /* an upstream that failed before may have left its slot used */
    upstream_defaults(u);
    u->name = atr__conf_tokdup(b, t);
    u->pos = n->name.pos;
    int ns = atr__conf_count(n->child, "server");
    u->servers = atr__conf_alloc(b->a, sizeof(*u->servers) * (size_t)(ns > 0 ? ns : 1));
    if (atr__conf_run_block(b, ATR__CONF_UPSTREAM, n->child, u) < 0)
        return -1;
    if (u->nservers == 0)
        return atr__conf_fail(b, &n->name.pos, "upstream '%s' has no server", u->name);
    if (u->spawn_argv != NULL && (u->nservers != 1 || u->servers[0].resolve))
        return atr__conf_fail(b, &u->spawn_pos,
                              "'spawn' needs exactly one server, a literal address: the socket "
                              "Atrium creates for the children");
    c->nupstreams++;
    return 0;
}

/* ---- table ---------------------------------------------------------------- */

#define UP atr_conf_upstream_t
const atr__conf_directive_t atr__conf_upstream_tab[] = {
    { "balance", 1, 8, 0, 0, d_balance, ATR__CONF_NONE, 0, 0, 0 },
    ATR__CONF_ONE("protocol", d_protocol),
    { "spawn", 1, 64, 0, 0, d_spawn, ATR__CONF_NONE, 0, 0, 0 },
    { "server", 1, 6, 0, 1, d_server, ATR__CONF_NONE, 0, 0, 0 },
    ATR__CONF_DUR("connect_timeout", UP, connect_timeout, 1),
    ATR__CONF_DUR("read_timeout", UP, read_timeout, 1),
    ATR__CONF_DUR("send_timeout", UP, send_timeout, 1),
    ATR__CONF_DUR("keepalive_timeout", UP, keepalive_timeout, 1),
    ATR__CONF_DUR("queue_timeout", UP, queue_timeout, 1),
    ATR__CONF_DUR("fail_timeout", UP, fail_timeout, 1),
    ATR__CONF_ONE("keepalive", d_keepalive),
    ATR__CONF_INT("keepalive_requests", UP, keepalive_requests, 1, 1000000000),
    ATR__CONF_INT("queue", UP, queue, 0, 1000000),
    ATR__CONF_INT("retries", UP, retries, 0, 100),
    { "health_check", 0, 5, 0, 0, d_health_check, ATR__CONF_NONE, 0, 0, 0 },
    { "outlier", 1, 5, 0, 0, d_outlier, ATR__CONF_NONE, 0, 0, 0 },
    { "tls_trust", 1, 1, 0, 0, atr__conf_d_tls_file, ATR__CONF_NONE, offsetof(UP, tls_trust),
      offsetof(UP, tls_trust_pos), 0 },
    { "tls_server_name", 1, 1, 0, 0, atr__conf_d_path, ATR__CONF_NONE,
      offsetof(UP, tls_server_name), 0, 0 },
    ATR__CONF_ONOFF("tls_verify", UP, tls_verify),
    { "tls_client_certificate", 1, 1, 0, 0, atr__conf_d_tls_file, ATR__CONF_NONE,
      offsetof(UP, tls_client_cert), offsetof(UP, tls_client_cert_pos), 0 },
    { "tls_client_key", 1, 1, 0, 0, atr__conf_d_tls_file, ATR__CONF_NONE,
      offsetof(UP, tls_client_key), offsetof(UP, tls_client_key_pos), 0 },
};
const size_t atr__conf_upstream_ntab = ATR_ARRAY_SIZE(atr__conf_upstream_tab);
