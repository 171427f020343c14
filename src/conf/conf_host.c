/* Virtual hosts and their routes: names, prefixes, the one handler of a
 * route (proxy, static or return) and the header operations. Hosts are built
 * after the whole top level, so `proxy NAME` can name any upstream. */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "conf/conf_priv.h"
#include "base/util.h"

/* ---- host and route ------------------------------------------------------- */

/* Header operations being collected for a host or a route. */
typedef struct hdr_target {
    atr_hdr_op_t *req, *resp;
    int nreq, nresp;
} hdr_target_t;

typedef struct host_build {
    hdr_target_t hdr; /* first: d_header works on either build */
    atr_conf_host_t *h;
    const atr__conf_node_t **routes;
    int nroutes;
} host_build_t;

typedef struct route_build {
    hdr_target_t hdr;
    atr_conf_route_t *r;
    const char *handler; /* the first of proxy/static/return */
    atr_conf_pos_t handler_pos, index_pos, root_pos, try_pos;
} route_build_t;

static int d_acl(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                 void *obj)
{
    route_build_t *rb = obj;
    return atr__conf_d_acl(b, n, d, &rb->r->acl[rb->r->nacl++]);
}

static int d_header(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                    void *obj)
{
    hdr_target_t *ht = obj;
    static const char *const ops[] = { "set", "add", "remove", NULL };
    int op = atr__conf_lookup(ops, n->args[0].s);
    if (op < 0)
        return atr__conf_fail(b, &n->args[0].pos,
                              "invalid operation '%s' for '%s' (expected set, add or "
                              "remove)",
                              n->args[0].s, d->name);
    if (op != ATR_HDR_REMOVE && n->nargs != 3)
        return atr__conf_fail(b, &n->name.pos, "'%s %s' takes a name and a value", d->name,
                              ops[op]);
    if (op == ATR_HDR_REMOVE && n->nargs != 2)
        return atr__conf_fail(b, &n->args[2].pos, "'%s remove' takes only a name", d->name);
    const atr__conf_tok_t *name = &n->args[1];
    if (!atr__conf_is_token(name->s))
        return atr__conf_fail(b, &name->pos, "invalid header name '%s' (expected a token)",
                              name->s);
    if (strcasecmp(name->s, "content-length") == 0 || strcasecmp(name->s, "transfer-encoding") == 0)
        return atr__conf_fail(b, &name->pos,
                              "'%s' frames the message and cannot be changed with '%s'", name->s,
                              d->name);
    if (n->nargs == 3)
        for (const char *p = n->args[2].s; *p != '\0'; p++)
            if ((unsigned char)*p < 0x20 && *p != '\t')
                return atr__conf_fail(b, &n->args[2].pos,
                                      "invalid header value (control character)");
    int resp = strcmp(d->name, "response_header") == 0;
    atr_hdr_op_t *h = resp ? &ht->resp[ht->nresp++] : &ht->req[ht->nreq++];
    h->op = (enum atr_hdr_op_kind)op;
    h->name = atr__conf_tokdup(b, name);
    h->value = n->nargs == 3 ? atr__conf_tokdup(b, &n->args[2]) : NULL;
    return 0;
}

static int d_handler(atr__conf_bctx_t *b, const atr__conf_node_t *n, route_build_t *rb)
{
    if (rb->handler != NULL)
        return atr__conf_fail(
            b, &n->name.pos,
            "route %s already has a handler ('%s' at %s:%d:%d); a route takes exactly one "
            "of proxy, static, cgi, return or status",
            rb->r->prefix, rb->handler, rb->handler_pos.file, rb->handler_pos.line,
            rb->handler_pos.col);
    rb->handler = n->name.s;
    rb->handler_pos = n->name.pos;
    return 0;
}

static int d_proxy(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                   void *obj)
{
    route_build_t *rb = obj;
    (void)d;
    if (d_handler(b, n, rb) < 0)
        return -1;
    const atr_conf_upstream_t *u = atr_conf_find_upstream(b->c, n->args[0].s);
    if (u == NULL)
        return atr__conf_fail(b, &n->args[0].pos, "unknown upstream '%s' in proxy", n->args[0].s);
    rb->r->kind = ATR_ROUTE_PROXY;
    rb->r->upstream = (atr_conf_upstream_t *)u;
    if (n->nargs == 2) {
        const atr__conf_tok_t *t = &n->args[1];
        if (t->s[0] != '/' || strpbrk(t->s, "?#%") != NULL)
            return atr__conf_fail(b, &t->pos, "invalid proxy path '%s' (expected a path starting "
                                  "with '/', without '?', '#' or '%%', e.g. / or /api/)", t->s);
        rb->r->proxy_prefix = atr__conf_strdup(b->a, t->s);
    }
    return 0;
}

