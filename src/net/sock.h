/* The transport layer under both sides: the client connection (net/conn.c)
 * and the backend connection (backends/proxy_conn.c) each embed an atr_sock_t
 * as their first member and get from it the input buffer (grown and
 * compacted as the owner allows), close-late refcounting, the deadline
 * timer, and try-write-then-queue. How bytes move is an atr_transport_t:
 * TCP, unix socket and the pipe pair of a script are ops tables here; TLS
 * will be one more, used by both sides alike (curl's connection filters are
 * the model for stacking it on a stream).
 *
 * Threads: a sock lives on one worker loop. Every owner callback runs with a
 * reference held, so a callback may close the sock (atr_sock_close) and the
 * memory stays valid until it returns; the owner's on_free runs when the last
 * reference goes. */
#ifndef ATR_SOCK_H
#define ATR_SOCK_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <uv.h>


typedef struct atr_sock atr_sock_t;
typedef struct atr_worker atr_worker_t;

/* What the owner is told, and asked. */
typedef struct atr_sock_cbs {
    /* nread new bytes at s->buf + s->len (not counted in s->len yet: the
     * owner adds what it keeps, after decoding in place if it must); or
     * nread < 0: the end of input (s->eof set, s->reset when not a clean
     * EOF, reading stopped), or UV_ENOBUFS: the buffer is full and may not
     * grow (reading stopped, nothing else changed). */
    void (*on_read)(atr_sock_t *s, ssize_t nread);
    /* A queued write finished (0 or a negative libuv error). */
    void (*on_written)(atr_sock_t *s, int status);
    /* atr_sock_connect finished (0 or a negative libuv error). */
    void (*on_connect)(atr_sock_t *s, int status);
    /* The buffer is full: may consumed bytes [0, off) be dropped (no view
     * into them is out)? NULL: always. */
    int (*may_compact)(atr_sock_t *s);
    /* The buffer is full and compacted: how large may it grow (a head larger
     * than one buffer)? 0 or NULL: not at all. */
    uint32_t (*grow_limit)(atr_sock_t *s);
    /* The deadline set with atr_sock_deadline(s, kind, ms) expired. */
    void (*on_timer)(atr_sock_t *s, int kind);
    /* The last reference is gone (handles closed, buffer returned): free the
     * owner. */
    void (*on_free)(atr_sock_t *s);
} atr_sock_cbs_t;

/* How bytes move. */
typedef struct atr_transport {
    const char *name;                             /* tcp, unix, pipe */
    void (*init)(atr_sock_t *s, uv_loop_t *loop); /* the handle, before anything else */
    /* Connect to addr; on_connect later. NULL: this transport does not. */
    int (*connect)(atr_sock_t *s, uv_connect_t *req, const struct sockaddr *addr);
    int (*read_start)(atr_sock_t *s);
    void (*read_stop)(atr_sock_t *s);
    /* Write what the peer takes now; advance *bufs and *n past it. 0 all
     * written, 1 some left, <0 error. NULL: the bytes go to the stream as
     * they are (TCP, unix, pipe; a filter such as TLS sets its own). */
    int (*try_write)(atr_sock_t *s, uv_buf_t **bufs, unsigned *n);
    /* Queue the rest (bufs alive until on_written); complete wr with
     * atr_sock_written. 0 or <0. */
    int (*write)(atr_sock_t *s, uv_write_t *wr, const uv_buf_t *bufs, unsigned n);
    /* Optional, for a filter with state of its own (s->tp_state): */
    void (*kick)(atr_sock_t *s);    /* the loop's turn asked for with atr_sock_kick */
    void (*closing)(atr_sock_t *s); /* atr_sock_close is about to close the handles */
    void (*destroy)(atr_sock_t *s); /* the last reference is going: free tp_state */
} atr_transport_t;

extern const atr_transport_t atr_transport_tcp;
extern const atr_transport_t atr_transport_unix;
/* A script's stdout (read) and stdin (s->out, written), CGI. */
extern const atr_transport_t atr_transport_pipe;

/* The transport that reaches addr: unix for AF_UNIX, tcp otherwise. */
const atr_transport_t *atr_transport_for(const struct sockaddr *addr);

struct atr_sock {
    union {                       /* the stream bytes are read from */
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_stream_t stream;
        uv_handle_t handle;
    } io;
    const atr_transport_t *tp;
    const atr_sock_cbs_t *cb;
    void *tp_state;               /* a filter transport's own (TLS), NULL for plain streams */
    uv_stream_t *out;             /* where writes go when not &io (a script's stdin), else NULL */
    uv_timer_t timer;             /* the deadline (see atr_sock_deadline) */
    uint64_t due;                 /* loop time (ms) at which timer_kind expires */
    char *buf;                    /* input buffer, NULL while idle */
    uint32_t len, cap, off;       /* bytes [off, len) unconsumed */
    int refs;
    uint8_t timer_kind;           /* the owner's tag for what is timed; 0 = nothing */
    unsigned reading : 1, eof : 1, reset : 1, write_pending : 1;
    unsigned closing : 1;         /* no more I/O: set by atr_sock_close, or earlier by an owner
                                   * that closes in steps */
    unsigned closed : 1;          /* atr_sock_close ran */
    unsigned maybe_unread : 1;    /* the last read filled the buffer, or reading was stopped
                                   * after it: bytes may wait in the kernel */
    unsigned kicked : 1;          /* on the worker's kick list */
};

