/* What an HTTP head means: the actions of the grammar in http_head.y, run as
 * the tokenizer (http_parse.c) hands over its lines. They check what a line's
 * shape cannot (versions, status codes, targets, Host, framing fields) and
 * keep the one interpretation everything after the parser uses
 * (reliability.md §0.1), then copy it into the caller's message. Also the
 * small lookups on a parsed message. */
#include "http/http_parse_priv.h"

#include <stdlib.h>

#define CL_MAX (UINT64_C(1) << 62)

static const unsigned char lower[256] = {
#define L4(i) L1(i), L1(i + 1), L1(i + 2), L1(i + 3)
#define L1(i) ((i) + ((i) >= 'A' && (i) <= 'Z' ? 32 : 0))
#define L16(i) L4(i), L4(i + 4), L4(i + 8), L4(i + 12)
#define L64(i) L16(i), L16(i + 16), L16(i + 32), L16(i + 48)
    L64(0), L64(64), L64(128), L64(192)
#undef L1
#undef L4
#undef L16
#undef L64
};

/* Span equals a lowercase literal, ignoring case. */
static int span_ieq(const char *p, size_t n, const char *lit, size_t litn)
{
    size_t i;
    if (n != litn)
        return 0;
    for (i = 0; i < n; i++)
        if (lower[(unsigned char)p[i]] != (unsigned char)lit[i])
            return 0;
    return 1;
}
#define SPAN_IEQ(p, n, lit) span_ieq((p), (n), lit, sizeof(lit) - 1)

/* Two spans equal, ignoring ASCII case on both sides. */
static int span_ieq2(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i;
    if (an != bn)
        return 0;
    for (i = 0; i < an; i++)
        if (lower[(unsigned char)a[i]] != lower[(unsigned char)b[i]])
            return 0;
    return 1;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Walk a comma-separated list (RFC 9110 §5.6.1): calls fn for every
 * non-empty element with OWS trimmed; stops early when fn returns non-zero. */
typedef int (*elem_fn)(void *arg, const char *e, size_t n);
static int each_elem(const char *v, size_t n, elem_fn fn, void *arg)
{
    size_t i = 0;
    while (i < n) {
        size_t s, e;
        while (i < n && is_ows(v[i]))
            i++;
        s = i;
        while (i < n && v[i] != ',')
            i++;
        e = i;
        while (e > s && is_ows(v[e - 1]))
            e--;
        if (e > s && fn(arg, v + s, e - s))
            return 1;
        i++; /* past the comma */
    }
    return 0;
}

void atr__http_fail(atr_http_parser_t *p, int status, const char *reason)
{
    if (p->state == S_FAILED)
        return; /* keep the first reason */
    p->state = S_FAILED;
    p->err_status = p->is_response ? 502 : status;
    p->err_reason = reason;
}

void atr__http_syntax_error(atr_http_parser_t *p, int token)
{
    /* The tokenizer only ever starts a request with its request line, so
     * what is left is a response head with neither a status line nor a
     * field (an empty CGI header block). */
    atr__http_fail(p, 400, token == 0 ? "empty head" : "malformed head");
}

void atr__http_on_accept(atr_http_parser_t *p)
{
    p->s.accepted = 1;
}

enum atr_http_method atr_http_method_from(atr_str_t m)
{
#define M(lit, code)                                                          \
    if (m.n == sizeof(lit) - 1 && memcmp(m.p, lit, sizeof(lit) - 1) == 0)     \
        return code;
    switch (m.n) {
    case 3: M("GET", ATR_M_GET) M("PUT", ATR_M_PUT) break;
    case 4: M("POST", ATR_M_POST) M("HEAD", ATR_M_HEAD) break;
    case 5: M("PATCH", ATR_M_PATCH) M("TRACE", ATR_M_TRACE) break;
    case 6: M("DELETE", ATR_M_DELETE) break;
    case 7: M("OPTIONS", ATR_M_OPTIONS) M("CONNECT", ATR_M_CONNECT) break;
    default: break;
    }
#undef M
    return ATR_M_OTHER;
}

/* "HTTP/1.0" or "HTTP/1.1": returns the minor version, -1 when malformed,
 * -2 when well-formed but not 1.0/1.1. */
static int parse_version(const char *v, size_t n)
{
    if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' ||
        (unsigned)(v[5] - '0') > 9 || (unsigned)(v[7] - '0') > 9)
        return -1;
    if (v[5] != '1' || v[7] > '1')
        return -2;
    return v[7] - '0';
}

