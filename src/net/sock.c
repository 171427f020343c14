/* The transport layer (net/sock.h): one copy of buffering, close-late
 * refcounting and try-write-then-queue for both sides, and the stream
 * transports (TCP, unix socket, a script's pipes). */
#include "net/sock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "base/util.h"
#include "net/worker.h"

/* ---- references and closing ---- */

void atr_sock_hold(atr_sock_t *s)
{
    s->refs++;
}

void atr_sock_release(atr_sock_t *s)
{
    if (--s->refs > 0)
        return;
    if (s->tp->destroy)
        s->tp->destroy(s);
    atr_sock_buf_drop(s);
    s->cb->on_free(s);
}

static void on_handle_closed(uv_handle_t *h)
{
    atr_sock_release(h->data);
}


void atr_sock_close(atr_sock_t *s)
{
    if (s->closed)
        return;
    if (s->tp->closing)
        s->tp->closing(s);
    s->closing = s->closed = 1;
    s->refs += 2; /* one per handle; the creator's reference is dropped below */
    uv_close(&s->io.handle, on_handle_closed);
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
    atr_sock_release(s);
}

void atr_sock_init(atr_sock_t *s, atr_worker_t *w, const atr_transport_t *tp,
                   const atr_sock_cbs_t *cb)
{
    s->tp = tp;
    s->cb = cb;
    s->refs = 1;
    tp->init(s, &w->loop);
    s->io.handle.data = s;
    uv_timer_init(&w->loop, &s->timer);
    s->timer.data = s;
}

/* ---- the deadline ---- */

static void on_deadline(uv_timer_t *t)
{
    atr_sock_t *s = t->data;
    if (s->timer_kind == 0)
        return; /* cancelled since armed: let the timer rest */
    uint64_t now = uv_now(t->loop);
    if (now < s->due) {
        uv_timer_start(t, on_deadline, s->due - now, 0); /* moved later since armed */
        return;
    }
    int kind = s->timer_kind;
    s->timer_kind = 0;
    atr_sock_hold(s);
    s->cb->on_timer(s, kind);
    atr_sock_release(s);
}

void atr_sock_deadline(atr_sock_t *s, int kind, uint64_t ms)
{
    if (kind == 0 || ms == 0) {
        s->timer_kind = 0;
        return;
    }
    uint64_t now = uv_now(s->timer.loop);
    s->timer_kind = (uint8_t)kind;
    s->due = now + ms;
    /* Re-arm only when the armed expiry is later than the new deadline. */
    if (!uv_is_active((uv_handle_t *)&s->timer) || now + uv_timer_get_due_in(&s->timer) > s->due)
        uv_timer_start(&s->timer, on_deadline, ms, 0);
}

int atr_sock_open(atr_sock_t *s, int fd)
{
    return uv_tcp_open(&s->io.tcp, fd); /* TCP_NODELAY comes from the listener */
}

/* ---- connecting ---- */

static void on_connect(uv_connect_t *req, int status)
{
    atr_sock_t *s = req->data;
    free(req);
    if (!s->closing) {
        if (status == 0 && s->io.handle.type == UV_TCP)
            uv_tcp_nodelay(&s->io.tcp, 1);
        s->cb->on_connect(s, status);
    }
    atr_sock_release(s); /* the connect request's */
}

int atr_sock_connect(atr_sock_t *s, const struct sockaddr *addr)
{
    uv_connect_t *req = atr_xmalloc(sizeof *req);
    req->data = s;
    int rc = s->tp->connect ? s->tp->connect(s, req, addr) : UV_EINVAL;
    if (rc < 0) {
        free(req);
        return rc;
    }
    atr_sock_hold(s); /* until on_connect: the handle's refs alone would let a close free s */
    return 0;
}

/* ---- reading ---- */

void atr_sock_room(atr_sock_t *s, char **base, size_t *len)
{
    if (s->buf == NULL) {
        s->buf = atr_cache_buf_get(atr_sock_worker(s), &s->cap);
        s->len = s->off = 0;
    }
    if (s->len == s->cap && s->off > 0 && (s->cb->may_compact == NULL || s->cb->may_compact(s))) {
        /* Only unconsumed bytes move; parsers work on offsets from off. */
        memmove(s->buf, s->buf + s->off, s->len - s->off);
        s->len -= s->off;
        s->off = 0;
    }
    if (s->len == s->cap && s->cb->grow_limit) {
        uint32_t limit = s->cb->grow_limit(s);
        if (s->cap < limit) {
            s->cap = ATR_MIN(s->cap * 2, limit);
            s->buf = atr_xrealloc(s->buf, s->cap);
        }
    }
    *base = s->buf + s->len;
    *len = s->cap - s->len;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    size_t len;
    (void)suggested;
    atr_sock_room(h->data, &buf->base, &len);
    buf->len = len;
}

