/* HTTP/1.1 heads, the tokenizer: a resumable modal tokenizer feeding the
 * Lemon grammar in http_head.y, one token per line. The grammar's actions,
 * the one interpretation of a head that everything after the parser uses
 * (framing, Host, Connection; reliability.md §0.1), are in http_interp.c.
 *
 * The tokenizer keeps its position as an offset into the caller's buffer, so
 * the buffer may move between calls and no byte is looked at twice (apart
 * from trimming trailing OWS off a value and the 5-byte "HTTP/" look-ahead at
 * the start of a response). Tokens are spans; nothing is copied. The tokenizer
 * owns byte classes, limits and the shape of each line, the grammar owns
 * structure, and the actions own meaning. */
#include "http/http_parse_priv.h"
#include "http_head.h" /* generated: ATR_HT_* token codes */

#include <stdlib.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define MAX_METHOD 32     /* longer methods get 501 (RFC 9112 §3) */
#define MAX_LEAD_CRLF 8   /* empty lines tolerated before a request line */

/* Byte classes (C_* in http_parse_priv.h), shared with the actions. */
#define TC (C_TCHAR | C_VCHAR | C_VALUE)
#define TH (TC | C_HOST)
#define VC (C_VCHAR | C_VALUE)
#define VH (VC | C_HOST)
const unsigned char atr__http_cls[256] = {
    /* 0x00 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, C_VALUE, 0, 0, 0, 0, 0, 0,
    /* 0x10 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0x20  SP  !  "  #  $  %  &  '  (  )  *  +  ,  -  .  / */
    C_VALUE, TH, VC, TC, TH, TH, TH, TH, VH, VH, TH, TH, VH, TH, TH, VC,
    /* 0x30  0-9 : ; < = > ? */
    TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, VH, VH, VC, VH, VC, VC,
    /* 0x40  @ A-O */
    VC, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH,
    /* 0x50  P-Z [ \ ] ^ _ */
    TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, VH, VC, VH, TC, TH,
    /* 0x60  ` a-o */
    TC, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH,
    /* 0x70  p-z { | } ~ DEL */
    TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, VC, TC, VC, TH, 0,
    /* 0x80-0xFF obs-text: allowed in values only */
    [0x80 ... 0xFF] = C_VALUE,
};
#undef TC
#undef TH
#undef VC
#undef VH

int atr_http_is_tchar(unsigned char c)
{
    return atr__http_cls[c] & C_TCHAR;
}

/* ------------------------------------------------------------------ parser */

static void sem_reset(sem_t *s)
{
    memset(s, 0, sizeof *s);
    s->host_idx = s->status_idx = s->location_idx = -1;
}

void atr_http_parser_set_limits(atr_http_parser_t *p, const atr_http_limits_t *limits)
{
    p->lim.max_request_line = limits && limits->max_request_line ? limits->max_request_line : 8192;
    p->lim.max_head = limits && limits->max_head ? limits->max_head : 32768;
    p->lim.max_headers = limits && limits->max_headers ? limits->max_headers : 100;
    if (p->lim.max_headers > ATR_HTTP_MAX_HEADERS_HARD)
        p->lim.max_headers = ATR_HTTP_MAX_HEADERS_HARD;
}

atr_http_parser_t *atr_http_parser_new(int is_response, const atr_http_limits_t *limits)
{
    size_t head = (sizeof(atr_http_parser_t) + 15) & ~(size_t)15;
    atr_http_parser_t *p = atr_xmalloc(head + atr__http_head_size());
    p->lemon = (char *)p + head;
    p->m = NULL;
    p->mbuf = NULL;
    p->is_response = is_response;
    p->req_method = ATR_M_OTHER;
    p->lf_ok = 0;
    atr_http_parser_set_limits(p, limits);
    atr_http_headInit(p->lemon, p);
    atr_http_parser_reset(p);
    return p;
}

void atr_http_parser_free(atr_http_parser_t *p)
{
    if (p == NULL)
        return;
    atr_http_headFinalize(p->lemon);
    free(p);
}

void atr_http_parser_reset(atr_http_parser_t *p)
{
    atr_http_headFinalize(p->lemon);
    atr_http_headInit(p->lemon, p);
    p->state = p->is_response ? S_RESP_START : S_LEAD;
    p->pos = p->tok = p->line = p->nlead = p->nnames = 0;
    p->err_status = 0;
    p->err_reason = NULL;
    p->buf = NULL;
    sem_reset(&p->s);
}