/* A plausible authority: reg-name / IPv4 / [IPv6] with an optional port; no
 * userinfo, path, whitespace or control bytes (RFC 3986 §3.2, RFC 9110 §7.2).
 * Returns 0 when not, else 2 when every byte is a tchar too (a name or an
 * IPv4 address without a port), 1 otherwise. */
static int valid_authority(const char *a, size_t n)
{
    size_t i;
    unsigned all = C_HOST | C_TCHAR;
    if (n == 0)
        return 0;
    for (i = 0; i < n; i++)
        all &= atr__http_cls[(unsigned char)a[i]];
    if (!(all & C_HOST))
        return 0;
    return all & C_TCHAR ? 2 : 1;
}

/* ------------------------------------------------------------ grammar actions */

static void check_target(atr_http_parser_t *p, const char *t, size_t n)
{
    size_t i = 0, a;
    if (p->s.mcode == ATR_M_CONNECT) { /* authority-form only (RFC 9112 §3.2.3) */
        if (!valid_authority(t, n) || memchr(t, ':', n) == NULL)
            atr__http_fail(p, 400, "invalid CONNECT target");
        return;
    }
    if (t[0] == '/')
        return; /* origin-form */
    if (n == 1 && t[0] == '*') {
        if (p->s.mcode != ATR_M_OPTIONS)
            atr__http_fail(p, 400, "asterisk-form outside OPTIONS");
        return;
    }
    /* absolute-form: scheme "://" authority [path-abempty] [? query] */
    if (!((t[0] | 0x20) >= 'a' && (t[0] | 0x20) <= 'z'))
        goto bad;
    while (i < n && t[i] != ':') {
        unsigned char c = (unsigned char)t[i];
        if (!((c | 0x20) >= 'a' && (c | 0x20) <= 'z') && !(c >= '0' && c <= '9') &&
            c != '+' && c != '-' && c != '.')
            goto bad;
        i++;
    }
    if (n - i < 3 || memcmp(t + i, "://", 3) != 0)
        goto bad;
    a = i += 3;
    while (i < n && t[i] != '/' && t[i] != '?' && t[i] != '#')
        i++;
    if (!valid_authority(t + a, i - a))
        goto bad;
    p->s.absolute_form = 1;
    p->s.authority.off = (uint32_t)(t + a - p->buf);
    p->s.authority.len = (uint32_t)(i - a);
    return;
bad:
    atr__http_fail(p, 400, "invalid request-target");
}

void atr__http_on_request_line(atr_http_parser_t *p)
{
    atr_http_tok_t m = p->sl[0], t = p->sl[1], v = p->sl[2];
    int minor = parse_version(p->buf + v.off, v.len);
    if (minor == -1) {
        atr__http_fail(p, 400, "malformed HTTP version");
        return;
    }
    if (minor == -2) {
        atr__http_fail(p, 505, "unsupported HTTP version");
        return;
    }
    p->s.version_minor = minor;
    p->s.method = m;
    p->s.target = t;
    p->s.mcode = atr_http_method_from((atr_str_t){ p->buf + m.off, m.len });
    check_target(p, p->buf + t.off, t.len);
}

void atr__http_on_status_line(atr_http_parser_t *p)
{
    atr_http_tok_t v = p->sl[0], s = p->sl[1], r = p->sl[2];
    const char *d = p->buf + s.off;
    int minor = parse_version(p->buf + v.off, v.len);
    if (minor < 0) {
        atr__http_fail(p, 502, "bad HTTP version in status line");
        return;
    }
    if (s.len != 3 || (unsigned)(d[0] - '1') > 4 || (unsigned)(d[1] - '0') > 9 ||
        (unsigned)(d[2] - '0') > 9) {
        atr__http_fail(p, 502, "bad status code");
        return;
    }
    p->s.version_minor = minor;
    p->s.status = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
    p->s.reason = r;
    p->s.saw_status_line = 1;
}

