/* RFC 3875 meta-variables (specs-digest §3.3, reliability.md §1.9): one
 * construction shared by the FastCGI, SCGI and CGI encoders.
 *
 * Everything lives in one arena that grows by doubling up to the 256 KiB
 * limit; when it moves, the name/value pointers are rebased, so callers only
 * ever see the final addresses. */
#include "backends/cgi_env.h"

#include <stdlib.h>
#include <string.h>

#ifndef ATR_VERSION
#define ATR_VERSION "dev"
#endif

#define ENV_LIMIT (256u * 1024u)

/* Failure codes of the internal helpers, returned by atr_cgi_env_build. */
#define E_TOO_BIG (-1)
#define E_BAD_BYTE (-2)

static int grow_arena(atr_cgi_env_t *env, size_t need)
{
    size_t cap = env->arena_cap ? env->arena_cap : 4096;
    char *old = env->arena, *nu;
    int i;

    if (env->arena_len + need > ENV_LIMIT)
        return E_TOO_BIG;
    while (cap < env->arena_len + need)
        cap *= 2;
    if (cap > ENV_LIMIT)
        cap = ENV_LIMIT;
    nu = atr_xmalloc(cap);
    if (env->arena_len)
        memcpy(nu, old, env->arena_len);
    /* Rebase while the old block is still alive (no arithmetic on freed memory). */
    for (i = 0; i < env->n; i++) {
        env->names[i] = nu + (env->names[i] - old);
        env->values[i] = nu + (env->values[i] - old);
    }
    free(old);
    env->arena = nu;
    env->arena_cap = cap;
    return 0;
}

/* Reserve n bytes of arena; the pointer stays valid until the next reserve. */
static int reserve(atr_cgi_env_t *env, size_t n, char **out)
{
    int rc;
    if (env->arena_cap - env->arena_len < n && (rc = grow_arena(env, n)) < 0)
        return rc;
    *out = env->arena + env->arena_len;
    env->arena_len += n;
    return 0;
}

static int clean_value(const char *v, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (v[i] == '\0' || v[i] == '\r' || v[i] == '\n')
            return 0;
    return 1;
}

/* The four slot arrays live in one block, so a request usually costs one
 * allocation for them (cap 48 fits a typical request's variables). */
static void push_slot(atr_cgi_env_t *env)
{
    if (env->n < env->cap)
        return;
    int cap = env->cap ? env->cap * 2 : 48;
    size_t ptrs = (size_t)cap * sizeof(char *), lens = (size_t)cap * sizeof(uint32_t);
    char *block = atr_xmalloc(2 * ptrs + 2 * lens);
    char **names = (char **)block, **values = (char **)(block + ptrs);
    uint32_t *name_lens = (uint32_t *)(block + 2 * ptrs), *value_lens = name_lens + cap;
    if (env->n) {
        memcpy(names, env->names, (size_t)env->n * sizeof *names);
        memcpy(values, env->values, (size_t)env->n * sizeof *values);
        memcpy(name_lens, env->name_lens, (size_t)env->n * sizeof *name_lens);
        memcpy(value_lens, env->value_lens, (size_t)env->n * sizeof *value_lens);
    }
    free(env->names); /* the old block */
    env->names = names;
    env->values = values;
    env->name_lens = name_lens;
    env->value_lens = value_lens;
    env->cap = cap;
}

/* A new variable of nn + vn bytes (NULs added) in the arena; *name and *value
 * point at where the caller writes them. */
static int add_slot(atr_cgi_env_t *env, size_t nn, size_t vn, char **name, char **value)
{
    char *p;
    int rc;
    if ((rc = reserve(env, nn + 1 + vn + 1, &p)) < 0)
        return rc;
    push_slot(env);
    p[nn] = '\0';
    p[nn + 1 + vn] = '\0';
    env->names[env->n] = *name = p;
    env->name_lens[env->n] = (uint32_t)nn;
    env->values[env->n] = *value = p + nn + 1;
    env->value_lens[env->n] = (uint32_t)vn;
    env->n++;
    return 0;
}

/* Append NAME=VALUE, both copied (name "prefix" + name). */
static int add3(atr_cgi_env_t *env, const char *prefix, const char *name, size_t nn,
                const char *value, size_t vn)
{
    size_t pn = strlen(prefix);
    char *np, *vp;
    int rc;

    if (!clean_value(value, vn))
        return E_BAD_BYTE;
    if ((rc = add_slot(env, pn + nn, vn, &np, &vp)) < 0)
        return rc;
    memcpy(np, prefix, pn);
    memcpy(np + pn, name, nn);
    memcpy(vp, value, vn);
    return 0;
}