void atr_http_parser_set_request_method(atr_http_parser_t *p, enum atr_http_method m)
{
    p->req_method = m;
}

void atr_http_parser_set_lenient_lf(atr_http_parser_t *p, int on)
{
    p->lf_ok = on && p->is_response;
}

/* Scanners: the index of the first byte at or after pos (before end) that
 * leaves the class. SSE2 looks at 16 bytes per step, which is what keeps long
 * targets, cookies and user agents cheap. */
static uint32_t scan_value(const unsigned char *b, uint32_t pos, uint32_t end)
{
#ifdef __SSE2__
    const __m128i c1f = _mm_set1_epi8(0x1f), tab = _mm_set1_epi8('\t'),
                  del = _mm_set1_epi8(0x7f);
    while (end - pos >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + pos));
        __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, c1f), v); /* <= 0x1f */
        ctl = _mm_andnot_si128(_mm_cmpeq_epi8(v, tab), ctl);
        ctl = _mm_or_si128(ctl, _mm_cmpeq_epi8(v, del));
        unsigned m = (unsigned)_mm_movemask_epi8(ctl);
        if (m)
            return pos + (uint32_t)__builtin_ctz(m);
        pos += 16;
    }
#endif
    while (pos < end && (atr__http_cls[b[pos]] & C_VALUE))
        pos++;
    return pos;
}

static uint32_t scan_vchar(const unsigned char *b, uint32_t pos, uint32_t end)
{
#ifdef __SSE2__
    const __m128i c20 = _mm_set1_epi8(0x20), c7f = _mm_set1_epi8(0x7f);
    while (end - pos >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + pos));
        __m128i out = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, c20), v),  /* <= 0x20 */
                                   _mm_cmpeq_epi8(_mm_max_epu8(v, c7f), v)); /* >= 0x7f */
        unsigned m = (unsigned)_mm_movemask_epi8(out);
        if (m)
            return pos + (uint32_t)__builtin_ctz(m);
        pos += 16;
    }
#endif
    while (pos < end && (atr__http_cls[b[pos]] & C_VCHAR))
        pos++;
    return pos;
}

/* Field names and methods are almost all letters, digits and '-': SSE2 skips
 * those 16 bytes per step, and the table decides from the first other byte
 * on (the ':' that ends a name, or a rarer tchar such as '_'). Inlined: as
 * a call, setting up its constants cost more than the scan of a short name. */
static ATR_ALWAYS_INLINE uint32_t scan_tchar(const unsigned char *b, uint32_t pos, uint32_t end)
{
#ifdef __SSE2__
    const __m128i c20 = _mm_set1_epi8(0x20), ca = _mm_set1_epi8('a'), c25 = _mm_set1_epi8(25),
                  c0 = _mm_set1_epi8('0'), c9 = _mm_set1_epi8(9), dash = _mm_set1_epi8('-');
    while (end - pos >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + pos));
        __m128i l = _mm_sub_epi8(_mm_or_si128(v, c20), ca); /* letter: 0..25 */
        __m128i d = _mm_sub_epi8(v, c0);                     /* digit: 0..9 */
        __m128i ok = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(l, c25), l),
                                  _mm_cmpeq_epi8(_mm_min_epu8(d, c9), d));
        ok = _mm_or_si128(ok, _mm_cmpeq_epi8(v, dash));
        unsigned m = ~(unsigned)_mm_movemask_epi8(ok) & 0xffffu;
        if (m) {
            pos += (uint32_t)__builtin_ctz(m);
            break;
        }
        pos += 16;
    }
#endif
    while (pos < end && (atr__http_cls[b[pos]] & C_TCHAR))
        pos++;
    return pos;
}

/* The tokenizer. Scans b[pos..end) where end stops at the first limit, and
 * pushes every complete token to the grammar at once. */
#define EMIT(code, o, l, vo, vl)                                              \
    do {                                                                      \
        atr_http_tok_t t_ = { (uint32_t)(o), (uint32_t)(l), (uint32_t)(vo),   \
                              (uint32_t)(vl) };                               \
        atr_http_head(p->lemon, (code), t_);                                  \
        if (p->state == S_FAILED)                                             \
            return ATR_ERROR;                                                 \
    } while (0)

