/* The handler phase (net/hooks.h): pick the host (Host header) and the route
 * (longest prefix of the normalised path), then hand the request to the
 * route's handler: return, status, static, or the proxy core (proxy and cgi
 * routes). Registered last in its phase by core/modules.c, so that modules
 * adding handler hooks of their own run before it. */
#include "core/dispatch.h"

#include <stdio.h>
#include <stdlib.h>

#include "backends/backend.h"
#include "backends/proxy.h"
#include "base/log.h"
#include "handlers/static.h"
#include "handlers/status.h"
#include "http/path.h"
#include "net/tls.h"
#include "tls/ctx.h"

/* The host for a Host value (atr_conf_match_host), else the default. */
static const atr_conf_host_t *find_host(const atr_gen_t *g, atr_str_t host)
{
    if (g->only_default_host)
        return g->default_host;
    const atr_conf_host_t *h = atr_conf_match_host(g->conf, host.p, host.n);
    return h ? h : g->default_host;
}

/* "*.php" takes a path with a segment that ends in ".php": "/a.php",
 * "/doku.php/page" (its PATH_INFO), not "/a.phpx" nor "/.php". */
static int ext_match(const char *ext, const char *path, size_t n)
{
    size_t el = strlen(ext);
    for (const char *p = path; (p = memmem(p, n - (size_t)(p - path), ext, el)) != NULL; p++) {
        const char *after = p + el;
        if ((after == path + n || *after == '/') && p > path && p[-1] != '/')
            return 1;
    }
    return 0;
}

static const atr_conf_route_t *find_route(const atr_conf_host_t *h, const char *path, size_t n)
{
    for (int i = 0; h && i < h->nroutes; i++) {
        const atr_conf_route_t *rt = &h->routes[i];
        if (rt->prefix[0] == '*') { /* extension routes come first (conf_host.c sorts them) */
            if (ext_match(rt->prefix + 1, path, n))
                return rt;
            continue;
        }
        size_t pl = strlen(rt->prefix);
        if (pl > n || memcmp(rt->prefix, path, pl) != 0)
            continue;
        /* Whole segments only, for every kind of route: "/pub" takes "/pub"
         * and "/pub/x", never "/pubx" (nor "/pub../x", which a route mapping
         * paths to files would join to its directory). */
        if (pl < n && rt->prefix[pl - 1] != '/' && path[pl] != '/')
            continue;
        return rt;
    }
    return NULL;
}

static void dispatch(atr_req_t *r, char *path, size_t cap);

/* A route whose prefix is path + "/" (path not ending in '/'). */
static int slash_route(const atr_conf_host_t *h, const char *path, size_t n)
{
    if (n == 0 || path[n - 1] == '/')
        return 0;
    for (int i = 0; h && i < h->nroutes; i++) {
        const char *p = h->routes[i].prefix;
        if (strlen(p) == n + 1 && p[n] == '/' && memcmp(p, path, n) == 0)
            return 1;
    }
    return 0;
}

/* 301 to the path with a slash added (percent-encoded again), the target's
 * query kept. */
static void redirect_slash(atr_req_t *r, const char *path, size_t n, atr_str_t target)
{
    const char *q = memchr(target.p, '?', target.n);
    size_t qn = q ? target.n - (size_t)(q - target.p) : 0;
    size_t cap = 3 * n + qn + 32;
    char *loc = atr_xmalloc(cap);
    int k = snprintf(loc, cap, "Location: ");
    k += atr_path_encode(path, n, loc + k, cap - (size_t)k);
    snprintf(loc + k, cap - (size_t)k, "/%.*s\r\n", (int)qn, q ? q : "");
    atr_req_head_done(r);
    atr_buf_t b;
    atr_req_local_head(r, 301, loc, 0, &b);
    free(loc);
    r->status = 301;
    atr_req_send_whole(r, b.p, b.n);
}

/* `proxy NAME PREFIX;`: the route's prefix replaced by PREFIX in the
 * normalised path (one slash where the two meet). */
