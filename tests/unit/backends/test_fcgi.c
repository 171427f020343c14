/* FastCGI records.
 *
 * Encoding: requests are decoded back by hand here (an independent reading of
 * specs-digest §3.1) and checked byte for byte where the bytes are fixed.
 * Decoding: a table of record sequences, each fed whole, split in two at
 * every offset (each piece in its own buffer, decoded in place), and one byte
 * per call; all must agree on the result, STDOUT, STDERR, where it ended and
 * the END_REQUEST statuses. */
#include "backends/fcgi_proto.h"
#include "t.h"

#include <stdlib.h>

#include "env_fixture.h"

/* ---- reading a request back ---------------------------------------------- */

struct parsed {
    int ok;
    int flags;
    int nrecords;          /* non-empty PARAMS records */
    size_t max_content;
    unsigned char *stream; /* PARAMS content, concatenated */
    size_t slen;
};

static unsigned rd16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

/* Check every record of an encoded request; collect the PARAMS stream. */
static struct parsed read_request(int line, const unsigned char *b, size_t len)
{
    struct parsed r;
    size_t off = 16;
    static const unsigned char begin[8] = { 1, 1, 0, 1, 0, 8, 0, 0 };

    memset(&r, 0, sizeof r);
    r.stream = malloc(len);
    T_CHECK(line, len >= 24 && memcmp(b, begin, 8) == 0, "BEGIN_REQUEST header");
    if (len < 24)
        return r;
    T_CHECK(line, b[8] == 0 && b[9] == 1 && (b[10] & ~1) == 0 && !b[11] && !b[12] && !b[13] &&
                      !b[14] && !b[15],
            "BEGIN_REQUEST body");
    r.flags = b[10];
    for (;;) {
        const unsigned char *h = b + off;
        size_t clen, pad, i;
        if (off + 8 > len) {
            T_CHECK(line, 0, "truncated at %zu", off);
            return r;
        }
        clen = rd16(h + 4);
        pad = h[6];
        T_CHECK(line, h[0] == 1 && h[1] == ATR_FCGI_PARAMS && rd16(h + 2) == 1 && h[7] == 0,
                "PARAMS header at %zu", off);
        T_CHECK(line, (clen + pad) % 8 == 0 && pad < 8, "padding %zu for %zu", pad, clen);
        T_CHECK(line, off + 8 + clen + pad <= len, "record past the end");
        if (off + 8 + clen + pad > len)
            return r;
        for (i = 0; i < pad; i++)
            T_CHECK(line, h[8 + clen + i] == 0, "padding byte");
        off += 8 + clen + pad;
        if (clen == 0)
            break;
        memcpy(r.stream + r.slen, h + 8, clen);
        r.slen += clen;
        r.nrecords++;
        if (clen > r.max_content)
            r.max_content = clen;
    }
    T_CHECK(line, off == len, "bytes after the PARAMS terminator: %zu of %zu", off, len);
    r.ok = off == len;
    return r;
}

static int rd_len(const unsigned char *s, size_t slen, size_t *pos, uint32_t *out)
{
    if (*pos >= slen)
        return -1;
    if (!(s[*pos] & 0x80)) {
        *out = s[(*pos)++];
        return 0;
    }
    if (*pos + 4 > slen)
        return -1;
    *out = (uint32_t)(s[*pos] & 0x7f) << 24 | (uint32_t)s[*pos + 1] << 16 |
           (uint32_t)s[*pos + 2] << 8 | s[*pos + 3];
    *pos += 4;
    return 0;
}

