#include "backends/gateway.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "base/log.h"

/* dst = a + b + NUL; 0, or -1 when it does not fit. */
static int join2(char *dst, size_t cap, const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b);
    if (an + bn + 1 > cap)
        return -1;
    memcpy(dst, a, an);
    memcpy(dst + an, b, bn + 1);
    return 0;
}

void atr_gateway_conn_vars(atr_req_t *r, atr_cgi_input_t *in, atr_gateway_scratch_t *sc)
{
    int local_port = 0, peer_port = 0;
    sc->local[0] = '\0';
    atr_conn_addrs(r->c, sc->local, sizeof sc->local, &local_port, &peer_port);
    in->remote_addr = r->c->peer;
    in->remote_port = peer_port;
    in->server_addr = sc->local;
    in->server_port = local_port;
    in->https = atr_tls_vars(&r->c->s, sc->tls_vars, sc->tls_buf, sizeof sc->tls_buf) > 0;
    in->tls_vars = sc->tls_vars;
}

int atr_gateway_walk(const char *dir, const char *path, char *file, size_t cap,
                     size_t *consumed)
{
    size_t dl = strlen(dir), i = 0;
    if (dl + 1 >= cap)
        return -ENAMETOOLONG;
    memcpy(file, dir, dl + 1);
    while (path[i] == '/')
        i++;
    while (path[i]) {
        size_t j = i;
        while (path[j] && path[j] != '/')
            j++;
        if (dl + 1 + (j - i) + 1 >= cap)
            return -ENAMETOOLONG;
        file[dl++] = '/';
        memcpy(file + dl, path + i, j - i);
        dl += j - i;
        file[dl] = '\0';
        struct stat st;
        if (stat(file, &st) < 0)
            return -errno;
        if (S_ISREG(st.st_mode)) {
            *consumed = j;
            return 0;
        }
        if (!S_ISDIR(st.st_mode))
            return -ENOEXEC;
        i = j;
        while (path[i] == '/')
            i++;
    }
    return 1;
}

/* SCRIPT_NAME, PATH_INFO, SCRIPT_FILENAME and PATH_TRANSLATED of a script
 * route (FastCGI): a directory asks for its index, as a static route would;
 * otherwise the path is split after the first segment that is a file under
 * the root (`/doku.php/page` runs doku.php with PATH_INFO /page). When no
 * prefix is a file, a route with try_files runs its front controller (the
 * root's index); without, the whole path is the script and the application
 * answers for it (php-fpm: 404). 0 or 414. */
static int script_vars(const atr_conf_route_t *rt, const char *path, atr_cgi_input_t *in,
                       char *script, size_t scap, char *filename, size_t fcap, char *translated,
                       size_t tcap)
{
    size_t plen = strlen(path), used = 0;
    int dir = plen > 0 && path[plen - 1] == '/';
    if (!dir && rt->root && atr_gateway_walk(rt->root, path, filename, fcap, &used) == 0 &&
        used < plen) {
        in->script_name = (atr_str_t){ path, used };
        in->path_info = (atr_str_t){ path + used, plen - used };
        in->script_filename = filename;
        in->document_root = rt->root;
        if (join2(translated, tcap, rt->root, strlen(rt->root), path + used) == 0)
            in->path_translated = translated;
        return 0;
    }
    if (rt->try_dir && rt->root && rt->index) {
        /* try_files: a path that names no file goes to the front controller,
         * the root's index (nginx's try_files $uri /index.php) */
        if (join2(script, scap, "/", 1, rt->index) < 0)
            return 414;
    } else if (join2(script, scap, path, plen, dir && rt->index ? rt->index : "") < 0) {
        return 414;
    }
    in->script_name = (atr_str_t){ script, strlen(script) };
    if (rt->root) {
        if (join2(filename, fcap, rt->root, strlen(rt->root), script) < 0)
            return 414;
        in->script_filename = filename;
        in->document_root = rt->root;
    }
    return 0;
}

int atr_gateway_env(atr_req_t *r, const atr_http_msg_t *m, enum atr_gateway_style style,
                    int pass_authorization, atr_cgi_env_t *env)
{
    const atr_conf_route_t *rt = r->route;
    const char *path = r->norm_path ? r->norm_path : "/";
    size_t plen = strlen(path);
    char script[4096 + 256], filename[8192], translated[8192];
    atr_cgi_input_t in;
    memset(&in, 0, sizeof in);
    in.msg = m;
    if (style == ATR_GW_SCRIPT) {
        int st = script_vars(rt, path, &in, script, sizeof script, filename, sizeof filename,
                             translated, sizeof translated);
        if (st)
            return st;
    } else {
        in.script_name = (atr_str_t){ "", 0 };
        in.path_info = (atr_str_t){ path, plen };
        in.document_root = rt->root;
    }
    atr_gateway_scratch_t sc;
    atr_gateway_conn_vars(r, &in, &sc);
    in.has_body = m->body == ATR_BODY_LENGTH;
    in.content_length = m->content_length;
    in.pass_authorization = pass_authorization;
    int rc = atr_cgi_env_build(&in, env);
    return rc == -2 ? 400 : rc < 0 ? 431 : 0; /* -2: CR/LF/NUL in a decoded path */
}

/* Lines an application may put in the error log, per worker: a token bucket
 * holding at most `rate` lines and refilled at `rate` lines per second. The
 * count of dropped lines goes out with a line that gets through, at most
 * once a second. */
static __thread struct {
    uint64_t last_ms, note_ms;
    double tokens;
    uint64_t suppressed;
} bucket;

static int line_allowed(uint32_t rate)
{
    uint64_t now = atr_now_ms();
    double t = bucket.last_ms ? bucket.tokens + (double)(now - bucket.last_ms) * rate / 1000.0
                              : (double)rate;
    bucket.tokens = t > rate ? rate : t;
    bucket.last_ms = now;
    if (bucket.tokens < 1.0) {
        bucket.suppressed++;
        return 0;
    }
    bucket.tokens -= 1.0;
    if (bucket.suppressed && now - bucket.note_ms >= 1000) {
        bucket.note_ms = now;
        ATR_WARN("application stderr: %llu line(s) not logged (stderr_log_rate %u per second)",
                 (unsigned long long)bucket.suppressed, rate);
        bucket.suppressed = 0;
    }
    return 1;
}

static void emit(const char *upstream, const char *what, char *line, size_t k, uint32_t rate)
{
    line[k] = '\0';
    if (line_allowed(rate))
        ATR_WARN("upstream %s: %s stderr: %s", upstream, what, line);
}

void atr_gateway_log_stderr(const char *upstream, const char *what, const char *p, size_t n,
                            uint32_t *budget, uint32_t rate)
{
    char line[512];
    size_t k = 0;
    for (size_t i = 0; i < n && *budget < ATR_GATEWAY_STDERR_MAX; i++) {
        unsigned char c = (unsigned char)p[i];
        (*budget)++;
        if (c == '\n' || c == '\r' || k >= sizeof line - 5) {
            if (k > 0) {
                emit(upstream, what, line, k, rate);
                k = 0;
            }
            if (c == '\n' || c == '\r')
                continue;
        }
        if (c < 0x20 || c >= 0x7f) {
            static const char hex[] = "0123456789abcdef";
            line[k++] = '\\';
            line[k++] = 'x';
            line[k++] = hex[c >> 4];
            line[k++] = hex[c & 15];
        } else {
            line[k++] = (char)c;
        }
    }
    if (k > 0)
        emit(upstream, what, line, k, rate);
}
