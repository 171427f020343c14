/* Apache's heartbeat beats and storage lines (specs-digest §1.1, §1.2).
 * The field reading follows mod_heartmonitor's qs_to_table() and the
 * atoi() calls after it, so that what a stock monitor takes we take. */
#include "cluster/heartbeat_proto.h"

#include <errno.h>
#include <stdio.h>
#include <strings.h>

#include "base/util.h"

/* The keys anybody reads; every other key is carried and ignored. */
enum { F_V, F_READY, F_BUSY, F_PORT, F_TS, F_LASTSEEN, F_N };
static const char *const keys[F_N] = { "v", "ready", "busy", "port", "ts", "lastseen" };

/* Apache reads a storage line into a 4096-byte buffer, newline included. */
#define LINE_MAX_BYTES 4095

/* The last value of each key, undecoded (p == NULL: absent). */
typedef struct fields {
    atr_str_t f[F_N];
} fields_t;

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* ap_unescape_url over s into out (s.n + 1 bytes): "%XX" is decoded, a '%'
 * without two hex digits after it stays, '+' stays, and a decoded NUL ends
 * the string as it ends Apache's C string. Returns the length. */
static size_t unescape(atr_str_t s, char *out)
{
    size_t i, o = 0;
    int hi, lo;

    for (i = 0; i < s.n; i++) {
        if (s.p[i] == '%' && i + 2 < s.n && (hi = hexval(s.p[i + 1])) >= 0 &&
            (lo = hexval(s.p[i + 2])) >= 0) {
            if (hi == 0 && lo == 0)
                break;
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s.p[i];
        }
    }
    out[o] = '\0';
    return o;
}

/* One "key[=value]" token: remember its value if the decoded key is known.
 * Case-insensitive and last-wins, as apr_table_set/apr_table_get are. */
static void take_token(atr_str_t tok, fields_t *fl, char *scratch)
{
    const char *eq = memchr(tok.p, '=', tok.n);
    atr_str_t key = { tok.p, eq ? (size_t)(eq - tok.p) : tok.n };
    size_t kn = unescape(key, scratch);

    for (int i = 0; i < F_N; i++) {
        if (kn == strlen(keys[i]) && strcasecmp(scratch, keys[i]) == 0) {
            if (eq)
                fl->f[i] = (atr_str_t){ eq + 1, tok.n - key.n - 1 };
            else
                fl->f[i] = ATR_STR("1"); /* qs_to_table: a bare key is "1" */
        }
    }
}

/* apr_strtok(s, "&"): empty tokens are skipped; a NUL ends the input. */
static void collect(const char *p, size_t n, fields_t *fl, char *scratch)
{
    const char *nul = memchr(p, '\0', n);
    size_t i = 0, start;

    memset(fl, 0, sizeof *fl);
    if (nul)
        n = (size_t)(nul - p);
    while (i < n) {
        start = i;
        while (i < n && p[i] != '&')
            i++;
        if (i > start)
            take_token((atr_str_t){ p + start, i - start }, fl, scratch);
        i++;
    }
}

/* atoi() on the decoded value, bounded: blanks, a sign, digits, anything
 * after ignored ("" and "x" are 0). 0, -1 (negative) or -2 (over max). */
static int number(atr_str_t v, uint64_t max, unsigned *out, char *scratch)
{
    const char *s = scratch;
    uint64_t n = 0;
    int neg = 0;

    unescape(v, scratch);
    while (*s == ' ' || (*s >= '\t' && *s <= '\r'))
        s++;
    if (*s == '-' || *s == '+')
        neg = *s++ == '-';
    for (; *s >= '0' && *s <= '9'; s++) {
        n = n * 10 + (uint64_t)(*s - '0');
        if (n > max)
            return neg ? -1 : -2;
    }
    if (neg && n)
        return -1;
    *out = (unsigned)n;
    return 0;
}

/* ts=: our own field, so it is strict: 1 to 19 digits and nothing else. */
static int timestamp(atr_str_t v, uint64_t *out, char *scratch)
{
    size_t n = unescape(v, scratch), i;
    uint64_t t = 0;

    if (n == 0 || n > 19)
        return -1;
    for (i = 0; i < n; i++) {
        if (scratch[i] < '0' || scratch[i] > '9')
            return -1;
        t = t * 10 + (uint64_t)(scratch[i] - '0');
    }
    *out = t;
    return 0;
}

static const char *const negative[F_N] = { NULL, "ready negative", "busy negative",
                                           "port negative" };
static const char *const too_big[F_N] = { NULL, "ready out of range", "busy out of range",
                                          "port out of range" };

