/* The "memcached" small-object cache against real memcached servers (two,
 * started here on free loopback ports) on a real loop: set then get, miss,
 * delete, the largest value, keys spread over both servers (their own
 * `stats` count them), expiry, 100 pipelined gets answered in order, a
 * detach answering what waits, a stalled server (SIGSTOP) answering by the
 * timeout, a killed one, and an address where nothing listens (a quick miss,
 * then misses without a connect during the back-off), a connect nobody
 * answers, replies memcached never sends, and the cap on waiting gets.
 * Timing is asserted only against generous bounds; the times seen are
 * printed.
 *
 * Skipped (exit 77, meson's skip) when no memcached binary is installed. The
 * loop must close with no handle left. */
#include "base/util.h"
#include "net/socache.h"
#include "net/worker.h"
#include "t.h"
#include "worker_end.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static atr_worker_t *w;

typedef struct answer {
    int calls, status, order;
    uint8_t val[ATR_SOCACHE_VAL_MAX];
    size_t len;
} answer_t;

static int answered; /* callbacks so far, for the order of pipelined ones */

static void on_get(void *arg, int status, const uint8_t *val, size_t len)
{
    answer_t *a = arg;
    a->calls++;
    a->status = status;
    a->order = answered++;
    a->len = len;
    if (status == 1)
        memcpy(a->val, val, len);
}

/* Run the loop until cond holds or ms pass. */
#define RUN_UNTIL(cond, ms)                                                   \
    do {                                                                      \
        uint64_t t0_ = atr_now_ms();                                          \
        while (!(cond) && atr_now_ms() - t0_ < (ms)) {                        \
            uv_run(&w->loop, UV_RUN_NOWAIT);                                  \
            usleep(500);                                                      \
        }                                                                     \
    } while (0)

/* Sleep, then bring the loop's clock up to date: deadlines count from the
 * loop's cached time, which a sleep outside the loop leaves behind (a real
 * worker never blocks that long). */
static void nap(unsigned ms)
{
    usleep(ms * 1000);
    uv_update_time(&w->loop);
}

static answer_t *get_wait(atr_socache_local_t *l, const char *key)
{
    static answer_t a;
    memset(&a, 0, sizeof a);
    atr_socache_get(l, (const uint8_t *)key, strlen(key), on_get, &a);
    RUN_UNTIL(a.calls, 3000);
    return &a;
}

static int set(atr_socache_local_t *l, const char *key, const char *val, uint32_t ttl)
{
    return atr_socache_set(l, (const uint8_t *)key, strlen(key), (const uint8_t *)val, strlen(val),
                           ttl);
}

/* ---- memcached servers ---- */

typedef struct server {
    pid_t pid;
    struct sockaddr_storage addr;
} server_t;

static int free_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bind(fd, (struct sockaddr *)&sa, sizeof sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    return ntohs(sa.sin_port);
}

static int dial(const server_t *s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (const struct sockaddr *)&s->addr, sizeof(struct sockaddr_in)) == 0)
        return fd;
    close(fd);
    return -1;
}

