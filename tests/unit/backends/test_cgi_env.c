/* CGI meta-variables: a table of request heads, each parsed by the real
 * request parser, turned into an environment, and checked variable by
 * variable (NULL = must be absent). Every environment is also checked for the
 * invariants that hold always: names of [A-Z0-9_] only, no duplicate names,
 * lengths that match, no CR/LF/NUL in values, no HTTP_PROXY. */
#include "backends/cgi_env.h"
#include "t.h"

#include <stdlib.h>

#ifndef ATR_VERSION
#define ATR_VERSION "dev"
#endif

struct want {
    const char *name, *value;
};

struct ecase {
    int line;
    const char *req;
    const char *script_name, *path_info;
    int https, pass_auth;
    struct want want[28];
};

#define GET(extra) "GET /a/b.php?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\n" extra "\r\n"
#define NONE NULL

static const struct ecase cases[] = {
    { __LINE__, GET(""), "/a/b.php", "", 0, 0,
      { { "GATEWAY_INTERFACE", "CGI/1.1" },
        { "SERVER_SOFTWARE", "atrium/" ATR_VERSION },
        { "SERVER_PROTOCOL", "HTTP/1.1" },
        { "REQUEST_METHOD", "GET" },
        { "REQUEST_URI", "/a/b.php?x=1&y=%20" },
        { "QUERY_STRING", "x=1&y=%20" },
        { "SCRIPT_NAME", "/a/b.php" },
        { "PATH_INFO", NONE },
        { "SCRIPT_FILENAME", "/srv/www/a/b.php" },
        { "DOCUMENT_ROOT", "/srv/www" },
        { "SERVER_NAME", "example.com" },
        { "SERVER_ADDR", "198.51.100.1" },
        { "SERVER_PORT", "8080" },
        { "REMOTE_ADDR", "192.0.2.7" },
        { "REMOTE_PORT", "51234" },
        { "REQUEST_SCHEME", "http" },
        { "HTTPS", NONE },
        { "CONTENT_LENGTH", NONE },
        { "CONTENT_TYPE", NONE },
        { "HTTP_HOST", "example.com:8080" } } },
    /* HTTP/1.0, no Host: SERVER_NAME falls back to the listener address;
     * no query: QUERY_STRING is set and empty. */
    { __LINE__, "GET /x HTTP/1.0\r\n\r\n", "/x", "", 0, 0,
      { { "SERVER_PROTOCOL", "HTTP/1.0" },
        { "SERVER_NAME", "198.51.100.1" },
        { "QUERY_STRING", "" },
        { "REQUEST_URI", "/x" },
        { "HTTP_HOST", NONE } } },
    /* An empty query ("?" alone) is the empty string too. */
    { __LINE__, "GET /x? HTTP/1.1\r\nHost: h\r\n\r\n", "/x", "", 0, 0,
      { { "QUERY_STRING", "" }, { "REQUEST_URI", "/x?" }, { "SERVER_NAME", "h" } } },
    /* The query is raw: a second '?' and encoded bytes are kept as sent. */
    { __LINE__, "GET /x?a=%2F?b HTTP/1.1\r\nHost: h\r\n\r\n", "/x", "", 0, 0,
      { { "QUERY_STRING", "a=%2F?b" } } },
    /* PATH_INFO set when non-empty; SCRIPT_NAME may be empty but is set. */
    { __LINE__, GET(""), "", "/more/path", 0, 0,
      { { "SCRIPT_NAME", "" }, { "PATH_INFO", "/more/path" } } },
    /* IPv6 literal Host keeps its brackets, loses its port. */
    { __LINE__, "GET / HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n", "/", "", 0, 0,
      { { "SERVER_NAME", "[2001:db8::1]" }, { "HTTP_HOST", "[2001:db8::1]:8443" } } },
    { __LINE__, "GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n", "/", "", 0, 0,
      { { "SERVER_NAME", "[::1]" } } },
    { __LINE__, "GET / HTTP/1.1\r\nHost: Example.ORG\r\n\r\n", "/", "", 0, 0,
      { { "SERVER_NAME", "Example.ORG" } } },
    /* HTTPS */
    { __LINE__, GET(""), "/a/b.php", "", 1, 0,
      { { "HTTPS", "on" }, { "REQUEST_SCHEME", "https" } } },
    /* HTTP_* mapping: uppercase, '-' -> '_', digits kept. */
    { __LINE__, GET("x-forwarded-for: 10.0.0.1\r\nAccept-Language: en\r\nX-2fa-Code: 9\r\n"),
      "/a/b.php", "", 0, 0,
      { { "HTTP_X_FORWARDED_FOR", "10.0.0.1" },
        { "HTTP_ACCEPT_LANGUAGE", "en" },
        { "HTTP_X_2FA_CODE", "9" },
        { "HTTP_x_forwarded_for", NONE } } },
    /* httpoxy: Proxy is never exported, whatever its case. */
    { __LINE__, GET("Proxy: http://evil.example:8080/\r\n"), "/a/b.php", "", 0, 1,
      { { "HTTP_PROXY", NONE } } },
    { __LINE__, GET("PROXY: http://evil.example:8080/\r\nproxy: x\r\n"), "/a/b.php", "", 0, 1,
      { { "HTTP_PROXY", NONE } } },
    /* Underscore (or any non alnum/'-') names dropped: X_Foo cannot pose as X-Foo. */
    { __LINE__, GET("X_Foo: evil\r\nX-Foo: good\r\nX.Dot: d\r\nX~T: t\r\n"), "/a/b.php", "", 0, 0,
      { { "HTTP_X_FOO", "good" }, { "HTTP_X.DOT", NONE }, { "HTTP_X~T", NONE } } },
    { __LINE__, GET("X_Foo: evil\r\n"), "/a/b.php", "", 0, 0, { { "HTTP_X_FOO", NONE } } },
    { __LINE__, GET("Proxy_Authorization: x\r\nHTTP_PROXY: y\r\n"), "/a/b.php", "", 0, 1,
      { { "HTTP_PROXY_AUTHORIZATION", NONE }, { "HTTP_HTTP_PROXY", NONE },
        { "HTTP_PROXY", NONE } } },
    /* Content-Length / Content-Type become CONTENT_*, never HTTP_CONTENT_*. */
    { __LINE__,
      "POST /f HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain; charset=utf-8\r\n"
      "Content-Length: 5\r\n\r\n",
      "/f", "", 0, 0,
      { { "REQUEST_METHOD", "POST" },
        { "CONTENT_LENGTH", "5" },
        { "CONTENT_TYPE", "text/plain; charset=utf-8" },
        { "HTTP_CONTENT_LENGTH", NONE },
        { "HTTP_CONTENT_TYPE", NONE } } },
    /* Chunked request: CONTENT_LENGTH is the de-chunked length given by the
     * caller (has_body), Transfer-Encoding is hop-by-hop. */
    { __LINE__, "POST /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", "/f", "",
      0, 0,
      { { "CONTENT_LENGTH", "5" }, { "HTTP_TRANSFER_ENCODING", NONE },
        { "CONTENT_TYPE", NONE } } },
    /* Hop-by-hop: fixed list and what Connection lists. */
    { __LINE__,
      GET("Connection: keep-alive, X-Secret , x-other\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"
          "Upgrade: websocket\r\nTrailer: X-T\r\nProxy-Connection: keep-alive\r\n"
          "X-Secret: s\r\nX-Other: o\r\nX-Kept: k\r\n"),
      "/a/b.php", "", 0, 0,
      { { "HTTP_CONNECTION", NONE },
        { "HTTP_KEEP_ALIVE", NONE },
        { "HTTP_TE", NONE },
        { "HTTP_UPGRADE", NONE },
        { "HTTP_TRAILER", NONE },
        { "HTTP_PROXY_CONNECTION", NONE },
        { "HTTP_X_SECRET", NONE },
        { "HTTP_X_OTHER", NONE },
        { "HTTP_X_KEPT", "k" } } },
    /* Two Connection headers both count. */
    { __LINE__, GET("Connection: a\r\nConnection: B\r\nA: 1\r\nb: 2\r\nC: 3\r\n"), "/a/b.php", "",
      0, 0, { { "HTTP_A", NONE }, { "HTTP_B", NONE }, { "HTTP_C", "3" } } },
    /* Authorization only with pass_authorization; Proxy-Authorization never. */
    { __LINE__, GET("Authorization: Basic dTpw\r\nProxy-Authorization: Basic eDp5\r\n"),
      "/a/b.php", "", 0, 0,
      { { "HTTP_AUTHORIZATION", NONE }, { "HTTP_PROXY_AUTHORIZATION", NONE } } },
    { __LINE__, GET("Authorization: Basic dTpw\r\nProxy-Authorization: Basic eDp5\r\n"),
      "/a/b.php", "", 0, 1,
      { { "HTTP_AUTHORIZATION", "Basic dTpw" }, { "HTTP_PROXY_AUTHORIZATION", NONE } } },
    /* Repeated fields joined in order with ", "; Cookie with "; ". */
    { __LINE__, GET("Accept: a/b\r\nX-A: 1\r\naccept: c/d\r\nACCEPT: e/f\r\n"), "/a/b.php", "",
      0, 0, { { "HTTP_ACCEPT", "a/b, c/d, e/f" }, { "HTTP_X_A", "1" } } },
    { __LINE__, GET("Cookie: a=1\r\nCookie: b=2; c=3\r\ncookie: d=4\r\n"), "/a/b.php", "", 0, 0,
      { { "HTTP_COOKIE", "a=1; b=2; c=3; d=4" } } },
    /* Empty values add no separator; an empty field alone is exported empty. */
    { __LINE__, GET("X-E:\r\nX-F: 1\r\nX-F:\r\nX-F: 2\r\n"), "/a/b.php", "", 0, 0,
      { { "HTTP_X_E", "" }, { "HTTP_X_F", "1, 2" } } },
    /* Other methods and targets as received. */
    { __LINE__, "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", "", "", 0, 0,
      { { "REQUEST_METHOD", "OPTIONS" }, { "REQUEST_URI", "*" }, { "QUERY_STRING", "" } } },
    { __LINE__, "PURGE /p?q HTTP/1.1\r\nHost: h\r\n\r\n", "/p", "", 0, 0,
      { { "REQUEST_METHOD", "PURGE" }, { "QUERY_STRING", "q" } } },
    { __LINE__, "GET http://h:81/abs?k=v HTTP/1.1\r\nHost: h:81\r\n\r\n", "/abs", "", 0, 0,
      { { "REQUEST_URI", "http://h:81/abs?k=v" }, { "QUERY_STRING", "k=v" },
        { "SERVER_NAME", "h" } } },
};

