/* Content negotiation for `status;` routes (status_negotiate.h). Prometheus
 * sends `application/openmetrics-text;...;q=0.5,...,text/plain;version=0.0.4;
 * q=0.3,* / *;q=0.2`, browsers `text/html,...,* / *;q=0.8`, curl `* / *`: the
 * explicit types are enough to tell them apart, so wildcards count for
 * nothing and the old answer (Prometheus text) stays the default. */
#include "handlers/status_negotiate.h"

static const char *const names[] = { "prometheus", "html", "json" };

const char *atr_status_format_name(enum atr_status_format f)
{
    return f < ATR_STATUS_BAD_FORMAT ? names[f] : "";
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int ieq(const char *p, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    if (n != k)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)p[i]) != lit[i])
            return 0;
    return 1;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* [p, e) without leading and trailing blanks. */
static void trim(const char **p, const char **e)
{
    while (*p < *e && is_ows(**p))
        (*p)++;
    while (*e > *p && is_ows((*e)[-1]))
        (*e)--;
}

/* The `format=` value of the query, or -1 when the query has none. */
static int query_format(atr_str_t target)
{
    const char *q = memchr(target.p, '?', target.n), *end = target.p + target.n;
    if (q == NULL)
        return -1;
    for (const char *p = q + 1; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if (e - p >= 7 && memcmp(p, "format=", 7) == 0) {
            for (int f = 0; f < ATR_STATUS_BAD_FORMAT; f++)
                if (ieq(p + 7, (size_t)(e - p - 7), names[f]))
                    return f;
            return ATR_STATUS_BAD_FORMAT;
        }
        p = e + 1;
    }
    return -1;
}

/* The form a media type asks for, or -1 for any other (wildcards too). */
static int media_format(const char *p, const char *e)
{
    size_t n = (size_t)(e - p);
    if (ieq(p, n, "text/html") || ieq(p, n, "application/xhtml+xml"))
        return ATR_STATUS_HTML;
    if (ieq(p, n, "text/plain") || ieq(p, n, "application/openmetrics-text"))
        return ATR_STATUS_PROMETHEUS;
    if (ieq(p, n, "application/json"))
        return ATR_STATUS_JSON;
    return -1;
}

/* The q of one media range's parameters [p, e) in thousandths (RFC 9110
 * §12.4.2: "q=" 0 to 1 with up to three decimals); 1000 without one, and
 * 1000 for a malformed one (as if it were absent). */
static int qvalue(const char *p, const char *e)
{
    while (p < e) {
        const char *semi = memchr(p, ';', (size_t)(e - p));
        const char *pe = semi ? semi : e, *s = p;
        trim(&s, &pe);
        if (pe - s >= 2 && lower((unsigned char)s[0]) == 'q' && s[1] == '=') {
            s += 2;
            if (s < pe && (*s == '0' || *s == '1')) {
                int v = (*s++ - '0') * 1000, scale = 100;
                if (s < pe && *s == '.')
                    for (s++; s < pe && *s >= '0' && *s <= '9' && scale > 0; s++, scale /= 10)
                        v += (*s - '0') * scale;
                if (s == pe && v <= 1000)
                    return v;
            }
            return 1000;
        }
        p = pe == e ? e : semi + 1;
    }
    return 1000;
}

static int accept_format(atr_str_t accept)
{
    int best = -1, best_q = 0;
    const char *end = accept.p + accept.n;
    for (const char *p = accept.p; p < end;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        const char *semi = memchr(p, ';', (size_t)(e - p));
        const char *te = semi ? semi : e, *tp = p;
        trim(&tp, &te);
        int f = media_format(tp, te);
        if (f >= 0) {
            int q = semi ? qvalue(semi + 1, e) : 1000;
            if (q > best_q) { /* strictly: on a tie the first named stays */
                best = f;
                best_q = q;
            }
        }
        p = e + (e < end);
    }
    return best;
}

enum atr_status_format atr_status_negotiate(atr_str_t target, atr_str_t accept, int *by_accept)
{
    int f = query_format(target);
    *by_accept = f < 0;
    if (f < 0)
        f = accept_format(accept);
    return f < 0 ? ATR_STATUS_PROMETHEUS : (enum atr_status_format)f;
}
