/* The transport layer (net/sock.c) on a real loop and real loopback TCP:
 * bytes both ways, a write too large for the socket queued and completed
 * once, the input buffer growing only as far as its owner allows (and
 * reporting a full buffer otherwise), EOF against reset, the peek that tells
 * an idle connection is unusable, and close-late: the owner is freed once,
 * only after the last reference. The loop must close with no handle left. */
#include "net/listener.h"
#include "net/sock.h"
#include "net/worker.h"
#include "t.h"
#include "worker_end.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct owner {
    atr_sock_t s;               /* first, as the real owners have it */
    uint32_t grow_to;           /* what grow_limit answers */
    size_t got;                 /* bytes kept */
    int reads, enobufs, ends, written, write_status, connected, freed, timed;
} owner_t;

static void on_read(atr_sock_t *s, ssize_t nread)
{
    owner_t *o = (owner_t *)s;
    o->reads++;
    if (nread == UV_ENOBUFS) {
        o->enobufs++;
    } else if (nread < 0) {
        o->ends++;
    } else {
        s->len += (uint32_t)nread;
        o->got += (size_t)nread;
    }
}

static void on_written(atr_sock_t *s, int status)
{
    owner_t *o = (owner_t *)s;
    o->written++;
    o->write_status = status;
}

static void on_connect(atr_sock_t *s, int status)
{
    ((owner_t *)s)->connected = status == 0 ? 1 : -1;
}

static uint32_t grow_limit(atr_sock_t *s)
{
    return ((owner_t *)s)->grow_to;
}

static void on_free(atr_sock_t *s)
{
    ((owner_t *)s)->freed++; /* the owners here live on the stack */
}

static void on_timer(atr_sock_t *s, int kind)
{
    ((owner_t *)s)->timed = kind;
}

static const atr_sock_cbs_t cbs = {
    .on_read = on_read,
    .on_written = on_written,
    .on_connect = on_connect,
    .grow_limit = grow_limit,
    .on_timer = on_timer,
    .on_free = on_free,
};

static atr_worker_t *w;

/* Run the loop until cond holds or a bound of turns passes. */
#define RUN_UNTIL(cond)                                                       \
    do {                                                                      \
        for (int turn_ = 0; turn_ < 2000 && !(cond); turn_++)                 \
            uv_run(&w->loop, UV_RUN_NOWAIT);                                  \
    } while (0)

/* A connected pair over loopback: *a is accepted (to be adopted by a sock),
 * *b is the plain peer socket the test drives with blocking calls. */
/* A listening socket on a free loopback port; its address in *sa. */
static int listener(struct sockaddr_in *sa)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    socklen_t len = sizeof *sa;
    *sa = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    bind(l, (struct sockaddr *)sa, sizeof *sa);
    listen(l, 1);
    getsockname(l, (struct sockaddr *)sa, &len);
    return l;
}

static void tcp_pair(int *a, int *b)
{
    struct sockaddr_in sa;
    int l = listener(&sa);
    *b = socket(AF_INET, SOCK_STREAM, 0);
    connect(*b, (struct sockaddr *)&sa, sizeof sa);
    *a = accept(l, NULL, NULL);
    close(l);
}

static void start(owner_t *o, int fd, uint32_t grow_to)
{
    memset(o, 0, sizeof *o);
    o->grow_to = grow_to;
    atr_sock_init(&o->s, w, &atr_transport_tcp, &cbs);
    T_CHECK(__LINE__, atr_sock_open(&o->s, fd) == 0, "open");
}

static void finish(owner_t *o)
{
    atr_sock_close(&o->s);
    RUN_UNTIL(o->freed);
    T_CHECK(__LINE__, o->freed == 1, "freed %d times", o->freed);
}

