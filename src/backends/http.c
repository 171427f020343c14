/* The HTTP/1.1 backend: the request head from the client's (encoded by the
 * pure http_proto.c) and chunk re-framing of the request body
 * (atr_frame_http, frame.c). The response side is the shared parser; the
 * response head for the client is written here too, for every protocol. */
#include "backends/probe.h"
#include "backends/backend.h"
#include "backends/frame.h"
#include "backends/http_proto.h"
#include "net/tls.h"

static char *encode_head(atr_req_t *r, const atr_http_msg_t *m, enum atr_http_body body,
                         size_t *len)
{
    const atr_conf_t *conf = r->wg->gen->conf;
    const atr_conf_route_t *rt = r->route;
    const atr_conn_t *c = r->c;
    atr_http_fwd_t f = {
        .m = m,
        .body = body,
        .peer = { c->peer, c->peer_len },
        .peer_v6 = c->peer_v6,
        .host_fallback = r->upstream->name,
        .close = r->upstream->keepalive == 0,
        .ops = rt->req_hdr,
        .nops = rt->nreq_hdr,
        .drop_underscores = !conf->underscores_in_headers,
        .via = conf->via,
        .https = atr_tls_ssl(&c->s) != NULL,
        .path = rt->proxy_prefix ? r->norm_path : NULL,
    };
    atr_buf_t b = { atr_cache_head_get(r->wg->w), 0, ATR_HEAD_CAP };
    atr_http_encode_request(&b, &f);
    *len = b.n;
    return b.p;
}

const atr_backend_ops_t atr_backend_http = {
    .name = "http",
    .reuse = 1,
    .encode_head = encode_head,
    .frame_body = atr_frame_http,
    .upgrade = 1,
    .probe_request = atr_probe_http_request,
    .probe_status = atr_probe_http_status,
};

/* HTTP over TLS: the same encoding. */
const atr_backend_ops_t atr_backend_https = {
    .name = "https",
    .tls = 1,
    .reuse = 1,
    .encode_head = encode_head,
    .frame_body = atr_frame_http,
    .upgrade = 1,
    .probe_request = atr_probe_http_request,
    .probe_status = atr_probe_http_status,
};

char *atr_http_client_head(atr_req_t *r, const atr_http_msg_t *m, int with_length,
                           uint64_t length, size_t *len)
{
    const atr_conf_route_t *rt = r->route;
    atr_http_resp_t f = {
        .m = m,
        .with_length = with_length,
        .length = length,
        .chunked = r->resp_chunked,
        .connection = atr_req_connection_header(r),
        .ops = rt->resp_hdr,
        .nops = rt->nresp_hdr,
        .via = r->wg->gen->conf->via,
    };
    atr_buf_t b = { atr_cache_head_get(r->wg->w), 0, ATR_HEAD_CAP };
    atr_http_encode_response(&b, &f);
    *len = b.n;
    return b.p;
}
