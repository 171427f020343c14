/* `static DIR;` routes: regular files under DIR, GET and HEAD only. The path
 * was normalised by the router (core/dispatch.c), so it cannot climb out of DIR; symlinks are
 * followed (the operator placed them). Files are read in buffer_size pieces
 * and written with backpressure: one piece in flight at a time. Reads are
 * synchronous (local files, page cache); large cold trees would want the
 * threadpool. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "handlers/static.h"
#include "base/log.h"
#include "http/conditional.h"

typedef struct static_file {
    int fd;
    uint64_t left;
    char *buf;
    size_t cap;
} static_file_t;

static const struct { const char *ext, *type; } types[] = {
    { ".html", "text/html; charset=utf-8" }, { ".htm", "text/html; charset=utf-8" },
    { ".txt", "text/plain; charset=utf-8" }, { ".md", "text/plain; charset=utf-8" },
    { ".css", "text/css" }, { ".js", "text/javascript" }, { ".json", "application/json" },
    { ".png", "image/png" }, { ".jpg", "image/jpeg" }, { ".jpeg", "image/jpeg" },
    { ".gif", "image/gif" }, { ".svg", "image/svg+xml" }, { ".ico", "image/x-icon" },
    { ".pdf", "application/pdf" }, { ".wasm", "application/wasm" },
};

static const char *mime_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < ATR_ARRAY_SIZE(types); i++)
        if (strcasecmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

static void file_free(static_file_t *f)
{
    if (f->fd >= 0)
        close(f->fd);
    free(f->buf);
    free(f);
}

static void pump(atr_req_t *r);

static void cleanup(atr_req_t *r)
{
    if (r->handler_data)
        file_free(r->handler_data);
    r->handler_data = NULL;
}

static const atr_handler_t static_handler = {
    .name = "static",
    .cleanup = cleanup,
};

static void on_written(atr_req_t *r, int status)
{
    if (status < 0) {
        atr_req_abort(r);
        return;
    }
    pump(r);
}

/* Send pieces until the socket pushes back or the file ends. */
static void pump(atr_req_t *r)
{
    static_file_t *f = r->handler_data;
    for (;;) {
        if (f->left == 0 || r->resp_no_body) {
            r->handler_data = NULL;
            file_free(f);
            atr_req_finish(r);
            return;
        }
        size_t want = (size_t)ATR_MIN((uint64_t)f->cap, f->left);
        ssize_t got = read(f->fd, f->buf, want);
        if (got <= 0) {
            ATR_ERROR("static: read failed: %s", got < 0 ? strerror(errno) : "file shrank");
            r->handler_data = NULL;
            file_free(f);
            atr_req_abort(r);
            return;
        }
        f->left -= (uint64_t)got;
        atr_str_t v = { f->buf, (size_t)got };
        int rc = atr_req_send(r, NULL, 0, &v, 1, f->left == 0, on_written);
        if (rc == 1)
            return;
        if (rc < 0) {
            r->handler_data = NULL;
            file_free(f);
            atr_req_abort(r);
            return;
        }
    }
}