/* The worker whose loop s is on (its caches give buffers and write requests). */
static inline atr_worker_t *atr_sock_worker(const atr_sock_t *s)
{
    return s->io.handle.loop->data;
}

/* Set up s on w's loop (handle and timer). One reference (the creator's),
 * dropped by atr_sock_close. */
void atr_sock_init(atr_sock_t *s, atr_worker_t *w, const atr_transport_t *tp,
                   const atr_sock_cbs_t *cb);

/* The deadline: one lazy timer per connection whose expiry moves with the
 * owner's phase (head, body, send, idle; connect, read, ...) without a timer
 * heap operation per move. Time `kind` (1..255) for ms from now, replacing
 * whatever was timed; kind 0 or ms 0 cancels. Setting a later deadline, or
 * cancelling, touches nothing; a timer that fires early re-arms for what is
 * left. cb->on_timer(s, kind) runs once when it expires. (A keep-alive
 * connection thus costs about no timer work per request: the libuv timer
 * heap showed up at several percent of a proxied request.) */
void atr_sock_deadline(atr_sock_t *s, int kind, uint64_t ms);

/* Adopt an accepted socket (tcp): 0 or a negative libuv error. Its
 * TCP_NODELAY is the listening socket's (atr_listener_socket sets it; an
 * accepted socket inherits it, one system call less per connection). */
int atr_sock_open(atr_sock_t *s, int fd);
/* Connect (tcp, unix); on_connect follows unless this fails at once. */
int atr_sock_connect(atr_sock_t *s, const struct sockaddr *addr);

void atr_sock_read_start(atr_sock_t *s);   /* no-op when reading, closing or at EOF */
void atr_sock_read_stop(atr_sock_t *s);

/* A spawned process's pipes (CGI). s (atr_transport_pipe) reads the
 * process's stdout from fd_out; in, a pipe handle the caller owns (so that
 * it can close the process's stdin on its own), is set up on fd_in and
 * becomes s->out. Both fds are owned from here on. 0 or a libuv error. */
int atr_sock_open_pipes(atr_sock_t *s, int fd_out, uv_pipe_t *in, int fd_in);

/* A pipe read until its end, each piece handed over (a process's stderr).
 * pipe.data is the caller's; close the pipe with uv_close like any handle. */
typedef struct atr_drain atr_drain_t;
struct atr_drain {
    uv_pipe_t pipe;
    /* n bytes at p; n < 0 once: the end (reading stopped) */
    void (*on_data)(atr_drain_t *d, const char *p, ssize_t n);
    char buf[512];
};
int atr_drain_start(atr_drain_t *d, uv_loop_t *loop, int fd);

/* Try the write directly; queue what is left (the views must stay alive
 * until on_written). 0 = all written (no callback), 1 = pending (on_written
 * follows; a reference is held meanwhile), <0 error. */
int atr_sock_write(atr_sock_t *s, uv_buf_t *bufs, unsigned n);
/* The loop's buffers for iov[] as it is, no copy: pure encoders fill struct
 * iovec, and on Unix libuv's uv_buf_t has struct iovec's layout (uv/unix.h:
 * "May be cast to struct iovec"). The asserts keep that true. */
_Static_assert(sizeof(uv_buf_t) == sizeof(struct iovec), "uv_buf_t is not an iovec");
_Static_assert(offsetof(uv_buf_t, base) == offsetof(struct iovec, iov_base),
               "uv_buf_t.base is not iov_base");
_Static_assert(offsetof(uv_buf_t, len) == offsetof(struct iovec, iov_len),
               "uv_buf_t.len is not iov_len");
static inline uv_buf_t *atr_sock_bufs(struct iovec *iov)
{
    return (uv_buf_t *)iov;
}

/* Best effort, never queued (100 Continue, a FastCGI abort record). */
void atr_sock_write_now(atr_sock_t *s, const char *p, size_t n);

/* Give the input buffer back (an idle connection holds none). */
void atr_sock_buf_drop(atr_sock_t *s);

/* 1 when an idle connection has been closed or reset by the peer, or has
 * bytes nobody asked for waiting (a peek, no read). */
int atr_sock_unusable(atr_sock_t *s);

/* ---- for transports (net/tls.c) ---- */

/* The free tail of the input buffer, taken, compacted and grown as the owner
 * allows: *len 0 when it is full and may not grow. */
void atr_sock_room(atr_sock_t *s, char **base, size_t *len);
/* Hand the owner what was read into the room: nread bytes (full: the room
 * was filled), or nread < 0, the end (UV_EOF clean, other errors a reset)
 * or UV_ENOBUFS, as cb->on_read describes. */
void atr_sock_deliver(atr_sock_t *s, ssize_t nread, int full);
/* The uv_write_cb that completes an atr_sock_write queued by tp->write. */
void atr_sock_written(uv_write_t *wr, int status);
/* Call tp->kick(s) on a later turn of the loop (reference held meanwhile):
 * input a filter holds when the owner starts reading again. */
void atr_sock_kick(atr_sock_t *s);
/* Worker side of the kicks (net/worker.c). */
void atr_sock_run_kicks(atr_worker_t *w);

void atr_sock_hold(atr_sock_t *s);
void atr_sock_release(atr_sock_t *s);
/* Close the handles and drop the creator's reference; once only. */
void atr_sock_close(atr_sock_t *s);

#endif