static void test_read_and_write(void)
{
    int a, b;
    tcp_pair(&a, &b);
    owner_t o;
    start(&o, a, 0);
    atr_sock_read_start(&o.s);
    T_CHECK(__LINE__, o.s.reading, "reading");
    write(b, "hello ", 6);
    RUN_UNTIL(o.got >= 6);
    write(b, "world", 5);
    RUN_UNTIL(o.got >= 11);
    T_CHECK(__LINE__, o.got == 11 && memcmp(o.s.buf, "hello world", 11) == 0, "got %zu", o.got);

    char msg[] = "reply";
    uv_buf_t buf = uv_buf_init(msg, 5);
    T_CHECK(__LINE__, atr_sock_write(&o.s, &buf, 1) == 0, "a small write goes at once");
    char in[16] = "";
    T_CHECK(__LINE__, read(b, in, sizeof in) == 5 && memcmp(in, "reply", 5) == 0, "peer got it");
    T_CHECK(__LINE__, o.written == 0, "no callback for a write done at once");

    /* More than the socket buffers take: queued, one callback, all bytes. */
    size_t big = 16u << 20;
    char *p = malloc(big);
    memset(p, 'x', big);
    uv_buf_t bb = uv_buf_init(p, (unsigned)big);
    T_CHECK(__LINE__, atr_sock_write(&o.s, &bb, 1) == 1, "queued");
    T_CHECK(__LINE__, o.s.write_pending && o.s.refs == 2, "a reference while pending (%d)",
            o.s.refs);
    size_t drained = 0;
    char sink[65536];
    while (o.written == 0) {
        uv_run(&w->loop, UV_RUN_NOWAIT);
        ssize_t n = recv(b, sink, sizeof sink, MSG_DONTWAIT);
        if (n > 0)
            drained += (size_t)n;
    }
    while (drained < big) {
        ssize_t n = recv(b, sink, sizeof sink, 0);
        if (n <= 0)
            break;
        drained += (size_t)n;
    }
    T_CHECK(__LINE__, o.written == 1 && o.write_status == 0, "one callback (%d, %d)", o.written,
            o.write_status);
    T_CHECK(__LINE__, drained == big, "peer drained %zu of %zu", drained, big);
    T_CHECK(__LINE__, !o.s.write_pending && o.s.refs == 1, "reference dropped (%d)", o.s.refs);
    free(p);

    /* A clean end of input is EOF, not a reset. */
    shutdown(b, SHUT_WR);
    RUN_UNTIL(o.ends);
    T_CHECK(__LINE__, o.ends == 1 && o.s.eof && !o.s.reset && !o.s.reading, "eof %d reset %d",
            o.s.eof, o.s.reset);
    close(b);
    finish(&o);
}

static void test_buffer_growth(void)
{
    for (int grow = 0; grow < 2; grow++) {
        int a, b;
        tcp_pair(&a, &b);
        owner_t o;
        start(&o, a, grow ? 64 * 1024 : 0);
        atr_sock_read_start(&o.s);
        char block[40 * 1024];
        memset(block, 'y', sizeof block);
        write(b, block, sizeof block);
        RUN_UNTIL(o.got >= sizeof block || o.enobufs);
        if (grow) {
            T_CHECK(__LINE__, o.got == sizeof block && o.s.cap > 16384 && o.s.cap <= 64 * 1024,
                    "grown to %u for %zu", o.s.cap, o.got);
        } else {
            /* Full at one buffer: reported, reading stopped, no EOF made up. */
            T_CHECK(__LINE__, o.enobufs == 1 && o.got == o.s.cap && !o.s.reading && !o.s.eof,
                    "enobufs %d got %zu cap %u", o.enobufs, o.got, o.s.cap);
            /* Consumed bytes make room again (compaction): the rest comes
             * one buffer at a time. */
            for (int k = 0; k < 8 && o.got < sizeof block; k++) {
                o.s.off = o.s.len;
                atr_sock_read_start(&o.s);
                RUN_UNTIL(o.got >= sizeof block || o.enobufs > k + 1);
            }
            T_CHECK(__LINE__, o.got == sizeof block, "rest read after consuming: %zu", o.got);
        }
        close(b);
        finish(&o);
    }
}

