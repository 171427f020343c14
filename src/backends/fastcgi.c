/* The FastCGI backend: a responder request on request id 1 with
 * FCGI_KEEP_CONN (so the core pools the connection), the body as STDIN
 * records, STDOUT de-framed into the shared response parser, STDERR to the
 * error log (sanitised and bounded), END_REQUEST statuses, ABORT_REQUEST
 * when the client goes away. Records themselves are fcgi_proto.c, the STDIN
 * framing frame.c. */
#include <stdlib.h>
#include <string.h>

#include "backends/probe.h"
#include "backends/fcgi_proto.h"
#include "backends/frame.h"
#include "backends/gateway.h"
#include "base/log.h"

typedef struct fcgi_state {
    atr_fcgi_dec_t dec;
    int extra;                   /* bytes after END_REQUEST */
    uint32_t stderr_logged;
    uint32_t stderr_rate;
    const char *upstream;        /* the request's upstream: outlives the decoder */
} fcgi_state_t;

static char *encode_head(atr_req_t *r, const atr_http_msg_t *m, enum atr_http_body body,
                         size_t *len)
{
    atr_cgi_env_t env;
    memset(&env, 0, sizeof env);
    if ((r->refuse_status = atr_gateway_env(r, m, ATR_GW_SCRIPT, 1, &env)) != 0) {
        atr_cgi_env_free(&env);
        return NULL;
    }
    char *out = atr_fcgi_encode_request(&env, r->upstream->keepalive != 0, len);
    atr_cgi_env_free(&env);
    if (body == ATR_BODY_NONE) {
        /* No body: STDIN still ends, with its empty record (the spec: PARAMS
         * and STDIN are each terminated even when empty); the core sends no
         * body pieces, so it goes with the head. */
        out = atr_xrealloc(out, *len + ATR_FCGI_HEADER_LEN);
        atr_fcgi_stdin_header((unsigned char *)out + *len, 0);
        *len += ATR_FCGI_HEADER_LEN;
    }
    return out;
}

static void on_stderr(void *arg, const char *p, size_t n)
{
    fcgi_state_t *st = arg;
    atr_gateway_log_stderr(st->upstream, "fastcgi", p, n, &st->stderr_logged, st->stderr_rate);
}

static void dec_init(void *state, atr_req_t *r)
{
    fcgi_state_t *st = state;
    memset(st, 0, sizeof *st);
    st->upstream = r->upstream->name;
    st->stderr_rate = r->wg->gen->conf->stderr_log_rate;
    atr_fcgi_dec_init(&st->dec, on_stderr, st);
}

static int decode(void *state, char *out, const char *in, size_t len, size_t *produced)
{
    fcgi_state_t *st = state;
    size_t consumed = 0;
    int rc = atr_fcgi_decode(&st->dec, out, in, len, &consumed, produced);
    if (rc == ATR_DONE && consumed < len)
        st->extra = 1;
    return rc;
}

static int dec_end(void *state, int *status)
{
    fcgi_state_t *st = state;
    if (st->dec.protocol_status == 2)
        *status = 503; /* FCGI_OVERLOADED */
    return !st->extra && st->dec.protocol_status == 0;
}

static size_t abort_bytes(char *out)
{
    atr_fcgi_abort_record((unsigned char *)out);
    return ATR_FCGI_HEADER_LEN;
}

_Static_assert(sizeof(fcgi_state_t) <= 256, "decoder state must fit the core's slot");

const atr_backend_ops_t atr_backend_fastcgi = {
    .name = "fastcgi",
    .reuse = 1,
    .needs_length = 1,
    .encode_head = encode_head,
    .frame_body = atr_frame_fcgi,
    .dec_size = sizeof(fcgi_state_t),
    .dec_init = dec_init,
    .decode = decode,
    .dec_end = dec_end,
    .abort_bytes = abort_bytes,
    .cgi_response = 1,
    .needs_path = 1,
    .probe_request = atr_probe_fcgi_request,
    .probe_status = atr_probe_fcgi_status,
};
