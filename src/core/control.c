/* The runtime API's socket (core/control.h): a unix stream socket on the
 * control loop. A connection sends one line, gets the answer, and is closed.
 * Bounded: a line of at most CTL_LINE_MAX bytes, CTL_MAX_CLIENTS at once,
 * CTL_TIMEOUT_MS to send the line. The commands are in control_cmd.c. */
#include "core/control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "http/headers.h"

#define CTL_LINE_MAX 4096
#define CTL_MAX_CLIENTS 16
#define CTL_TIMEOUT_MS 10000

const atr_control_ops_t *atr__control_ops; /* control_cmd.c runs the commands with them */

typedef struct client {
    uv_pipe_t pipe;
    uv_timer_t timer;
    uv_write_t wr;
    atr_buf_t out;
    char line[CTL_LINE_MAX + 1];
    size_t len;
    int answered;
    int open_handles;
    struct client *next;
} client_t;

static struct {
    uv_loop_t *loop;
    uv_pipe_t *server;         /* NULL: no socket */
    char *path;
    int nclients;
    client_t *clients;
    uv_uid_t uid;
    uv_gid_t gid;
    int owned;                 /* uid/gid set */
} ctl;

void atr_control_set_owner(uv_uid_t uid, uv_gid_t gid)
{
    ctl.uid = uid;
    ctl.gid = gid;
    ctl.owned = 1;
}

static void client_freed(uv_handle_t *h)
{
    client_t *c = h->data;
    if (--c->open_handles > 0)
        return;
    for (client_t **pp = &ctl.clients; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    ctl.nclients--;
    free(c->out.p);
    free(c);
}

static void client_close(client_t *c)
{
    if (uv_is_closing((uv_handle_t *)&c->pipe))
        return;
    uv_close((uv_handle_t *)&c->pipe, client_freed);
    uv_close((uv_handle_t *)&c->timer, client_freed);
}

static void on_written(uv_write_t *wr, int status)
{
    (void)status;
    client_close(wr->data);
}

static void answer(client_t *c, const char *text)
{
    if (c->answered)
        return;
    c->answered = 1;
    uv_read_stop((uv_stream_t *)&c->pipe);
    if (text != NULL) {
        atr_buf_puts(&c->out, text);
    } else {
        c->line[c->len] = '\0';
        atr_control_run(c->line, &c->out);
    }
    uv_buf_t b = uv_buf_init(c->out.p, (unsigned)c->out.n);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->pipe, &b, 1, on_written) < 0)
        client_close(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    client_t *c = h->data;
    (void)hint;
    *b = uv_buf_init(c->line + c->len, (unsigned)(CTL_LINE_MAX - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    client_t *c = s->data;
    (void)b;
    if (n < 0) {
        if (n == UV_EOF && c->len > 0)
            answer(c, NULL); /* a line without its newline: the end says it is whole */
        else
            client_close(c);
        return;
    }
    char *nl = memchr(c->line + c->len, '\n', (size_t)n);
    c->len += (size_t)n;
    if (nl != NULL) {
        c->len = (size_t)(nl - c->line);
        if (c->len > 0 && c->line[c->len - 1] == '\r')
            c->len--;
        answer(c, NULL);
    } else if (c->len >= CTL_LINE_MAX) {
        answer(c, "error: command longer than 4096 bytes\n");
    }
}

static void on_timeout(uv_timer_t *t)
{
    client_t *c = t->data;
    if (!c->answered)
        answer(c, "error: no command within 10 s\n");
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    client_t *c = atr_xcalloc(1, sizeof *c);
    uv_pipe_init(ctl.loop, &c->pipe, 0);
    uv_timer_init(ctl.loop, &c->timer);
    c->pipe.data = c->timer.data = c;
    c->open_handles = 2;
    c->next = ctl.clients;
    ctl.clients = c;
    ctl.nclients++;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0) {
        client_close(c);
        return;
    }
    if (ctl.nclients > CTL_MAX_CLIENTS) {
        answer(c, "error: busy: too many control connections, try again\n");
        return;
    }
    uv_timer_start(&c->timer, on_timeout, CTL_TIMEOUT_MS, 0);
    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

/* 1 when a process accepts connections on the unix socket at path. */
static int answered_at(const char *path)
{
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
    int rc = connect(fd, (struct sockaddr *)&un, sizeof un);
    close(fd);
    return rc == 0;
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void close_server(void)
{
    if (ctl.server == NULL)
        return;
    uv_close((uv_handle_t *)ctl.server, free_handle);
    unlink(ctl.path);
    free(ctl.path);
    ctl.server = NULL;
    ctl.path = NULL;
}

/* A listening socket at conf's control path, or NULL with err. */
static uv_pipe_t *open_server(const atr_conf_t *conf, char *err, size_t errlen)
{
    const char *path = conf->control;
    const atr_conf_pos_t *p = &conf->control_pos;
    struct stat sb;
    if (answered_at(path)) {
        snprintf(err, errlen, "%s:%d:%d: control %s: another process answers on it (a second "
                 "atrium?)", p->file, p->line, p->col, path);
        return NULL;
    }
    if (lstat(path, &sb) == 0 && S_ISSOCK(sb.st_mode))
        unlink(path); /* left by a process that stopped without removing it */
    uv_pipe_t *srv = atr_xcalloc(1, sizeof *srv);
    int rc = uv_pipe_init(ctl.loop, srv, 0);
    /* 0600 from the start: no moment where another user could connect */
    mode_t old = umask(0177);
    if (rc == 0)
        rc = uv_pipe_bind(srv, path);
    umask(old);
    if (rc == 0 && ctl.owned && chown(path, ctl.uid, ctl.gid) < 0)
        rc = -errno;
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)srv, 16, on_connection);
    if (rc < 0) {
        /* libuv reports a missing directory as EACCES: say which it was */
        char dir[sizeof ((struct sockaddr_un *)0)->sun_path];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash != NULL && slash != dir)
            *slash = '\0';
        if (rc == UV_EACCES && slash != NULL && access(dir, F_OK) < 0)
            rc = UV_ENOENT;
        snprintf(err, errlen, "%s:%d:%d: control %s: %s", p->file, p->line, p->col, path,
                 uv_strerror(rc));
        uv_close((uv_handle_t *)srv, free_handle);
        return NULL;
    }
    return srv;
}

int atr_control_apply(uv_loop_t *loop, const atr_conf_t *conf, const atr_control_ops_t *ops,
                      char *err, size_t errlen)
{
    ctl.loop = loop;
    atr__control_ops = ops;
    if (conf->control != NULL && ctl.path != NULL && strcmp(conf->control, ctl.path) == 0)
        return 0; /* the same socket: kept, with the connections on it */
    uv_pipe_t *srv = NULL;
    if (conf->control != NULL && (srv = open_server(conf, err, errlen)) == NULL)
        return -1; /* the current one stays */
    close_server();
    if (srv != NULL) {
        ctl.server = srv;
        ctl.path = atr_xstrdup(conf->control);
    }
    return 0;
}

void atr_control_stop(void)
{
    close_server();
    for (client_t *c = ctl.clients; c; c = c->next)
        client_close(c);
}