static void test_reset_and_unusable(void)
{
    int a, b;
    tcp_pair(&a, &b);
    owner_t o;
    start(&o, a, 0);
    T_CHECK(__LINE__, atr_sock_unusable(&o.s) == 0, "quiet idle connection is usable");
    write(b, "z", 1);
    usleep(10000);
    T_CHECK(__LINE__, atr_sock_unusable(&o.s) == 1, "a stray byte makes it unusable");
    close(b);
    finish(&o);

    /* An abortive close (RST) is a reset, not an end. */
    tcp_pair(&a, &b);
    start(&o, a, 0);
    struct linger lg = { 1, 0 };
    setsockopt(b, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(b);
    atr_sock_read_start(&o.s);
    RUN_UNTIL(o.ends);
    T_CHECK(__LINE__, o.ends == 1 && o.s.eof && o.s.reset, "reset seen (%d %d)", o.s.eof,
            o.s.reset);
    finish(&o);
}

static void test_close_late(void)
{
    int a, b;
    tcp_pair(&a, &b);
    owner_t o;
    start(&o, a, 0);
    atr_sock_hold(&o.s); /* a callback in progress */
    atr_sock_close(&o.s);
    atr_sock_close(&o.s); /* twice is once */
    RUN_UNTIL(0);
    T_CHECK(__LINE__, o.freed == 0 && o.s.closing, "not freed while held");
    atr_sock_release(&o.s);
    T_CHECK(__LINE__, o.freed == 1, "freed at the last release");
    close(b);
}

static void test_connect(void)
{
    struct sockaddr_in sa;
    int l = listener(&sa);
    T_CHECK(__LINE__, atr_transport_for((struct sockaddr *)&sa) == &atr_transport_tcp, "tcp");
    owner_t o;
    memset(&o, 0, sizeof o);
    atr_sock_init(&o.s, w, &atr_transport_tcp, &cbs);
    T_CHECK(__LINE__, atr_sock_connect(&o.s, (struct sockaddr *)&sa) == 0, "connect");
    RUN_UNTIL(o.connected);
    T_CHECK(__LINE__, o.connected == 1, "connected");
    close(l);
    finish(&o);

    /* Refused: the callback says so, nothing leaks. */
    memset(&o, 0, sizeof o);
    atr_sock_init(&o.s, w, &atr_transport_tcp, &cbs);
    T_CHECK(__LINE__, atr_sock_connect(&o.s, (struct sockaddr *)&sa) == 0, "connect");
    RUN_UNTIL(o.connected);
    T_CHECK(__LINE__, o.connected == -1, "refused");
    finish(&o);
}

/* The deadline: a later one or a cancel costs nothing and still holds; an
 * earlier one fires on time; the kind given is the kind reported, once. */
static void test_deadline(void)
{
    int a, b;
    tcp_pair(&a, &b);
    owner_t o;
    start(&o, a, 0);
    atr_sock_deadline(&o.s, 3, 20);
    atr_sock_deadline(&o.s, 4, 60); /* moved later: the 20 ms timer re-arms when it fires */
    uint64_t t0 = uv_now(&w->loop);
    while (!o.timed)
        uv_run(&w->loop, UV_RUN_ONCE);
    uv_update_time(&w->loop);
    T_CHECK(__LINE__, o.timed == 4 && uv_now(&w->loop) - t0 >= 60, "kind %d after %llu ms",
            o.timed, (unsigned long long)(uv_now(&w->loop) - t0));
    T_CHECK(__LINE__, o.s.timer_kind == 0, "once");
    o.timed = 0;
    atr_sock_deadline(&o.s, 5, 10);
    atr_sock_deadline(&o.s, 0, 0); /* cancelled */
    t0 = uv_now(&w->loop);
    while (uv_now(&w->loop) - t0 < 40) {
        uv_run(&w->loop, UV_RUN_NOWAIT);
        uv_update_time(&w->loop);
    }
    T_CHECK(__LINE__, o.timed == 0, "a cancelled deadline does not fire (%d)", o.timed);
    close(b);
    finish(&o);
}

/* Accepted sockets get TCP_NODELAY from the listening socket (no system
 * call of their own); a TLS listener defers accepting to the first bytes. */
static void test_listener_options(void)
{
    for (int tls = 0; tls < 2; tls++) {
        struct sockaddr_in sa = { .sin_family = AF_INET,
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof sa;
        int l = atr_listener_socket((struct sockaddr *)&sa, sizeof sa, tls);
        T_CHECK(__LINE__, l >= 0, "listener socket: %d", l);
        int defer = 0, nodelay = 0;
        socklen_t olen = sizeof defer;
        getsockopt(l, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, &olen);
        T_CHECK(__LINE__, (defer > 0) == tls, "defer accept %d (tls %d)", defer, tls);
        getsockname(l, (struct sockaddr *)&sa, &len);
        int b = socket(AF_INET, SOCK_STREAM, 0);
        connect(b, (struct sockaddr *)&sa, sizeof sa);
        if (tls)
            write(b, "x", 1); /* a deferred accept waits for data */
        int a = accept(l, NULL, NULL);
        owner_t o;
        start(&o, a, 0);
        olen = sizeof nodelay;
        getsockopt(a, IPPROTO_TCP, TCP_NODELAY, &nodelay, &olen);
        T_CHECK(__LINE__, nodelay == 1, "accepted socket without TCP_NODELAY (tls %d)", tls);
        finish(&o);
        close(b);
        close(l);
    }
}

int main(void)
{
    w = atr_worker_new(1);
    test_read_and_write();
    test_buffer_growth();
    test_reset_and_unusable();
    test_close_late();
    test_connect();
    test_deadline();
    test_listener_options();
    worker_end(w);
    T_DONE();
}