/* The pairs of the stream must be exactly env's, in order. */
static void check_pairs(int line, const struct parsed *r, const atr_cgi_env_t *env)
{
    size_t pos = 0;
    int i = 0;
    while (pos < r->slen && i < env->n) {
        uint32_t nl, vl;
        if (rd_len(r->stream, r->slen, &pos, &nl) || rd_len(r->stream, r->slen, &pos, &vl) ||
            pos + nl + vl > r->slen) {
            T_CHECK(line, 0, "pair %d truncated", i);
            return;
        }
        T_CHECK(line, nl == env->name_lens[i] && !memcmp(r->stream + pos, env->names[i], nl),
                "name %d", i);
        T_CHECK(line, vl == env->value_lens[i] &&
                          !memcmp(r->stream + pos + nl, env->values[i], vl),
                "value %d (%s)", i, env->names[i]);
        pos += nl + vl;
        i++;
    }
    T_CHECK(line, i == env->n && pos == r->slen, "pairs %d of %d, %zu of %zu bytes", i, env->n,
            pos, r->slen);
}

/* ---- encoding cases ------------------------------------------------------ */

static void test_encode_exact(void)
{
    /* The whole request for a two-variable env, byte for byte. */
    static const unsigned char want[] =
        "\x01\x01\x00\x01\x00\x08\x00\x00" "\x00\x01\x01\x00\x00\x00\x00\x00"
        "\x01\x04\x00\x01\x00\x17\x01\x00" /* 23 bytes of pairs, 1 of padding */
        "\x01\x01" "A" "1"
        "\x0f\x02" "SCRIPT_FILENAME" "/x"
        "\x00"
        "\x01\x04\x00\x01\x00\x00\x00\x00";
    atr_cgi_env_t e = { 0 };
    size_t len;
    char *b;

    env_adds(&e, "A", "1");
    env_adds(&e, "SCRIPT_FILENAME", "/x");
    b = atr_fcgi_encode_request(&e, 1, &len);
    T_CHECK(__LINE__, len == sizeof want - 1 && memcmp(b, want, len) == 0, "len %zu", len);
    free(b);
    /* Without keep-alive only the flags byte differs. */
    b = atr_fcgi_encode_request(&e, 0, &len);
    T_CHECK(__LINE__, len == sizeof want - 1 && (unsigned char)b[10] == 0 &&
                          memcmp(b, want, 10) == 0 && memcmp(b + 11, want + 11, len - 11) == 0,
            "no KEEP_CONN");
    free(b);
    env_clear(&e);

    /* An empty env: BEGIN and the PARAMS terminator only. */
    b = atr_fcgi_encode_request(&e, 1, &len);
    T_CHECK(__LINE__, len == 24 && memcmp(b, want, 16) == 0 &&
                          memcmp(b + 16, "\x01\x04\x00\x01\x00\x00\x00\x00", 8) == 0,
            "empty env");
    free(b);
}

/* Variables with the given name and value lengths; the stream is read back
 * and the record count, the largest record and the length bytes checked. */
static void test_encode_sizes(void)
{
    static const struct {
        int line;
        size_t nlen, vlen;
        int nrecords;
        const char *lenbytes; /* the encoded lengths (first pair) */
        size_t nlb;
    } c[] = {
        { __LINE__, 1, 0, 1, "\x01\x00", 2 },
        { __LINE__, 1, 127, 1, "\x01\x7f", 2 },
        { __LINE__, 1, 128, 1, "\x01\x80\x00\x00\x80", 5 },
        { __LINE__, 1, 200, 1, "\x01\x80\x00\x00\xc8", 5 },
        { __LINE__, 127, 1, 1, "\x7f\x01", 2 },
        { __LINE__, 128, 1, 1, "\x80\x00\x00\x80\x01", 5 },
        { __LINE__, 300, 200, 1, "\x80\x00\x01\x2c\x80\x00\x00\xc8", 8 },
        /* 70000 bytes must split into records of at most 65535. */
        { __LINE__, 1, 70000, 2, "\x01\x80\x01\x11\x70", 5 },
        /* A stream of exactly 65535 bytes (with AFTER's 8) fits one record; one
         * more byte needs two. */
        { __LINE__, 1, 65535 - 8 - 6, 1, "\x01\x80\x00\xff\xf1", 5 },
        { __LINE__, 1, 65535 - 8 - 5, 2, "\x01\x80\x00\xff\xf2", 5 },
        { __LINE__, 200000, 200000, 7, "\x80\x03\x0d\x40\x80\x03\x0d\x40", 8 },
    };
    size_t i;
    for (i = 0; i < ATR_ARRAY_SIZE(c); i++) {
        atr_cgi_env_t e = { 0 };
        char *name = malloc(c[i].nlen + 1), *value = malloc(c[i].vlen + 1);
        struct parsed r;
        size_t len, k;
        char *b;

        for (k = 0; k < c[i].nlen; k++)
            name[k] = (char)('A' + k % 26);
        name[c[i].nlen] = '\0';
        for (k = 0; k < c[i].vlen; k++)
            value[k] = (char)('a' + k % 23);
        env_add(&e, name, value, c[i].vlen);
        env_adds(&e, "AFTER", "x"); /* a pair after the long one, maybe across records */
        b = atr_fcgi_encode_request(&e, 1, &len);
        r = read_request(c[i].line, (unsigned char *)b, len);
        T_CHECK(c[i].line, r.nrecords == c[i].nrecords, "records %d, want %d", r.nrecords,
                c[i].nrecords);
        T_CHECK(c[i].line, r.max_content <= ATR_FCGI_MAX_CONTENT, "record of %zu", r.max_content);
        T_CHECK(c[i].line, r.slen >= c[i].nlb && !memcmp(r.stream, c[i].lenbytes, c[i].nlb),
                "length bytes");
        if (r.ok)
            check_pairs(c[i].line, &r, &e);
        free(r.stream);
        free(b);
        free(name);
        free(value);
        env_clear(&e);
    }
}

