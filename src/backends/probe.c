/* Health-check probes in each backend protocol (the probe_request and
 * probe_status ops of backend.h; core/health.c sends and reads them). A
 * probe is a GET of the check's path as a client would send it, so the
 * application answers it the way it answers requests: HTTP/1.0 with
 * `Connection: close`; FastCGI and SCGI with the same meta-variables a
 * proxied GET gets (the head is parsed by the shared parser and turned into
 * CGI variables by the shared builder). */
#include "backends/probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/fcgi_proto.h"
#include "backends/scgi_proto.h"

#define PROBE_AGENT "atrium health check"

char *atr_probe_http_request(const char *path, const char *host, size_t *len)
{
    size_t n = strlen(path) + strlen(host) + 128;
    char *out = atr_xmalloc(n);
    *len = (size_t)snprintf(out, n, "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: " PROBE_AGENT
                            "\r\nConnection: close\r\n\r\n", path, host);
    return out;
}

int atr_probe_http_status(const char *p, size_t n, int eof)
{
    const char *nl = memchr(p, '\n', n);
    if (nl == NULL)
        return eof || n >= 512 ? -1 : 0;
    int status = 0;
    if (n < 12 || strncmp(p, "HTTP/1.", 7) != 0 || sscanf(p + 8, " %3d", &status) != 1 ||
        status < 100)
        return -1;
    return status;
}

/* The CGI variables of a GET of path, as a FastCGI or SCGI request would
 * carry them: the path as SCRIPT_NAME (FastCGI, as for PHP; no
 * SCRIPT_FILENAME: the check names a URL the application serves, such as
 * php-fpm's ping.path) or as PATH_INFO under an empty SCRIPT_NAME (mount:
 * SCGI, an application mounted at /). */
static int probe_env(const char *path, const char *host, int mount, atr_cgi_env_t *env)
{
    char head[4096], file[4096];
    int hn = snprintf(head, sizeof head, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: " PROBE_AGENT
                      "\r\n\r\n", path, host);
    if (hn < 0 || (size_t)hn >= sizeof head)
        return -1;
    atr_http_parser_t *ps = atr_http_parser_new(0, NULL);
    atr_http_msg_t *m = atr_xcalloc(1, sizeof *m);
    int status;
    const char *reason;
    int rc = atr_http_parse(ps, head, (size_t)hn, m, &status, &reason);
    const char *q = strchr(path, '?');
    size_t plen = q ? (size_t)(q - path) : strlen(path);
    atr_cgi_input_t in = { .msg = m, .remote_addr = "127.0.0.1", .server_addr = "127.0.0.1" };
    if (mount) {
        in.script_name = (atr_str_t){ "", 0 };
        in.path_info = (atr_str_t){ path, plen };
    } else {
        /* SCRIPT_FILENAME as the path too: php-fpm wants one before it
         * answers its ping.path and status path. */
        in.script_name = (atr_str_t){ path, plen };
        snprintf(file, sizeof file, "%.*s", (int)plen, path);
        in.script_filename = file;
    }
    int out = rc == ATR_DONE ? atr_cgi_env_build(&in, env) : -1;
    atr_http_parser_free(ps);
    free(m);
    return out;
}

char *atr_probe_fcgi_request(const char *path, const char *host, size_t *len)
{
    atr_cgi_env_t env;
    memset(&env, 0, sizeof env);
    if (probe_env(path, host, 0, &env) < 0) {
        atr_cgi_env_free(&env);
        return NULL;
    }
    size_t n;
    char *rec = atr_fcgi_encode_request(&env, 0, &n);
    atr_cgi_env_free(&env);
    rec = atr_xrealloc(rec, n + ATR_FCGI_HEADER_LEN);
    atr_fcgi_stdin_header((unsigned char *)rec + n, 0); /* no body */
    *len = n + ATR_FCGI_HEADER_LEN;
    return rec;
}

char *atr_probe_scgi_request(const char *path, const char *host, size_t *len)
{
    atr_cgi_env_t env;
    memset(&env, 0, sizeof env);
    char *out = probe_env(path, host, 1, &env) < 0 ? NULL : atr_scgi_encode_request(&env, len);
    atr_cgi_env_free(&env);
    return out;
}

/* The status of CGI output p[0..n): a `Status:` field, or an HTTP status
 * line, or 200 for a complete header block without either (RFC 3875 §6.3);
 * 0 while the block is incomplete and more may come. */
static int cgi_status(const char *p, size_t n, int eof)
{
    if (n >= 7 && strncmp(p, "HTTP/1.", 7) == 0)
        return atr_probe_http_status(p, n, eof);
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(p + i, '\n', n - i);
        if (nl == NULL)
            break;
        size_t ll = (size_t)(nl - (p + i));
        if (ll > 0 && p[i + ll - 1] == '\r')
            ll--;
        if (ll == 0)
            return 200; /* the end of the block, no Status */
        int status;
        if (ll > 7 && strncasecmp(p + i, "status:", 7) == 0 &&
            sscanf(p + i + 7, " %3d", &status) == 1 && status >= 100)
            return status;
        i = (size_t)(nl - p) + 1;
    }
    return eof ? -1 : 0;
}

int atr_probe_fcgi_status(const char *p, size_t n, int eof)
{
    atr_fcgi_dec_t dec;
    atr_fcgi_dec_init(&dec, NULL, NULL);
    char *out = atr_xmalloc(n ? n : 1);
    size_t consumed = 0, produced = 0;
    int rc = atr_fcgi_decode(&dec, out, p, n, &consumed, &produced);
    int status;
    if (rc == ATR_ERROR)
        status = -1;
    else if (rc == ATR_DONE && dec.protocol_status == 2)
        status = 503; /* FCGI_OVERLOADED */
    else if (rc == ATR_DONE && dec.protocol_status != 0)
        status = -1;
    else
        status = cgi_status(out, produced, eof || rc == ATR_DONE);
    free(out);
    return status;
}

int atr_probe_scgi_status(const char *p, size_t n, int eof)
{
    return cgi_status(p, n, eof);
}
