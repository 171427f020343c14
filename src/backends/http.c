/* The HTTP/1.1 backend: a canonical request head (one framing header, no
 * hop-by-hop fields, forwarding headers added) and chunk re-framing of the
 * request body. The response side is the shared parser. */
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "headers.h"

/* Fields the encoder regenerates itself. */
static const char *const regen[] = {
    "host", "content-length", "expect", "x-forwarded-for", "x-forwarded-proto",
    "x-forwarded-host", "forwarded", "via", NULL
};

static atr_str_t origin_form(atr_str_t target)
{
    if (target.n > 0 && target.p[0] != '/' && !(target.n == 1 && target.p[0] == '*')) {
        const char *p = memchr(target.p, ':', target.n), *end = target.p + target.n;
        if (p && end - p >= 3) {
            p += 3;
            while (p < end && *p != '/' && *p != '?')
                p++;
            if (p == end)
                return ATR_STR("/");
            if (*p == '?') {
                /* "http://h?q" -> "/?q" needs a slash we do not have in the
                 * buffer; such targets are rare enough to answer with "/". */
                return ATR_STR("/");
            }
            return (atr_str_t){ p, (size_t)(end - p) };
        }
    }
    return target;
}

/* Values of a previous hop's header, to append ours after. */
static atr_str_t existing(const atr_http_msg_t *m, const char *lower)
{
    const atr_http_header_t *h = atr_http_find(m, lower);
    return h ? h->value : (atr_str_t){ NULL, 0 };
}

static void forwarding(atr_buf_t *b, atr_req_t *r, const atr_http_msg_t *m)
{
    const atr_conf_t *conf = r->wg->gen->conf;
    const char *ip = r->c->peer;
    int v6 = strchr(ip, ':') != NULL;
    atr_str_t xff = existing(m, "x-forwarded-for");
    if (xff.n)
        atr_buf_printf(b, "X-Forwarded-For: %.*s, %s\r\n", (int)xff.n, xff.p, ip);
    else
        atr_buf_printf(b, "X-Forwarded-For: %s\r\n", ip);
    atr_buf_puts(b, "X-Forwarded-Proto: http\r\n");
    if (m->host.n)
        atr_buf_printf(b, "X-Forwarded-Host: %.*s\r\n", (int)m->host.n, m->host.p);
    atr_str_t fwd = existing(m, "forwarded");
    atr_buf_puts(b, "Forwarded: ");
    if (fwd.n)
        atr_buf_printf(b, "%.*s, ", (int)fwd.n, fwd.p);
    atr_buf_printf(b, v6 ? "for=\"[%s]\";" : "for=%s;", ip);
    if (m->host.n) {
        /* RFC 7239: a token as is, anything else (a port's ':') quoted */
        int token = 1;
        for (size_t i = 0; i < m->host.n; i++)
            token &= atr_http_is_tchar((unsigned char)m->host.p[i]);
        atr_buf_printf(b, token ? "host=%.*s;" : "host=\"%.*s\";", (int)m->host.n, m->host.p);
    }
    atr_buf_puts(b, "proto=http\r\n");
    if (conf->via) {
        atr_str_t via = existing(m, "via");
        if (via.n)
            atr_buf_printf(b, "Via: %.*s, 1.%d %s\r\n", (int)via.n, via.p, m->version_minor,
                           conf->via);
        else
            atr_buf_printf(b, "Via: 1.%d %s\r\n", m->version_minor, conf->via);
    }
}

