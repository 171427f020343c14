/* Request-body framing: a table of views (empty ones included) framed for
 * each wire format; the entries must spell the expected bytes, stay within
 * the bound the core sizes its array by, never be empty, and point at the
 * views themselves (the body is not copied). */
#include "backends/fcgi_proto.h"
#include "backends/frame.h"
#include "t.h"

#include <stdlib.h>

#define S(lit) lit, sizeof(lit) - 1

typedef int framer_t(enum atr_http_body, const atr_str_t *, int, int, char (*)[ATR_FRAME_SCRATCH],
                     struct iovec *);

struct fcase {
    int line;
    framer_t *frame;
    enum atr_http_body body;
    int per_view;         /* entries per view at most: the core's bound is this*n+1 */
    const char *views[4]; /* NULL ends */
    int last;
    int nentries;
    const char *want;
    size_t wlen;
};

static const struct fcase cases[] = {
    /* HTTP/1.1 chunked: size line in hex, data, CRLF; the last chunk on last. */
    { __LINE__, atr_frame_http, ATR_BODY_CHUNKED, 3, { "abc", "0123456789abcdefg" }, 0, 6,
      S("3\r\nabc\r\n" "11\r\n0123456789abcdefg\r\n") },
    { __LINE__, atr_frame_http, ATR_BODY_CHUNKED, 3, { "x", "", "yz" }, 1, 7,
      S("1\r\nx\r\n" "2\r\nyz\r\n" "0\r\n\r\n") },
    { __LINE__, atr_frame_http, ATR_BODY_CHUNKED, 3, { NULL }, 1, 1, S("0\r\n\r\n") },
    { __LINE__, atr_frame_http, ATR_BODY_CHUNKED, 3, { "" }, 0, 0, S("") },
    /* HTTP/1.1 with a length: the views as they are, nothing at the end. */
    { __LINE__, atr_frame_http, ATR_BODY_LENGTH, 1, { "ab", "", "c" }, 1, 2, S("abc") },
    /* FastCGI: a STDIN record header per view, the empty STDIN record on last. */
    { __LINE__, atr_frame_fcgi, ATR_BODY_LENGTH, 2, { "hi", "", "abc" }, 0, 4,
      S("\x01\x05\x00\x01\x00\x02\x00\x00" "hi" "\x01\x05\x00\x01\x00\x03\x00\x00" "abc") },
    { __LINE__, atr_frame_fcgi, ATR_BODY_LENGTH, 2, { "z" }, 1, 3,
      S("\x01\x05\x00\x01\x00\x01\x00\x00" "z" "\x01\x05\x00\x01\x00\x00\x00\x00") },
    { __LINE__, atr_frame_fcgi, ATR_BODY_CHUNKED, 2, { NULL }, 1, 1,
      S("\x01\x05\x00\x01\x00\x00\x00\x00") },
    { __LINE__, atr_frame_fcgi, ATR_BODY_LENGTH, 2, { "" }, 0, 0, S("") },
    /* SCGI, CGI: the views as they are; last adds nothing. */
    { __LINE__, atr_frame_raw, ATR_BODY_LENGTH, 1, { "ab", "", "cd" }, 1, 2, S("abcd") },
    { __LINE__, atr_frame_raw, ATR_BODY_LENGTH, 1, { NULL }, 1, 0, S("") },
};

static void run_case(const struct fcase *c)
{
    atr_str_t v[4];
    char scratch[4][ATR_FRAME_SCRATCH];
    struct iovec out[3 * 4 + 1];
    char got[256];
    size_t glen = 0;
    int n = 0, nb, found = 0, nonempty = 0;

    for (; c->views[n] != NULL; n++)
        v[n] = (atr_str_t){ c->views[n], strlen(c->views[n]) };
    nb = c->frame(c->body, v, n, c->last, scratch, out);
    T_CHECK(c->line, nb == c->nentries, "%d entries", nb);
    T_CHECK(c->line, nb <= c->per_view * n + 1, "%d entries for %d views", nb, n);
    for (int i = 0; i < nb && i < c->nentries; i++) {
        T_CHECK(c->line, out[i].iov_len > 0 && glen + out[i].iov_len <= sizeof got,
                "entry %d: %zu bytes", i, out[i].iov_len);
        if (out[i].iov_len == 0 || glen + out[i].iov_len > sizeof got)
            break;
        memcpy(got + glen, out[i].iov_base, out[i].iov_len);
        glen += out[i].iov_len;
    }
    T_CHECK(c->line, glen == c->wlen && memcmp(got, c->want, glen) == 0, "%zu bytes: %.*s", glen,
            (int)glen, got);
    for (int k = 0; k < n; k++) {
        if (v[k].n == 0)
            continue;
        nonempty++;
        for (int i = 0; i < nb; i++)
            if (out[i].iov_base == v[k].p && out[i].iov_len == v[k].n) {
                found++;
                break;
            }
    }
    T_CHECK(c->line, found == nonempty, "%d of %d views sent in place", found, nonempty);
}

/* The largest view the core hands over: one record of 65535 bytes, and a
 * chunk whose size line is "ffff". */
static void test_max_view(void)
{
    static char big[ATR_FCGI_MAX_CONTENT];
    static const unsigned char hdr[] = { 1, ATR_FCGI_STDIN, 0, 1, 0xff, 0xff, 0, 0 };
    atr_str_t v = { big, sizeof big };
    char scratch[1][ATR_FRAME_SCRATCH];
    struct iovec out[4];
    int nb;

    nb = atr_frame_fcgi(ATR_BODY_LENGTH, &v, 1, 0, scratch, out);
    T_CHECK(__LINE__, nb == 2 && out[0].iov_len == sizeof hdr &&
                          memcmp(out[0].iov_base, hdr, sizeof hdr) == 0 &&
                          out[1].iov_base == big && out[1].iov_len == sizeof big,
            "fastcgi: %d entries", nb);
    nb = atr_frame_http(ATR_BODY_CHUNKED, &v, 1, 0, scratch, out);
    T_CHECK(__LINE__, nb == 3 && out[0].iov_len == 6 && memcmp(out[0].iov_base, "ffff\r\n", 6) == 0,
            "chunked: %d entries", nb);
}

int main(void)
{
    for (size_t i = 0; i < ATR_ARRAY_SIZE(cases); i++)
        run_case(&cases[i]);
    test_max_view();
    T_DONE();
}
