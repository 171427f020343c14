#include "http/headers.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

void atr_buf_grow(atr_buf_t *b, size_t more)
{
    if (b->n + more <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->n + more)
        cap *= 2;
    b->p = atr_xrealloc(b->p, cap);
    b->cap = cap;
}

void atr_buf_puts(atr_buf_t *b, const char *s)
{
    atr_buf_put(b, s, strlen(s));
}

void atr_buf_printf(atr_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    char probe[1]; /* measuring into NULL trips a -Wformat-truncation false alarm */
    va_start(ap, fmt);
    int n = vsnprintf(probe, sizeof probe, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    atr_buf_grow(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

void atr_buf_header(atr_buf_t *b, atr_str_t name, atr_str_t value)
{
    atr_buf_grow(b, name.n + value.n + 4);
    memcpy(b->p + b->n, name.p, name.n);
    b->n += name.n;
    b->p[b->n++] = ':';
    b->p[b->n++] = ' ';
    memcpy(b->p + b->n, value.p, value.n);
    b->n += value.n;
    b->p[b->n++] = '\r';
    b->p[b->n++] = '\n';
}

/* Call fn for every token of every Connection header line; stops when fn
 * returns non-zero and returns that. */
static int each_connection_token(const atr_http_msg_t *m, int (*fn)(void *, atr_str_t), void *arg)
{
    for (uint32_t i = 0; i < m->nheaders; i++) {
        if (m->hkind[i] != ATR_HK_CONNECTION)
            continue;
        const char *p = m->headers[i].value.p, *end = p + m->headers[i].value.n;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            const char *s = p;
            while (p < end && *p != ',' && *p != ' ' && *p != '\t')
                p++;
            if (p > s) {
                int rc = fn(arg, (atr_str_t){ s, (size_t)(p - s) });
                if (rc)
                    return rc;
            }
        }
    }
    return 0;
}

static int collect(void *arg, atr_str_t tok)
{
    atr_hdr_filter_t *f = arg;
    if ((ATR_HK_BIT(atr_http_hkind(tok)) & ATR_HK_HOP_SET) || atr_str_ieq(tok, "close"))
        return 0;
    if (f->nlisted == (int)ATR_ARRAY_SIZE(f->listed)) {
        f->nlisted = -1; /* too many: fall back to scanning the message */
        return 1;
    }
    f->listed[f->nlisted++] = tok;
    return 0;
}

void atr_hdr_filter_init(atr_hdr_filter_t *f, const atr_http_msg_t *m, uint32_t regen)
{
    f->drop = ATR_HK_HOP_SET | regen;
    f->nlisted = 0;
    f->m = m;
    /* the parser saw every token: only a name beyond close, keep-alive and
     * upgrade needs collecting */
    if (m->conn_lists)
        each_connection_token(m, collect, f);
}

static int same_name(void *arg, atr_str_t tok)
{
    const atr_str_t *name = arg;
    return tok.n == name->n && strncasecmp(tok.p, name->p, tok.n) == 0;
}

int atr_hdr_filter_drop(const atr_hdr_filter_t *f, uint32_t i)
{
    if (f->drop & ATR_HK_BIT(f->m->hkind[i]))
        return 1;
    if (f->nlisted == 0)
        return 0;
    atr_str_t name = f->m->headers[i].name;
    if (f->nlisted < 0)
        return each_connection_token(f->m, same_name, &name);
    for (int k = 0; k < f->nlisted; k++)
        if (f->listed[k].n == name.n && strncasecmp(f->listed[k].p, name.p, name.n) == 0)
            return 1;
    return 0;
}

void atr_buf_put_u64(atr_buf_t *b, uint64_t v)
{
    char tmp[24];
    int i = (int)sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    atr_buf_put(b, tmp + i, sizeof tmp - (size_t)i);
}

int atr_hdr_overridden(const atr_hdr_op_t *ops, int n, atr_str_t name)
{
    for (int i = 0; i < n; i++)
        if (ops[i].op != ATR_HDR_ADD && name.n == strlen(ops[i].name) &&
            strncasecmp(ops[i].name, name.p, name.n) == 0)
            return 1;
    return 0;
}

void atr_hdr_apply(atr_buf_t *b, const atr_hdr_op_t *ops, int n)
{
    for (int i = 0; i < n; i++) {
        if (ops[i].op == ATR_HDR_REMOVE || ops[i].value == NULL)
            continue;
        atr_buf_header(b, (atr_str_t){ ops[i].name, strlen(ops[i].name) },
                       (atr_str_t){ ops[i].value, strlen(ops[i].value) });
    }
}

int atr_hdr_has_underscore(atr_str_t name)
{
    return memchr(name.p, '_', name.n) != NULL;
}