int atr__conf_need_dir(atr__conf_bctx_t *b, const atr__conf_tok_t *t, const char *path,
                       const char *what)
{
    struct stat st;
    int err = stat(path, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    return err ? atr__conf_fail(b, &t->pos, "%s '%s': %s", what, path, strerror(err)) : 0;
}

static int d_static(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                    void *obj)
{
    route_build_t *rb = obj;
    (void)d;
    char *path = atr__conf_pathdup(b, &n->args[0]);
    if (d_handler(b, n, rb) < 0 || atr__conf_need_dir(b, &n->args[0], path, "static root") < 0)
        return -1;
    rb->r->kind = ATR_ROUTE_STATIC;
    rb->r->static_root = path;
    return 0;
}

static int d_cgi(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                 void *obj)
{
    route_build_t *rb = obj;
    (void)d;
    if (d_handler(b, n, rb) < 0)
        return -1;
    char *path = atr__conf_pathdup(b, &n->args[0]);
    if (atr__conf_need_dir(b, &n->args[0], path, "cgi directory") < 0)
        return -1;
    rb->r->kind = ATR_ROUTE_CGI;
    rb->r->cgi_dir = path;
    return 0;
}

static int d_return(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                    void *obj)
{
    route_build_t *rb = obj;
    uint64_t code;
    (void)d;
    if (d_handler(b, n, rb) < 0)
        return -1;
    if (atr__conf_uint(n->args[0].s, &code) < 0 || code < 200 || code > 599)
        return atr__conf_fail(b, &n->args[0].pos, "invalid status '%s' (expected 200..599)",
                              n->args[0].s);
    if ((code == 204 || code == 304) && n->nargs == 2)
        return atr__conf_fail(b, &n->args[1].pos, "status %d has no body", (int)code);
    rb->r->kind = ATR_ROUTE_RETURN;
    rb->r->return_status = (int)code;
    rb->r->return_body = n->nargs == 2 ? atr__conf_tokdup(b, &n->args[1]) : NULL;
    return 0;
}

/* `status;`: the metrics page (status.c). */
static int d_status(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                    void *obj)
{
    route_build_t *rb = obj;
    (void)d;
    if (d_handler(b, n, rb) < 0)
        return -1;
    rb->r->kind = ATR_ROUTE_STATUS;
    return 0;
}

/* `root DIR;` in a proxy route: the document root the gateway protocols
 * (FastCGI, SCGI) get as DOCUMENT_ROOT, and SCRIPT_FILENAME = root + path. The
 * directory is the application's: it is not required to exist here. */
static int d_root(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                  void *obj)
{
    route_build_t *rb = obj;
    const atr__conf_tok_t *t = &n->args[0];
    (void)d;
    if (t->s[0] != '/')
        return atr__conf_fail(b, &t->pos, "root '%s' must be an absolute path", t->s);
    rb->r->root = atr__conf_tokdup(b, t);
    rb->root_pos = n->name.pos;
    return 0;
}

static int d_index(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                   void *obj)
{
    route_build_t *rb = obj;
    const atr__conf_tok_t *t = &n->args[0];
    (void)d;
    if (t->len == 0 || strchr(t->s, '/') != NULL || strcmp(t->s, ".") == 0 ||
        strcmp(t->s, "..") == 0)
        return atr__conf_fail(b, &t->pos, "invalid index '%s' (expected a file name)", t->s);
    rb->r->index = atr__conf_tokdup(b, t);
    rb->index_pos = n->name.pos;
    return 0;
}

static int build_route(atr__conf_bctx_t *b, host_build_t *hb, const atr__conf_node_t *n)
{
    atr_conf_host_t *h = hb->h;
    atr_conf_route_t *r = &h->routes[h->nroutes];
    const atr__conf_tok_t *t = &n->args[0];
    route_build_t rb;
    int ext = t->s[0] == '*' && t->s[1] == '.' && t->s[2] != '\0' && strchr(t->s + 2, '/') == NULL;
    if (t->s[0] != '/' && !ext)
        return atr__conf_fail(b, &t->pos, "route prefix '%s' must start with '/' (or be *.EXT, "
                              "e.g. *.php)", t->s);
    for (int i = 0; i < h->nroutes; i++)
        if (strcmp(h->routes[i].prefix, t->s) == 0)
            return atr__conf_fail(b, &t->pos, "duplicate route %s (first at %s:%d:%d)", t->s,
                                  h->routes[i].pos.file, h->routes[i].pos.line,
                                  h->routes[i].pos.col);
    memset(r, 0, sizeof(*r));
    r->prefix = atr__conf_tokdup(b, t);
    r->index = atr__conf_strdup(b->a, "index.html");
    r->pos = n->name.pos;

    /* The host's header operations come first, then the route's own. */
    memset(&rb, 0, sizeof(rb));
    rb.r = r;
    size_t nreq = (size_t)(hb->hdr.nreq + atr__conf_count(n->child, "request_header"));
    size_t nresp = (size_t)(hb->hdr.nresp + atr__conf_count(n->child, "response_header"));
    rb.hdr.req = atr__conf_alloc(b->a, sizeof(*rb.hdr.req) * (nreq ? nreq : 1));
    rb.hdr.resp = atr__conf_alloc(b->a, sizeof(*rb.hdr.resp) * (nresp ? nresp : 1));
    memcpy(rb.hdr.req, hb->hdr.req, sizeof(*rb.hdr.req) * (size_t)hb->hdr.nreq);
    memcpy(rb.hdr.resp, hb->hdr.resp, sizeof(*rb.hdr.resp) * (size_t)hb->hdr.nresp);
    rb.hdr.nreq = hb->hdr.nreq;
    rb.hdr.nresp = hb->hdr.nresp;
    int nacl = atr__conf_count(n->child, "allow") + atr__conf_count(n->child, "deny");
    r->acl = atr__conf_alloc(b->a, sizeof(*r->acl) * (size_t)(nacl ? nacl : 1));
    if (atr__conf_run_block(b, ATR__CONF_ROUTE, n->child, &rb) < 0)
        return -1;
    if (rb.handler == NULL)
        return atr__conf_fail(b, &n->name.pos,
                              "route %s has no handler (expected proxy, static, cgi, return or status)",
                              r->prefix);
    if (rb.root_pos.file != NULL && r->kind != ATR_ROUTE_PROXY)
        return atr__conf_fail(b, &rb.root_pos, "'root' only applies to proxy routes");
    if (rb.try_pos.file != NULL && r->kind != ATR_ROUTE_PROXY && r->kind != ATR_ROUTE_CGI)
        return atr__conf_fail(b, &rb.try_pos, "'try_files' only applies to proxy and cgi routes "
                              "(a static route serves files already)");
    if (rb.index_pos.file != NULL && r->kind != ATR_ROUTE_STATIC && r->root == NULL)
        return atr__conf_fail(b, &rb.index_pos,
                              "'index' only applies to static routes and proxy routes with a root");
    r->req_hdr = rb.hdr.req;
    r->nreq_hdr = rb.hdr.nreq;
    r->resp_hdr = rb.hdr.resp;
    r->nresp_hdr = rb.hdr.nresp;
    h->nroutes++;
    return 0;
}

static int d_tls(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                 void *obj)
{
    (void)d;
    return atr__conf_build_tls(b, n, &((host_build_t *)obj)->h->tls);
}

static int d_route(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                   void *obj)
{
    host_build_t *hb = obj;
    (void)b;
    (void)d;
    hb->routes[hb->nroutes++] = n; /* built after the host's own header operations */
    return 0;
}

/* "*", "*.example.com" or a name made of letters, digits, '-', '.', '_',
 * with an optional ":port" or an "[IPv6]" literal. */
static int valid_host_name(const char *s)
{
    if (strcmp(s, "*") == 0)
        return 1;
    if (strncmp(s, "*.", 2) == 0)
        s += 2;
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; s++)
        if (!isalnum((unsigned char)*s) && strchr("-._:[]", *s) == NULL)
            return 0;
    return 1;
}

