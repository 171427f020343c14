/* Listening sockets. The control loop creates one SO_REUSEPORT socket per
 * worker per address (bind + listen happen here, so a reload learns that an
 * address is unusable before it commits to anything); each worker then adopts
 * its fd with uv_tcp_open. libuv 1.44 has no UV_TCP_REUSEPORT (specs-digest
 * §5), hence the raw socket calls. */
#include "listener.h"

#include <errno.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "worker.h"
#include "conn.h"

int atr_listener_socket(const struct sockaddr *addr, socklen_t len)
{
    int on = 1;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0)
        goto fail;
    if (addr->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    if (bind(fd, addr, len) < 0 || listen(fd, 4096) < 0)
        goto fail;
    return fd;
fail:;
    int err = -errno;
    close(fd);
    return err;
}

static void on_connection(uv_stream_t *server, int status)
{
    atr_listener_t *l = server->data;
    if (status < 0) {
        /* EMFILE and friends repeat for every pending connection: say it at
         * most once a second per listener (libuv already sheds the excess). */
        uint64_t now = uv_now(server->loop);
        if (now - l->last_error_log >= 1000 || l->last_error_log == 0) {
            l->last_error_log = now;
            ATR_ERROR("%s: accept on %s: %s", l->w->name, l->key, uv_strerror(status));
        }
        return;
    }
    atr_conn_accept(l);
}

int atr_listener_adopt(atr_worker_t *w, const char *key, int fd)
{
    atr_listener_t *l = atr_xcalloc(1, sizeof *l);
    int rc;
    l->key = atr_xstrdup(key);
    l->w = w;
    uv_tcp_init(&w->loop, &l->tcp);
    l->tcp.data = l;
    if ((rc = uv_tcp_open(&l->tcp, fd)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&l->tcp, 4096, on_connection)) < 0) {
        ATR_ERROR("%s: listen on %s: %s", w->name, key, uv_strerror(rc));
        atr_listener_close(l);
        return rc;
    }
    l->next = w->listeners;
    w->listeners = l;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    atr_listener_t *l = h->data;
    free(l->key);
    free(l);
}

void atr_listener_close(atr_listener_t *l)
{
    uv_close((uv_handle_t *)&l->tcp, on_closed);
}