/* A real environment from the builder round-trips through PARAMS. */
static void test_encode_env(void)
{
    const char *req = "POST /p.php/x?y=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                      "Content-Type: a/b\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n";
    atr_http_parser_t *p = atr_http_parser_new(0, NULL);
    atr_http_msg_t *m = calloc(1, sizeof *m);
    atr_cgi_input_t in;
    atr_cgi_env_t env;
    const char *reason;
    struct parsed r;
    int status;
    size_t len;
    char *b;

    T_CHECK(__LINE__, atr_http_parse(p, req, strlen(req), m, &status, &reason) == ATR_DONE,
            "parse");
    memset(&in, 0, sizeof in);
    in.msg = m;
    in.script_name = ATR_STR("/p.php");
    in.path_info = ATR_STR("/x");
    in.script_filename = "/srv/p.php";
    in.remote_addr = "127.0.0.1";
    in.server_addr = "127.0.0.1";
    in.has_body = 1;
    in.content_length = 3;
    T_CHECK(__LINE__, atr_cgi_env_build(&in, &env) == 0, "build");
    b = atr_fcgi_encode_request(&env, 1, &len);
    r = read_request(__LINE__, (unsigned char *)b, len);
    T_CHECK(__LINE__, r.nrecords == 1 && r.flags == 1, "records %d", r.nrecords);
    if (r.ok)
        check_pairs(__LINE__, &r, &env);
    free(r.stream);
    free(b);
    atr_cgi_env_free(&env);
    free(m);
    atr_http_parser_free(p);
}

static void test_small_records(void)
{
    static const struct {
        int line;
        size_t n;
        const char *want;
    } c[] = {
        { __LINE__, 0, "\x01\x05\x00\x01\x00\x00\x00\x00" },
        { __LINE__, 1, "\x01\x05\x00\x01\x00\x01\x00\x00" },
        { __LINE__, 256, "\x01\x05\x00\x01\x01\x00\x00\x00" },
        { __LINE__, 65535, "\x01\x05\x00\x01\xff\xff\x00\x00" },
    };
    unsigned char h[ATR_FCGI_HEADER_LEN];
    size_t i;
    for (i = 0; i < ATR_ARRAY_SIZE(c); i++) {
        atr_fcgi_stdin_header(h, c[i].n);
        T_CHECK(c[i].line, memcmp(h, c[i].want, 8) == 0, "STDIN header for %zu", c[i].n);
    }
    atr_fcgi_abort_record(h);
    T_CHECK(__LINE__, memcmp(h, "\x01\x02\x00\x01\x00\x00\x00\x00", 8) == 0, "ABORT_REQUEST");
}