static atr_cgi_input_t input_for(const struct ecase *c, const atr_http_msg_t *m)
{
    atr_cgi_input_t in;
    memset(&in, 0, sizeof in);
    in.msg = m;
    in.script_name.p = c->script_name;
    in.script_name.n = strlen(c->script_name);
    in.path_info.p = c->path_info;
    in.path_info.n = strlen(c->path_info);
    in.script_filename = "/srv/www/a/b.php";
    in.document_root = "/srv/www";
    in.remote_addr = "192.0.2.7";
    in.remote_port = 51234;
    in.server_addr = "198.51.100.1";
    in.server_port = 8080;
    in.https = c->https;
    in.pass_authorization = c->pass_auth;
    if (m->body != ATR_BODY_NONE) {
        in.has_body = 1;
        in.content_length = m->body == ATR_BODY_LENGTH ? m->content_length : 5;
    }
    return in;
}

static void check_invariants(int line, const atr_cgi_env_t *env)
{
    int i, k;
    size_t j;
    for (i = 0; i < env->n; i++) {
        const char *nm = env->names[i], *v = env->values[i];
        int name_ok = env->name_lens[i] > 0;
        for (j = 0; j < env->name_lens[i]; j++)
            name_ok &= (nm[j] >= 'A' && nm[j] <= 'Z') || (nm[j] >= '0' && nm[j] <= '9') ||
                       nm[j] == '_';
        T_CHECK(line, name_ok && strlen(nm) == env->name_lens[i], "bad name '%s'", nm);
        T_CHECK(line, strlen(v) == env->value_lens[i] && !strpbrk(v, "\r\n"),
                "bad value of %s", nm);
        T_CHECK(line, strcmp(nm, "HTTP_PROXY") != 0, "httpoxy");
        for (k = 0; k < i; k++)
            T_CHECK(line, strcmp(nm, env->names[k]) != 0, "duplicate %s", nm);
    }
}

