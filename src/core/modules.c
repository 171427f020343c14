/* The modules of this build and the order their hooks go in. Adding a phase
 * module (access control, rate limits, rewrite) is one file with its
 * register function and one line here; net/ never names it. */
#include "core/modules.h"

#include <string.h>
#include <uv.h>

#include "backends/cgi.h"
#include "backends/proxy.h"
#include "core/dispatch.h"
#include "net/hooks.h"

/* The log phase: the generation's access log, when it has one. */
static void log_access(atr_req_t *r)
{
    atr_access_log_t *al = r->wg->gen->access_log;
    if (al == NULL)
        return;
    atr_access_entry_t e;
    memset(&e, 0, sizeof e);
    e.client_addr = r->c->peer;
    e.time_unix_ms = r->start_wall_ms;
    if (r->log_method) {
        e.method = (atr_str_t){ r->log_method, strlen(r->log_method) };
        e.target = (atr_str_t){ r->log_target, strlen(r->log_target) };
        e.referer = (atr_str_t){ r->log_referer, strlen(r->log_referer) };
        e.user_agent = (atr_str_t){ r->log_ua, strlen(r->log_ua) };
        e.host = (atr_str_t){ r->log_host, strlen(r->log_host) };
    }
    e.version_minor = r->version_minor;
    e.status = r->status;
    e.bytes_sent = r->bytes_sent;
    e.request_time_us = uv_hrtime() / 1000 - r->start_us;
    e.upstream_addr = r->upstream_addr[0] ? r->upstream_addr : NULL;
    e.upstream_time_us = r->upstream_time_us;
    e.upstream_status = r->upstream_status;
    atr_access_log_write(al, &e);
}

static void register_core(void)
{
    /* Last in the handler phase: a module's own handler hooks go first. */
    atr_hook_request(ATR_PHASE_HANDLER, ATR_HOOK_LAST, atr_dispatch_route);
    atr_hook_log(log_access);
}

static const atr_module_t modules[] = {
    { "proxy", atr_proxy_register },
    { "cgi", atr_cgi_register },
    { "core", register_core },
};

void atr_modules_register(void)
{
    static int done;
    if (done++)
        return;
    for (size_t i = 0; i < sizeof modules / sizeof modules[0]; i++)
        modules[i].register_hooks();
}