static int open_target(const atr_conf_route_t *rt, const char *rest, char *path, size_t cap,
                       struct stat *st, int *is_dir)
{
    *is_dir = 0;
    int n = snprintf(path, cap, "%s/%s", rt->static_root, rest);
    if (n < 0 || (size_t)n >= cap)
        return -ENAMETOOLONG;
    /* O_NONBLOCK: opening a FIFO (or a device) must not block the worker; only
     * regular files are served. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    if (fstat(fd, st) < 0) {
        close(fd);
        return -EACCES;
    }
    if (S_ISDIR(st->st_mode)) {
        *is_dir = 1;
        close(fd);
        n = snprintf(path, cap, "%s/%s/%s", rt->static_root, rest,
                     rt->index ? rt->index : "index.html");
        if (n < 0 || (size_t)n >= cap)
            return -ENAMETOOLONG;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
            return -errno;
        if (fstat(fd, st) < 0) {
            close(fd);
            return -EACCES;
        }
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return -EACCES;
    }
    return fd;
}

/* A directory asked for without its trailing slash: 301 to the slash form
 * (its index would be served with the wrong base for relative links). The
 * Location is the client's own path (validated bytes, still encoded) plus
 * "/", then its query. Called with the head not yet consumed (the target is
 * read from it); 0 when the target is not origin-form: serve as is. */
static int redirect_to_slash(atr_req_t *r)
{
    atr_str_t target = r->msg->target;
    if (target.n == 0 || target.p[0] != '/')
        return 0;
    const char *q = memchr(target.p, '?', target.n);
    size_t pathlen = q ? (size_t)(q - target.p) : target.n;
    size_t cap = target.n + 64;
    char *loc = atr_xmalloc(cap);
    snprintf(loc, cap, "Location: %.*s/%.*s\r\n", (int)pathlen, target.p,
             (int)(target.n - pathlen), target.p + pathlen);
    atr_req_head_done(r); /* the connection header depends on it */
    atr_buf_t b;
    atr_req_local_head(r, 301, loc, 0, &b);
    free(loc);
    r->status = 301;
    atr_req_send_whole(r, b.p, b.n);
    return 1;
}

/* The request's preconditions and range against the file (RFC 9110 §13.2.2
 * order, for GET and HEAD): 304 when If-None-Match lists the tag (or, without
 * If-None-Match, If-Modified-Since is not older than the file), 412 when
 * If-Match lists none or If-Unmodified-Since is older; otherwise 206 with
 * [*first, *last] for a single satisfiable Range (a GET whose If-Range, if
 * any, still matches), 416 for an unsatisfiable one, else 200. */
static int conditions(const atr_http_msg_t *msg, enum atr_http_method m, const char *etag,
                      time_t mtime, uint64_t size, uint64_t *first, uint64_t *last)
{
    const atr_http_header_t *h;
    time_t t;
    if ((h = atr_http_find(msg, "if-match")) != NULL && !atr_http_etag_listed(h->value, etag))
        return 412;
    if (h == NULL && (h = atr_http_find(msg, "if-unmodified-since")) != NULL &&
        atr_http_parse_date(h->value, &t) == 0 && mtime > t)
        return 412;
    if ((h = atr_http_find(msg, "if-none-match")) != NULL) {
        if (atr_http_etag_listed(h->value, etag))
            return 304;
    } else if ((h = atr_http_find(msg, "if-modified-since")) != NULL &&
               atr_http_parse_date(h->value, &t) == 0 && mtime <= t) {
        return 304;
    }
    const atr_http_header_t *range = atr_http_find(msg, "range");
    if (range == NULL || m != ATR_M_GET)
        return 200;
    if ((h = atr_http_find(msg, "if-range")) != NULL) {
        /* a tag must be the same strong tag; a date the exact modification time */
        int same = h->value.n > 0 && h->value.p[0] == '"'
                       ? h->value.n == strlen(etag) && memcmp(h->value.p, etag, h->value.n) == 0
                       : atr_http_parse_date(h->value, &t) == 0 && t == mtime;
        if (!same)
            return 200;
    }
    int rc = atr_http_parse_range(range->value, size, first, last);
    return rc > 0 ? 206 : rc < 0 ? 416 : 200;
}

static void serve(atr_req_t *r, enum atr_http_method m, int fd, const struct stat *stp,
                  const char *path);

void atr_static_handle(atr_req_t *r)
{
    const atr_conf_route_t *rt = r->route;
    /* r->method is the client's: a HEAD that a script redirected locally
     * arrives here as the redirect's GET, and still gets no body */
    enum atr_http_method m = r->method == ATR_M_HEAD ? ATR_M_HEAD : r->msg->method;
    if (m != ATR_M_GET && m != ATR_M_HEAD) {
        atr_req_head_done(r);
        atr_req_respond_simple(r, 405, NULL, 0);
        return;
    }
    const char *rest = r->norm_path + strlen(rt->prefix);
    if (rest > r->norm_path && rest[-1] != '/' && *rest == '/')
        rest++;
    char path[4096];
    struct stat st;
    int is_dir;
    int fd = open_target(rt, rest, path, sizeof path, &st, &is_dir);
    size_t nl = strlen(r->norm_path);
    if (is_dir && nl > 0 && r->norm_path[nl - 1] != '/' && r->redirect_buf == NULL &&
        redirect_to_slash(r)) {
        if (fd >= 0)
            close(fd);
        return;
    }
    if (fd < 0) {
        atr_req_head_done(r);
        atr_req_respond_simple(r, fd == -ENOENT || fd == -ENOTDIR ? 404 : 403, NULL, 0);
        return;
    }
    serve(r, m, fd, &st, path);
}

/* Answer r with the open regular file fd (st, path): its validators, the
 * request's conditions and range, then the bytes. Takes fd. */
static void serve(atr_req_t *r, enum atr_http_method m, int fd, const struct stat *stp,
                  const char *path)
{
    struct stat st = *stp;
    /* The validators: the entity tag from modification time and size, as
     * nginx makes it, and the modification time. */
    char etag[48], date[64], fields[384];
    snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)st.st_mtime,
             (unsigned long long)st.st_size);
    struct tm tm;
    gmtime_r(&st.st_mtime, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    uint64_t first = 0, last = st.st_size ? (uint64_t)st.st_size - 1 : 0;
    int status = conditions(r->msg, m, etag, st.st_mtime, (uint64_t)st.st_size, &first, &last);
    atr_req_head_done(r); /* the request's fields are read: its buffer may go */
    int n = snprintf(fields, sizeof fields, "ETag: %s\r\nLast-Modified: %s\r\n", etag, date);
    if (status == 304 || status == 412) {
        close(fd);
        r->status = status;
        r->resp_no_body = 1;
        atr_buf_t b;
        atr_req_local_head(r, status, status == 304 ? fields : NULL, status == 304 ? -1 : 0, &b);
        atr_req_send_whole(r, b.p, b.n);
        return;
    }
    if (status == 416) {
        close(fd);
        snprintf(fields, sizeof fields, "Content-Range: bytes */%llu\r\n",
                 (unsigned long long)st.st_size);
        r->status = 416;
        r->resp_no_body = 1;
        atr_buf_t b;
        atr_req_local_head(r, 416, fields, 0, &b);
        atr_req_send_whole(r, b.p, b.n);
        return;
    }
    snprintf(fields + n, sizeof fields - (size_t)n, "Content-Type: %s\r\nAccept-Ranges: bytes\r\n",
             mime_type(path));
    uint64_t len = (uint64_t)st.st_size;
    if (status == 206) {
        size_t k = strlen(fields);
        snprintf(fields + k, sizeof fields - k, "Content-Range: bytes %llu-%llu/%llu\r\n",
                 (unsigned long long)first, (unsigned long long)last, (unsigned long long)len);
        len = last - first + 1;
        if (lseek(fd, (off_t)first, SEEK_SET) < 0) {
            close(fd);
            atr_req_respond_simple(r, 500, NULL, 0);
            return;
        }
    }
    static_file_t *f = atr_xcalloc(1, sizeof *f);
    f->fd = fd;
    f->left = len;
    f->cap = r->wg->gen->conf->buffer_size;
    f->buf = atr_xmalloc(f->cap);
    r->handler = &static_handler;
    r->handler_data = f;
    r->status = status;
    r->resp_no_body = m == ATR_M_HEAD;

    atr_buf_t b;
    atr_req_local_head(r, status, fields, (int64_t)len, &b);
    int rc = atr_req_send(r, b.p, b.n, NULL, 0, 0, on_written);
    if (rc == 0)
        pump(r);
    else if (rc < 0)
        atr_req_abort(r);
}

int atr_static_try(atr_req_t *r, const char *dir)
{
    enum atr_http_method m = r->msg->method;
    if (m != ATR_M_GET && m != ATR_M_HEAD)
        return 0; /* the application's */
    char path[4096];
    struct stat st;
    int n = snprintf(path, sizeof path, "%s%s", dir, r->norm_path);
    if (n < 0 || (size_t)n >= sizeof path || r->norm_path[strlen(r->norm_path) - 1] == '/')
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return 0;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return 0; /* a directory, a FIFO: the application's */
    }
    serve(r, m, fd, &st, path);
    return 1;
}