/* ---- decoding cases ------------------------------------------------------ */

struct rec {
    int ver, type, id;
    const char *content;
    size_t clen;
    int pad;
};

#define REC(type, id, s, pad) { 1, type, id, s, sizeof(s) - 1, pad }
#define OUT(s) REC(ATR_FCGI_STDOUT, 1, s, 0)
#define OUTP(s, pad) REC(ATR_FCGI_STDOUT, 1, s, pad)
#define ERR(s) REC(ATR_FCGI_STDERR, 1, s, 0)
#define ERRP(s, pad) REC(ATR_FCGI_STDERR, 1, s, pad)
#define END_OK REC(ATR_FCGI_END_REQUEST, 1, "\0\0\0\0\0\0\0\0", 0)
#define END_BODY(s) REC(ATR_FCGI_END_REQUEST, 1, s, 0)

static char big[65535];

struct dcase {
    int line;
    struct rec recs[8];
    const char *tail; /* raw bytes appended after the records */
    size_t tail_len;
    int rc;           /* final result */
    const char *out;  /* all STDOUT (NULL: check only the length, big cases) */
    size_t out_len;
    const char *err;  /* all STDERR */
    int ps;           /* END_REQUEST protocol status (ATR_DONE) */
    uint32_t app;     /* END_REQUEST app status */
    size_t extra;     /* ATR_DONE: bytes left after the END_REQUEST record */
};

#define S(lit) lit, sizeof(lit) - 1
#define NO_TAIL NULL, 0