static void run_case(const struct ecase *c)
{
    atr_http_parser_t *p = atr_http_parser_new(0, NULL);
    atr_http_msg_t *m = calloc(1, sizeof *m);
    atr_cgi_input_t in;
    atr_cgi_env_t env;
    const char *reason = NULL;
    int status = 0, rc;
    size_t i;

    rc = atr_http_parse(p, c->req, strlen(c->req), m, &status, &reason);
    T_CHECK(c->line, rc == ATR_DONE, "parse rc %d status %d (%s)", rc, status,
            reason ? reason : "");
    if (rc == ATR_DONE) {
        in = input_for(c, m);
        rc = atr_cgi_env_build(&in, &env);
        T_CHECK(c->line, rc == 0, "build rc %d", rc);
        for (i = 0; rc == 0 && i < ATR_ARRAY_SIZE(c->want) && c->want[i].name; i++) {
            const char *got = atr_cgi_env_get(&env, c->want[i].name);
            const char *exp = c->want[i].value;
            T_CHECK(c->line, exp ? got && strcmp(got, exp) == 0 : got == NULL,
                    "%s: got %s%s%s, want %s%s%s", c->want[i].name, got ? "'" : "",
                    got ? got : "(unset)", got ? "'" : "", exp ? "'" : "",
                    exp ? exp : "(unset)", exp ? "'" : "");
        }
        if (rc == 0) {
            check_invariants(c->line, &env);
            atr_cgi_env_free(&env);
        }
    }
    free(m);
    atr_http_parser_free(p);
}