static int host_names(atr__conf_bctx_t *b, const atr__conf_node_t *n, atr_conf_host_t *h)
{
    atr_conf_t *c = b->c;
    h->names = atr__conf_alloc(b->a, sizeof(*h->names) * (size_t)n->nargs);
    for (int i = 0; i < n->nargs; i++) {
        const atr__conf_tok_t *t = &n->args[i];
        char *name = atr__conf_tokdup(b, t);
        for (char *p = name; *p != '\0'; p++)
            *p = (char)tolower((unsigned char)*p);
        if (!valid_host_name(name))
            return atr__conf_fail(
                b, &t->pos,
                "invalid host name '%s' (expected e.g. example.com, *.example.com or *)", t->s);
        for (int k = 0; k <= c->nhosts; k++) {
            const atr_conf_host_t *o = &c->hosts[k];
            for (int j = 0; j < o->nnames; j++)
                if (strcmp(o->names[j], name) == 0)
                    return atr__conf_fail(b, &t->pos,
                                          "duplicate host name '%s' (first at %s:%d:%d)", name,
                                          o->pos.file, o->pos.line, o->pos.col);
        }
        h->names[h->nnames++] = name;
    }
    return 0;
}

/* Longest prefix first; a stable insertion sort keeps file order on ties. */
/* Extension routes (*.php) first, in file order; then prefixes, longest
 * first. */