static const struct dcase dcases[] = {
    /* the common response */
    { __LINE__, { OUT("Status: 200\r\n\r\nhello"), OUT(""), END_OK }, NO_TAIL, ATR_DONE,
      S("Status: 200\r\n\r\nhello"), "", 0, 0, 0 },
    /* padding (with non-zero bytes) is skipped, END_REQUEST's too */
    { __LINE__, { OUTP("abc", 5), OUTP("defgh", 255), OUT(""), REC(3, 1, "\0\0\0\0\0\0\0\0", 8) },
      NO_TAIL, ATR_DONE, S("abcdefgh"), "", 0, 0, 0 },
    /* STDERR interleaved goes to the callback, in order */
    { __LINE__, { OUT("a"), ERR("warn1\n"), OUT("b"), ERRP("warn2", 3), ERR(""), OUT(""), END_OK },
      NO_TAIL, ATR_DONE, S("ab"), "warn1\nwarn2", 0, 0, 0 },
    /* STDERR carrying bytes the glue must sanitise is passed through as is */
    { __LINE__, { ERR("\r\n\x1b[31mx\x7f"), END_OK }, NO_TAIL, ATR_DONE, S(""), "\r\n\x1b[31mx\x7f", 0,
      0, 0 },
    /* END_REQUEST statuses */
    { __LINE__, { END_BODY("\x01\x02\x03\x04\x02\0\0\0") }, NO_TAIL, ATR_DONE, S(""), "", 2,
      0x01020304u, 0 },
    { __LINE__, { OUT("x"), END_BODY("\xff\xff\xff\xff\x03\xaa\xbb\xcc") }, NO_TAIL, ATR_DONE,
      S("x"), "", 3, 0xffffffffu, 0 },
    { __LINE__, { END_BODY("\0\0\0\x01\x01\0\0\0") }, NO_TAIL, ATR_DONE, S(""), "", 1, 1, 0 },
    /* management records on id 0 that we ignore */
    { __LINE__,
      { REC(ATR_FCGI_GET_VALUES_RESULT, 0, "\x0f\x01" "FCGI_MPXS_CONNS" "0", 2),
        REC(ATR_FCGI_UNKNOWN_TYPE, 0, "\x63\0\0\0\0\0\0\0", 0), OUT("ok"), END_OK },
      NO_TAIL, ATR_DONE, S("ok"), "", 0, 0, 0 },
    /* a GET_VALUES_RESULT with lengths pointing past its record: never decoded */
    { __LINE__, { REC(ATR_FCGI_GET_VALUES_RESULT, 0, "\xff\xff\xff\xff\x7f", 0), END_OK },
      NO_TAIL, ATR_DONE, S(""), "", 0, 0, 0 },
    /* bytes after END_REQUEST are left for the caller */
    { __LINE__, { OUT("z"), END_OK, OUT("late") }, NO_TAIL, ATR_DONE, S("z"), "", 0, 0, 12 },
    { __LINE__, { END_OK }, S("\x01"), ATR_DONE, S(""), "", 0, 0, 1 },
    /* incomplete input */
    { __LINE__, { OUT("partial") }, NO_TAIL, ATR_AGAIN, S("partial"), "", 0, 0, 0 },
    { __LINE__, { OUT("p") }, S("\x01\x06\x00"), ATR_AGAIN, S("p"), "", 0, 0, 0 },
    /* a record announcing 65535 bytes of which 3 arrive: only those 3 */
    { __LINE__, { { 0 } }, S("\x01\x06\x00\x01\xff\xff\x00\x00" "abc"), ATR_AGAIN, S("abc"), "",
      0, 0, 0 },
    { __LINE__, { OUT("a") }, S("\x01\x03\x00\x01\x00\x08\x00\x00\0\0\0"), ATR_AGAIN, S("a"), "",
      0, 0, 0 },
    { __LINE__, { OUTP("a", 7) }, NO_TAIL, ATR_AGAIN, S("a"), "", 0, 0, 0 },
    /* the largest record, with the largest padding */
    { __LINE__, { { 1, ATR_FCGI_STDOUT, 1, big, 65535, 255 }, OUT("!"), END_OK }, NO_TAIL,
      ATR_DONE, NULL, 65536, "", 0, 0, 0 },
    { __LINE__, { { 1, ATR_FCGI_STDOUT, 1, big, 65535, 0 }, { 1, ATR_FCGI_STDERR, 1, big, 65535, 1 },
                  { 1, ATR_FCGI_STDOUT, 1, big, 65535, 0 }, END_OK },
      NO_TAIL, ATR_DONE, NULL, 131070, NULL, 0, 0, 0 },

    /* ---- errors ---- */
    { __LINE__, { { 2, ATR_FCGI_STDOUT, 1, "x", 1, 0 } }, NO_TAIL, ATR_ERROR, S(""), "", 0, 0, 0 },
    { __LINE__, { { 0, ATR_FCGI_STDOUT, 1, "x", 1, 0 } }, NO_TAIL, ATR_ERROR, S(""), "", 0, 0, 0 },
    { __LINE__, { OUT("ok"), { 2, ATR_FCGI_END_REQUEST, 1, "\0\0\0\0\0\0\0\0", 8, 0 } }, NO_TAIL,
      ATR_ERROR, S("ok"), "", 0, 0, 0 },
    { __LINE__, { REC(ATR_FCGI_STDOUT, 2, "x", 0) }, NO_TAIL, ATR_ERROR, S(""), "", 0, 0, 0 },
    { __LINE__, { REC(ATR_FCGI_STDOUT, 0x101, "x", 0) }, NO_TAIL, ATR_ERROR, S(""), "", 0, 0, 0 },
    { __LINE__, { REC(ATR_FCGI_STDOUT, 0xffff, "x", 0) }, NO_TAIL, ATR_ERROR, S(""), "", 0, 0, 0 },
    { __LINE__, { REC(ATR_FCGI_END_REQUEST, 2, "\0\0\0\0\0\0\0\0", 0) }, NO_TAIL, ATR_ERROR, S(""),
      "", 0, 0, 0 },
    /* stream id 0 is for management records only */
    { __LINE__, { REC(ATR_FCGI_STDOUT, 0, "HTTP/1.1 200 OK", 0) }, NO_TAIL, ATR_ERROR, S(""), "",
      0, 0, 0 },
    { __LINE__, { REC(ATR_FCGI_STDERR, 0, "e", 0) }, NO_TAIL, ATR_ERROR, S(""), "", 0, 0, 0 },
    { __LINE__, { REC(ATR_FCGI_END_REQUEST, 0, "\0\0\0\0\0\0\0\0", 0) }, NO_TAIL, ATR_ERROR, S(""),
      "", 0, 0, 0 },
    { __LINE__, { REC(ATR_FCGI_GET_VALUES, 0, "", 0) }, NO_TAIL, ATR_ERROR, S(""), "", 0, 0, 0 },
    { __LINE__, { REC(99, 0, "", 0) }, NO_TAIL, ATR_ERROR, S(""), "", 0, 0, 0 },
    /* unknown types */
    { __LINE__, { OUT("a"), REC(99, 1, "xx", 0) }, NO_TAIL, ATR_ERROR, S("a"), "", 0, 0, 0 },
    { __LINE__, { REC(0, 1, "", 0) }, NO_TAIL, ATR_ERROR, S(""), "", 0, 0, 0 },
    { __LINE__, { REC(12, 1, "", 0) }, NO_TAIL, ATR_ERROR, S(""), "", 0, 0, 0 },
    { __LINE__, { REC(255, 1, "", 0) }, NO_TAIL, ATR_ERROR, S(""), "", 0, 0, 0 },
    /* END_REQUEST body must be exactly 8 bytes */
    { __LINE__, { END_BODY("\0\0\0\0\0\0\0") }, NO_TAIL, ATR_ERROR, S(""), "", 0, 0, 0 },
    { __LINE__, { END_BODY("\0\0\0\0\0\0\0\0\0") }, NO_TAIL, ATR_ERROR, S(""), "", 0, 0, 0 },
    { __LINE__, { END_BODY("") }, NO_TAIL, ATR_ERROR, S(""), "", 0, 0, 0 },
    { __LINE__, { { 1, ATR_FCGI_END_REQUEST, 1, big, 65535, 0 } }, NO_TAIL, ATR_ERROR, S(""), "", 0,
      0, 0 },
    /* STDOUT after its end record */
    { __LINE__, { OUT("a"), OUT(""), OUT("b"), END_OK }, NO_TAIL, ATR_ERROR, S("a"), "", 0, 0, 0 },
    { __LINE__, { OUT(""), OUT("") }, NO_TAIL, ATR_ERROR, S(""), "", 0, 0, 0 },
    /* record types that only the web server sends */
    { __LINE__, { REC(ATR_FCGI_BEGIN_REQUEST, 1, "\0\x01\x01\0\0\0\0\0", 0) }, NO_TAIL, ATR_ERROR,
      S(""), "", 0, 0, 0 },
    { __LINE__, { REC(ATR_FCGI_ABORT_REQUEST, 1, "", 0) }, NO_TAIL, ATR_ERROR, S(""), "", 0, 0, 0 },
    { __LINE__, { OUT("x"), REC(ATR_FCGI_PARAMS, 1, "\x01\x01" "AB", 0) }, NO_TAIL, ATR_ERROR,
      S("x"), "", 0, 0, 0 },
    { __LINE__, { REC(ATR_FCGI_STDIN, 1, "body", 0) }, NO_TAIL, ATR_ERROR, S(""), "", 0, 0, 0 },
    { __LINE__, { REC(ATR_FCGI_DATA, 1, "d", 0) }, NO_TAIL, ATR_ERROR, S(""), "", 0, 0, 0 },
    { __LINE__, { REC(ATR_FCGI_GET_VALUES, 1, "", 0) }, NO_TAIL, ATR_ERROR, S(""), "", 0, 0, 0 },
    { __LINE__, { REC(ATR_FCGI_GET_VALUES_RESULT, 1, "", 0) }, NO_TAIL, ATR_ERROR, S(""), "", 0, 0,
      0 },
    { __LINE__, { REC(ATR_FCGI_UNKNOWN_TYPE, 1, "\x63\0\0\0\0\0\0\0", 0) }, NO_TAIL, ATR_ERROR,
      S(""), "", 0, 0, 0 },
    /* an error in the header after data: the data before it is still handed out */
    { __LINE__, { OUT("before"), ERR("e") }, S("\x01\x06\x00\x03\x00\x00\x00\x00"), ATR_ERROR,
      S("before"), "e", 0, 0, 0 },
};