static int conn_elem(void *arg, const char *e, size_t n)
{
    atr_http_parser_t *p = arg;
    if (SPAN_IEQ(e, n, "close"))
        p->s.conn_close = 1;
    else if (SPAN_IEQ(e, n, "keep-alive"))
        p->s.conn_keep_alive = 1;
    else if (SPAN_IEQ(e, n, "upgrade"))
        p->s.conn_upgrade = 1;
    else
        p->s.conn_lists = 1;
    return 0;
}

/* Transfer-Encoding lines form one list; only its last coding decides. */
static int te_elem(void *arg, const char *e, size_t n)
{
    atr_http_parser_t *p = arg;
    int chunked = SPAN_IEQ(e, n, "chunked");
    if (chunked && p->s.te_chunked)
        p->s.te_chunked_twice = 1;
    if (chunked)
        p->s.te_chunked = 1;
    else
        p->s.te_other = 1;
    p->s.te_last_chunked = chunked;
    return 0;
}

static void on_content_length(atr_http_parser_t *p, const char *v, size_t n)
{
    uint64_t x = 0;
    size_t i;
    if (++p->s.ncl > 1) {
        atr__http_fail(p, 400, "repeated Content-Length");
        return;
    }
    if (n == 0)
        goto bad;
    for (i = 0; i < n; i++) {
        unsigned d = (unsigned char)v[i] - '0';
        if (d > 9)
            goto bad;
        if (x > (CL_MAX - d) / 10) /* before multiplying: 2^64 + 4 must not wrap to 4 */
            goto bad;
        x = x * 10 + d;
    }
    p->s.content_length = x;
    return;
bad:
    atr__http_fail(p, 400, "invalid Content-Length");
}

static void on_host(atr_http_parser_t *p, uint32_t idx, const char *v, size_t n)
{
    if (++p->s.nhost > 1) {
        atr__http_fail(p, 400, "repeated Host");
        return;
    }
    int valid = valid_authority(v, n);
    if (!valid) {
        atr__http_fail(p, 400, "invalid Host");
        return;
    }
    p->s.host_idx = (int)idx;
    p->s.host_token = valid == 2;
}

/* A name equals a literal of lowercase letters and '-', ignoring case, a word
 * at a time: OR-ing 0x20 into a byte gives the literal's byte only for its
 * two cases (and, for '-', for CR, which no name or value holds). With len a
 * constant at every call, this is a few loads and compares. */
static ATR_ALWAYS_INLINE int name_is(const char *n, size_t len, const char *lit)
{
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t a, l;
        memcpy(&a, n + i, 8);
        memcpy(&l, lit + i, 8);
        if ((a | UINT64_C(0x2020202020202020)) != l)
            return 0;
    }
    if (i + 4 <= len) {
        uint32_t a, l;
        memcpy(&a, n + i, 4);
        memcpy(&l, lit + i, 4);
        if ((a | UINT32_C(0x20202020)) != l)
            return 0;
        i += 4;
    }
    for (; i < len; i++)
        if ((unsigned char)(n[i] | 0x20) != (unsigned char)lit[i])
            return 0;
    return 1;
}
#define NAME_IS(n, lit) name_is((n), sizeof(lit) - 1, lit)

/* What a field name is: one table for the parser's fields and the header
 * filter's Connection tokens. Only names of the lengths we care about get
 * compared at all. Always inlined: the parser runs it for every field, and
 * as a call it cost 2% of a proxied request's instructions. */
