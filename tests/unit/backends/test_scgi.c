/* The SCGI netstring header block: a table of hand-made environments checked
 * byte for byte against the netstring they must give (specs-digest §3.2), and
 * a built environment read back variable by variable. */
#include "backends/scgi_proto.h"
#include "t.h"

#include <stdlib.h>

#include "env_fixture.h"

#define S(lit) lit, sizeof(lit) - 1

struct scase {
    int line;
    const char *vars[8]; /* name, value, name, value, ..., NULL */
    const char *want;
    size_t wlen;
};

static const struct scase cases[] = {
    /* The spec's example; CONTENT_LENGTH moves first even when it is not. */
    { __LINE__, { "REQUEST_METHOD", "POST", "CONTENT_LENGTH", "27", "REQUEST_URI", "/deepthought" },
      S("70:" "CONTENT_LENGTH\0" "27\0" "SCGI\0" "1\0"
        "REQUEST_METHOD\0" "POST\0" "REQUEST_URI\0" "/deepthought\0" ",") },
    /* No variables at all: CONTENT_LENGTH is "0". */
    { __LINE__, { NULL }, S("24:" "CONTENT_LENGTH\0" "0\0" "SCGI\0" "1\0" ",") },
    /* An empty value is allowed; a SCGI variable in env is not repeated. */
    { __LINE__, { "Q", "", "SCGI", "2", "R", "r" },
      S("31:" "CONTENT_LENGTH\0" "0\0" "SCGI\0" "1\0" "Q\0" "\0" "R\0" "r\0" ",") },
};

static void run_case(const struct scase *c)
{
    atr_cgi_env_t e = { 0 };
    size_t len;
    char *b;

    for (int i = 0; c->vars[i] != NULL; i += 2)
        env_adds(&e, c->vars[i], c->vars[i + 1]);
    b = atr_scgi_encode_request(&e, &len);
    T_CHECK(c->line, len == c->wlen && memcmp(b, c->want, len) == 0, "%zu bytes", len);
    free(b);
    env_clear(&e);
}

/* A built environment: the netstring's length is right and it has every
 * variable once, CONTENT_LENGTH first, SCGI second. */
static void test_scgi_env(void)
{
    const char *req = "GET /s?q HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n";
    atr_http_parser_t *p = atr_http_parser_new(0, NULL);
    atr_http_msg_t *m = calloc(1, sizeof *m);
    atr_cgi_input_t in;
    atr_cgi_env_t env;
    const char *reason, *s, *end;
    char *b, *colon;
    int status, i = 0, found = 0;
    size_t len;
    unsigned long n;

    atr_http_parse(p, req, strlen(req), m, &status, &reason);
    memset(&in, 0, sizeof in);
    in.msg = m;
    in.script_name = ATR_STR("/s");
    in.remote_addr = "::1";
    in.server_addr = "::1";
    T_CHECK(__LINE__, atr_cgi_env_build(&in, &env) == 0, "build");
    b = atr_scgi_encode_request(&env, &len);
    n = strtoul(b, &colon, 10);
    T_CHECK(__LINE__, *colon == ':' && b[0] != '0' &&
                          (size_t)(colon - b) + 1 + n + 1 == len && b[len - 1] == ',',
            "netstring");
    s = colon + 1;
    end = s + n;
    while (s < end) {
        const char *v = s + strlen(s) + 1;
        if (i == 0)
            T_CHECK(__LINE__, !strcmp(s, "CONTENT_LENGTH") && !strcmp(v, "0"), "first %s", s);
        if (i == 1)
            T_CHECK(__LINE__, !strcmp(s, "SCGI") && !strcmp(v, "1"), "second %s", s);
        if (i >= 2) {
            const char *want = atr_cgi_env_get(&env, s);
            T_CHECK(__LINE__, want && !strcmp(want, v), "%s", s);
            found++;
        }
        s = v + strlen(v) + 1;
        i++;
    }
    T_CHECK(__LINE__, s == end && found == env.n, "%d of %d variables", found, env.n);
    free(b);
    atr_cgi_env_free(&env);
    free(m);
    atr_http_parser_free(p);
}

int main(void)
{
    for (size_t i = 0; i < ATR_ARRAY_SIZE(cases); i++)
        run_case(&cases[i]);
    test_scgi_env();
    T_DONE();
}