/* Reads field i into *out when present (else leaves *out); NULL or why not. */
static const char *field_number(const fields_t *fl, int i, uint64_t max, unsigned *out,
                                char *scratch)
{
    int rc;

    if (!fl->f[i].p)
        return NULL;
    rc = number(fl->f[i], max, out, scratch);
    if (rc == -1)
        return negative[i] ? negative[i] : "negative number";
    if (rc == -2)
        return too_big[i] ? too_big[i] : "number out of range";
    return NULL;
}

const char *atr_hb_parse(const char *p, size_t n, atr_hb_beat_t *out)
{
    char scratch[ATR_HB_MAX_MSG + 1];
    const char *why;
    fields_t fl;

    if (n > ATR_HB_MAX_MSG)
        return "too long";
    collect(p, n, &fl, scratch);
    if (!fl.f[F_V].p)
        return "missing v";
    if (!fl.f[F_READY].p)
        return "missing ready";
    if (!fl.f[F_BUSY].p)
        return "missing busy";
    memset(out, 0, sizeof *out);
    if ((why = field_number(&fl, F_READY, ATR_HB_MAX_COUNT, &out->ready, scratch)) ||
        (why = field_number(&fl, F_BUSY, ATR_HB_MAX_COUNT, &out->busy, scratch)) ||
        (why = field_number(&fl, F_PORT, 65535, &out->port, scratch)))
        return why;
    out->has_port = fl.f[F_PORT].p != NULL;
    if (fl.f[F_TS].p && timestamp(fl.f[F_TS], &out->ts_ms, scratch) == 0)
        out->has_ts = 1;
    return NULL;
}

/* "<text><v>" at buf + *len, NUL after; 0, or -ENOSPC when it did not fit. */
static int append(char *buf, size_t size, size_t *len, const char *text, uint64_t v)
{
    int w = snprintf(buf + *len, size - *len, "%s%llu", text, (unsigned long long)v);

    if (w < 0 || (size_t)w >= size - *len)
        return -ENOSPC;
    *len += (size_t)w;
    return 0;
}

int atr_hb_encode(char *buf, size_t size, const atr_hb_beat_t *b)
{
    size_t len = 0;

    if (size == 0)
        return -ENOSPC;
    /* mod_heartbeat's msg_format "v=%u&ready=%u&busy=%u", MSG_VERSION 1 */
    if (append(buf, size, &len, "v=1&ready=", b->ready) < 0 ||
        append(buf, size, &len, "&busy=", b->busy) < 0 ||
        (b->has_port && append(buf, size, &len, "&port=", b->port) < 0) ||
        (b->has_ts && append(buf, size, &len, "&ts=", b->ts_ms) < 0))
        return -ENOSPC;
    return (int)len;
}

int atr_hb_storage_format(char *buf, size_t size, const atr_hb_entry_t *e)
{
    size_t iplen = strnlen(e->ip, sizeof e->ip), len;

    if (iplen == 0 || iplen == sizeof e->ip || e->ip[0] == '#' || strpbrk(e->ip, " &\r\n"))
        return -EINVAL;
    if (iplen + 1 >= size)
        return -ENOSPC;
    /* hm_file_update_stats: "%s &ready=%u&busy=%u&lastseen=%u&port=%u\n" */
    memcpy(buf, e->ip, iplen);
    buf[iplen] = ' ';
    len = iplen + 1;
    if (append(buf, size, &len, "&ready=", e->ready) < 0 ||
        append(buf, size, &len, "&busy=", e->busy) < 0 ||
        append(buf, size, &len, "&lastseen=", e->lastseen) < 0 ||
        append(buf, size, &len, "&port=", e->port) < 0 || len + 1 >= size)
        return -ENOSPC;
    buf[len++] = '\n';
    buf[len] = '\0';
    return (int)len;
}

int atr_hb_storage_parse(const char *line, size_t n, atr_hb_entry_t *out)
{
    char scratch[LINE_MAX_BYTES + 1];
    const char *sp;
    fields_t fl;
    size_t iplen;

    if (n > 0 && line[n - 1] == '\n')
        n--;
    if (n > LINE_MAX_BYTES)
        return -EINVAL;
    if (n == 0 || line[0] == '#' || !(sp = memchr(line, ' ', n)))
        return 0;
    iplen = (size_t)(sp - line);
    if (iplen == 0 || iplen >= ATR_HB_MAX_IP)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    memcpy(out->ip, line, iplen);
    out->lastseen = ATR_HB_SEEN_TIMEOUT;
    out->port = ATR_HB_DEFAULT_PORT;
    collect(sp + 1, n - iplen - 1, &fl, scratch);
    if (field_number(&fl, F_READY, ATR_HB_MAX_COUNT, &out->ready, scratch) ||
        field_number(&fl, F_BUSY, ATR_HB_MAX_COUNT, &out->busy, scratch) ||
        field_number(&fl, F_LASTSEEN, UINT32_MAX, &out->lastseen, scratch) ||
        field_number(&fl, F_PORT, 65535, &out->port, scratch))
        return -EINVAL;
    return 1;
}