/* The fixed variables come first, in the documented order, then HTTP_* in
 * the order of the request's fields. */
static void test_order(void)
{
    static const char *const order[] = {
        "GATEWAY_INTERFACE", "SERVER_SOFTWARE", "SERVER_PROTOCOL", "REQUEST_METHOD",
        "REQUEST_URI", "QUERY_STRING", "SCRIPT_NAME", "PATH_INFO", "SCRIPT_FILENAME",
        "DOCUMENT_ROOT", "SERVER_NAME", "SERVER_ADDR", "SERVER_PORT", "REMOTE_ADDR",
        "REMOTE_PORT", "REQUEST_SCHEME", "HTTPS", "CONTENT_LENGTH", "CONTENT_TYPE",
        "HTTP_HOST", "HTTP_X_B", "HTTP_X_A",
    };
    static const struct ecase c = {
        __LINE__,
        "POST /s/p?q HTTP/1.1\r\nHost: h\r\nX-B: 1\r\nContent-Type: a/b\r\nX-A: 2\r\n"
        "Content-Length: 3\r\nX-B: 3\r\n\r\n",
        "/s", "/p", 1, 0, { { NULL, NULL } } };
    atr_http_parser_t *p = atr_http_parser_new(0, NULL);
    atr_http_msg_t *m = calloc(1, sizeof *m);
    atr_cgi_input_t in;
    atr_cgi_env_t env;
    const char *reason;
    int status, i;

    T_CHECK(c.line, atr_http_parse(p, c.req, strlen(c.req), m, &status, &reason) == ATR_DONE,
            "parse");
    in = input_for(&c, m);
    T_CHECK(c.line, atr_cgi_env_build(&in, &env) == 0, "build");
    T_CHECK(c.line, env.n == (int)ATR_ARRAY_SIZE(order), "n = %d", env.n);
    for (i = 0; i < env.n && i < (int)ATR_ARRAY_SIZE(order); i++)
        T_CHECK(c.line, strcmp(env.names[i], order[i]) == 0, "[%d] %s, want %s", i,
                env.names[i], order[i]);
    T_CHECK(c.line, strcmp(atr_cgi_env_get(&env, "HTTP_X_B"), "1, 3") == 0, "join");
    atr_cgi_env_free(&env);
    free(m);
    atr_http_parser_free(p);
}