static int add(atr_cgi_env_t *env, const char *name, const char *value, size_t vn)
{
    return add3(env, "", name, strlen(name), value, vn);
}

static int add_s(atr_cgi_env_t *env, const char *name, const char *value)
{
    return add(env, name, value ? value : "", value ? strlen(value) : 0);
}

static int add_v(atr_cgi_env_t *env, const char *name, atr_str_t v)
{
    return add(env, name, v.p ? v.p : "", v.n);
}

static int add_u(atr_cgi_env_t *env, const char *name, unsigned long long u)
{
    char buf[24], *p = buf + sizeof buf;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    return add(env, name, p, (size_t)(buf + sizeof buf - p));
}

/* SERVER_NAME: the Host without its port; an IPv6 literal keeps its brackets. */
static atr_str_t host_name(atr_str_t host)
{
    size_t i = 0;
    if (host.n && host.p[0] == '[') {
        while (i < host.n && host.p[i] != ']')
            i++;
        if (i < host.n)
            i++;
    } else {
        while (i < host.n && host.p[i] != ':')
            i++;
    }
    host.n = i;
    return host;
}

static int span_ieq(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i;
    if (an != bn)
        return 0;
    for (i = 0; i < an; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return 0;
    }
    return 1;
}

/* 1 when a Connection header of m lists NAME (comma-separated tokens, OWS). */
static int listed_in_connection(const atr_http_msg_t *m, atr_str_t name)
{
    uint32_t i;
    for (i = 0; i < m->nheaders; i++) {
        const char *p, *end;
        if (!atr_str_ieq(m->headers[i].name, "connection"))
            continue;
        p = m->headers[i].value.p;
        end = p + m->headers[i].value.n;
        while (p < end) {
            const char *s, *e;
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            s = p;
            while (p < end && *p != ',')
                p++;
            e = p;
            while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if (e > s && span_ieq(s, (size_t)(e - s), name.p, name.n))
                return 1;
        }
    }
    return 0;
}

static int exportable_name(atr_str_t name)
{
    size_t i;
    if (name.n == 0)
        return 0;
    for (i = 0; i < name.n; i++) {
        unsigned char c = (unsigned char)name.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return 0;
    }
    return 1;
}

/* Fields that never become HTTP_*: exposed otherwise (CONTENT_*), hop-by-hop,
 * httpoxy's Proxy, and credentials the application does not get. */
static int dropped(const atr_cgi_input_t *in, atr_str_t name)
{
    static const char *const never[] = {
        "proxy", "content-length", "content-type", "connection", "keep-alive", "te",
        "transfer-encoding", "upgrade", "trailer", "proxy-connection",
        /* Meant for this proxy, not for the application (httpd drops it too). */
        "proxy-authorization",
    };
    size_t i;
    if (!exportable_name(name))
        return 1;
    for (i = 0; i < ATR_ARRAY_SIZE(never); i++)
        if (atr_str_ieq(name, never[i]))
            return 1;
    if (!in->pass_authorization && atr_str_ieq(name, "authorization"))
        return 1;
    return listed_in_connection(in->msg, name);
}

/* HTTP_<NAME> for headers[first] joined with every later field of the same
 * name, in order: ", " between values (Cookie: "; "), empty values skipped. */
