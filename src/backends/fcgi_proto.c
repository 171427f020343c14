/* FastCGI 1.0 records (specs-digest §3.1).
 *
 * The decoder treats the application as untrusted (reliability.md §0.7,
 * §1.9): every header is checked before a byte of its content is used, the
 * lengths are read into 32-bit counters (no 16-bit wrap), and only the record
 * types an application may send on request id 1 (STDOUT, STDERR,
 * END_REQUEST) or id 0 (GET_VALUES_RESULT, UNKNOWN_TYPE) are accepted. */
#include "backends/fcgi_proto.h"

#include <stdlib.h>
#include <string.h>

#define FCGI_VERSION_1 1
#define FCGI_RESPONDER 1
#define FCGI_KEEP_CONN 1
#define REQUEST_ID 1

static unsigned char *put_header(unsigned char *p, int type, size_t clen, size_t pad)
{
    p[0] = FCGI_VERSION_1;
    p[1] = (unsigned char)type;
    p[2] = 0;
    p[3] = REQUEST_ID;
    p[4] = (unsigned char)(clen >> 8);
    p[5] = (unsigned char)clen;
    p[6] = (unsigned char)pad;
    p[7] = 0;
    return p + ATR_FCGI_HEADER_LEN;
}

/* ---- encoding ------------------------------------------------------------ */

static size_t nv_len_size(uint32_t n)
{
    return n <= 127 ? 1 : 4;
}

static unsigned char *put_nv_len(unsigned char *p, uint32_t n)
{
    if (n <= 127) {
        *p++ = (unsigned char)n;
        return p;
    }
    *p++ = (unsigned char)(0x80 | ((n >> 24) & 0x7f));
    *p++ = (unsigned char)(n >> 16);
    *p++ = (unsigned char)(n >> 8);
    *p++ = (unsigned char)n;
    return p;
}

static size_t params_len(const atr_cgi_env_t *env)
{
    size_t n = 0;
    for (int i = 0; i < env->n; i++)
        n += nv_len_size(env->name_lens[i]) + nv_len_size(env->value_lens[i]) +
             env->name_lens[i] + env->value_lens[i];
    return n;
}

/* All pairs as one byte stream at p; returns its end. */
static unsigned char *put_params(unsigned char *p, const atr_cgi_env_t *env)
{
    for (int i = 0; i < env->n; i++) {
        p = put_nv_len(p, env->name_lens[i]);
        p = put_nv_len(p, env->value_lens[i]);
        memcpy(p, env->names[i], env->name_lens[i]);
        p += env->name_lens[i];
        memcpy(p, env->values[i], env->value_lens[i]);
        p += env->value_lens[i];
    }
    return p;
}

char *atr_fcgi_encode_request(const atr_cgi_env_t *env, int keep_conn, size_t *len)
{
    size_t slen = params_len(env), nrec, total;
    unsigned char *buf, *p;

    nrec = (slen + ATR_FCGI_MAX_CONTENT - 1) / ATR_FCGI_MAX_CONTENT;
    /* BEGIN (8 + 8), each PARAMS record (8 + content + <= 7 padding), terminator. */
    total = 16 + nrec * (ATR_FCGI_HEADER_LEN + 7) + slen + ATR_FCGI_HEADER_LEN;
    p = buf = atr_xmalloc(total);

    p = put_header(p, ATR_FCGI_BEGIN_REQUEST, 8, 0);
    memset(p, 0, 8);
    p[1] = FCGI_RESPONDER;
    p[2] = keep_conn ? FCGI_KEEP_CONN : 0;
    p += 8;

    if (nrec == 1) {
        /* The usual case: the pairs go straight into their one record. */
        size_t pad = (8 - slen % 8) % 8;
        p = put_params(put_header(p, ATR_FCGI_PARAMS, slen, pad), env);
        memset(p, 0, pad);
        p += pad;
    } else if (nrec > 1) {
        /* The stream is cut into records after it is built, so a pair may
         * straddle two records (the spec's stream semantics). */
        unsigned char *stream = atr_xmalloc(slen);
        put_params(stream, env);
        for (size_t off = 0; off < slen;) {
            size_t n = ATR_MIN(slen - off, (size_t)ATR_FCGI_MAX_CONTENT);
            size_t pad = (8 - n % 8) % 8;
            p = put_header(p, ATR_FCGI_PARAMS, n, pad);
            memcpy(p, stream + off, n);
            memset(p + n, 0, pad);
            p += n + pad;
            off += n;
        }
        free(stream);
    }
    p = put_header(p, ATR_FCGI_PARAMS, 0, 0);
    *len = (size_t)(p - buf);
    return (char *)buf;
}

void atr_fcgi_stdin_header(unsigned char out[ATR_FCGI_HEADER_LEN], size_t n)
{
    /* A silent truncation here would desynchronise the record stream (the
     * HAProxy record-length bug class): a caller passing more is a bug. */
    if (n > ATR_FCGI_MAX_CONTENT)
        abort();
    put_header(out, ATR_FCGI_STDIN, n, 0);
}

