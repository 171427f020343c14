/* The HTTP/1.1 backend: a canonical request head (one framing header, no
 * hop-by-hop fields, forwarding headers added) and chunk re-framing of the
 * request body (atr_frame_http, frame.c). The response side is the shared
 * parser. */
#include <stdio.h>
#include <stdlib.h>

#include "backends/backend.h"
#include "backends/frame.h"
#include "http/headers.h"

/* Fields the encoder regenerates itself. */
static const uint32_t regen =
    ATR_HK_BIT(ATR_HK_HOST) | ATR_HK_BIT(ATR_HK_CONTENT_LENGTH) | ATR_HK_BIT(ATR_HK_EXPECT) |
    ATR_HK_BIT(ATR_HK_X_FORWARDED_FOR) | ATR_HK_BIT(ATR_HK_X_FORWARDED_PROTO) |
    ATR_HK_BIT(ATR_HK_X_FORWARDED_HOST) | ATR_HK_BIT(ATR_HK_FORWARDED) | ATR_HK_BIT(ATR_HK_VIA);

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

#define PUT(b, lit) atr_buf_put((b), (lit), sizeof(lit) - 1)
#define PUTV(b, v) atr_buf_put((b), (v).p, (v).n)

/* Every value of a previous hop's header (all its field lines, joined by
 * ", " as RFC 9110 §5.3 allows), then `sep` when there was any: ours goes
 * after. */
static void existing(atr_buf_t *b, const atr_http_msg_t *m, enum atr_http_hkind kind,
                     const char *sep)
{
    int any = 0;
    if (!(m->hkinds & ATR_HK_BIT(kind)))
        return;
    for (uint32_t i = 0; i < m->nheaders; i++) {
        const atr_http_header_t *h = &m->headers[i];
        if (m->hkind[i] != kind || h->value.n == 0)
            continue;
        if (any)
            PUT(b, ", ");
        PUTV(b, h->value);
        any = 1;
    }
    if (any)
        atr_buf_puts(b, sep);
}

/* "Via: [previous, ]1.x NAME\r\n" */
static void via(atr_buf_t *b, const atr_http_msg_t *m, int minor, const char *name)
{
    PUT(b, "Via: ");
    existing(b, m, ATR_HK_VIA, ", ");
    atr_buf_put(b, minor ? "1.1 " : "1.0 ", 4);
    atr_buf_puts(b, name);
    PUT(b, "\r\n");
}

static void forwarding(atr_buf_t *b, atr_req_t *r, const atr_http_msg_t *m)
{
    const atr_conf_t *conf = r->wg->gen->conf;
    const atr_conn_t *c = r->c;
    PUT(b, "X-Forwarded-For: ");
    existing(b, m, ATR_HK_X_FORWARDED_FOR, ", ");
    atr_buf_put(b, c->peer, c->peer_len);
    PUT(b, "\r\nX-Forwarded-Proto: http\r\n");
    if (m->host.n) {
        PUT(b, "X-Forwarded-Host: ");
        PUTV(b, m->host);
        PUT(b, "\r\n");
    }
    PUT(b, "Forwarded: ");
    existing(b, m, ATR_HK_FORWARDED, ", ");
    PUT(b, "for=");
    if (c->peer_v6)
        PUT(b, "\"[");
    atr_buf_put(b, c->peer, c->peer_len);
    if (c->peer_v6)
        PUT(b, "]\"");
    PUT(b, ";");
    if (m->host.n) {
        /* RFC 7239: a token as is, anything else (a port's ':') quoted */
        PUT(b, "host=");
        if (!m->host_token)
            PUT(b, "\"");
        PUTV(b, m->host);
        if (!m->host_token)
            PUT(b, "\"");
        PUT(b, ";");
    }
    PUT(b, "proto=http\r\n");
    if (conf->via)
        via(b, m, m->version_minor, conf->via);
}

static void upgrade(atr_buf_t *b, const atr_http_msg_t *m)
{
    PUT(b, "Connection: upgrade\r\nUpgrade: ");
    existing(b, m, ATR_HK_UPGRADE, "");
    PUT(b, "\r\n");
}

/* A field line the parser saw in canonical form, "Name: value" CRLF, whose
 * views are still the input bytes: forwarding it is copying those bytes. */
static int canonical_line(const atr_http_header_t *h)
{
    return h->value.p == h->name.p + h->name.n + 2 && h->name.p[h->name.n + 1] == ' ' &&
           h->value.p[h->value.n] == '\r';
}

/* The message's fields minus the ones the filter and the route's ops drop.
 * Runs of kept canonical lines that sit next to each other in the input go
 * out as one copy: most heads are written that way, and a copy per run is
 * cheaper than re-assembling every line. */
