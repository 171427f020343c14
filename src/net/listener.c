/* Listening sockets. The control loop creates one SO_REUSEPORT socket per
 * worker per address (bind + listen happen here, so a reload learns that an
 * address is unusable before it commits to anything); each worker then adopts
 * its fd, watches it with a uv_poll and accepts itself. libuv 1.44 has no
 * UV_TCP_REUSEPORT (specs-digest §5), hence the raw socket calls; and its own
 * accept path sheds connections on EMFILE without telling the application,
 * so an operator would never learn that the limit was hit. */
#include "net/listener.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "net/worker.h"
#include "net/conn.h"

int atr_listener_socket(const struct sockaddr *addr, socklen_t len, int tls)
{
    int on = 1;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) < 0) /* for every accepted one */
        goto fail;
    if (addr->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    /* TLS: the client speaks first, so a connection is worth accepting only
     * once its ClientHello is there (one wakeup less per handshake). */
    int defer = 10;
    if (tls)
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof defer);
    if (bind(fd, addr, len) < 0 || listen(fd, 4096) < 0)
        goto fail;
    return fd;
fail:;
    int err = -errno;
    close(fd);
    return err;
}

int atr_listener_probe(const struct sockaddr *addr, socklen_t len)
{
    int on = 1, rc = 0;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (addr->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    /* SO_REUSEADDR: connections in TIME_WAIT do not count, a listener does. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 || bind(fd, addr, len) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

/* Rate-limited: an error such as EMFILE repeats for every waiting client. */
static void log_accept_error(atr_listener_t *l, int err)
{
    uint64_t now = uv_now(l->poll.loop);
    if (now - l->last_error_log >= 1000 || l->last_error_log == 0) {
        l->last_error_log = now;
        ATR_ERROR("%s: accept on %s: %s", l->w->name, l->key, strerror(err));
    }
}

static void on_readable(uv_poll_t *h, int status, int events);

static void on_resume(uv_timer_t *t)
{
    atr_listener_t *l = t->data;
    if (l->reserve_fd < 0)
        l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (!l->w->accept_paused) /* at max_connections the worker resumes it */
        uv_poll_start(&l->poll, UV_READABLE, on_readable);
}

/* Out of descriptors: the waiting clients cannot be served now. Give up the
 * reserved descriptor, accept and close them (each sees its connection
 * closed at once instead of hanging, and the listener stops being readable,
 * so the loop does not spin), then reserve it again. */
static void shed_waiting(atr_listener_t *l)
{
    if (l->reserve_fd >= 0) {
        close(l->reserve_fd);
        l->reserve_fd = -1;
    }
    int fd, shed = 0;
    while ((fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        close(fd);
        shed++;
    }
    l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (shed == 0 || l->reserve_fd < 0) {
        /* The fd table is the whole process's: another worker took the
         * descriptor given up, and the clients still wait. Polling again at
         * once would spin; look again in 100 ms. */
        uv_poll_stop(&l->poll);
        uv_timer_start(&l->pause, on_resume, 100, 0);
    }
}

/* Accept what is waiting, at most a batch per wake-up so one busy listener
 * cannot starve the connections already open. */
static void on_readable(uv_poll_t *h, int status, int events)
{
    atr_listener_t *l = h->data;
    (void)events;
    if (status < 0) {
        log_accept_error(l, -status);
        return;
    }
    atr_worker_t *w = l->w;
    int cap = w->wgen ? w->wgen->gen->max_conns : 0;
    for (int i = 0; i < 64; i++) {
        if (cap > 0 && w->nconns >= cap) {
            /* this one too: a listener adopted by a reload while the worker
             * was paused polls until here, and must not spin */
            atr_listener_pause(l);
            atr_worker_pause_accept(w);
            return;
        }
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            atr_conn_accept(l, fd, (struct sockaddr *)&peer);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        log_accept_error(l, errno);
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            shed_waiting(l);
        return;
    }
}

static int is_wildcard(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (ss->ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
    return 1;
}

int atr_listener_adopt(atr_worker_t *w, const char *key, int fd)
{
    atr_listener_t *l = atr_xcalloc(1, sizeof *l);
    int rc;
    l->key = atr_xstrdup(key);
    l->w = w;
    l->fd = fd;
    l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    socklen_t alen = sizeof l->local;
    if (getsockname(fd, (struct sockaddr *)&l->local, &alen) < 0 || is_wildcard(&l->local))
        l->local.ss_family = 0; /* each connection asks (getsockname) */
    if ((rc = uv_poll_init(&w->loop, &l->poll, fd)) < 0) {
        ATR_ERROR("%s: listen on %s: %s", w->name, key, uv_strerror(rc));
        if (l->reserve_fd >= 0)
            close(l->reserve_fd);
        close(fd);
        free(l->key);
        free(l);
        return rc;
    }
    l->poll.data = l;
    uv_timer_init(&w->loop, &l->pause);
    l->pause.data = l;
    l->handles = 2;
    uv_poll_start(&l->poll, UV_READABLE, on_readable);
    l->next = w->listeners;
    w->listeners = l;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    atr_listener_t *l = h->data;
    if (--l->handles > 0)
        return;
    close(l->fd); /* a poll handle does not own its fd */
    if (l->reserve_fd >= 0)
        close(l->reserve_fd);
    free(l->key);
    free(l);
}

void atr_listener_pause(atr_listener_t *l)
{
    uv_poll_stop(&l->poll);
}

void atr_listener_resume(atr_listener_t *l)
{
    if (!uv_is_active((uv_handle_t *)&l->pause)) /* an EMFILE pause resumes itself */
        uv_poll_start(&l->poll, UV_READABLE, on_readable);
}

void atr_listener_close(atr_listener_t *l)
{
    uv_close((uv_handle_t *)&l->poll, on_closed);
    uv_close((uv_handle_t *)&l->pause, on_closed);
}
