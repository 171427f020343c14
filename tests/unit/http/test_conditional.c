/* Conditional and range requests (http/conditional.h), table-driven. */
#include "http/conditional.h"
#include "t.h"

#define V(lit) ((atr_str_t){ lit, sizeof(lit) - 1 })

static void test_etags(void)
{
    static const struct { int line; const char *v; int want; } c[] = {
        { __LINE__, "\"a-1\"", 1 },
        { __LINE__, "W/\"a-1\"", 1 },                 /* weak comparison */
        { __LINE__, "\"x\", \"a-1\"", 1 },
        { __LINE__, "\"x\",W/\"a-1\" ", 1 },
        { __LINE__, "*", 1 },
        { __LINE__, "\"a-2\"", 0 },
        { __LINE__, "a-1", 0 },                       /* unquoted: malformed */
        { __LINE__, "\"a-1", 0 },
        { __LINE__, "", 0 },
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        T_CHECK(c[i].line, atr_http_etag_listed((atr_str_t){ c[i].v, strlen(c[i].v) }, "\"a-1\"") ==
                               c[i].want, "%s", c[i].v);
}

static void test_dates(void)
{
    time_t t;
    /* RFC 9110's example, in its three forms: 784111777 */
    T_CHECK(__LINE__, atr_http_parse_date(V("Sun, 06 Nov 1994 08:49:37 GMT"), &t) == 0 &&
                          t == 784111777, "imf %ld", (long)t);
    T_CHECK(__LINE__, atr_http_parse_date(V("Sunday, 06-Nov-94 08:49:37 GMT"), &t) == 0 &&
                          t == 784111777, "rfc850 %ld", (long)t);
    T_CHECK(__LINE__, atr_http_parse_date(V("Sun Nov  6 08:49:37 1994"), &t) == 0 &&
                          t == 784111777, "asctime %ld", (long)t);
    T_CHECK(__LINE__, atr_http_parse_date(V("yesterday"), &t) < 0, "junk");
    T_CHECK(__LINE__, atr_http_parse_date(V("Sun, 06 Nov 1994 08:49:37 GMT trailing"), &t) < 0,
            "trailing");
}

static void test_ranges(void)
{
    static const struct {
        int line;
        const char *v;
        uint64_t size;
        int want;
        uint64_t first, last;
    } c[] = {
        { __LINE__, "bytes=0-9", 100, 1, 0, 9 },
        { __LINE__, "bytes=90-", 100, 1, 90, 99 },
        { __LINE__, "bytes=90-200", 100, 1, 90, 99 },     /* the last byte is capped */
        { __LINE__, "bytes=-10", 100, 1, 90, 99 },        /* suffix */
        { __LINE__, "bytes=-1000", 100, 1, 0, 99 },
        { __LINE__, "bytes=100-", 100, -1, 0, 0 },        /* beyond the end: 416 */
        { __LINE__, "bytes=-0", 100, -1, 0, 0 },
        { __LINE__, "bytes=0-0", 0, -1, 0, 0 },           /* empty file */
        { __LINE__, "bytes=5-1", 100, 0, 0, 0 },          /* invalid: ignored */
        { __LINE__, "bytes=0-1,5-6", 100, 0, 0, 0 },      /* several: the whole */
        { __LINE__, "items=0-1", 100, 0, 0, 0 },
        { __LINE__, "bytes=x-1", 100, 0, 0, 0 },
        { __LINE__, "bytes=99999999999999999999999-", 100, 0, 0, 0 },
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        uint64_t f = 0, l = 0;
        int rc = atr_http_parse_range((atr_str_t){ c[i].v, strlen(c[i].v) }, c[i].size, &f, &l);
        T_CHECK(c[i].line, rc == c[i].want && (rc != 1 || (f == c[i].first && l == c[i].last)),
                "%s: %d %llu-%llu", c[i].v, rc, (unsigned long long)f, (unsigned long long)l);
    }
}

int main(void)
{
    test_etags();
    test_dates();
    test_ranges();
    T_DONE();
}