static int route_rank(const atr_conf_route_t *r)
{
    return r->prefix[0] == '*' ? 1 << 30 : (int)strlen(r->prefix);
}

static void sort_routes(atr_conf_host_t *h)
{
    for (int i = 1; i < h->nroutes; i++) {
        atr_conf_route_t r = h->routes[i];
        int rank = route_rank(&r);
        int j = i;
        for (; j > 0 && route_rank(&h->routes[j - 1]) < rank; j--)
            h->routes[j] = h->routes[j - 1];
        h->routes[j] = r;
    }
}

static int d_try_files(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                       const atr__conf_directive_t *d, void *obj)
{
    route_build_t *rb = obj;
    (void)d;
    char *path = atr__conf_pathdup(b, &n->args[0]);
    if (atr__conf_need_dir(b, &n->args[0], path, "try_files directory") < 0)
        return -1;
    rb->r->try_dir = path;
    rb->try_pos = n->name.pos;
    return 0;
}

int atr__conf_build_host(atr__conf_bctx_t *b, const atr__conf_node_t *n)
{
    atr_conf_t *c = b->c;
    atr_conf_host_t *h = &c->hosts[c->nhosts];
    host_build_t hb;
    memset(h, 0, sizeof(*h));
    h->pos = n->name.pos;
    if (host_names(b, n, h) < 0)
        return -1;
    memset(&hb, 0, sizeof(hb));
    hb.h = h;
    int nr = atr__conf_count(n->child, "route");
    int nq = atr__conf_count(n->child, "request_header");
    int ns = atr__conf_count(n->child, "response_header");
    hb.routes = atr__conf_alloc(b->a, sizeof(*hb.routes) * (size_t)(nr ? nr : 1));
    hb.hdr.req = atr__conf_alloc(b->a, sizeof(*hb.hdr.req) * (size_t)(nq ? nq : 1));
    hb.hdr.resp = atr__conf_alloc(b->a, sizeof(*hb.hdr.resp) * (size_t)(ns ? ns : 1));
    if (atr__conf_run_block(b, ATR__CONF_HOST, n->child, &hb) < 0)
        return -1;
    if (hb.nroutes == 0)
        return atr__conf_fail(b, &n->name.pos,
                              "host %s has no route (expected route PREFIX { ... })", h->names[0]);
    h->routes = atr__conf_alloc(b->a, sizeof(*h->routes) * (size_t)hb.nroutes);
    int failed = 0;
    for (int i = 0; i < hb.nroutes; i++) /* every route's mistakes, not only the first's */
        failed |= build_route(b, &hb, hb.routes[i]) < 0;
    if (failed)
        return -1;
    sort_routes(h);
    c->nhosts++;
    return 0;
}

/* ---- tables ---------------------------------------------------------------- */

const atr__conf_directive_t atr__conf_host_tab[] = {
    { "route", 1, 1, 1, 1, d_route, ATR__CONF_NONE, 0, 0, 0 },
    { "tls", 0, 0, 1, 0, d_tls, ATR__CONF_NONE, 0, 0, 0 },
    { "request_header", 2, 3, 0, 1, d_header, ATR__CONF_NONE, 0, 0, 0 },
    { "response_header", 2, 3, 0, 1, d_header, ATR__CONF_NONE, 0, 0, 0 },
};

const atr__conf_directive_t atr__conf_route_tab[] = {
    { "proxy", 1, 2, 0, 0, d_proxy, ATR__CONF_NONE, 0, 0, 0 },
    ATR__CONF_ONE("static", d_static),
    ATR__CONF_ONE("cgi", d_cgi),
    { "return", 1, 2, 0, 0, d_return, ATR__CONF_NONE, 0, 0, 0 },
    { "status", 0, 0, 0, 0, d_status, ATR__CONF_NONE, 0, 0, 0 },
    ATR__CONF_ONE("index", d_index),
    ATR__CONF_ONE("root", d_root),
    ATR__CONF_ONE("try_files", d_try_files),
    { "allow", 1, 1, 0, 1, d_acl, ATR__CONF_NONE, 0, 0, 0 },
    { "deny", 1, 1, 0, 1, d_acl, ATR__CONF_NONE, 0, 0, 0 },
    { "request_header", 2, 3, 0, 1, d_header, ATR__CONF_NONE, 0, 0, 0 },
    { "response_header", 2, 3, 0, 1, d_header, ATR__CONF_NONE, 0, 0, 0 },
};

const size_t atr__conf_host_ntab = ATR_ARRAY_SIZE(atr__conf_host_tab);
const size_t atr__conf_route_ntab = ATR_ARRAY_SIZE(atr__conf_route_tab);