/* Where a field value ends once trailing OWS is off: e is where its line's
 * CR (or LF) is, from where the value starts. */
static uint32_t trim_ows(const unsigned char *b, uint32_t from, uint32_t e)
{
    while (e > from && (b[e - 1] == ' ' || b[e - 1] == '\t'))
        e--;
    return e;
}

#define FAIL(st, why)                                                         \
    do {                                                                      \
        atr__http_fail(p, (st), (why));                                       \
        return ATR_ERROR;                                                     \
    } while (0)

static int bad_byte(atr_http_parser_t *p, unsigned char c, const char *why)
{
    if (c == '\n')
        why = "bare LF";
    else if (c == '\r')
        why = "bare CR";
    else if (c == 0)
        why = "NUL byte";
    atr__http_fail(p, 400, why);
    return ATR_ERROR;
}

static atr_http_tok_t span(uint32_t from, uint32_t to)
{
    return (atr_http_tok_t){ from, to - from, 0, 0 };
}

/* A word of the start line ended at byte c where it may not. */
static int start_line_error(atr_http_parser_t *p, unsigned char c, const char *why)
{
    if (c == ' ')
        FAIL(400, "unexpected space");
    if (c == '\r' || (c == '\n' && p->lf_ok))
        FAIL(400, "incomplete start line");
    return bad_byte(p, c, why);
}

/* Where scanning must stop: the request line limit (414) while in it, the
 * head limit (431) always. */
static uint32_t limit_of(const atr_http_parser_t *p)
{
    uint32_t lim = p->lim.max_head;
    if (p->state >= S_METHOD && p->state <= S_START_LF && !p->is_response &&
        (uint64_t)p->line + p->lim.max_request_line < lim)
        lim = p->line + p->lim.max_request_line;
    return lim;
}

static int out_of_bytes(atr_http_parser_t *p, uint32_t pos, size_t len)
{
    uint32_t lim = limit_of(p);
    p->pos = pos;
    if (pos < lim && pos >= len)
        return ATR_AGAIN;
    if (pos >= p->lim.max_head)
        FAIL(431, "head too large");
    FAIL(414, "request line too long");
}