void atr_fcgi_abort_record(unsigned char out[ATR_FCGI_HEADER_LEN])
{
    put_header(out, ATR_FCGI_ABORT_REQUEST, 0, 0);
}

/* ---- decoding ------------------------------------------------------------ */

enum { D_HEADER = 0, D_CONTENT, D_PADDING, D_DONE, D_ERROR };
#define T_SKIP (-1) /* a management record we ignore */

void atr_fcgi_dec_init(atr_fcgi_dec_t *d, void (*on_stderr)(void *, const char *, size_t),
                       void *arg)
{
    memset(d, 0, sizeof *d);
    d->state = D_HEADER;
    d->on_stderr = on_stderr;
    d->arg = arg;
}

/* Check a complete header and set up the record; 0 or -1 (malformed). */
static int start_record(atr_fcgi_dec_t *d)
{
    const unsigned char *h = d->hdr;
    unsigned id = (unsigned)h[2] << 8 | h[3];
    uint32_t clen = (uint32_t)h[4] << 8 | h[5];

    if (h[0] != FCGI_VERSION_1)
        return -1;
    d->type = h[1];
    d->content_left = clen;
    d->padding_left = h[6];
    d->hdr_len = 0;
    if (id == 0) {
        if (h[1] != ATR_FCGI_GET_VALUES_RESULT && h[1] != ATR_FCGI_UNKNOWN_TYPE)
            return -1;
        d->type = T_SKIP;
        return 0;
    }
    if (id != REQUEST_ID)
        return -1;
    switch (h[1]) {
    case ATR_FCGI_STDOUT:
        if (d->stdout_closed)
            return -1;
        if (clen == 0)
            d->stdout_closed = 1;
        return 0;
    case ATR_FCGI_STDERR:
        return 0;
    case ATR_FCGI_END_REQUEST:
        if (clen != 8)
            return -1;
        d->end_len = 0;
        return 0;
    default: /* BEGIN/ABORT/PARAMS/STDIN/DATA/GET_VALUES go the other way; the rest is unknown */
        return -1;
    }
}

static void end_of_content(atr_fcgi_dec_t *d)
{
    if (d->type == ATR_FCGI_END_REQUEST) {
        const unsigned char *b = d->end_body;
        d->app_status = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        d->protocol_status = b[4];
        d->ended = 1;
    }
    d->state = d->padding_left ? D_PADDING : d->ended ? D_DONE : D_HEADER;
}

/* Take up to n bytes of the current record's content at in. */
static size_t take_content(atr_fcgi_dec_t *d, char *out, size_t *prod, const char *in, size_t n)
{
    n = ATR_MIN(n, (size_t)d->content_left);
    switch (d->type) {
    case ATR_FCGI_STDOUT:
        if (out + *prod != in)
            memmove(out + *prod, in, n);
        *prod += n;
        break;
    case ATR_FCGI_STDERR:
        if (d->on_stderr && n)
            d->on_stderr(d->arg, in, n);
        break;
    case ATR_FCGI_END_REQUEST:
        memcpy(d->end_body + d->end_len, in, n);
        d->end_len += (int)n;
        break;
    default:
        break;
    }
    d->content_left -= (uint32_t)n;
    return n;
}

int atr_fcgi_decode(atr_fcgi_dec_t *d, char *out, const char *in, size_t len, size_t *consumed,
                    size_t *produced)
{
    size_t pos = 0, prod = 0, n;

    *consumed = 0;
    *produced = 0;
    if (d->state == D_ERROR)
        return ATR_ERROR;
    if (d->state == D_DONE)
        return len ? ATR_ERROR : ATR_DONE;
    while (pos < len) {
        switch (d->state) {
        case D_HEADER:
            n = ATR_MIN(len - pos, (size_t)(ATR_FCGI_HEADER_LEN - d->hdr_len));
            memcpy(d->hdr + d->hdr_len, in + pos, n);
            d->hdr_len += (int)n;
            pos += n;
            if (d->hdr_len < ATR_FCGI_HEADER_LEN)
                break;
            if (start_record(d) < 0) {
                d->state = D_ERROR;
                *consumed = pos;
                *produced = prod;
                return ATR_ERROR;
            }
            d->state = D_CONTENT;
            if (d->content_left == 0)
                end_of_content(d);
            break;
        case D_CONTENT:
            pos += take_content(d, out, &prod, in + pos, len - pos);
            if (d->content_left == 0)
                end_of_content(d);
            break;
        case D_PADDING:
            n = ATR_MIN(len - pos, (size_t)d->padding_left);
            d->padding_left -= (uint32_t)n;
            pos += n;
            if (d->padding_left == 0)
                d->state = d->ended ? D_DONE : D_HEADER;
            break;
        }
        if (d->state == D_DONE)
            break;
    }
    *consumed = pos;
    *produced = prod;
    return d->state == D_DONE ? ATR_DONE : ATR_AGAIN;
}