static char *rewrite(const atr_conf_route_t *rt, const char *path, size_t plen)
{
    const char *rest = path + strlen(rt->prefix);
    size_t rn = plen - (size_t)(rest - path), xn = strlen(rt->proxy_prefix);
    if (xn > 0 && rt->proxy_prefix[xn - 1] == '/' && rn > 0 && rest[0] == '/') {
        rest++;
        rn--;
    }
    char *out = atr_xmalloc(xn + rn + 2);
    memcpy(out, rt->proxy_prefix, xn);
    memcpy(out + xn, rest, rn);
    out[xn + rn] = '\0';
    return out;
}

int atr_dispatch_route(atr_req_t *r)
{
    /* The normalised path is never longer than the target; a target beyond
     * the usual (up to max_request_line) gets a buffer of its own. */
    char stack[4096];
    size_t need = r->msg->target.n + 2;
    if (need <= sizeof stack) {
        dispatch(r, stack, sizeof stack);
    } else {
        char *heap = atr_xmalloc(need);
        dispatch(r, heap, need);
        free(heap);
    }
    return ATR_HOOK_DONE;
}

static void dispatch(atr_req_t *r, char *path, size_t cap)
{
    const atr_gen_t *g = r->wg->gen;
    atr_http_msg_t *m = r->msg;
    size_t plen = 0;

    if (m->method == ATR_M_CONNECT) {
        atr_req_head_done(r);
        atr_req_respond_simple(r, 405, NULL, 1);
        return;
    }
    int norm = atr_path_normalize(m->target, path, cap, &plen);
    if (norm < 0 || (norm == ATR_PATH_AMBIGUOUS && !g->conf->allow_ambiguous_paths)) {
        /* An encoded '/' or dot segment would be routed as decoded here but
         * forwarded as written: refused rather than read two ways. */
        atr_req_head_done(r);
        atr_req_respond_simple(r, 400, NULL, 1);
        return;
    }
    r->host = find_host(g, m->host);
    SSL *ssl = atr_tls_ssl(&r->c->s);
    if (ssl && r->host && r->host->tls && r->host != atr_tls_sni_host(g->conf, ssl)) {
        /* Host names another TLS host than the one this connection's
         * handshake was for (its certificate, its client verification). */
        atr_req_head_done(r);
        atr_req_respond_simple(r, 421, NULL, 0);
        return;
    }
    if (slash_route(r->host, path, plen)) {
        /* "/lib" for `route /lib/`: the route's own form, as nginx answers */
        redirect_slash(r, path, plen, m->target);
        return;
    }
    r->route = find_route(r->host, path, plen);
    if (r->route == NULL) {
        atr_req_head_done(r);
        atr_req_respond_simple(r, 404, NULL, 0);
        return;
    }
    if (r->route->nacl && !atr_conf_acl_allows(r->route->acl, r->route->nacl, r->c->peer)) {
        atr_req_head_done(r);
        atr_req_respond_simple(r, 403, NULL, 0);
        return;
    }
    if (g->conf->max_body_size && m->body == ATR_BODY_LENGTH &&
        m->content_length > g->conf->max_body_size) {
        atr_req_head_done(r);
        atr_req_respond_simple(r, 413, NULL, 1);
        return;
    }
    switch (r->route->kind) {
    case ATR_ROUTE_RETURN:
        atr_req_head_done(r);
        atr_req_respond_simple(r, r->route->return_status,
                               r->route->return_body ? r->route->return_body : "", 0);
        return;
    case ATR_ROUTE_STATUS: /* reads Accept and the query, then drops the head */
        atr_status_handle(r);
        return;
    case ATR_ROUTE_STATIC:
        r->norm_path = atr_xstrndup(path, plen);
        atr_static_handle(r);
        return;
    case ATR_ROUTE_PROXY:
    case ATR_ROUTE_CGI:
        if (r->route->try_dir) {
            r->norm_path = atr_xstrndup(path, plen);
            if (atr_static_try(r, r->route->try_dir))
                return; /* a file that exists: served as it is */
            free(r->norm_path);
            r->norm_path = NULL;
        }
        r->ups = atr_gen_route_upstream(g, r->route);
        r->upstream = g->ups[r->ups].conf;
        if (r->route->proxy_prefix)
            r->norm_path = rewrite(r->route, path, plen); /* what the backend is asked for */
        else if (r->upstream->protocol->needs_path)
            r->norm_path = atr_xstrndup(path, plen); /* SCRIPT_NAME / PATH_INFO */
        atr_proxy_start(r);
        return;
    }
}