static size_t build(const struct dcase *c, char *buf)
{
    size_t off = 0, i;
    for (i = 0; i < ATR_ARRAY_SIZE(c->recs) && c->recs[i].ver + c->recs[i].type; i++) {
        const struct rec *r = &c->recs[i];
        unsigned char *h = (unsigned char *)buf + off;
        h[0] = (unsigned char)r->ver;
        h[1] = (unsigned char)r->type;
        h[2] = (unsigned char)(r->id >> 8);
        h[3] = (unsigned char)r->id;
        h[4] = (unsigned char)(r->clen >> 8);
        h[5] = (unsigned char)r->clen;
        h[6] = (unsigned char)r->pad;
        h[7] = 0;
        memcpy(buf + off + 8, r->content, r->clen);
        memset(buf + off + 8 + r->clen, 0xa5, (size_t)r->pad);
        off += 8 + r->clen + (size_t)r->pad;
    }
    if (c->tail_len)
        memcpy(buf + off, c->tail, c->tail_len);
    return off + c->tail_len;
}

struct dres {
    int rc;
    char *out;
    size_t out_len;
    char *err;
    size_t err_len;
    size_t end;  /* stream offset where ATR_DONE/ATR_ERROR left off */
    int stuck;
    atr_fcgi_dec_t d;
};