/* 256 KiB: caller-supplied bytes and many big header fields both count. */
static void test_limit(void)
{
    static const struct {
        int line;
        size_t filename_len; /* SCRIPT_FILENAME length */
        int nfields;         /* X-Fn: 2000 bytes each */
        int rc;
    } lim[] = {
        { __LINE__, 200 * 1024, 0, 0 },
        { __LINE__, 262144, 0, -1 },
        { __LINE__, 256 * 1024 - 600, 0, 0 }, /* fits with the fixed variables */
        { __LINE__, 0, 100, 0 },
        { __LINE__, 0, 140, -1 },
        { __LINE__, 200 * 1024, 40, -1 },
    };
    atr_http_limits_t hl = { 0, 1024 * 1024, 256 };
    size_t i;
    for (i = 0; i < ATR_ARRAY_SIZE(lim); i++) {
        atr_http_parser_t *p = atr_http_parser_new(0, &hl);
        atr_http_msg_t *m = calloc(1, sizeof *m);
        char *req = malloc(1024 * 1024), *fn = malloc(lim[i].filename_len + 2);
        size_t rl;
        atr_cgi_input_t in;
        atr_cgi_env_t env;
        const char *reason;
        int status, k, rc;
        struct ecase c = { lim[i].line, NULL, "/a", "", 0, 0, { { NULL, NULL } } };

        rl = (size_t)sprintf(req, "GET /a HTTP/1.1\r\nHost: h\r\n");
        for (k = 0; k < lim[i].nfields; k++) {
            rl += (size_t)sprintf(req + rl, "X-F%d: ", k);
            memset(req + rl, 'v', 2000);
            rl += 2000;
            memcpy(req + rl, "\r\n", 2);
            rl += 2;
        }
        memcpy(req + rl, "\r\n", 2);
        rl += 2;
        fn[0] = '/';
        memset(fn + 1, 'f', lim[i].filename_len);
        fn[lim[i].filename_len + 1] = '\0';

        rc = atr_http_parse(p, req, rl, m, &status, &reason);
        T_CHECK(lim[i].line, rc == ATR_DONE, "parse %d %d", rc, status);
        in = input_for(&c, m);
        if (lim[i].filename_len)
            in.script_filename = fn;
        rc = atr_cgi_env_build(&in, &env);
        T_CHECK(lim[i].line, rc == lim[i].rc, "rc %d, want %d", rc, lim[i].rc);
        if (rc == 0) {
            T_CHECK(lim[i].line, env.arena_len <= 256 * 1024, "arena %zu", env.arena_len);
            if (lim[i].nfields)
                T_CHECK(lim[i].line, atr_cgi_env_get(&env, "HTTP_X_F99") != NULL &&
                                         strlen(atr_cgi_env_get(&env, "HTTP_X_F99")) == 2000,
                        "last field");
        } else {
            T_CHECK(lim[i].line, env.n == 0 && env.arena == NULL, "not emptied on failure");
        }
        atr_cgi_env_free(&env);
        atr_cgi_env_free(&env); /* harmless twice */
        free(fn);
        free(req);
        free(m);
        atr_http_parser_free(p);
    }
}

/* Caller-supplied values with CR, LF or NUL are refused (-2): a decoded %0a in
 * PATH_INFO must not reach the application (CVE-2019-11043's class). */
static void test_bad_bytes(void)
{
    static const struct {
        int line;
        const char *pi;
        size_t n;
        int rc;
    } bad[] = {
        { __LINE__, "/ok", 3, 0 },
        { __LINE__, "/a\nb", 4, -2 },
        { __LINE__, "/a\rb", 4, -2 },
        { __LINE__, "/a\0b", 4, -2 },
    };
    const char *req = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t i;
    for (i = 0; i < ATR_ARRAY_SIZE(bad); i++) {
        atr_http_parser_t *p = atr_http_parser_new(0, NULL);
        atr_http_msg_t *m = calloc(1, sizeof *m);
        struct ecase c = { bad[i].line, NULL, "/s", "", 0, 0, { { NULL, NULL } } };
        atr_cgi_input_t in;
        atr_cgi_env_t env;
        const char *reason;
        int status, rc;

        atr_http_parse(p, req, strlen(req), m, &status, &reason);
        in = input_for(&c, m);
        in.path_info.p = bad[i].pi;
        in.path_info.n = bad[i].n;
        rc = atr_cgi_env_build(&in, &env);
        T_CHECK(bad[i].line, rc == bad[i].rc, "rc %d", rc);
        atr_cgi_env_free(&env);
        free(m);
        atr_http_parser_free(p);
    }
}

int main(void)
{
    size_t i;
    for (i = 0; i < ATR_ARRAY_SIZE(cases); i++)
        run_case(&cases[i]);
    test_order();
    test_limit();
    test_bad_bytes();
    T_DONE();
}
