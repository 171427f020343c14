/* Request-target paths (http/path.h): normalisation, the encodings it calls
 * ambiguous, and re-encoding for a request line. Table-driven. */
#include "http/path.h"
#include "t.h"

struct ncase {
    int line;
    const char *target;
    int rc;              /* 0, ATR_PATH_AMBIGUOUS or -1 */
    const char *want;    /* the normalised path when rc >= 0 */
};

static const struct ncase ncases[] = {
    { __LINE__, "/a/b", 0, "/a/b" },
    { __LINE__, "/a/./b/../c?q=/..", 0, "/a/c" },
    { __LINE__, "/a//b", 0, "/a/b" },
    { __LINE__, "/%41%7e", 0, "/A~" },
    { __LINE__, "http://h:1/x/y?z", 0, "/x/y" },
    { __LINE__, "/a/%2e%2ex", 0, "/a/..x" },            /* no dot segment */
    { __LINE__, "/a%2fb", ATR_PATH_AMBIGUOUS, "/a/b" },  /* an encoded slash */
    { __LINE__, "/a/%2e%2e/b", ATR_PATH_AMBIGUOUS, "/b" },
    { __LINE__, "/a/.%2E/b", ATR_PATH_AMBIGUOUS, "/b" },
    { __LINE__, "/a/%2e/b", ATR_PATH_AMBIGUOUS, "/a/b" },
    { __LINE__, "/a/%2e", ATR_PATH_AMBIGUOUS, "/a/" },
    { __LINE__, "/a#f", ATR_PATH_AMBIGUOUS, "/a" },
    { __LINE__, "/a?q=%2f", 0, "/a" },                  /* the query is not the path */
    { __LINE__, "/..", -1, NULL },
    { __LINE__, "/a%00", -1, NULL },
    { __LINE__, "/a%zz", -1, NULL },
};

struct ecase {
    int line;
    const char *path;
    const char *want;
};

static const struct ecase ecases[] = {
    { __LINE__, "/a/b-c_d.e~f", "/a/b-c_d.e~f" },
    { __LINE__, "/a b", "/a%20b" },
    { __LINE__, "/%?#", "/%25%3F%23" },
    { __LINE__, "/:@!$&'()*+,;=", "/:@!$&'()*+,;=" },
    { __LINE__, "/\xc3\xa9", "/%C3%A9" },
};

int main(void)
{
    for (size_t i = 0; i < sizeof ncases / sizeof ncases[0]; i++) {
        const struct ncase *c = &ncases[i];
        char out[256];
        size_t n = 0;
        int rc = atr_path_normalize((atr_str_t){ c->target, strlen(c->target) }, out, sizeof out,
                                    &n);
        T_CHECK(c->line, rc == c->rc, "rc %d", rc);
        if (rc >= 0 && c->want)
            T_CHECK(c->line, n == strlen(c->want) && memcmp(out, c->want, n) == 0, "got %.*s",
                    (int)n, out);
    }
    for (size_t i = 0; i < sizeof ecases / sizeof ecases[0]; i++) {
        const struct ecase *c = &ecases[i];
        char out[256];
        int n = atr_path_encode(c->path, strlen(c->path), out, sizeof out);
        T_CHECK(c->line, n == (int)strlen(c->want) && memcmp(out, c->want, (size_t)n) == 0,
                "got %.*s", n, out);
    }
    char small[4];
    T_CHECK(__LINE__, atr_path_encode("/a b", 4, small, sizeof small) == -1, "too small");
    T_DONE();
}
