/* Conditional and range requests (http/conditional.h). */
#include "http/conditional.h"

#include <string.h>

/* Skip optional whitespace and commas between list elements. */
static const char *skip_ows(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
        p++;
    return p;
}

int atr_http_etag_listed(atr_str_t v, const char *etag)
{
    const char *p = v.p, *end = v.p + v.n;
    const char *tag = etag[0] == 'W' && etag[1] == '/' ? etag + 2 : etag;
    size_t tl = strlen(tag);
    p = skip_ows(p, end);
    if (end - p == 1 && *p == '*')
        return 1;
    while (p < end) {
        if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
            p += 2;
        if (p >= end || *p != '"')
            return 0; /* malformed: no match */
        const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
        if (q == NULL)
            return 0;
        if ((size_t)(q + 1 - p) == tl && memcmp(p, tag, tl) == 0)
            return 1;
        p = skip_ows(q + 1, end);
    }
    return 0;
}

int atr_http_parse_date(atr_str_t s, time_t *out)
{
    static const char *const forms[] = {
        "%a, %d %b %Y %H:%M:%S GMT", /* IMF-fixdate */
        "%A, %d-%b-%y %H:%M:%S GMT", /* RFC 850 */
        "%a %b %e %H:%M:%S %Y",      /* asctime */
    };
    char buf[64];
    if (s.n == 0 || s.n >= sizeof buf)
        return -1;
    memcpy(buf, s.p, s.n);
    buf[s.n] = '\0';
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *e = strptime(buf, forms[i], &tm);
        if (e != NULL && *e == '\0') {
            *out = timegm(&tm);
            return 0;
        }
    }
    return -1;
}

/* Digits into *v; the first byte after them in *p. 0, or -1 when none or
 * too many. */
static int number(const char **p, const char *end, uint64_t *v)
{
    const char *s = *p;
    *v = 0;
    while (*p < end && **p >= '0' && **p <= '9') {
        if (*v > (UINT64_MAX - 9) / 10)
            return -1;
        *v = *v * 10 + (uint64_t)(**p - '0');
        (*p)++;
    }
    return *p > s ? 0 : -1;
}

int atr_http_parse_range(atr_str_t s, uint64_t size, uint64_t *first, uint64_t *last)
{
    const char *p = s.p, *end = s.p + s.n;
    if (s.n < 6 || strncmp(p, "bytes=", 6) != 0)
        return 0;
    p += 6;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (memchr(p, ',', (size_t)(end - p)) != NULL)
        return 0; /* several ranges: the whole is a valid answer (§14.2) */
    uint64_t a, b;
    if (p < end && *p == '-') { /* suffix: the last b bytes */
        p++;
        if (number(&p, end, &b) < 0 || p != end)
            return 0;
        if (b == 0 || size == 0)
            return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (number(&p, end, &a) < 0 || p >= end || *p != '-')
        return 0;
    p++;
    if (p == end) {
        b = UINT64_MAX;
    } else if (number(&p, end, &b) < 0 || p != end || b < a) {
        return 0;
    }
    if (a >= size)
        return -1;
    *first = a;
    *last = b >= size ? size - 1 : b;
    return 1;
}