static int tokenize(atr_http_parser_t *p, const unsigned char *b, size_t len)
{
    uint32_t pos = p->pos, tok = p->tok, end;
    unsigned char c;

#define RECOMPUTE_END()                                                       \
    do {                                                                      \
        uint32_t lim_ = limit_of(p);                                          \
        end = len < lim_ ? (uint32_t)len : lim_;                              \
    } while (0)
#define NEED_BYTE()                                                           \
    do {                                                                      \
        if (pos >= end) {                                                     \
            p->tok = tok;                                                     \
            return out_of_bytes(p, pos, len);                                 \
        }                                                                     \
    } while (0)

    RECOMPUTE_END();
    for (;;) {
        switch (p->state) {
        case S_LEAD:
            NEED_BYTE();
            if (b[pos] == '\r') {
                pos++;
                p->state = S_LEAD_LF;
                continue;
            }
            p->line = tok = pos;
            p->state = S_METHOD;
            RECOMPUTE_END();
            continue;

        case S_LEAD_LF:
            NEED_BYTE();
            if (b[pos] != '\n')
                return bad_byte(p, b[pos], "bare CR");
            if (++p->nlead > MAX_LEAD_CRLF)
                FAIL(400, "too many empty lines before request");
            pos++;
            p->state = S_LEAD;
            continue;

        case S_RESP_START: {
            static const char pfx[] = "HTTP/";
            uint32_t i;
            for (i = 0; i < 5 && pos + i < end; i++)
                if (b[pos + i] != (unsigned char)pfx[i])
                    break;
            if (i < 5 && pos + i >= end) { /* a prefix of "HTTP/" so far */
                if (out_of_bytes(p, pos + i, len) != ATR_AGAIN)
                    return ATR_ERROR;
                p->pos = pos; /* look at these bytes again when more come */
                return ATR_AGAIN;
            }
            p->line = tok = pos;
            p->state = i == 5 ? S_SL_VERSION : S_LINE;
            continue;
        }

        case S_METHOD:
            pos = scan_tchar(b, pos, end);
            if (pos - tok > MAX_METHOD)
                FAIL(501, "method too long");
            NEED_BYTE();
            c = b[pos];
            if (c != ' ' || pos == tok)
                return start_line_error(p, c, "invalid byte in method");
            p->sl[0] = span(tok, pos);
            tok = ++pos;
            p->state = S_TARGET;
            __attribute__((fallthrough));

        case S_TARGET:
            pos = scan_vchar(b, pos, end);
            NEED_BYTE();
            c = b[pos];
            if (c != ' ' || pos == tok)
                return start_line_error(p, c, "invalid byte in request-target");
            p->sl[1] = span(tok, pos);
            tok = ++pos;
            p->state = S_VERSION;
            __attribute__((fallthrough));

        case S_VERSION:
            pos = scan_vchar(b, pos, end);
            NEED_BYTE();
            c = b[pos];
            if (c != '\r' || pos == tok)
                return start_line_error(p, c, "invalid byte in start line");
            p->sl[2] = span(tok, pos);
            pos++;
            p->state = S_START_LF;
            goto start_lf;

        case S_SL_VERSION:
            pos = scan_vchar(b, pos, end);
            NEED_BYTE();
            c = b[pos];
            if (c != ' ')
                return start_line_error(p, c, "invalid byte in start line");
            p->sl[0] = span(tok, pos);
            tok = ++pos;
            p->state = S_SL_STATUS;
            __attribute__((fallthrough));

        case S_SL_STATUS:
            pos = scan_vchar(b, pos, end);
            NEED_BYTE();
            c = b[pos];
            if (pos == tok)
                return start_line_error(p, c, "invalid byte in start line");
            p->sl[1] = span(tok, pos);
            if (c == ' ') { /* a reason phrase, maybe empty, follows */
                tok = ++pos;
                p->state = S_SL_REASON;
                goto reason;
            }
            if (c != '\r' && !(c == '\n' && p->lf_ok))
                return bad_byte(p, c, "invalid byte in start line");
            p->sl[2] = span(pos, pos); /* no reason phrase */
            if (c == '\r')
                pos++; /* LF alone: S_START_LF takes it as if a CR had come */
            p->state = S_START_LF;
            goto start_lf;

        case S_SL_REASON:
        reason:
            pos = scan_value(b, pos, end);
            NEED_BYTE();
            c = b[pos];
            if (c != '\r' && !(c == '\n' && p->lf_ok))
                return bad_byte(p, c, "control byte in reason phrase");
            p->sl[2] = span(tok, pos);
            if (c == '\r')
                pos++;
            p->state = S_START_LF;
            __attribute__((fallthrough));

        case S_START_LF:
        start_lf:
            NEED_BYTE();
            if (b[pos] != '\n')
                return bad_byte(p, b[pos], "bare CR");
            EMIT(p->is_response ? ATR_HT_STATUS_LINE : ATR_HT_REQUEST_LINE, p->line,
                 pos + 1 - p->line, 0, 0);
            pos++;
            p->state = S_LINE;
            RECOMPUTE_END(); /* the request line limit no longer applies */
            goto line;

        case S_LINE:
        line:
            NEED_BYTE();
            c = b[pos];
            if (atr__http_cls[c] & C_TCHAR) {
                uint32_t q, v, e;
                if (p->nnames >= p->lim.max_headers)
                    FAIL(431, "too many header fields");
                p->nnames++;
                tok = pos;
                /* The whole line at once, in registers, when it is all here
                 * and well-formed, as almost every line is. Anything else
                 * (a line cut by the end of the bytes, LF alone, an error)
                 * goes on in the state that matches how far this got, so
                 * nothing is scanned twice. */
                q = scan_tchar(b, pos + 1, end);
                if (q >= end || b[q] != ':') {
                    pos = q;
                    p->state = S_NAME;
                    continue;
                }
                v = q + 1;
                if (v < end && b[v] == ' ')
                    v++;
                while (v < end && (b[v] == ' ' || b[v] == '\t'))
                    v++;
                e = v < end ? scan_value(b, v, end) : v;
                if (e + 1 >= end || b[e] != '\r' || b[e + 1] != '\n') {
                    p->name_off = tok;
                    p->name_len = q - tok;
                    if (v >= end) { /* more whitespace may follow */
                        pos = v;
                        p->state = S_OWS;
                    } else {
                        tok = v;
                        pos = e;
                        p->state = S_VALUE;
                    }
                    continue;
                }
                pos = e + 2;
                e = trim_ows(b, v, e);
                EMIT(ATR_HT_FIELD, tok, q - tok, v, e - v);
                goto line; /* still S_LINE */
            } else if (c == '\r') {
                pos++;
                p->state = S_END_LF;
            } else if (c == '\n' && p->lf_ok) {
                p->state = S_END_LF;
            } else if (c == ':') {
                FAIL(400, "empty field name");
            } else if (c == ' ' || c == '\t') {
                FAIL(400, "obs-fold or whitespace at line start");
            } else {
                return bad_byte(p, c, "invalid byte in field name");
            }
            continue;

        case S_NAME:
            pos = scan_tchar(b, pos, end);
            NEED_BYTE();
            c = b[pos];
            if (c != ':') {
                if (c == ' ' || c == '\t')
                    FAIL(400, "whitespace between field name and colon");
                if (c == '\r')
                    FAIL(400, "field line without colon");
                return bad_byte(p, c, "invalid byte in field name");
            }
            p->name_off = tok;
            p->name_len = pos - tok;
            pos++;
            p->state = S_OWS;
            __attribute__((fallthrough));

        case S_OWS:
            while (pos < end && (b[pos] == ' ' || b[pos] == '\t'))
                pos++;
            NEED_BYTE();
            c = b[pos];
            tok = pos;
            if (c == '\r' || (c == '\n' && p->lf_ok)) {
                p->val_end = pos; /* empty value */
                if (c == '\r')
                    pos++;
                p->state = S_LF;
                continue;
            }
            if (!(atr__http_cls[c] & C_VALUE))
                return bad_byte(p, c, "control byte in field value");
            p->state = S_VALUE;
            __attribute__((fallthrough));

        case S_VALUE:
            pos = scan_value(b, pos, end);
            NEED_BYTE();
            c = b[pos];
            if (c != '\r' && !(c == '\n' && p->lf_ok))
                return bad_byte(p, c, "control byte in field value");
            p->val_end = trim_ows(b, tok, pos);
            if (c == '\r')
                pos++;
            p->state = S_LF;
            __attribute__((fallthrough));

        case S_LF:
            NEED_BYTE();
            if (b[pos] != '\n')
                return bad_byte(p, b[pos], "bare CR");
            EMIT(ATR_HT_FIELD, p->name_off, p->name_len, tok, p->val_end - tok);
            pos++;
            p->state = S_LINE;
            continue;

        case S_END_LF:
            NEED_BYTE();
            if (b[pos] != '\n')
                return bad_byte(p, b[pos], "bare CR");
            EMIT(0, pos + 1, 0, 0, 0); /* the empty line ends the head */
            if (!p->s.accepted)
                FAIL(400, "incomplete head");
            p->pos = pos + 1;
            p->state = S_DONE;
            return ATR_DONE;

        case S_DONE:
            return ATR_DONE;

        default:
            return ATR_ERROR;
        }
    }
#undef NEED_BYTE
#undef RECOMPUTE_END
}

