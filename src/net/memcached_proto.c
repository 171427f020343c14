/* The memcached text protocol and the consistent hash (net/memcached_proto.h). */
#include "net/memcached_proto.h"

#include <openssl/sha.h>
#include <openssl/siphash.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/socache.h"
#include "base/util.h"

static const char hexdigits[] = "0123456789abcdef";

static void hex(char *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdigits[p[i] >> 4];
        out[2 * i + 1] = hexdigits[p[i] & 15];
    }
}

size_t atr_mc_key(char out[ATR_MC_WKEY_MAX], const uint8_t *key, size_t klen)
{
    if (2 * klen <= ATR_MC_WKEY_MAX) {
        hex(out, key, klen);
        return 2 * klen;
    }
    uint8_t md[SHA256_DIGEST_LENGTH];
    SHA256(key, klen, md);
    out[0] = 'h';
    hex(out + 1, md, sizeof md);
    return 1 + 2 * sizeof md;
}

/* ---- commands ---- */

void atr_mc_encode_get(atr_buf_t *b, const char *wk, size_t wn)
{
    atr_buf_put(b, "get ", 4);
    atr_buf_put(b, wk, wn);
    atr_buf_put(b, "\r\n", 2);
}

void atr_mc_encode_set(atr_buf_t *b, const char *wk, size_t wn, const uint8_t *val, size_t vlen,
                       uint32_t ttl_s)
{
    atr_buf_put(b, "set ", 4);
    atr_buf_put(b, wk, wn);
    atr_buf_put(b, " 0 ", 3);
    atr_buf_put_u64(b, ATR_MIN(ttl_s, ATR_SOCACHE_TTL_MAX));
    atr_buf_put(b, " ", 1);
    atr_buf_put_u64(b, vlen);
    atr_buf_put(b, " noreply\r\n", 10);
    atr_buf_put(b, (const char *)val, vlen);
    atr_buf_put(b, "\r\n", 2);
}

void atr_mc_encode_delete(atr_buf_t *b, const char *wk, size_t wn)
{
    atr_buf_put(b, "delete ", 7);
    atr_buf_put(b, wk, wn);
    atr_buf_put(b, " noreply\r\n", 10);
}

/* ---- the reply to a get ---- */

/* The longest VALUE line: the word, a wire key, flags (32 bits), a length
 * and a CAS value (64 bits each), spaces and CRLF. */
#define LINE_MAX_LEN (6 + ATR_MC_WKEY_MAX + 1 + 10 + 1 + 20 + 1 + 20 + 2)

/* Skip one space-separated token at *p (before end); 0 when none. */
static int skip_token(const char **p, const char *end)
{
    if (*p >= end || **p != ' ')
        return 0;
    const char *s = ++*p;
    while (*p < end && **p != ' ')
        ++*p;
    return *p > s;
}

/* The decimal token at *p: its value, or -1 (none, or over max). */
static long long number(const char **p, const char *end, size_t max)
{
    if (*p >= end || **p != ' ')
        return -1;
    const char *s = ++*p;
    unsigned long long v = 0;
    while (*p < end && **p >= '0' && **p <= '9' && v <= max)
        v = v * 10 + (unsigned)(*(*p)++ - '0');
    return *p > s && v <= max ? (long long)v : -1;
}

/* The data length a VALUE line [p, eol) announces, or -1. */
static long long value_line(const char *p, const char *eol, size_t max)
{
    if ((size_t)(eol - p) < 6 || memcmp(p, "VALUE", 5) != 0)
        return -1;
    p += 5;
    if (!skip_token(&p, eol) || number(&p, eol, 0xffffffffu) < 0)
        return -1;
    long long len = number(&p, eol, max);
    if (len < 0 || (p < eol && number(&p, eol, UINT64_MAX) < 0) || p != eol)
        return -1;
    return len;
}

int atr_mc_parse_get(const char *p, size_t n, size_t max, size_t *used, const char **val,
                     size_t *vlen)
{
    const char *eol = memchr(p, '\r', ATR_MIN(n, (size_t)LINE_MAX_LEN));
    if (eol == NULL)
        return n >= LINE_MAX_LEN ? ATR_MC_BAD : ATR_MC_MORE;
    size_t line = (size_t)(eol - p) + 2;
    if (line > n)
        return ATR_MC_MORE;
    if (eol[1] != '\n')
        return ATR_MC_BAD;
    if (line == 5 && memcmp(p, "END", 3) == 0) {
        *used = 5;
        return ATR_MC_MISS;
    }
    long long len = value_line(p, eol, max);
    if (len < 0)
        return ATR_MC_BAD;
    size_t total = line + (size_t)len + 7; /* data, "\r\nEND\r\n" */
    if (n < total)
        return ATR_MC_MORE;
    if (memcmp(p + line + len, "\r\nEND\r\n", 7) != 0)
        return ATR_MC_BAD;
    *used = total;
    *val = p + line;
    *vlen = (size_t)len;
    return ATR_MC_HIT;
}

/* ---- the ring ---- */

/* Fixed, so that every process puts a key on the same server. */
static const uint64_t ring_key[2] = { 0x61747269756d2d6dULL, 0x656d6361636865ULL };

static int point_cmp(const void *a, const void *b)
{
    const atr_mc_point_t *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return x->server - y->server;
}

void atr_mc_ring_init(atr_mc_ring_t *r, const char *const *names, int n)
{
    r->n = (size_t)n * ATR_MC_POINTS;
    r->points = atr_xmalloc(r->n * sizeof *r->points);
    for (int s = 0; s < n; s++) {
        for (int i = 0; i < ATR_MC_POINTS; i++) {
            char label[128];
            int len = snprintf(label, sizeof label, "%s#%d", names[s], i);
            atr_mc_point_t *pt = &r->points[(size_t)s * ATR_MC_POINTS + (size_t)i];
            pt->hash = SIPHASH_24(ring_key, (const uint8_t *)label,
                                  (size_t)ATR_MIN(len, (int)sizeof label - 1));
            pt->server = s;
        }
    }
    qsort(r->points, r->n, sizeof *r->points, point_cmp);
}

int atr_mc_ring_pick(const atr_mc_ring_t *r, const uint8_t *key, size_t klen)
{
    uint64_t h = SIPHASH_24(ring_key, key, klen);
    size_t lo = 0, hi = r->n; /* the first point with hash >= h */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->points[mid].hash < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return r->points[lo == r->n ? 0 : lo].server;
}

void atr_mc_ring_free(atr_mc_ring_t *r)
{
    free(r->points);
    r->points = NULL;
    r->n = 0;
}