static void on_err(void *arg, const char *p, size_t n)
{
    struct dres *r = arg;
    memcpy(r->err + r->err_len, p, n);
    r->err_len += n;
}

static void dres_init(struct dres *r, size_t cap)
{
    memset(r, 0, sizeof *r);
    r->out = malloc(cap + 1);
    r->err = malloc(cap + 1);
    r->rc = ATR_AGAIN;
    atr_fcgi_dec_init(&r->d, on_err, r);
}

static void dres_free(struct dres *r)
{
    free(r->out);
    free(r->err);
}

/* Feed in[from..to) in its own buffer, decoded in place (out == in) or into
 * out below in (gap bytes before it). Returns 1 when finished. */
static int dfeed(struct dres *r, const char *in, size_t from, size_t to, size_t gap)
{
    size_t n = to - from, consumed = 0, produced = 0;
    char *buf = malloc(gap + n + 1);
    memcpy(buf + gap, in + from, n);
    r->rc = atr_fcgi_decode(&r->d, buf, buf + gap, n, &consumed, &produced);
    memcpy(r->out + r->out_len, buf, produced);
    r->out_len += produced;
    free(buf);
    if (consumed > n || produced > consumed || (r->rc == ATR_AGAIN && consumed != n))
        r->stuck = 1;
    if (r->rc != ATR_AGAIN) {
        r->end = from + consumed;
        return 1;
    }
    return 0;
}

static int dsame(const struct dres *a, const struct dres *b)
{
    return a->rc == b->rc && a->end == b->end && a->out_len == b->out_len &&
           !memcmp(a->out, b->out, a->out_len) && a->err_len == b->err_len &&
           !memcmp(a->err, b->err, a->err_len) && !a->stuck && !b->stuck &&
           a->d.protocol_status == b->d.protocol_status && a->d.app_status == b->d.app_status;
}

static void check_dresult(const struct dcase *c, const struct dres *r, size_t len)
{
    T_CHECK(c->line, r->rc == c->rc, "rc %d, want %d", r->rc, c->rc);
    T_CHECK(c->line, !r->stuck, "consumed/produced out of range");
    T_CHECK(c->line, r->out_len == c->out_len && (!c->out || !memcmp(r->out, c->out, r->out_len)),
            "stdout %zu bytes, want %zu", r->out_len, c->out_len);
    if (c->err)
        T_CHECK(c->line, r->err_len == strlen(c->err) && !memcmp(r->err, c->err, r->err_len),
                "stderr %zu bytes '%.*s'", r->err_len, (int)r->err_len, r->err);
    if (c->rc == ATR_DONE) {
        T_CHECK(c->line, r->end + c->extra == len, "ended at %zu of %zu", r->end, len);
        T_CHECK(c->line, r->d.protocol_status == c->ps && r->d.app_status == c->app,
                "status %d/%u", r->d.protocol_status, r->d.app_status);
        T_CHECK(c->line, r->d.ended, "ended flag");
    }
}

