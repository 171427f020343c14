/* The SCGI backend: the netstring header block (CONTENT_LENGTH first, SCGI=1),
 * then the body as is; the response (status line or CGI header block) goes
 * through the shared parser and ends when the application closes. One
 * request per connection, as the protocol demands. */
#include <stdlib.h>

#include "backends/probe.h"
#include "backends/frame.h"
#include "backends/gateway.h"
#include "backends/scgi_proto.h"

static char *encode_head(atr_req_t *r, const atr_http_msg_t *m, enum atr_http_body body,
                         size_t *len)
{
    atr_cgi_env_t env;
    (void)body;
    memset(&env, 0, sizeof env);
    if ((r->refuse_status = atr_gateway_env(r, m, ATR_GW_MOUNT, 1, &env)) != 0) {
        atr_cgi_env_free(&env);
        return NULL;
    }
    char *out = atr_scgi_encode_request(&env, len);
    atr_cgi_env_free(&env);
    return out;
}

const atr_backend_ops_t atr_backend_scgi = {
    .name = "scgi",
    .reuse = 0,
    .needs_length = 1,
    .encode_head = encode_head,
    .frame_body = atr_frame_raw,
    .cgi_response = 1,
    .needs_path = 1,
    .probe_request = atr_probe_scgi_request,
    .probe_status = atr_probe_scgi_status,
};
