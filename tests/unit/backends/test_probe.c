/* Health-check probes (backends/probe.h): the status each protocol's reader
 * takes from an answer's first bytes, table-driven; and the FastCGI probe's
 * request read back through the de-framer into the variables it carries. */
#include "backends/probe.h"
#include "t.h"

#include <stdlib.h>

#include "backends/fcgi_proto.h"

#define S(lit) lit, sizeof(lit) - 1

enum { P_HTTP, P_SCGI, P_FCGI };

struct pcase {
    int line;
    int proto;
    const char *in;
    size_t len;
    int eof;
    int want;
};

/* A FastCGI record: type, content (no padding), request id 1. */
#define REC(type, lenlit) "\x01" type "\x00\x01" lenlit "\x00\x00"

static const struct pcase cases[] = {
    { __LINE__, P_HTTP, S("HTTP/1.1 200 OK\r\n"), 0, 200 },
    { __LINE__, P_HTTP, S("HTTP/1.0 503 Busy\r\nX: y\r\n"), 0, 503 },
    { __LINE__, P_HTTP, S("HTTP/1.1 20"), 0, 0 },             /* more to come */
    { __LINE__, P_HTTP, S("HTTP/1.1 20"), 1, -1 },            /* ... but it ended */
    { __LINE__, P_HTTP, S("SSH-2.0-OpenSSH\r\n"), 0, -1 },
    { __LINE__, P_HTTP, S("HTTP/1.1 abc\r\n"), 0, -1 },
    { __LINE__, P_SCGI, S("Status: 404 Not Found\r\nContent-Type: x\r\n\r\n"), 0, 404 },
    { __LINE__, P_SCGI, S("Content-Type: text/plain\r\n\r\nbody"), 0, 200 }, /* RFC 3875 6.3 */
    { __LINE__, P_SCGI, S("Content-Type: text/plain\n\n"), 0, 200 },        /* bare LF */
    { __LINE__, P_SCGI, S("Content-Type: text/plain\r\n"), 0, 0 },
    { __LINE__, P_SCGI, S("Content-Type: text/plain\r\n"), 1, -1 },
    { __LINE__, P_SCGI, S("HTTP/1.1 302 Found\r\n"), 0, 302 },
    { __LINE__, P_SCGI, S("status:204\r\n\r\n"), 0, 204 },
    { __LINE__, P_FCGI, S(REC("\x06", "\x00\x0f") "Status: 500 X\r\n"), 0, 500 },
    { __LINE__, P_FCGI, S(REC("\x06", "\x00\x06") "A: b\r\n"), 0, 0 },
    { __LINE__, P_FCGI,
      S(REC("\x06", "\x00\x0a") "X: y\r\n\r\npo" REC("\x06", "\x00\x00")
        REC("\x03", "\x00\x08") "\x00\x00\x00\x00\x00\x00\x00\x00"), 0, 200 },
    /* FCGI_OVERLOADED without output */
    { __LINE__, P_FCGI, S(REC("\x03", "\x00\x08") "\x00\x00\x00\x00\x02\x00\x00\x00"), 0, 503 },
    { __LINE__, P_FCGI, S("HTTP/1.1 200 OK\r\n\r\n"), 0, -1 }, /* not FastCGI */
};

static void run_case(const struct pcase *c)
{
    int got = c->proto == P_HTTP ? atr_probe_http_status(c->in, c->len, c->eof)
              : c->proto == P_SCGI ? atr_probe_scgi_status(c->in, c->len, c->eof)
                                   : atr_probe_fcgi_status(c->in, c->len, c->eof);
    T_CHECK(c->line, got == c->want, "got %d", got);
}

/* The FastCGI probe: BEGIN_REQUEST, PARAMS with SCRIPT_NAME and
 * SCRIPT_FILENAME set to the path, the empty PARAMS and STDIN records. */
static void test_fcgi_request(void)
{
    size_t len;
    char *b = atr_probe_fcgi_request("/fpm-ping?x=1", "app.test:9000", &len);
    T_CHECK(__LINE__, b != NULL && len > 40, "encoded");
    T_CHECK(__LINE__, b[1] == 1 && b[8 + 1] == 1, "BEGIN_REQUEST, role responder");
    T_CHECK(__LINE__, memcmp(b + len - 8, "\x01\x05\x00\x01\x00\x00\x00\x00", 8) == 0,
            "ends with the empty STDIN record");
    const char *want[] = { "SCRIPT_NAME", "/fpm-ping", "SCRIPT_FILENAME", "/fpm-ping",
                           "REQUEST_METHOD", "GET", "QUERY_STRING", "x=1",
                           "REQUEST_URI", "/fpm-ping?x=1", "HTTP_HOST", "app.test:9000" };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i += 2) {
        /* name-value pairs with one-byte lengths: the name then the value */
        char pair[128];
        size_t nl = strlen(want[i]), vl = strlen(want[i + 1]);
        pair[0] = (char)nl;
        pair[1] = (char)vl;
        memcpy(pair + 2, want[i], nl);
        memcpy(pair + 2 + nl, want[i + 1], vl);
        T_CHECK(__LINE__, memmem(b, len, pair, 2 + nl + vl) != NULL, "%s=%s", want[i],
                want[i + 1]);
    }
    free(b);
    b = atr_probe_scgi_request("/healthz", "h", &len);
    T_CHECK(__LINE__, b != NULL && memmem(b, len, "PATH_INFO\0/healthz", 18) != NULL &&
                          memmem(b, len, "SCRIPT_NAME\0\0", 13) != NULL, "scgi mounts at /");
    free(b);
    b = atr_probe_http_request("/healthz", "h:80", &len);
    T_CHECK(__LINE__, len > 20 && memcmp(b, "GET /healthz HTTP/1.0\r\nHost: h:80\r\n", 35) == 0,
            "http");
    free(b);
}

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i]);
    test_fcgi_request();
    T_DONE();
}