static ATR_ALWAYS_INLINE enum atr_http_hkind hkind_of(const char *n, size_t len)
{
    switch (len) {
    case 2: return NAME_IS(n, "te") ? ATR_HK_HOP : ATR_HK_OTHER;
    case 3: return NAME_IS(n, "via") ? ATR_HK_VIA : ATR_HK_OTHER;
    case 4: return NAME_IS(n, "host") ? ATR_HK_HOST : ATR_HK_OTHER;
    case 6:
        return NAME_IS(n, "expect") ? ATR_HK_EXPECT
               : NAME_IS(n, "status") ? ATR_HK_STATUS : ATR_HK_OTHER;
    case 7:
        return NAME_IS(n, "upgrade") ? ATR_HK_UPGRADE
               : NAME_IS(n, "trailer") ? ATR_HK_HOP : ATR_HK_OTHER;
    case 8: return NAME_IS(n, "location") ? ATR_HK_LOCATION : ATR_HK_OTHER;
    case 9: return NAME_IS(n, "forwarded") ? ATR_HK_FORWARDED : ATR_HK_OTHER;
    case 10:
        return NAME_IS(n, "connection") ? ATR_HK_CONNECTION
               : NAME_IS(n, "keep-alive") ? ATR_HK_HOP : ATR_HK_OTHER;
    case 14: return NAME_IS(n, "content-length") ? ATR_HK_CONTENT_LENGTH : ATR_HK_OTHER;
    case 15: return NAME_IS(n, "x-forwarded-for") ? ATR_HK_X_FORWARDED_FOR : ATR_HK_OTHER;
    case 16:
        return NAME_IS(n, "x-forwarded-host") ? ATR_HK_X_FORWARDED_HOST
               : NAME_IS(n, "proxy-connection") ? ATR_HK_HOP : ATR_HK_OTHER;
    case 17:
        return NAME_IS(n, "transfer-encoding") ? ATR_HK_TRANSFER_ENCODING
               : NAME_IS(n, "x-forwarded-proto") ? ATR_HK_X_FORWARDED_PROTO
               : ATR_HK_OTHER;
    case 18: return NAME_IS(n, "proxy-authenticate") ? ATR_HK_HOP : ATR_HK_OTHER;
    case 19: return NAME_IS(n, "proxy-authorization") ? ATR_HK_HOP : ATR_HK_OTHER;
    default: return ATR_HK_OTHER;
    }
}

enum atr_http_hkind atr_http_hkind(atr_str_t name)
{
    return hkind_of(name.p, name.n);
}

/* A CGI field a response may have once (Status, Location): where it is. */
static void cgi_field_once(atr_http_parser_t *p, int *at, uint32_t idx, const char *why)
{
    if (*at >= 0)
        atr__http_fail(p, 502, why);
    *at = (int)idx;
}

void atr__http_on_field(atr_http_parser_t *p, const atr_http_tok_t *tp)
{
    const atr_http_tok_t t = *tp;
    const char *n = p->buf + t.off, *v = p->buf + t.voff;
    uint32_t idx = p->s.nfields;
    if (idx >= ATR_HTTP_MAX_HEADERS_HARD) { /* the tokenizer stops earlier */
        atr__http_fail(p, 431, "too many header fields");
        return;
    }
    p->m->headers[idx] = (atr_http_header_t){ { n, t.len }, { v, t.vlen } };
    p->s.nfields = idx + 1;

    enum atr_http_hkind k = hkind_of(n, t.len);
    p->m->hkind[idx] = (uint8_t)k;
    p->s.hkinds |= ATR_HK_BIT(k);
    switch (k) {
    case ATR_HK_HOST:
        if (!p->is_response)
            on_host(p, idx, v, t.vlen);
        break;
    case ATR_HK_EXPECT:
        if (SPAN_IEQ(v, t.vlen, "100-continue"))
            p->s.expect = 1;
        break;
    case ATR_HK_STATUS:
        if (p->is_response)
            cgi_field_once(p, &p->s.status_idx, idx, "repeated Status");
        break;
    case ATR_HK_LOCATION:
        if (p->is_response)
            cgi_field_once(p, &p->s.location_idx, idx, "repeated Location");
        break;
    case ATR_HK_UPGRADE:
        p->s.has_upgrade = 1;
        break;
    case ATR_HK_CONNECTION:
        each_elem(v, t.vlen, conn_elem, p);
        break;
    case ATR_HK_CONTENT_LENGTH:
        on_content_length(p, v, t.vlen);
        break;
    case ATR_HK_TRANSFER_ENCODING:
        p->s.nte++;
        each_elem(v, t.vlen, te_elem, p);
        break;
    default: /* most fields: nothing to interpret */
        break;
    }
}

