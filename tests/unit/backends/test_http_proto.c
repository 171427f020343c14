/* The HTTP/1.1 head encoders (backends/http_proto.c): a parsed head in, the
 * exact bytes a backend or client gets out. Requests: hop-by-hop and
 * regenerated fields dropped (Connection-listed ones too), forwarding fields
 * appended after a previous hop's, absolute-form reduced to origin-form, the
 * framing header the body goes with, the route's set/add/remove, underscores,
 * Via, IPv6 quoting in Forwarded, Host for HTTP/1.0. Responses: the status
 * line (reason kept or supplied), framing as decided, Connection as given,
 * CGI Status dropped, Via with the received version, 101 keeping its
 * upgrade. */
#include "backends/http_proto.h"
#include "t.h"

#include <stdlib.h>

static char *encode(int response, const char *in, const void *opts, int line)
{
    atr_http_parser_t *p = atr_http_parser_new(response, NULL);
    atr_http_msg_t *m = malloc(sizeof *m);
    int status = 0;
    const char *why = NULL;
    int rc = atr_http_parse(p, in, strlen(in), m, &status, &why);
    T_CHECK(line, rc == ATR_DONE, "parse: %d %s", status, why ? why : "");
    atr_buf_t b = { malloc(16), 0, 16 };
    if (rc == ATR_DONE) {
        if (response) {
            atr_http_resp_t f = *(const atr_http_resp_t *)opts;
            f.m = m;
            atr_http_encode_response(&b, &f);
        } else {
            atr_http_fwd_t f = *(const atr_http_fwd_t *)opts;
            f.m = m;
            if (f.body == ATR_BODY_NONE)
                f.body = m->body;
            atr_http_encode_request(&b, &f);
        }
    }
    atr_buf_put(&b, "", 1);
    atr_http_parser_free(p);
    free(m);
    return b.p;
}

static const atr_hdr_op_t ops[] = {
    { ATR_HDR_SET, "X-Set", "1" },
    { ATR_HDR_ADD, "X-Add", "2" },
    { ATR_HDR_REMOVE, "X-Gone", NULL },
};

#define FWD_V4 "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"

static void requests(void)
{
    static const struct {
        int line;
        const char *in;
        atr_http_fwd_t f;
        const char *want;
    } cases[] = {
        { __LINE__, "GET /a?b HTTP/1.1\r\nHost: ex.com\r\nAccept: */*\r\n\r\n",
          { .peer = ATR_STR("10.0.0.1") },
          "GET /a?b HTTP/1.1\r\nHost: ex.com\r\nAccept: */*\r\n" FWD_V4
          "X-Forwarded-Host: ex.com\r\nForwarded: for=10.0.0.1;host=ex.com;proto=http\r\n\r\n" },
        /* hop-by-hop, Connection-listed, regenerated fields go; a previous
         * hop's forwarding values come first; Via and Connection: close */
        { __LINE__,
          "POST http://ex.com:8080/p HTTP/1.1\r\nHost: ex.com:8080\r\nConnection: keep-alive, X-Hop\r\n"
          "X-Hop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Forwarded-For: 1.2.3.4\r\n"
          "Via: 1.1 first\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
          { .peer = ATR_STR("10.0.0.1"), .close = 1, .via = "atrium" },
          "POST /p HTTP/1.1\r\nHost: ex.com:8080\r\nX-Forwarded-For: 1.2.3.4, 10.0.0.1\r\n"
          "X-Forwarded-Proto: http\r\nX-Forwarded-Host: ex.com:8080\r\n"
          "Forwarded: for=10.0.0.1;host=\"ex.com:8080\";proto=http\r\nVia: 1.1 first, 1.1 atrium\r\n"
          "Connection: close\r\nContent-Length: 3\r\n\r\n" },
        /* chunked body re-framed; the route's ops; underscores dropped */
        { __LINE__,
          "PUT /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nX-Set: old\r\n"
          "X-Gone: x\r\nMy_Field: y\r\nX-Keep: z\r\n\r\n",
          { .peer = ATR_STR("10.0.0.1"), .ops = ops, .nops = 3, .drop_underscores = 1 },
          "PUT /u HTTP/1.1\r\nHost: h\r\nX-Keep: z\r\n" FWD_V4
          "X-Forwarded-Host: h\r\nForwarded: for=10.0.0.1;host=h;proto=http\r\n"
          "Transfer-Encoding: chunked\r\nX-Set: 1\r\nX-Add: 2\r\n\r\n" },
        /* HTTP/1.0 without Host: the upstream's name; IPv6 in brackets */
        { __LINE__, "GET / HTTP/1.0\r\nUser-Agent: a\r\n\r\n",
          { .peer = ATR_STR("::1"), .peer_v6 = 1, .host_fallback = "app", .via = "atrium" },
          "GET / HTTP/1.1\r\nHost: app\r\nUser-Agent: a\r\nX-Forwarded-For: ::1\r\n"
          "X-Forwarded-Proto: http\r\nForwarded: for=\"[::1]\";proto=http\r\nVia: 1.0 atrium\r\n\r\n" },
        /* an upgrade keeps Connection/Upgrade for the backend */
        { __LINE__,
          "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
          { .peer = ATR_STR("10.0.0.1"), .close = 1 },
          "GET /ws HTTP/1.1\r\nHost: h\r\n" FWD_V4
          "X-Forwarded-Host: h\r\nForwarded: for=10.0.0.1;host=h;proto=http\r\n"
          "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = encode(0, cases[i].in, &cases[i].f, cases[i].line);
        T_CHECK(cases[i].line, strcmp(out, cases[i].want) == 0, "got\n%s\nwant\n%s", out,
                cases[i].want);
        free(out);
    }
}

static void responses(void)
{
    static const struct {
        int line;
        const char *in;
        atr_http_resp_t f;
        const char *want;
    } cases[] = {
        { __LINE__, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\nConnection: keep-alive\r\n\r\n",
          { .with_length = 1, .length = 5, .connection = "" },
          "HTTP/1.1 200 OK\r\nX-A: b\r\nContent-Length: 5\r\n\r\n" },
        /* chunked to the client, Connection: close, Via with the version
         * received, the route's ops */
        { __LINE__, "HTTP/1.0 404 Gone Away\r\nX-Gone: 1\r\nVia: 1.1 origin\r\n\r\n",
          { .chunked = 1, .connection = "Connection: close\r\n", .ops = ops, .nops = 3,
            .via = "atrium" },
          "HTTP/1.1 404 Gone Away\r\nVia: 1.1 origin, 1.0 atrium\r\nTransfer-Encoding: chunked\r\n"
          "Connection: close\r\nX-Set: 1\r\nX-Add: 2\r\n\r\n" },
        /* CGI output: Status becomes the status line, a reason is supplied */
        { __LINE__, "Status: 302\r\nLocation: http://x/\r\n\r\n",
          { .with_length = 1, .length = 0, .connection = "" },
          "HTTP/1.1 302 Found\r\nLocation: http://x/\r\nContent-Length: 0\r\n\r\n" },
        /* 101 keeps its upgrade, no framing */
        { __LINE__,
          "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
          { .connection = "Connection: close\r\n" },
          "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = encode(1, cases[i].in, &cases[i].f, cases[i].line);
        T_CHECK(cases[i].line, strcmp(out, cases[i].want) == 0, "got\n%s\nwant\n%s", out,
                cases[i].want);
        free(out);
    }
}

int main(void)
{
    requests();
    responses();
    T_DONE();
}
