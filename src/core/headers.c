#include "headers.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

static void grow(atr_buf_t *b, size_t more)
{
    if (b->n + more <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 512;
    while (cap < b->n + more)
        cap *= 2;
    b->p = atr_xrealloc(b->p, cap);
    b->cap = cap;
}

void atr_buf_put(atr_buf_t *b, const char *s, size_t n)
{
    grow(b, n);
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

void atr_buf_puts(atr_buf_t *b, const char *s)
{
    atr_buf_put(b, s, strlen(s));
}

void atr_buf_printf(atr_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    grow(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

void atr_buf_header(atr_buf_t *b, atr_str_t name, atr_str_t value)
{
    grow(b, name.n + value.n + 4);
    memcpy(b->p + b->n, name.p, name.n);
    b->n += name.n;
    b->p[b->n++] = ':';
    b->p[b->n++] = ' ';
    memcpy(b->p + b->n, value.p, value.n);
    b->n += value.n;
    b->p[b->n++] = '\r';
    b->p[b->n++] = '\n';
}

static const char *const hop[] = {
    "connection", "keep-alive", "proxy-connection", "te", "transfer-encoding",
    "trailer", "upgrade", "proxy-authenticate", "proxy-authorization", NULL
};

static int in_list(atr_str_t name, const char *const *list)
{
    for (int i = 0; list && list[i]; i++)
        if (atr_str_ieq(name, list[i]))
            return 1;
    return 0;
}

/* Does the Connection header (all of its lines) list this name? */
static int connection_lists(const atr_http_msg_t *m, atr_str_t name)
{
    for (uint32_t i = 0; i < m->nheaders; i++) {
        if (!atr_str_ieq(m->headers[i].name, "connection"))
            continue;
        const char *p = m->headers[i].value.p, *end = p + m->headers[i].value.n;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            const char *s = p;
            while (p < end && *p != ',' && *p != ' ' && *p != '\t')
                p++;
            if ((size_t)(p - s) == name.n && strncasecmp(s, name.p, name.n) == 0)
                return 1;
        }
    }
    return 0;
}

int atr_hdr_is_hop(const atr_http_msg_t *m, atr_str_t name, const char *const *skip)
{
    return in_list(name, hop) || in_list(name, skip) || connection_lists(m, name);
}

int atr_hdr_overridden(const atr_conf_hdr_op_t *ops, int n, atr_str_t name)
{
    for (int i = 0; i < n; i++)
        if (ops[i].op != ATR_HDR_ADD && name.n == strlen(ops[i].name) &&
            strncasecmp(ops[i].name, name.p, name.n) == 0)
            return 1;
    return 0;
}

void atr_hdr_apply(atr_buf_t *b, const atr_conf_hdr_op_t *ops, int n)
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