static int add_header(atr_cgi_env_t *env, const atr_http_msg_t *m, uint32_t first)
{
    atr_str_t name = m->headers[first].name;
    const char *sep = atr_str_ieq(name, "cookie") ? "; " : ", ";
    size_t total = 0, len = 0, i;
    char *nm, *val;
    uint32_t j;
    int rc;

    for (j = first; j < m->nheaders; j++)
        if (span_ieq(m->headers[j].name.p, m->headers[j].name.n, name.p, name.n) &&
            m->headers[j].value.n)
            total += m->headers[j].value.n + (total ? 2 : 0);
    if (total + name.n > ENV_LIMIT)
        return E_TOO_BIG;
    if ((rc = add_slot(env, 5 + name.n, total, &nm, &val)) < 0)
        return rc;
    memcpy(nm, "HTTP_", 5);
    for (i = 0; i < name.n; i++) {
        char c = name.p[i];
        nm[5 + i] = c == '-' ? '_' : (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
    }
    for (j = first; j < m->nheaders; j++) {
        atr_str_t v = m->headers[j].value;
        if (!span_ieq(m->headers[j].name.p, m->headers[j].name.n, name.p, name.n) || !v.n)
            continue;
        if (len) {
            memcpy(val + len, sep, 2);
            len += 2;
        }
        memcpy(val + len, v.p, v.n);
        len += v.n;
    }
    /* The parser never lets CR, LF or NUL into a header value. */
    return 0;
}

static int add_headers(const atr_cgi_input_t *in, atr_cgi_env_t *env)
{
    const atr_http_msg_t *m = in->msg;
    uint32_t i, k;
    int rc;

    for (i = 0; i < m->nheaders; i++) {
        atr_str_t name = m->headers[i].name;
        int seen = 0;
        if (dropped(in, name))
            continue;
        for (k = 0; k < i && !seen; k++)
            seen = span_ieq(m->headers[k].name.p, m->headers[k].name.n, name.p, name.n);
        if (!seen && (rc = add_header(env, m, i)) < 0)
            return rc;
    }
    return 0;
}

static int add_request(const atr_cgi_input_t *in, atr_cgi_env_t *env)
{
    const atr_http_msg_t *m = in->msg;
    atr_str_t q = { "", 0 };
    const char *proto = m->version_minor ? "HTTP/1.1" : "HTTP/1.0";
    const char *qm = m->target.n ? memchr(m->target.p, '?', m->target.n) : NULL;
    int rc;

    if (qm) {
        q.p = qm + 1;
        q.n = m->target.n - (size_t)(q.p - m->target.p);
    }
    if ((rc = add_s(env, "GATEWAY_INTERFACE", "CGI/1.1")) < 0 ||
        (rc = add_s(env, "SERVER_SOFTWARE", "atrium/" ATR_VERSION)) < 0 ||
        (rc = add_s(env, "SERVER_PROTOCOL", proto)) < 0 ||
        (rc = add_v(env, "REQUEST_METHOD", m->method_str)) < 0 ||
        (rc = add_v(env, "REQUEST_URI", m->target)) < 0 ||
        (rc = add_v(env, "QUERY_STRING", q)) < 0 ||
        (rc = add_v(env, "SCRIPT_NAME", in->script_name)) < 0)
        return rc;
    if (in->path_info.n && (rc = add_v(env, "PATH_INFO", in->path_info)) < 0)
        return rc;
    if (in->path_translated && (rc = add_s(env, "PATH_TRANSLATED", in->path_translated)) < 0)
        return rc;
    if (in->script_filename && (rc = add_s(env, "SCRIPT_FILENAME", in->script_filename)) < 0)
        return rc;
    if (in->document_root && (rc = add_s(env, "DOCUMENT_ROOT", in->document_root)) < 0)
        return rc;
    return 0;
}

static int add_server(const atr_cgi_input_t *in, atr_cgi_env_t *env)
{
    atr_str_t sn = host_name(in->msg->host);
    const atr_http_header_t *ct;
    int rc;

    if (sn.n)
        rc = add_v(env, "SERVER_NAME", sn);
    else
        rc = add_s(env, "SERVER_NAME", in->server_addr);
    if (rc < 0 || (rc = add_s(env, "SERVER_ADDR", in->server_addr)) < 0 ||
        (rc = add_u(env, "SERVER_PORT", (unsigned)in->server_port)) < 0 ||
        (rc = add_s(env, "REMOTE_ADDR", in->remote_addr)) < 0 ||
        (rc = add_u(env, "REMOTE_PORT", (unsigned)in->remote_port)) < 0 ||
        (rc = add_s(env, "REQUEST_SCHEME", in->https ? "https" : "http")) < 0)
        return rc;
    if (in->https && (rc = add_s(env, "HTTPS", "on")) < 0)
        return rc;
    for (const char *const *kv = in->tls_vars; kv && kv[0]; kv += 2)
        if ((rc = add_s(env, kv[0], kv[1])) < 0)
            return rc;
    if (in->has_body && (rc = add_u(env, "CONTENT_LENGTH", in->content_length)) < 0)
        return rc;
    ct = atr_http_find(in->msg, "content-type");
    if (ct && (rc = add_v(env, "CONTENT_TYPE", ct->value)) < 0)
        return rc;
    return 0;
}

int atr_cgi_env_build(const atr_cgi_input_t *in, atr_cgi_env_t *env)
{
    int rc;

    memset(env, 0, sizeof *env);
    if ((rc = add_request(in, env)) < 0 || (rc = add_server(in, env)) < 0 ||
        (rc = add_headers(in, env)) < 0) {
        atr_cgi_env_free(env);
        return rc;
    }
    return 0;
}

void atr_cgi_env_free(atr_cgi_env_t *env)
{
    free(env->names); /* one block with values and the lengths */
    free(env->arena);
    memset(env, 0, sizeof *env);
}

const char *atr_cgi_env_get(const atr_cgi_env_t *env, const char *name)
{
    int i;
    for (i = 0; i < env->n; i++)
        if (strcmp(env->names[i], name) == 0)
            return env->values[i];
    return NULL;
}