/* The field views already in the message follow the bytes to where the
 * caller's buffer is now (integer arithmetic: the old buffer may be gone). */
static void rebase(atr_http_parser_t *p, const char *buf)
{
    uintptr_t from = (uintptr_t)p->mbuf, to = (uintptr_t)buf;
    for (uint32_t i = 0; i < p->s.nfields; i++) {
        atr_http_header_t *h = &p->m->headers[i];
        h->name.p = (const char *)((uintptr_t)h->name.p - from + to);
        h->value.p = (const char *)((uintptr_t)h->value.p - from + to);
    }
    p->mbuf = buf;
}

int atr_http_parse(atr_http_parser_t *p, const char *buf, size_t len,
                   atr_http_msg_t *msg, int *status, const char **reason)
{
    int rc;
    if (msg != p->m) {
        if (p->s.nfields) /* a caller bug: one head, one message */
            abort();
        p->m = msg;
    }
    if (buf != p->mbuf)
        rebase(p, buf);
    if (p->state != S_FAILED && len < p->pos)
        atr__http_fail(p, 400, "head buffer shrank");
    p->buf = buf;
    rc = p->state == S_FAILED ? ATR_ERROR : tokenize(p, (const unsigned char *)buf, len);
    if (rc == ATR_DONE) {
        atr__http_fill(p, buf, msg);
    } else if (rc == ATR_ERROR) {
        *status = p->err_status;
        *reason = p->err_reason;
    }
    return rc;
}