#define FAILV(st, why)                                                        \
    do {                                                                      \
        atr__http_fail(p, (st), (why));                                       \
        return;                                                               \
    } while (0)

static void end_request(atr_http_parser_t *p)
{
    sem_t *s = &p->s;
    if (s->version_minor == 1 && s->nhost == 0)
        FAILV(400, "missing Host");
    if (s->absolute_form && s->nhost) {
        atr_str_t h = p->m->headers[s->host_idx].value;
        if (!span_ieq2(h.p, h.n, p->buf + s->authority.off, s->authority.len))
            FAILV(400, "Host does not match request-target");
    }
    if (s->nte) {
        if (s->version_minor == 0)
            FAILV(400, "Transfer-Encoding in HTTP/1.0");
        if (s->ncl)
            FAILV(400, "both Content-Length and Transfer-Encoding");
        if (!s->te_last_chunked)
            FAILV(400, "chunked is not the final transfer coding");
        if (s->te_chunked_twice)
            FAILV(400, "chunked applied more than once");
        if (s->te_other)
            FAILV(501, "unsupported transfer coding");
        s->body = ATR_BODY_CHUNKED;
    } else {
        s->body = s->ncl ? ATR_BODY_LENGTH : ATR_BODY_NONE;
    }
}

/* CGI: "Status: NNN [reason]" (RFC 3875 §6.3.3). */
static void cgi_status(atr_http_parser_t *p)
{
    sem_t *s = &p->s;
    if (s->status_idx >= 0) {
        atr_str_t f = p->m->headers[s->status_idx].value;
        const char *d = f.p;
        uint32_t n = (uint32_t)f.n, i = 3;
        if (n < 3 || (unsigned)(d[0] - '1') > 4 || (unsigned)(d[1] - '0') > 9 ||
            (unsigned)(d[2] - '0') > 9 || (n > 3 && d[3] != ' '))
            FAILV(502, "invalid CGI Status");
        s->status = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
        while (i < n && is_ows(d[i]))
            i++;
        s->reason.off = (uint32_t)(d - p->buf) + i;
        s->reason.len = n - i;
    } else {
        s->status = s->location_idx >= 0 ? 302 : 200;
        s->reason.off = 0;
        s->reason.len = 0;
    }
    s->version_minor = 1;
}

static void end_response(atr_http_parser_t *p)
{
    sem_t *s = &p->s;
    if (!s->saw_status_line) {
        cgi_status(p);
        if (p->state == S_FAILED)
            return;
    }
    if (s->nte) {
        if (s->version_minor == 0)
            FAILV(502, "Transfer-Encoding in HTTP/1.0 response");
        if (s->ncl)
            FAILV(502, "both Content-Length and Transfer-Encoding");
        if (s->te_chunked_twice)
            FAILV(502, "chunked applied more than once");
        /* A coding we would have to drop with the hop-by-hop header (gzip,
         * ...) would reach the client unlabelled: refuse it, as nginx does. */
        if (s->te_other)
            FAILV(502, "unsupported transfer coding from backend");
        s->body = ATR_BODY_CHUNKED;
    } else {
        s->body = s->ncl ? ATR_BODY_LENGTH : ATR_BODY_UNTIL_CLOSE;
    }
    /* RFC 9112 §6.3 rules 1-2: these never have a body, whatever the fields. */
    if (s->status < 200 || s->status == 204 || s->status == 304 ||
        p->req_method == ATR_M_HEAD ||
        (p->req_method == ATR_M_CONNECT && s->status < 300))
        s->body = ATR_BODY_NONE;
}