static void run_dcase(const struct dcase *c)
{
    char *in = malloc(300000);
    size_t len = build(c, in), k, step;
    struct dres whole, other;

    dres_init(&whole, len);
    dfeed(&whole, in, 0, len, 0);
    check_dresult(c, &whole, len);

    /* out below in */
    dres_init(&other, len);
    dfeed(&other, in, 0, len, 13);
    T_CHECK(c->line, dsame(&whole, &other), "out below in differs");
    dres_free(&other);

    /* two pieces: every offset for small inputs, a sample for big ones */
    step = len > 2048 ? 509 : 1;
    for (k = 0; k <= len; k += (k < 64 || k + 64 > len) ? 1 : step) {
        dres_init(&other, len);
        if (!dfeed(&other, in, 0, k, 0))
            dfeed(&other, in, k, len, 0);
        T_CHECK(c->line, dsame(&whole, &other), "split at %zu differs", k);
        dres_free(&other);
    }

    /* one byte per call */
    dres_init(&other, len);
    for (k = 0; k < len && !dfeed(&other, in, k, k + 1, 0); k++)
        ;
    T_CHECK(c->line, dsame(&whole, &other), "byte by byte differs");
    dres_free(&other);

    /* after DONE: no further byte is allowed, an empty call stays DONE */
    if (whole.rc == ATR_DONE) {
        size_t cons = 7, prod = 7;
        char x = 1;
        T_CHECK(c->line, atr_fcgi_decode(&whole.d, &x, &x, 0, &cons, &prod) == ATR_DONE &&
                             cons == 0 && prod == 0, "empty call after DONE");
        T_CHECK(c->line, atr_fcgi_decode(&whole.d, &x, &x, 1, &cons, &prod) == ATR_ERROR,
                "byte after DONE");
    }
    /* errors are sticky */
    if (whole.rc == ATR_ERROR) {
        size_t cons, prod;
        T_CHECK(c->line, atr_fcgi_decode(&whole.d, in, in, len, &cons, &prod) == ATR_ERROR &&
                             prod == 0, "error not sticky");
    }
    dres_free(&whole);
    free(in);
}

/* The decoder with no STDERR callback, and its flags. */
static void test_dec_flags(void)
{
    static const char in[] = "\x01\x07\x00\x01\x00\x01\x00\x00" "e"
                             "\x01\x06\x00\x01\x00\x00\x00\x00";
    char buf[sizeof in];
    atr_fcgi_dec_t d;
    size_t cons, prod;
    int rc;

    atr_fcgi_dec_init(&d, NULL, NULL);
    memcpy(buf, in, sizeof in);
    rc = atr_fcgi_decode(&d, buf, buf, sizeof in - 1, &cons, &prod);
    T_CHECK(__LINE__, rc == ATR_AGAIN && cons == sizeof in - 1 && prod == 0, "rc %d", rc);
    T_CHECK(__LINE__, d.stdout_closed && !d.ended, "flags");
    rc = atr_fcgi_decode(&d, buf, buf, 0, &cons, &prod);
    T_CHECK(__LINE__, rc == ATR_AGAIN && cons == 0 && prod == 0, "empty feed");
}

int main(void)
{
    size_t i;
    for (i = 0; i < sizeof big; i++)
        big[i] = (char)('0' + i % 61);
    test_encode_exact();
    test_encode_sizes();
    test_encode_env();
    test_small_records();
    for (i = 0; i < ATR_ARRAY_SIZE(dcases); i++)
        run_dcase(&dcases[i]);
    test_dec_flags();
    T_DONE();
}