static void server_start(server_t *s, const char *bin)
{
    int port = free_port();
    struct sockaddr_in *sa = (struct sockaddr_in *)&s->addr;
    memset(&s->addr, 0, sizeof s->addr);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    s->pid = fork();
    if (s->pid == 0) {
        execl(bin, bin, "-p", p, "-l", "127.0.0.1", "-U", "0", "-t", "1", "-m", "16", "-u",
              "nobody", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) { /* until it listens */
        int fd = dial(s);
        if (fd >= 0) {
            close(fd);
            return;
        }
        usleep(10000);
    }
    T_CHECK(__LINE__, 0, "memcached on port %d did not start", port);
}

static void server_stop(server_t *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGCONT);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

/* The server's count of items it holds now (its `stats`). */
static long curr_items(const server_t *s)
{
    int fd = dial(s);
    char buf[8192];
    size_t n = 0;
    write(fd, "stats\r\n", 7);
    while (n < sizeof buf - 1) {
        ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        buf[n] = '\0';
        if (strstr(buf, "END\r\n"))
            break;
    }
    close(fd);
    buf[n] = '\0';
    const char *p = strstr(buf, "STAT curr_items ");
    return p ? atol(p + 16) : -1;
}

/* ---- the tests ---- */

static server_t s1, s2;

static void test_set_get_delete(atr_socache_local_t *l)
{
    T_CHECK(__LINE__, get_wait(l, "absent")->status == 0, "miss");
    T_CHECK(__LINE__, set(l, "tls:abc", "session bytes", 60) == 0, "set");
    answer_t *a = get_wait(l, "tls:abc");
    T_CHECK(__LINE__, a->calls == 1 && a->status == 1 && a->len == 13 &&
                          memcmp(a->val, "session bytes", 13) == 0, "hit: %d", a->status);
    T_CHECK(__LINE__, atr_socache_del(l, (const uint8_t *)"tls:abc", 7) == 0, "del");
    T_CHECK(__LINE__, get_wait(l, "tls:abc")->status == 0, "gone after del");

    /* The largest value, with bytes memcached's text protocol must not care
     * about, under a key too long for hex (hashed). */
    static uint8_t big[ATR_SOCACHE_VAL_MAX], key[200];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    memset(key, 0xfe, sizeof key);
    T_CHECK(__LINE__, atr_socache_set(l, key, sizeof key, big, sizeof big, 60) == 0, "big set");
    static answer_t b;
    atr_socache_get(l, key, sizeof key, on_get, &b);
    RUN_UNTIL(b.calls, 3000);
    T_CHECK(__LINE__, b.status == 1 && b.len == sizeof big && memcmp(b.val, big, b.len) == 0,
            "big value back: %d %zu", b.status, b.len);
    T_CHECK(__LINE__, atr_socache_set(l, key, 1, big, sizeof big + 1, 60) == UV_E2BIG, "too big");
}

static void test_spread(atr_socache_local_t *l)
{
    long before = curr_items(&s1) + curr_items(&s2);
    int n = 200;
    for (int i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof k, "spread%d", i);
        set(l, k, "v", 60);
    }
    T_CHECK(__LINE__, get_wait(l, "spread0")->status == 1, "stored"); /* also flushes */
    RUN_UNTIL(curr_items(&s1) + curr_items(&s2) >= before + n, 2000);
    long c1 = curr_items(&s1), c2 = curr_items(&s2);
    T_CHECK(__LINE__, c1 + c2 == before + n, "%ld + %ld items", c1, c2);
    T_CHECK(__LINE__, c1 > n / 4 && c2 > n / 4, "both servers hold keys: %ld/%ld", c1, c2);
    printf("memcached: %d keys over two servers: %ld/%ld items\n", n, c1, c2);
}

static void test_expiry(atr_socache_local_t *l)
{
    set(l, "brief", "x", 1);
    set(l, "lasting", "y", 60);
    T_CHECK(__LINE__, get_wait(l, "brief")->status == 1, "alive at first");
    nap(2000); /* memcached's clock moves in whole seconds */
    answer_t *a = get_wait(l, "brief");
    T_CHECK(__LINE__, a->status == 0, "expired: %d", a->status);
    T_CHECK(__LINE__, get_wait(l, "lasting")->status == 1, "the other stays");
}

/* 100 gets in one go on one connection (one server): each answered once,
 * right, and in the order sent. */