void atr_sock_deliver(atr_sock_t *s, ssize_t nread, int full)
{
    atr_sock_hold(s);
    if (nread < 0) {
        if (nread != UV_ENOBUFS) {
            s->eof = 1;
            s->reset = nread != UV_EOF; /* a reset must not end a close-delimited body */
        }
        s->tp->read_stop(s);
        s->reading = 0;
    } else {
        s->maybe_unread = full;
    }
    s->cb->on_read(s, nread);
    atr_sock_release(s);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    atr_sock_t *s = stream->data;
    if (nread == 0 || s->closing)
        return;
    atr_sock_deliver(s, nread, nread > 0 && (size_t)nread == buf->len);
}

void atr_sock_read_start(atr_sock_t *s)
{
    if (!s->reading && !s->closing && !s->eof && s->tp->read_start(s) == 0)
        s->reading = 1;
}

void atr_sock_read_stop(atr_sock_t *s)
{
    if (s->reading) {
        s->tp->read_stop(s);
        s->reading = 0;
        s->maybe_unread = 1;
    }
}

void atr_sock_buf_drop(atr_sock_t *s)
{
    atr_cache_buf_put(atr_sock_worker(s), s->buf, s->cap);
    s->buf = NULL;
    s->len = s->off = s->cap = 0;
}

int atr_sock_unusable(atr_sock_t *s)
{
    uv_os_fd_t fd;
    char c;
    if (uv_fileno(&s->io.handle, &fd) < 0)
        return 1;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

/* ---- writing ---- */

static inline __attribute__((always_inline)) int stream_try_write(atr_sock_t *s, uv_buf_t **bufs,
                                                                  unsigned *n);

/* The transport's try_write; the plain stream's is called directly, so that
 * it inlines on the hot path. */
static inline __attribute__((always_inline)) int try_write(atr_sock_t *s, uv_buf_t **bufs,
                                                           unsigned *n)
{
    return s->tp->try_write ? s->tp->try_write(s, bufs, n) : stream_try_write(s, bufs, n);
}

void atr_sock_written(uv_write_t *wr, int status)
{
    atr_sock_t *s = wr->data;
    atr_cache_put(atr_sock_worker(s), ATR_CACHE_WRITE, wr);
    s->write_pending = 0;
    if (!s->closing)
        s->cb->on_written(s, status);
    atr_sock_release(s);
}

int atr_sock_write(atr_sock_t *s, uv_buf_t *bufs, unsigned n)
{
    int rc = try_write(s, &bufs, &n);
    if (rc <= 0)
        return rc;
    /* The write request lives only while a write is pending, so an idle
     * connection does not carry its 192 bytes. */
    uv_write_t *wr = atr_cache_get(atr_sock_worker(s), ATR_CACHE_WRITE);
    if (wr == NULL)
        wr = atr_xmalloc(sizeof *wr);
    wr->data = s;
    rc = s->tp->write(s, wr, bufs, n);
    if (rc < 0) {
        atr_cache_put(atr_sock_worker(s), ATR_CACHE_WRITE, wr);
        return rc;
    }
    atr_sock_hold(s);
    s->write_pending = 1;
    return 1;
}

void atr_sock_write_now(atr_sock_t *s, const char *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n), *bp = &b;
    unsigned nb = 1;
    try_write(s, &bp, &nb);
}

/* ---- kicks: a filter's held input, on a later turn ---- */

void atr_sock_kick(atr_sock_t *s)
{
    if (s->kicked || s->closing)
        return;
    atr_worker_t *w = atr_sock_worker(s);
    if (w->nkicks == w->kicks_cap) {
        w->kicks_cap = w->kicks_cap ? w->kicks_cap * 2 : 16;
        w->kicks = atr_xrealloc(w->kicks, sizeof *w->kicks * (size_t)w->kicks_cap);
    }
    s->kicked = 1;
    atr_sock_hold(s);
    w->kicks[w->nkicks++] = s;
    atr_worker_want_kicks(w);
}

