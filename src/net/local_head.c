/* The heads of the responses Atrium makes itself: errors, `return`, the
 * status page, static files and their redirects. One writer, so that every
 * one of them has a Date and the route's response_header operations (an
 * HSTS header set on a host reaches its static files too). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "http/headers.h"
#include "http/http_parse.h"
#include "net/conn.h"
#include "net/worker.h"

/* The Date value (RFC 9110 §5.6.7 IMF-fixdate), formatted once a second per
 * thread. */
static const char *http_date(void)
{
    static __thread char buf[40];
    static __thread time_t at = -1;
    time_t now = time(NULL);
    if (now != at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        at = now;
    }
    return buf;
}

/* Append one of our fields unless the route's operations set or remove it. */
static void field(atr_buf_t *b, const atr_hdr_op_t *ops, int nops, const char *line, size_t n)
{
    const char *colon = memchr(line, ':', n);
    if (colon && nops && atr_hdr_overridden(ops, nops, (atr_str_t){ line, (size_t)(colon - line) }))
        return;
    atr_buf_put(b, line, n);
}

void atr_req_local_head(atr_req_t *r, int status, const char *fields, int64_t length,
                        atr_buf_t *out)
{
    const atr_conf_route_t *rt = r->route;
    const atr_hdr_op_t *ops = rt ? rt->resp_hdr : NULL;
    int nops = rt ? rt->nresp_hdr : 0;
    atr_buf_t b = { atr_cache_head_get(r->wg->w), 0, ATR_HEAD_CAP };
    atr_buf_printf(&b, "HTTP/1.1 %d %s\r\n", status, atr_http_reason(status));
    field(&b, ops, nops, "Server: atrium\r\n", 16);
    char date[64];
    int dn = snprintf(date, sizeof date, "Date: %s\r\n", http_date());
    field(&b, ops, nops, date, (size_t)dn);
    for (const char *p = fields; p && *p;) {
        const char *e = strstr(p, "\r\n");
        size_t n = e ? (size_t)(e - p) + 2 : strlen(p);
        field(&b, ops, nops, p, n);
        p += n;
    }
    if (length >= 0) { /* framing: never the operations' */
        atr_buf_puts(&b, "Content-Length: ");
        atr_buf_put_u64(&b, (uint64_t)length);
        atr_buf_put(&b, "\r\n", 2);
    }
    atr_buf_puts(&b, atr_req_connection_header(r));
    atr_hdr_apply(&b, ops, nops);
    atr_buf_put(&b, "\r\n", 2);
    *out = b;
}