static void test_pipelining(void)
{
    enum { N = 100 };
    atr_socache_t *c = atr_socache_memcached_new(&s1.addr, 1, 250);
    atr_socache_local_t *l = atr_socache_attach(c, &w->loop);
    for (int i = 0; i < N; i += 2) {
        char k[16], v[16];
        snprintf(k, sizeof k, "pipe%d", i);
        snprintf(v, sizeof v, "val%d", i);
        set(l, k, v, 60);
    }
    static answer_t a[N];
    memset(a, 0, sizeof a);
    answered = 0;
    for (int i = 0; i < N; i++) { /* no loop turn between them */
        char k[16];
        snprintf(k, sizeof k, "pipe%d", i);
        atr_socache_get(l, (const uint8_t *)k, strlen(k), on_get, &a[i]);
    }
    T_CHECK(__LINE__, answered == 0, "none answered before the loop runs (%d)", answered);
    uint64_t t0 = uv_hrtime();
    RUN_UNTIL(answered == N, 3000);
    printf("memcached: %d pipelined gets (connect included) answered in %.2f ms\n", N, (uv_hrtime() - t0) / 1e6);
    int wrong = 0, out_of_order = 0;
    for (int i = 0; i < N; i++) {
        char v[16];
        int vn = snprintf(v, sizeof v, "val%d", i);
        if (i % 2 == 0)
            wrong += a[i].status != 1 || a[i].len != (size_t)vn || memcmp(a[i].val, v, a[i].len);
        else
            wrong += a[i].status != 0;
        wrong += a[i].calls != 1;
        out_of_order += a[i].order != i;
    }
    T_CHECK(__LINE__, answered == N && wrong == 0, "%d answered, %d wrong", answered, wrong);
    T_CHECK(__LINE__, out_of_order == 0, "%d out of order", out_of_order);
    atr_socache_detach(l);
    RUN_UNTIL(0, 50);
    atr_socache_free(c);
}

static void test_detach_pending(atr_socache_t *c)
{
    atr_socache_local_t *l = atr_socache_attach(c, &w->loop);
    static answer_t a[3];
    memset(a, 0, sizeof a);
    for (int i = 0; i < 3; i++)
        atr_socache_get(l, (const uint8_t *)"pending", 7, on_get, &a[i]);
    atr_socache_detach(l); /* answers before it returns */
    for (int i = 0; i < 3; i++)
        T_CHECK(__LINE__, a[i].calls == 1 && a[i].status == UV_ECANCELED, "get %d: %d calls %d", i,
                a[i].calls, a[i].status);
    RUN_UNTIL(0, 50); /* the connection closes */
}

/* SIGSTOP is delivered asynchronously: until the process shows as stopped it
 * may still answer a request sent meanwhile. */
static void stop_process(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    kill(pid, SIGSTOP);
    for (int i = 0; i < 1000; i++) {
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = '\0';
        const char *rp = strrchr(buf, ')'); /* "pid (comm) S ..." */
        if (rp && (rp[2] == 'T' || rp[2] == 't'))
            return;
        nap(1);
    }
}

/* A stalled server answers nothing: the timeout answers, the server is down
 * for the back-off, then a killed one answers at once. */
static void test_stalled_then_killed(const char *bin)
{
    server_t s;
    server_start(&s, bin);
    atr_socache_t *c = atr_socache_memcached_new(&s.addr, 1, 100);
    atr_socache_local_t *l = atr_socache_attach(c, &w->loop);
    set(l, "k", "v", 60);
    T_CHECK(__LINE__, get_wait(l, "k")->status == 1, "up");

    stop_process(s.pid);
    uint64_t t0 = atr_now_ms();
    answer_t *a = get_wait(l, "k");
    uint64_t took = atr_now_ms() - t0;
    T_CHECK(__LINE__, a->calls == 1 && a->status == UV_ETIMEDOUT, "timed out: %d", a->status);
    T_CHECK(__LINE__, took < 2000, "answered by the timeout (%llu ms)", (unsigned long long)took);
    printf("memcached: stalled server, timeout 100 ms: answered after %llu ms\n",
           (unsigned long long)took);
    static answer_t b;
    atr_socache_get(l, (const uint8_t *)"k", 1, on_get, &b);
    T_CHECK(__LINE__, b.calls == 1 && b.status == UV_EHOSTDOWN, "down: missed at once (%d)",
            b.status);

    kill(s.pid, SIGCONT);
    nap(1100); /* the back-off */
    a = get_wait(l, "k");
    T_CHECK(__LINE__, a->status == 1, "back after the back-off: %d", a->status);
    server_stop(&s); /* killed: the connection ends */
    t0 = atr_now_ms();
    a = get_wait(l, "k");
    T_CHECK(__LINE__, a->calls == 1 && a->status <= 0, "killed: a miss or an error (%d)", a->status);
    printf("memcached: killed server: status %d after %llu ms\n", a->status,
           (unsigned long long)(atr_now_ms() - t0));
    atr_socache_detach(l);
    RUN_UNTIL(0, 50);
    atr_socache_free(c);
}

