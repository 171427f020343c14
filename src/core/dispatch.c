/* The HTTP front end after a head is parsed: pick the host (Host header) and
 * the route (longest prefix of the normalised path), then hand the request
 * to its handler: return, static or proxy. */
#include <stdio.h>
#include <stdlib.h>

#include "net/conn.h"
#include "base/log.h"
#include "backends/backend.h"
#include "backends/proxy.h"
#include "http/path.h"
#include "handlers/status.h"

const char *atr_http_reason(int s)
{
    switch (s) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return s < 200 ? "Informational" : s < 300 ? "OK" : s < 400 ? "Redirect"
                    : s < 500 ? "Client Error" : "Server Error";
    }
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int atr_path_normalize(atr_str_t target, char *out, size_t cap, size_t *outlen)
{
    const char *p = target.p, *end = target.p + target.n;
    size_t n = 0;
    /* absolute-form: skip "scheme://authority" */
    if (target.n > 0 && p[0] != '/') {
        const char *s = memchr(p, ':', target.n);
        if (s == NULL || end - s < 3 || s[1] != '/' || s[2] != '/')
            return -1;
        p = s + 3;
        while (p < end && *p != '/' && *p != '?')
            p++;
        if (p == end || *p == '?') {
            out[0] = '/';
            *outlen = 1;
            return 0;
        }
    }
    for (; p < end && *p != '?' && *p != '#'; p++) {
        int ch = (unsigned char)*p;
        if (ch == '%') {
            int hi = end - p > 2 ? hexval(p[1]) : -1, lo = end - p > 2 ? hexval(p[2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            ch = hi * 16 + lo;
            p += 2;
            if (ch == 0)
                return -1;
        }
        if (n + 1 >= cap)
            return -1;
        out[n++] = (char)ch;
        /* resolve "/." and "/.." as soon as a segment ends */
        if (ch == '/' || p + 1 == end || p[1] == '?' || p[1] == '#') {
            size_t segend = ch == '/' ? n - 1 : n;
            size_t segstart = segend;
            while (segstart > 0 && out[segstart - 1] != '/')
                segstart--;
            size_t seglen = segend - segstart;
            if (seglen == 1 && out[segstart] == '.') {
                n = segstart;
            } else if (seglen == 2 && out[segstart] == '.' && out[segstart + 1] == '.') {
                if (segstart < 2)
                    return -1; /* above the root */
                size_t prev = segstart - 1;
                while (prev > 0 && out[prev - 1] != '/')
                    prev--;
                n = prev;
            } else if (ch == '/' && seglen == 0 && n > 1) {
                n--; /* collapse "//" */
            }
        }
    }
    if (n == 0 || out[0] != '/')
        return -1;
    *outlen = n;
    return 0;
}

/* "*.example.com" matches "a.example.com" (not "example.com") */
static int wildcard_matches(const char *name, atr_str_t host)
{
    size_t nl = strlen(name);
    return host.n > nl - 1 &&
           atr_str_ieq((atr_str_t){ host.p + host.n - (nl - 1), nl - 1 }, name + 1);
}

/* The host for a Host value, as operators expect (and nginx does): an exact
 * name first, the name with a port before the bare one, then the longest
 * matching wildcard, then the default. A trailing dot is ignored. */
static const atr_conf_host_t *find_host(const atr_gen_t *g, atr_str_t host)
{
    if (g->only_default_host)
        return g->default_host;
    /* the port; IPv6 literals keep their brackets */
    atr_str_t bare = host;
    for (size_t i = host.n; i > 0; i--) {
        if (host.p[i - 1] == ':') {
            bare.n = i - 1;
            break;
        }
        if (host.p[i - 1] == ']')
            break;
    }
    if (bare.n > 1 && bare.p[bare.n - 1] == '.')
        bare.n--;
    const atr_conf_host_t *wild = NULL;
    size_t wild_len = 0;
    for (int pass = 0; pass < 2; pass++) {
        atr_str_t want = pass == 0 ? host : bare;
        for (int i = 0; i < g->conf->nhosts; i++) {
            const atr_conf_host_t *h = &g->conf->hosts[i];
            for (int j = 0; j < h->nnames; j++) {
                const char *name = h->names[j];
                if (name[0] == '*') {
                    size_t nl = strlen(name);
                    if (pass == 1 && name[1] == '.' && nl > wild_len &&
                        wildcard_matches(name, bare)) {
                        wild = h;
                        wild_len = nl;
                    }
                } else if (atr_str_ieq(want, name)) {
                    return h;
                }
            }
        }
    }
    return wild ? wild : g->default_host;
}

static const atr_conf_route_t *find_route(const atr_conf_host_t *h, const char *path, size_t n)
{
    for (int i = 0; h && i < h->nroutes; i++) {
        const atr_conf_route_t *rt = &h->routes[i];
        size_t pl = strlen(rt->prefix);
        if (pl > n || memcmp(rt->prefix, path, pl) != 0)
            continue;
        /* A route that maps paths to files matches whole segments only: "/pub"
         * must not take "/pub../x" or "/pubx" (the rest is joined to its
         * directory: that would read its parent). */
        if ((rt->kind == ATR_ROUTE_STATIC || rt->kind == ATR_ROUTE_CGI) && pl < n &&
            rt->prefix[pl - 1] != '/' && path[pl] != '/')
            continue;
        return rt;
    }
    return NULL;
}

static void dispatch(atr_req_t *r, char *path, size_t cap);

void atr_server_dispatch(atr_req_t *r)
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
    if (atr_path_normalize(m->target, path, cap, &plen) < 0) {
        atr_req_head_done(r);
        atr_req_respond_simple(r, 400, NULL, 1);
        return;
    }
    r->host = find_host(g, m->host);
    r->route = find_route(r->host, path, plen);
    if (r->route == NULL) {
        atr_req_head_done(r);
        atr_req_respond_simple(r, 404, NULL, 0);
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
    case ATR_ROUTE_STATUS: {
        int method = m->method, has_body = m->body != ATR_BODY_NONE;
        atr_req_head_done(r);
        atr_status_handle(r, method, has_body);
        return;
    }
    case ATR_ROUTE_STATIC:
        r->norm_path = atr_xstrndup(path, plen);
        atr_static_handle(r);
        return;
    case ATR_ROUTE_PROXY:
    case ATR_ROUTE_CGI:
        r->ups = atr_gen_route_upstream(g, r->route);
        r->upstream = g->ups[r->ups].conf;
        if (r->upstream->protocol != &atr_backend_http)
            r->norm_path = atr_xstrndup(path, plen); /* SCRIPT_NAME / PATH_INFO */
        atr_proxy_start(r);
        return;
    }
}

void atr_server_local_redirect(atr_req_t *r, const char *location)
{
    const atr_gen_t *g = r->wg->gen;
    if (++r->redirects > 10) {
        ATR_WARN("%s c%llu: too many local redirects (last %s)", r->c->w->name,
                 (unsigned long long)r->c->id, location);
        atr_req_respond_simple(r, 500, NULL, !r->body.done);
        return;
    }
    const char *host = r->log_host && r->log_host[0] ? r->log_host : "localhost";
    size_t n = strlen(location) + strlen(host) + 32;
    char *head = atr_xmalloc(n);
    int len = snprintf(head, n, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", location, host);
    atr_http_parser_t *p = atr_http_parser_new(0, &g->req_limits);
    atr_http_msg_t *m = atr_xmalloc(sizeof *m);
    int status = 0;
    const char *why = NULL;
    int rc = atr_http_parse(p, head, (size_t)len, m, &status, &why);
    atr_http_parser_free(p);
    if (rc != ATR_DONE) {
        ATR_WARN("%s c%llu: bad local redirect target %s", r->c->w->name,
                 (unsigned long long)r->c->id, location);
        free(head);
        free(m);
        atr_req_respond_simple(r, 502, NULL, !r->body.done);
        return;
    }
    /* Forget the first handler; keep the client's request for the log. */
    if (r->cleanup)
        r->cleanup(r);
    r->cleanup = NULL;
    free(r->norm_path);
    r->norm_path = NULL;
    free(r->redirect_buf);
    r->redirect_buf = head;
    r->route = NULL;
    r->upstream = NULL;
    r->proxy = NULL;
    r->status = r->upstream_status = r->refuse_status = 0;
    r->upstream_addr[0] = '\0';
    r->resp_chunked = r->resp_no_body = 0;
    r->expect_continue = 0;
    r->msg = m;
    atr_server_dispatch(r);
}
