/* The backend protocols a config may name with `protocol NAME;`, in the order
 * messages list them; the first is the default. Adding a protocol: its file
 * in this folder, its two lines here, one in meson.build (docs/balancer.md). The
 * internal cgi protocol is not here: only `cgi DIR;` routes use it. */
#include "backends/backend.h"

/* Declared here, beside the one array that names them. */
extern const atr_backend_ops_t atr_backend_http;
extern const atr_backend_ops_t atr_backend_https;
extern const atr_backend_ops_t atr_backend_fastcgi;
extern const atr_backend_ops_t atr_backend_scgi;

static const void *const protocols[] = {
    &atr_backend_http,
    &atr_backend_https,
    &atr_backend_fastcgi,
    &atr_backend_scgi,
};

const atr_registry_t atr_backend_registry = { "protocol", protocols, ATR_ARRAY_SIZE(protocols) };
