/* Request-target paths: the normalised, decoded form routing and file
 * lookups use. */
#include "http/path.h"

#include <string.h>

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
    int ambiguous = 0, enc_dot = 0; /* enc_dot: the current segment has an encoded '.' */
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
            if (ch == '/')
                ambiguous = 1; /* a slash the backend may not see as one */
            enc_dot |= ch == '.';
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
            int dots = (seglen == 1 && out[segstart] == '.') ||
                       (seglen == 2 && out[segstart] == '.' && out[segstart + 1] == '.');
            if (dots && enc_dot)
                ambiguous = 1; /* "%2e%2e": resolved here, maybe not by the backend */
            enc_dot = 0;
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
    if (p < end && *p == '#')
        ambiguous = 1; /* a fragment has no place in a request */
    *outlen = n;
    return ambiguous ? ATR_PATH_AMBIGUOUS : 0;
}

/* RFC 3986 pchar without '%' (which is always escaped), plus '/'. */
static int plain(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("-._~!$&'()*+,;=:@/", c) != NULL);
}

int atr_path_encode(const char *path, size_t n, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)path[i];
        if (plain(c)) {
            if (k + 1 > cap)
                return -1;
            out[k++] = (char)c;
        } else {
            if (k + 3 > cap)
                return -1;
            out[k++] = '%';
            out[k++] = hex[c >> 4];
            out[k++] = hex[c & 15];
        }
    }
    return (int)k;
}