/* Nothing listens: the connect is refused, then the back-off misses at once. */
static void test_nothing_listening(void)
{
    server_t none = { 0 };
    struct sockaddr_in *sa = (struct sockaddr_in *)&none.addr;
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)free_port());
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    atr_socache_t *c = atr_socache_memcached_new(&none.addr, 1, 0);
    atr_socache_local_t *l = atr_socache_attach(c, &w->loop);
    uint64_t t0 = atr_now_ms();
    answer_t *a = get_wait(l, "k");
    uint64_t took = atr_now_ms() - t0;
    T_CHECK(__LINE__, a->calls == 1 && a->status == UV_ECONNREFUSED, "refused: %d", a->status);
    T_CHECK(__LINE__, took < 1000, "quickly (%llu ms)", (unsigned long long)took);
    printf("memcached: nothing listening: refused after %llu ms\n", (unsigned long long)took);
    for (int i = 0; i < 3; i++) {
        static answer_t b;
        memset(&b, 0, sizeof b);
        atr_socache_get(l, (const uint8_t *)"k", 1, on_get, &b);
        T_CHECK(__LINE__, b.calls == 1 && b.status == UV_EHOSTDOWN, "back-off: at once (%d)",
                b.status);
    }
    T_CHECK(__LINE__, set(l, "k", "v", 1) == UV_EHOSTDOWN, "a set is refused too");
    nap(1100);
    a = get_wait(l, "k");
    T_CHECK(__LINE__, a->status == UV_ECONNREFUSED, "tried again after the back-off: %d",
            a->status);
    atr_socache_detach(l);
    RUN_UNTIL(0, 50);
    atr_socache_free(c);
}

/* A listening socket on a free loopback port, non-blocking; *addr set. */
static int fake_listener(struct sockaddr_storage *addr, int backlog)
{
    struct sockaddr_in *sa = (struct sockaddr_in *)addr;
    socklen_t len = sizeof *sa;
    memset(addr, 0, sizeof *addr);
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    bind(fd, (struct sockaddr *)sa, sizeof *sa);
    listen(fd, backlog);
    getsockname(fd, (struct sockaddr *)sa, &len);
    return fd;
}

/* A server that answers what memcached never would: the connection is
 * dropped and the get answers UV_EPROTO; so does a value over the maximum.
 * The request bytes are checked too (hex key, one line). */
static void test_bad_replies(void)
{
    static const char *bad[] = { "ERROR\r\n", "VALUE 6b 0 99999\r\n", "END\r\nEND\r\n" };
    struct sockaddr_storage addr;
    int lfd = fake_listener(&addr, 8);
    atr_socache_t *c = atr_socache_memcached_new(&addr, 1, 1000);
    atr_socache_local_t *l = atr_socache_attach(c, &w->loop);
    for (size_t i = 0; i < ATR_ARRAY_SIZE(bad); i++) {
        static answer_t a;
        memset(&a, 0, sizeof a);
        atr_socache_get(l, (const uint8_t *)"k", 1, on_get, &a);
        int fd = -1;
        RUN_UNTIL((fd = accept(lfd, NULL, NULL)) >= 0, 2000);
        char req[64] = "";
        ssize_t n = -1;
        for (int k = 0; k < 200 && n <= 0; k++, usleep(1000)) {
            uv_run(&w->loop, UV_RUN_NOWAIT);
            n = recv(fd, req, sizeof req - 1, MSG_DONTWAIT);
        }
        T_CHECK(__LINE__, n == 8 && memcmp(req, "get 6b\r\n", 8) == 0, "request: %.*s",
                (int)(n > 0 ? n : 0), req);
        write(fd, bad[i], strlen(bad[i]));
        RUN_UNTIL(a.calls, 2000);
        T_CHECK(__LINE__, a.calls == 1 && a.status == (i < 2 ? UV_EPROTO : 0), "%zu: status %d", i,
                a.status);
        if (i == 2) { /* the stray END is seen once the loop reads it */
            RUN_UNTIL(recv(fd, req, 1, MSG_DONTWAIT) == 0, 2000);
            T_CHECK(__LINE__, recv(fd, req, 1, MSG_DONTWAIT) == 0, "closed after a stray reply");
        }
        close(fd);
    }
    atr_socache_detach(l);
    RUN_UNTIL(0, 50);
    atr_socache_free(c);
    close(lfd);
}