static char *encode_head(atr_req_t *r, const atr_http_msg_t *m, enum atr_http_body body,
                         size_t *len)
{
    const atr_conf_t *conf = r->wg->gen->conf;
    const atr_conf_route_t *rt = r->route;
    atr_buf_t b = { 0 };
    atr_str_t target = origin_form(m->target);
    atr_buf_printf(&b, "%.*s %.*s HTTP/1.1\r\n", (int)m->method_str.n, m->method_str.p,
                   (int)target.n, target.p);
    if (m->host.n)
        atr_buf_header(&b, ATR_STR("Host"), m->host);
    else /* HTTP/1.0 without Host: the backend still gets HTTP/1.1 */
        atr_buf_printf(&b, "Host: %s\r\n", rt->upstream->name);
    for (uint32_t i = 0; i < m->nheaders; i++) {
        atr_str_t name = m->headers[i].name;
        if (atr_hdr_is_hop(m, name, regen) || atr_hdr_overridden(rt->req_hdr, rt->nreq_hdr, name))
            continue;
        if (!conf->underscores_in_headers && atr_hdr_has_underscore(name))
            continue;
        atr_buf_header(&b, name, m->headers[i].value);
    }
    forwarding(&b, r, m);
    if (m->upgrade) {
        atr_str_t up = existing(m, "upgrade");
        atr_buf_printf(&b, "Connection: upgrade\r\nUpgrade: %.*s\r\n", (int)up.n, up.p);
    } else if (rt->upstream->keepalive == 0) {
        atr_buf_puts(&b, "Connection: close\r\n");
    }
    if (body == ATR_BODY_LENGTH)
        atr_buf_printf(&b, "Content-Length: %llu\r\n", (unsigned long long)m->content_length);
    else if (body == ATR_BODY_CHUNKED)
        atr_buf_puts(&b, "Transfer-Encoding: chunked\r\n");
    atr_hdr_apply(&b, rt->req_hdr, rt->nreq_hdr);
    atr_buf_put(&b, "\r\n", 2);
    *len = b.n;
    return b.p;
}

static int frame_body(enum atr_http_body body, const atr_str_t *v, int n, int last,
                      char (*scratch)[ATR_FRAME_SCRATCH], uv_buf_t *out)
{
    int nb = 0;
    for (int i = 0; i < n; i++) {
        if (v[i].n == 0)
            continue;
        if (body == ATR_BODY_CHUNKED) {
            size_t sl = atr_chunked_size_line(scratch[i], v[i].n);
            out[nb++] = uv_buf_init(scratch[i], (unsigned)sl);
        }
        out[nb++] = uv_buf_init((char *)v[i].p, (unsigned)v[i].n);
        if (body == ATR_BODY_CHUNKED)
            out[nb++] = uv_buf_init("\r\n", 2);
    }
    if (last && body == ATR_BODY_CHUNKED)
        out[nb++] = uv_buf_init("0\r\n\r\n", 5);
    return nb;
}

const atr_backend_ops_t atr_backend_http = {
    .name = "http",
    .encode_head = encode_head,
    .frame_body = frame_body,
};

/* Fields the client head regenerates. */
static const char *const resp_regen[] = { "content-length", "via", NULL };

char *atr_http_client_head(atr_req_t *r, const atr_http_msg_t *m, int with_length,
                           uint64_t length, size_t *len)
{
    const atr_conf_t *conf = r->wg->gen->conf;
    const atr_conf_route_t *rt = r->route;
    atr_buf_t b = { 0 };
    atr_buf_printf(&b, "HTTP/1.1 %d ", m->status);
    if (m->reason.n)
        atr_buf_put(&b, m->reason.p, m->reason.n);
    else
        atr_buf_puts(&b, atr_http_reason(m->status));
    atr_buf_put(&b, "\r\n", 2);
    for (uint32_t i = 0; i < m->nheaders; i++) {
        atr_str_t name = m->headers[i].name;
        if (m->cgi_form && atr_str_ieq(name, "status"))
            continue;
        if (atr_hdr_is_hop(m, name, resp_regen) ||
            atr_hdr_overridden(rt->resp_hdr, rt->nresp_hdr, name))
            continue;
        atr_buf_header(&b, name, m->headers[i].value);
    }
    if (conf->via) {
        atr_str_t via = existing(m, "via");
        if (via.n)
            atr_buf_printf(&b, "Via: %.*s, 1.1 %s\r\n", (int)via.n, via.p, conf->via);
        else
            atr_buf_printf(&b, "Via: 1.1 %s\r\n", conf->via);
    }
    if (m->status == 101) {
        atr_str_t up = existing(m, "upgrade");
        atr_buf_printf(&b, "Connection: upgrade\r\nUpgrade: %.*s\r\n", (int)up.n, up.p);
    } else {
        if (with_length)
            atr_buf_printf(&b, "Content-Length: %llu\r\n", (unsigned long long)length);
        else if (r->resp_chunked)
            atr_buf_puts(&b, "Transfer-Encoding: chunked\r\n");
        if (r->resp_close)
            atr_buf_puts(&b, "Connection: close\r\n");
        else if (r->version_minor == 0)
            atr_buf_puts(&b, "Connection: keep-alive\r\n");
    }
    atr_hdr_apply(&b, rt->resp_hdr, rt->nresp_hdr);
    atr_buf_put(&b, "\r\n", 2);
    *len = b.n;
    return b.p;
}