static void copy_fields(atr_buf_t *b, const atr_http_msg_t *m, uint32_t regen,
                        const atr_hdr_op_t *ops, int nops, int drop_underscores)
{
    atr_hdr_filter_t f;
    const char *run = NULL, *run_end = NULL; /* input bytes to copy as they are */
    if (m->cgi_form) /* the CGI Status field became the status line */
        regen |= ATR_HK_BIT(ATR_HK_STATUS);
    atr_hdr_filter_init(&f, m, regen);
    for (uint32_t i = 0; i < m->nheaders; i++) {
        const atr_http_header_t *h = &m->headers[i];
        if (atr_hdr_filter_drop(&f, i) || (nops && atr_hdr_overridden(ops, nops, h->name)))
            continue;
        if (drop_underscores && atr_hdr_has_underscore(h->name))
            continue;
        if (canonical_line(h)) {
            if (h->name.p != run_end) { /* not adjacent: a new run */
                if (run)
                    atr_buf_put(b, run, (size_t)(run_end - run));
                run = h->name.p;
            }
            run_end = h->value.p + h->value.n + 2;
            continue;
        }
        if (run)
            atr_buf_put(b, run, (size_t)(run_end - run));
        run = run_end = NULL;
        atr_buf_header(b, h->name, h->value);
    }
    if (run)
        atr_buf_put(b, run, (size_t)(run_end - run));
}

static char *encode_head(atr_req_t *r, const atr_http_msg_t *m, enum atr_http_body body,
                         size_t *len)
{
    const atr_conf_t *conf = r->wg->gen->conf;
    const atr_conf_route_t *rt = r->route;
    atr_buf_t b = { atr_cache_head_get(r->wg->w), 0, ATR_HEAD_CAP };
    atr_str_t target = origin_form(m->target);
    PUTV(&b, m->method_str);
    PUT(&b, " ");
    PUTV(&b, target);
    PUT(&b, " HTTP/1.1\r\nHost: ");
    if (m->host.n)
        PUTV(&b, m->host);
    else /* HTTP/1.0 without Host: the backend still gets HTTP/1.1 */
        atr_buf_puts(&b, r->upstream->name);
    PUT(&b, "\r\n");
    copy_fields(&b, m, regen, rt->req_hdr, rt->nreq_hdr, !conf->underscores_in_headers);
    forwarding(&b, r, m);
    if (m->upgrade)
        upgrade(&b, m);
    else if (r->upstream->keepalive == 0)
        PUT(&b, "Connection: close\r\n");
    if (body == ATR_BODY_LENGTH) {
        PUT(&b, "Content-Length: ");
        atr_buf_put_u64(&b, m->content_length);
        PUT(&b, "\r\n");
    } else if (body == ATR_BODY_CHUNKED) {
        PUT(&b, "Transfer-Encoding: chunked\r\n");
    }
    atr_hdr_apply(&b, rt->req_hdr, rt->nreq_hdr);
    PUT(&b, "\r\n");
    *len = b.n;
    return b.p;
}

const atr_backend_ops_t atr_backend_http = {
    .name = "http",
    .reuse = 1,
    .encode_head = encode_head,
    .frame_body = atr_frame_http,
    .upgrade = 1,
};

/* HTTP over TLS: the same encoding. Accepted by the config, refused by the
 * runtime's check until TLS lands. */
const atr_backend_ops_t atr_backend_https = {
    .name = "https",
    .tls = 1,
    .reuse = 1,
    .encode_head = encode_head,
    .frame_body = atr_frame_http,
    .upgrade = 1,
};

/* Fields the client head regenerates. */
static const uint32_t resp_regen = ATR_HK_BIT(ATR_HK_CONTENT_LENGTH) | ATR_HK_BIT(ATR_HK_VIA);

char *atr_http_client_head(atr_req_t *r, const atr_http_msg_t *m, int with_length,
                           uint64_t length, size_t *len)
{
    const atr_conf_t *conf = r->wg->gen->conf;
    const atr_conf_route_t *rt = r->route;
    atr_buf_t b = { atr_cache_head_get(r->wg->w), 0, ATR_HEAD_CAP };
    /* the parser took 100..599 only */
    char status[4] = { (char)('0' + m->status / 100), (char)('0' + m->status / 10 % 10),
                       (char)('0' + m->status % 10), ' ' };
    PUT(&b, "HTTP/1.1 ");
    atr_buf_put(&b, status, 4);
    if (m->reason.n)
        PUTV(&b, m->reason);
    else
        atr_buf_puts(&b, atr_http_reason(m->status));
    PUT(&b, "\r\n");
    copy_fields(&b, m, resp_regen, rt->resp_hdr, rt->nresp_hdr, 0);
    if (conf->via) /* the version the response was received with (RFC 9110 §7.6.3) */
        via(&b, m, m->cgi_form ? 1 : m->version_minor, conf->via);
    if (m->status == 101) {
        upgrade(&b, m);
    } else {
        if (with_length) {
            PUT(&b, "Content-Length: ");
            atr_buf_put_u64(&b, length);
            PUT(&b, "\r\n");
        } else if (r->resp_chunked) {
            PUT(&b, "Transfer-Encoding: chunked\r\n");
        }
        const char *conn = atr_req_connection_header(r);
        if (conn[0]) /* most often none: HTTP/1.1 keeps the connection by default */
            atr_buf_puts(&b, conn);
    }
    atr_hdr_apply(&b, rt->resp_hdr, rt->nresp_hdr);
    PUT(&b, "\r\n");
    *len = b.n;
    return b.p;
}