void atr__http_on_end(atr_http_parser_t *p)
{
    /* Lemon may reduce the last field line and the whole head in one step
     * (at end of input): a field that failed just now must not be followed
     * by checks that trust its indices (a Host that failed has none). */
    if (p->state == S_FAILED)
        return;
    if (p->is_response)
        end_response(p);
    else
        end_request(p);
}

void atr__http_fill(const atr_http_parser_t *p, const char *b, atr_http_msg_t *m)
{
    const sem_t *s = &p->s;
    m->method = s->mcode;
    m->method_str = (atr_str_t){ b + s->method.off, s->method.len };
    m->target = (atr_str_t){ b + s->target.off, s->target.len };
    m->status = s->status;
    m->reason = (atr_str_t){ b + s->reason.off, s->reason.len };
    m->version_minor = s->version_minor;
    m->cgi_form = p->is_response && !s->saw_status_line;
    m->nheaders = s->nfields;
    m->hkinds = s->hkinds;
    m->conn_lists = s->conn_lists;
    m->body = s->body;
    m->content_length = s->body == ATR_BODY_LENGTH ? s->content_length : 0;
    m->host = (atr_str_t){ b, 0 };
    if (s->host_idx >= 0)
        m->host = m->headers[s->host_idx].value;
    m->host_token = s->host_token;
    m->location = (atr_str_t){ b, 0 };
    if (m->cgi_form && s->location_idx >= 0)
        m->location = m->headers[s->location_idx].value;
    m->conn_close = s->conn_close;
    m->keep_alive = !s->conn_close && (s->version_minor == 1 || s->conn_keep_alive) &&
                    s->body != ATR_BODY_UNTIL_CLOSE;
    /* RFC 9110 §7.8: Upgrade in an HTTP/1.0 request is ignored */
    m->upgrade = s->conn_upgrade && s->has_upgrade && (p->is_response || s->version_minor >= 1);
    m->expect_continue = !p->is_response && s->version_minor == 1 && s->expect;
    m->head_len = p->pos;
}

const atr_http_header_t *atr_http_find(const atr_http_msg_t *m, const char *lower_name)
{
    size_t n = strlen(lower_name);
    uint32_t i;
    for (i = 0; i < m->nheaders; i++)
        if (span_ieq(m->headers[i].name.p, m->headers[i].name.n, lower_name, n))
            return &m->headers[i];
    return NULL;
}

static int elem_is(void *arg, const char *e, size_t n)
{
    return span_ieq(e, n, arg, strlen(arg));
}

int atr_http_connection_has(const atr_http_msg_t *m, const char *lower_token)
{
    uint32_t i;
    for (i = 0; i < m->nheaders; i++)
        if (SPAN_IEQ(m->headers[i].name.p, m->headers[i].name.n, "connection") &&
            each_elem(m->headers[i].value.p, m->headers[i].value.n, elem_is,
                      (void *)lower_token))
            return 1;
    return 0;
}

/* ---- copying a parsed head ---- */

static void copy_view(atr_str_t *v, char **at)
{
    if (v->n == 0)
        return;
    memcpy(*at, v->p, v->n);
    v->p = *at;
    *at += v->n;
}

char *atr_http_msg_copy(const atr_http_msg_t *m, atr_http_msg_t *out)
{
    size_t total = m->method_str.n + m->target.n + m->reason.n + m->host.n + m->location.n;
    for (uint32_t i = 0; i < m->nheaders; i++)
        total += m->headers[i].name.n + m->headers[i].value.n;
    char *arena = atr_xmalloc(total ? total : 1), *at = arena;
    *out = *m;
    copy_view(&out->method_str, &at);
    copy_view(&out->target, &at);
    copy_view(&out->reason, &at);
    copy_view(&out->host, &at);
    copy_view(&out->location, &at);
    for (uint32_t i = 0; i < out->nheaders; i++) {
        copy_view(&out->headers[i].name, &at);
        copy_view(&out->headers[i].value, &at);
    }
    return arena;
}
