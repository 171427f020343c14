/* HTTP/1.1 heads as Atrium forwards them (http_proto.h). */
#include "backends/http_proto.h"

#include "http/path.h"

/* Fields the encoder regenerates itself. */
static const uint32_t regen =
    ATR_HK_BIT(ATR_HK_HOST) | ATR_HK_BIT(ATR_HK_CONTENT_LENGTH) | ATR_HK_BIT(ATR_HK_EXPECT) |
    ATR_HK_BIT(ATR_HK_X_FORWARDED_FOR) | ATR_HK_BIT(ATR_HK_X_FORWARDED_PROTO) |
    ATR_HK_BIT(ATR_HK_X_FORWARDED_HOST) | ATR_HK_BIT(ATR_HK_FORWARDED) | ATR_HK_BIT(ATR_HK_VIA);

static inline atr_str_t origin_form(atr_str_t target)
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

static void forwarding(atr_buf_t *b, const atr_http_fwd_t *f)
{
    const atr_http_msg_t *m = f->m;
    PUT(b, "X-Forwarded-For: ");
    existing(b, m, ATR_HK_X_FORWARDED_FOR, ", ");
    PUTV(b, f->peer);
    if (f->https)
        PUT(b, "\r\nX-Forwarded-Proto: https\r\n");
    else
        PUT(b, "\r\nX-Forwarded-Proto: http\r\n");
    if (m->host.n) {
        PUT(b, "X-Forwarded-Host: ");
        PUTV(b, m->host);
        PUT(b, "\r\n");
    }
    PUT(b, "Forwarded: ");
    existing(b, m, ATR_HK_FORWARDED, ", ");
    PUT(b, "for=");
    if (f->peer_v6)
        PUT(b, "\"[");
    PUTV(b, f->peer);
    if (f->peer_v6)
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
    if (f->https)
        PUT(b, "proto=https\r\n");
    else
        PUT(b, "proto=http\r\n");
    if (f->via)
        via(b, m, m->version_minor, f->via);
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

/* The rewritten path, encoded, then the target's query. */
static void put_path(atr_buf_t *b, const char *path, atr_str_t target)
{
    size_t n = strlen(path);
    if (3 * n > b->cap - b->n)
        atr_buf_grow(b, 3 * n);
    b->n += (size_t)atr_path_encode(path, n, b->p + b->n, 3 * n);
    const char *q = memchr(target.p, '?', target.n);
    if (q)
        atr_buf_put(b, q, target.n - (size_t)(q - target.p));
}

void atr_http_encode_request(atr_buf_t *b, const atr_http_fwd_t *f)
{
    const atr_http_msg_t *m = f->m;
    PUTV(b, m->method_str);
    PUT(b, " ");
    if (f->path)
        put_path(b, f->path, m->target);
    else
        PUTV(b, origin_form(m->target));
    PUT(b, " HTTP/1.1\r\nHost: ");
    if (m->host.n)
        PUTV(b, m->host);
    else /* HTTP/1.0 without Host: the backend still gets HTTP/1.1 */
        atr_buf_puts(b, f->host_fallback);
    PUT(b, "\r\n");
    copy_fields(b, m, regen, f->ops, f->nops, f->drop_underscores);
    forwarding(b, f);
    if (m->upgrade)
        upgrade(b, m);
    else if (f->close)
        PUT(b, "Connection: close\r\n");
    if (f->body == ATR_BODY_LENGTH) {
        PUT(b, "Content-Length: ");
        atr_buf_put_u64(b, m->content_length);
        PUT(b, "\r\n");
    } else if (f->body == ATR_BODY_CHUNKED) {
        PUT(b, "Transfer-Encoding: chunked\r\n");
    }
    atr_hdr_apply(b, f->ops, f->nops);
    PUT(b, "\r\n");
}

/* Fields the client head regenerates. */
static const uint32_t resp_regen = ATR_HK_BIT(ATR_HK_CONTENT_LENGTH) | ATR_HK_BIT(ATR_HK_VIA);

void atr_http_encode_response(atr_buf_t *b, const atr_http_resp_t *f)
{
    const atr_http_msg_t *m = f->m;
    /* the parser took 100..599 only */
    char status[4] = { (char)('0' + m->status / 100), (char)('0' + m->status / 10 % 10),
                       (char)('0' + m->status % 10), ' ' };
    PUT(b, "HTTP/1.1 ");
    atr_buf_put(b, status, 4);
    if (m->reason.n)
        PUTV(b, m->reason);
    else
        atr_buf_puts(b, atr_http_reason(m->status));
    PUT(b, "\r\n");
    copy_fields(b, m, resp_regen, f->ops, f->nops, 0);
    if (f->via) /* the version the response was received with (RFC 9110 §7.6.3) */
        via(b, m, m->cgi_form ? 1 : m->version_minor, f->via);
    if (m->status == 101) {
        upgrade(b, m);
    } else {
        if (f->with_length) {
            PUT(b, "Content-Length: ");
            atr_buf_put_u64(b, f->length);
            PUT(b, "\r\n");
        } else if (f->chunked) {
            PUT(b, "Transfer-Encoding: chunked\r\n");
        }
        if (f->connection[0]) /* most often none: HTTP/1.1 keeps the connection by default */
            atr_buf_puts(b, f->connection);
    }
    atr_hdr_apply(b, f->ops, f->nops);
    PUT(b, "\r\n");
}
