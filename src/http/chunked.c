/* Strict chunked decoder (RFC 9112 §7.1): hex size with no surrounding
 * whitespace, extensions and trailers read, bounded and dropped, CRLF and
 * nothing else as a line end (errata 7633: a bare LF is invalid). Data comes
 * back as views into the caller's input; nothing is copied. */
#include "http/chunked.h"

#define MAX_SIZE_DIGITS 15 /* significant hex digits: < 2^60, far from overflow */

enum {
    C_SIZE0,    /* first hex digit of a chunk size */
    C_SIZE,     /* more hex digits, ';' or CR */
    C_EXT,      /* chunk extension, up to CR */
    C_SIZE_LF,  /* CR after the size line seen */
    C_DATA,     /* chunk data */
    C_DATA_CR,  /* CR after chunk data */
    C_DATA_LF,  /* LF after chunk data */
    C_TSTART,   /* start of a trailer field line or the final empty line */
    C_TNAME,    /* trailer field name */
    C_TVALUE,   /* trailer field value, up to CR */
    C_TLF,      /* CR after a trailer field seen */
    C_END_LF,   /* CR of the final empty line seen */
    C_DONE,
    C_ERROR
};

/* Hex digit value + 1; 0 for anything else. */
static const unsigned char hex1[256] = {
    ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7,
    ['7'] = 8, ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13,
    ['d'] = 14, ['e'] = 15, ['f'] = 16, ['A'] = 11, ['B'] = 12, ['C'] = 13,
    ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
           (c != 0 && memchr("!#$%&'*+-.^_`|~", c, 15) != NULL);
}

/* HTAB, SP, VCHAR, obs-text: what a field value or extension may hold. */
static int is_text(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

void atr_chunked_init(atr_chunked_t *d)
{
    d->state = C_SIZE0;
    d->remaining = 0;
    d->line_len = 0;
    d->trailer_len = 0;
    d->max_line = 4096;
    d->max_trailer = 8192;
    d->digits = 0;
}

/* One framing byte. Returns 0 to go on, -1 on error (state untouched, so a
 * later call fails on the same byte), 1 when the body is complete. */
static int step(atr_chunked_t *d, unsigned char c)
{
    switch (d->state) {
    case C_SIZE0:
        if (hex1[c] == 0)
            return -1;
        d->remaining = hex1[c] - 1u;
        d->digits = d->remaining != 0;
        d->line_len = 1;
        d->state = C_SIZE;
        return 0;
    case C_SIZE:
        if (c == '\r') {
            d->state = C_SIZE_LF;
            return 0;
        }
        if (d->line_len >= d->max_line)
            return -1;
        if (hex1[c] != 0) {
            if (d->digits == 0 && hex1[c] == 1) {
                /* another leading zero */
            } else if (d->digits >= MAX_SIZE_DIGITS) {
                return -1;
            } else {
                d->remaining = d->remaining << 4 | (hex1[c] - 1u);
                d->digits++;
            }
        } else if (c == ';') {
            d->state = C_EXT;
        } else {
            return -1;
        }
        d->line_len++;
        return 0;
    case C_EXT:
        if (c == '\r') {
            d->state = C_SIZE_LF;
            return 0;
        }
        if (!is_text(c) || d->line_len >= d->max_line)
            return -1;
        d->line_len++;
        return 0;
    case C_SIZE_LF:
        if (c != '\n')
            return -1;
        d->state = d->remaining ? C_DATA : C_TSTART;
        return 0;
    case C_DATA_CR:
        if (c != '\r')
            return -1;
        d->state = C_DATA_LF;
        return 0;
    case C_DATA_LF:
        if (c != '\n')
            return -1;
        d->state = C_SIZE0;
        return 0;
    case C_TSTART:
        if (c == '\r') {
            d->state = C_END_LF;
            return 0;
        }
        if (!is_tchar(c) || d->trailer_len >= d->max_trailer)
            return -1; /* obs-fold, empty name, bad byte, too long */
        d->trailer_len++;
        d->state = C_TNAME;
        return 0;
    case C_TNAME:
        if (d->trailer_len >= d->max_trailer || (c != ':' && !is_tchar(c)))
            return -1;
        d->trailer_len++;
        if (c == ':')
            d->state = C_TVALUE;
        return 0;
    case C_TVALUE:
        if (d->trailer_len >= d->max_trailer)
            return -1;
        if (c == '\r') {
            d->trailer_len++;
            d->state = C_TLF;
            return 0;
        }
        if (!is_text(c))
            return -1;
        d->trailer_len++;
        return 0;
    case C_TLF:
        if (c != '\n' || d->trailer_len >= d->max_trailer)
            return -1;
        d->trailer_len++;
        d->state = C_TSTART;
        return 0;
    case C_END_LF:
        if (c != '\n')
            return -1;
        d->state = C_DONE;
        return 1;
    default:
        return -1;
    }
}

int atr_chunked_decode(atr_chunked_t *d, const char *in, size_t len,
                       size_t *consumed, atr_str_t *data)
{
    size_t i = 0;
    data->p = in;
    data->n = 0;
    *consumed = 0;
    if (d->state == C_DONE)
        return ATR_DONE;
    if (d->state == C_ERROR)
        return ATR_ERROR;
    while (i < len) {
        int rc;
        if (d->state == C_DATA) {
            size_t n;
            if (data->n > 0)
                break; /* one run of data per call */
            n = len - i < d->remaining ? len - i : (size_t)d->remaining;
            data->p = in + i;
            data->n = n;
            d->remaining -= n;
            i += n;
            if (d->remaining == 0)
                d->state = C_DATA_CR;
            continue;
        }
        rc = step(d, (unsigned char)in[i]);
        if (rc < 0) {
            if (data->n > 0)
                break; /* hand out the good data first; fail on the next call */
            d->state = C_ERROR;
            *consumed = i;
            return ATR_ERROR;
        }
        i++;
        if (rc > 0) {
            *consumed = i;
            return ATR_DONE;
        }
    }
    *consumed = i;
    return ATR_AGAIN;
}

size_t atr_chunked_size_line(char *out, uint64_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t k = 0, i;
    do {
        tmp[k++] = hex[n & 15];
        n >>= 4;
    } while (n);
    for (i = 0; i < k; i++)
        out[i] = tmp[k - 1 - i];
    out[k++] = '\r';
    out[k++] = '\n';
    return k;
}