/* Gets past the cap of one connection answer UV_ENOBUFS at once; the rest
 * are still answered. */
static void test_pending_cap(void)
{
    enum { N = 300 };
    atr_socache_t *c = atr_socache_memcached_new(&s1.addr, 1, 1000);
    atr_socache_local_t *l = atr_socache_attach(c, &w->loop);
    static answer_t a[N];
    memset(a, 0, sizeof a);
    answered = 0;
    int refused = 0;
    for (int i = 0; i < N; i++) {
        atr_socache_get(l, (const uint8_t *)"cap", 3, on_get, &a[i]);
        refused += a[i].calls == 1 && a[i].status == UV_ENOBUFS;
    }
    RUN_UNTIL(answered == N, 3000);
    int misses = 0;
    for (int i = 0; i < N; i++)
        misses += a[i].calls == 1 && a[i].status == 0;
    T_CHECK(__LINE__, refused == N - 256 && misses == 256, "%d refused, %d answered", refused,
            misses);
    atr_socache_detach(l);
    RUN_UNTIL(0, 50);
    atr_socache_free(c);
}

/* A connect nobody answers (the listener's queue is full, so its SYN is
 * dropped: a dead host, as seen from here) ends by the timeout. */
static void test_connect_unanswered(void)
{
    struct sockaddr_storage addr;
    int lfd = fake_listener(&addr, 0), fill[4];
    for (int i = 0; i < 4; i++) { /* fill the accept queue */
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&addr, sizeof(struct sockaddr_in));
    }
    nap(20);
    atr_socache_t *c = atr_socache_memcached_new(&addr, 1, 100);
    atr_socache_local_t *l = atr_socache_attach(c, &w->loop);
    uint64_t t0 = atr_now_ms();
    answer_t *a = get_wait(l, "k");
    uint64_t took = atr_now_ms() - t0;
    T_CHECK(__LINE__, a->calls == 1 && a->status < 0, "an error: %d", a->status);
    T_CHECK(__LINE__, took < 2000, "by the timeout (%llu ms)", (unsigned long long)took);
    printf("memcached: unanswered connect, timeout 100 ms: status %d after %llu ms\n", a->status,
           (unsigned long long)took);
    atr_socache_detach(l);
    RUN_UNTIL(0, 50);
    atr_socache_free(c);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

static const char *find_memcached(void)
{
    static const char *paths[] = { "/usr/bin/memcached", "/usr/local/bin/memcached",
                                   "/usr/sbin/memcached" };
    for (size_t i = 0; i < ATR_ARRAY_SIZE(paths); i++)
        if (access(paths[i], X_OK) == 0)
            return paths[i];
    return NULL;
}

int main(void)
{
    const char *bin = find_memcached();
    if (bin == NULL) {
        printf("SKIP: no memcached binary\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN); /* as the proxy does (core/runtime.c) */
    w = atr_worker_new(1);
    server_start(&s1, bin);
    server_start(&s2, bin);
    struct sockaddr_storage addrs[2] = { s1.addr, s2.addr };
    atr_socache_t *c = atr_socache_memcached_new(addrs, 2, 250);
    T_CHECK(__LINE__, strcmp(c->ops->name, "memcached") == 0, "name");
    atr_socache_local_t *l = atr_socache_attach(c, &w->loop);
    test_set_get_delete(l);
    test_spread(l);
    test_expiry(l);
    atr_socache_detach(l);
    test_detach_pending(c);
    atr_socache_free(c);
    test_pipelining();
    test_pending_cap();
    test_bad_replies();
    test_connect_unanswered();
    test_stalled_then_killed(bin);
    test_nothing_listening();
    server_stop(&s1);
    server_stop(&s2);

    worker_end(w);
    T_DONE();
}