void atr_sock_run_kicks(atr_worker_t *w)
{
    /* A kick may ask for another: those wait for the next turn. */
    int n = w->nkicks;
    atr_sock_t **list = w->kicks;
    w->kicks = NULL;
    w->nkicks = w->kicks_cap = 0;
    for (int i = 0; i < n; i++) {
        atr_sock_t *s = list[i];
        s->kicked = 0;
        if (!s->closing)
            s->tp->kick(s);
        atr_sock_release(s);
    }
    free(list);
}

/* ---- a process's pipes ---- */

int atr_sock_open_pipes(atr_sock_t *s, int fd_out, uv_pipe_t *in, int fd_in)
{
    uv_pipe_init(s->io.handle.loop, in, 0);
    s->out = (uv_stream_t *)in;
    int rc = uv_pipe_open(in, fd_in);
    int rc2 = uv_pipe_open(&s->io.pipe, fd_out);
    return rc < 0 ? rc : rc2;
}

static void drain_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    atr_drain_t *d = (atr_drain_t *)h;
    (void)suggested;
    *buf = uv_buf_init(d->buf, sizeof d->buf);
}

static void drain_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    atr_drain_t *d = (atr_drain_t *)st;
    if (n < 0)
        uv_read_stop(st);
    if (n != 0)
        d->on_data(d, buf->base, n);
}

int atr_drain_start(atr_drain_t *d, uv_loop_t *loop, int fd)
{
    uv_pipe_init(loop, &d->pipe, 0);
    int rc = uv_pipe_open(&d->pipe, fd);
    return rc < 0 ? rc : uv_read_start((uv_stream_t *)&d->pipe, drain_alloc, drain_read);
}

/* ---- the stream transports ---- */

static uv_stream_t *out_of(atr_sock_t *s)
{
    return s->out ? s->out : &s->io.stream;
}

static inline __attribute__((always_inline)) int stream_try_write(atr_sock_t *s, uv_buf_t **bufs,
                                                                  unsigned *n)
{
    uv_stream_t *out = out_of(s);
    uv_buf_t *b = *bufs;
    unsigned left = *n;
    while (left > 0) {
        int rc = uv_try_write(out, b, left);
        if (rc == UV_EAGAIN)
            break;
        if (rc < 0)
            return rc;
        size_t done = (size_t)rc;
        while (left > 0 && done >= b->len) {
            done -= b->len;
            b++;
            left--;
        }
        if (left > 0) {
            b->base += done;
            b->len -= done;
            if (rc == 0)
                break;
        }
    }
    *bufs = b;
    *n = left;
    return left > 0;
}

static int stream_write(atr_sock_t *s, uv_write_t *wr, const uv_buf_t *bufs, unsigned n)
{
    return uv_write(wr, out_of(s), bufs, n, atr_sock_written);
}

static int stream_read_start(atr_sock_t *s)
{
    return uv_read_start(&s->io.stream, on_alloc, on_read);
}

static void stream_read_stop(atr_sock_t *s)
{
    uv_read_stop(&s->io.stream);
}

static void tcp_init(atr_sock_t *s, uv_loop_t *loop)
{
    uv_tcp_init(loop, &s->io.tcp);
}

static void pipe_init(atr_sock_t *s, uv_loop_t *loop)
{
    uv_pipe_init(loop, &s->io.pipe, 0);
}

static int tcp_connect(atr_sock_t *s, uv_connect_t *req, const struct sockaddr *addr)
{
    return uv_tcp_connect(req, &s->io.tcp, addr, on_connect);
}

static int unix_connect(atr_sock_t *s, uv_connect_t *req, const struct sockaddr *addr)
{
    uv_pipe_connect(req, &s->io.pipe, ((const struct sockaddr_un *)addr)->sun_path, on_connect);
    return 0; /* errors arrive through on_connect */
}

const atr_transport_t atr_transport_tcp = {
    .name = "tcp",
    .init = tcp_init,
    .connect = tcp_connect,
    .read_start = stream_read_start,
    .read_stop = stream_read_stop,
    .write = stream_write,
};

const atr_transport_t atr_transport_unix = {
    .name = "unix",
    .init = pipe_init,
    .connect = unix_connect,
    .read_start = stream_read_start,
    .read_stop = stream_read_stop,
    .write = stream_write,
};

const atr_transport_t atr_transport_pipe = {
    .name = "pipe",
    .init = pipe_init,
    .read_start = stream_read_start,
    .read_stop = stream_read_stop,
    .write = stream_write,
};

const atr_transport_t *atr_transport_for(const struct sockaddr *addr)
{
    return addr->sa_family == AF_UNIX ? &atr_transport_unix : &atr_transport_tcp;
}
