/* The heartbeat monitor and sender (cluster/hb_monitor.c, hb_sender.c) on a
 * real loop over loopback: which beats are handed on and with which sender
 * identity, which are counted as what, the cap on senders, signed beats and
 * replays, the storage file, and our own beats' bytes. The loop must close
 * with no handle left. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "cluster/hb_monitor.h"
#include "cluster/heartbeat_mac.h"
#include "t.h"

static const uint8_t KEY[] = "0123456789abcdef0123456789abcdef";

typedef struct seen {
    int n;
    unsigned port[16], ready[16], busy[16];
} seen_t;

static void on_publish(void *ud, const struct sockaddr_storage *from, const atr_hb_beat_t *b,
                       uint64_t seen_ms)
{
    seen_t *s = ud;
    (void)seen_ms;
    if (s->n < 16) {
        s->port[s->n] = ntohs(((const struct sockaddr_in *)(const void *)from)->sin_port);
        s->ready[s->n] = b->ready;
        s->busy[s->n] = b->busy;
    }
    s->n++;
}

static void nothing(uv_timer_t *t)
{
    (void)t;
}

static uint64_t total(void)
{
    return atomic_load(&atr_hb_stats.accepted) + atomic_load(&atr_hb_stats.malformed) +
           atomic_load(&atr_hb_stats.too_long) + atomic_load(&atr_hb_stats.forged) +
           atomic_load(&atr_hb_stats.replayed) + atomic_load(&atr_hb_stats.too_many);
}

/* Run the loop until get() reaches want, or ms pass. */
static void pump(uv_loop_t *loop, uint64_t (*get)(void), uint64_t want, int ms)
{
    uv_timer_t t;
    uint64_t end = atr_now_ms() + (uint64_t)ms;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, nothing, 5, 5); /* a ref'd handle: the monitor's are not */
    while ((get == NULL || get() < want) && atr_now_ms() < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static uint64_t sent_count(void)
{
    return atomic_load(&atr_hb_stats.sent);
}

static void send_to(int fd, const struct sockaddr_in *to, const char *p, size_t n)
{
    T_CHECK(__LINE__, sendto(fd, p, n, 0, (const struct sockaddr *)to, sizeof *to) == (ssize_t)n,
            "sendto");
}

static const struct {
    int line;
    const char *msg; /* NULL: an oversized datagram */
    atomic_uint_fast64_t *counter;
    int published; /* handed on, with this port (-1: none) */
    unsigned port;
} cases[] = {
    { __LINE__, "v=1&ready=5&busy=1", &atr_hb_stats.accepted, 1, 0 },
    { __LINE__, "v=1&ready=7&busy=0&port=8080", &atr_hb_stats.accepted, 1, 8080 },
    { __LINE__, "v=1&ready=6&busy=2&port=8080", &atr_hb_stats.accepted, 1, 8080 }, /* same sender */
    { __LINE__, "v=1&ready=7", &atr_hb_stats.malformed, 0, 0 },
    { __LINE__, "v=1&ready=-7&busy=0", &atr_hb_stats.malformed, 0, 0 },
    { __LINE__, NULL, &atr_hb_stats.too_long, 0, 0 },
    /* max_servers 2: (127.0.0.1, 0) and (127.0.0.1, 8080) are tracked, a third is not */
    { __LINE__, "v=1&ready=1&busy=0&port=9000", &atr_hb_stats.too_many, 0, 0 },
};

static void test_monitor(uv_loop_t *loop, int cli, const struct sockaddr_in *to, const char *dir)
{
    char storage[512], big[1200];
    seen_t seen = { 0 };
    snprintf(storage, sizeof storage, "%s/hb.dat", dir);
    atr_hb_monitor_opts_t o = {
        .storage = storage, .max_servers = 2, .publish = on_publish, .ud = &seen
    };
    int rc, fd = atr_hb_listen_socket((const struct sockaddr *)to);
    T_CHECK(__LINE__, fd >= 0, "listen socket: %d", fd);
    atr_hb_monitor_t *m = atr_hb_monitor_new(loop, fd, &o, &rc);
    T_CHECK(__LINE__, m != NULL, "monitor: %d", rc);
    memset(big, 'x', sizeof big);
    memcpy(big, "v=1&ready=1&busy=0&x=", 21);
    for (size_t c = 0; c < ATR_ARRAY_SIZE(cases); c++) {
        uint64_t before = atomic_load(cases[c].counter), all = total();
        int n = seen.n;
        if (cases[c].msg)
            send_to(cli, to, cases[c].msg, strlen(cases[c].msg));
        else
            send_to(cli, to, big, sizeof big);
        pump(loop, total, all + 1, 2000);
        T_CHECK(cases[c].line, atomic_load(cases[c].counter) == before + 1, "not counted");
        T_CHECK(cases[c].line, seen.n == n + cases[c].published, "published %d", seen.n - n);
        if (cases[c].published && seen.n <= 16)
            T_CHECK(cases[c].line, seen.port[seen.n - 1] == cases[c].port, "port %u",
                    seen.port[seen.n - 1]);
    }
    T_CHECK(__LINE__, atomic_load(&atr_hb_stats.senders) == 2, "senders %d",
            atomic_load(&atr_hb_stats.senders));
    /* the storage file, after the first tick */
    pump(loop, NULL, 0, 1300);
    char *text = NULL;
    size_t len = 0;
    T_CHECK(__LINE__, atr_read_file(storage, 4096, &text, &len) == 0, "no storage file");
    if (text != NULL) {
        T_CHECK(__LINE__,
                strstr(text, "127.0.0.1 &ready=5&busy=1&lastseen=") != NULL &&
                    strstr(text, "&port=80\n") != NULL,
                "%s", text);
        T_CHECK(__LINE__,
                strstr(text, "127.0.0.1 &ready=6&busy=2&lastseen=") != NULL &&
                    strstr(text, "&port=8080\n") != NULL,
                "%s", text);
        free(text);
    }
    /* a reload's republish hands on what counts, with the port */
    int n = seen.n;
    atr_hb_monitor_republish(m);
    T_CHECK(__LINE__, seen.n == n + 2, "republished %d", seen.n - n);
    atr_hb_monitor_close(m);
    T_CHECK(__LINE__, atomic_load(&atr_hb_stats.senders) == 0, "senders after close");
}

/* With a key: unsigned refused, signed taken, the same bytes again refused. */
static void test_signed(uv_loop_t *loop, int cli, const struct sockaddr_in *to)
{
    seen_t seen = { 0 };
    atr_hb_monitor_opts_t o = {
        .key = KEY, .keylen = 32, .max_servers = 8, .publish = on_publish, .ud = &seen
    };
    int rc, fd = atr_hb_listen_socket((const struct sockaddr *)to);
    atr_hb_monitor_t *m = atr_hb_monitor_new(loop, fd, &o, &rc);
    struct timespec ts;
    char msg[256];
    clock_gettime(CLOCK_REALTIME, &ts);
    atr_hb_beat_t b = { .ready = 9,
                        .busy = 1,
                        .has_ts = 1,
                        .ts_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 };
    int n = atr_hb_encode(msg, sizeof msg, &b);
    n = atr_hb_mac_append(KEY, 32, msg, sizeof msg, (size_t)n);
    uint64_t forged = atomic_load(&atr_hb_stats.forged),
             replayed = atomic_load(&atr_hb_stats.replayed);
    uint64_t want = total() + 3;
    send_to(cli, to, "v=1&ready=50&busy=0", 19);
    send_to(cli, to, msg, (size_t)n);
    send_to(cli, to, msg, (size_t)n);
    pump(loop, total, want, 2000);
    T_CHECK(__LINE__, atomic_load(&atr_hb_stats.forged) == forged + 1, "forged");
    T_CHECK(__LINE__, atomic_load(&atr_hb_stats.replayed) == replayed + 1, "replayed");
    T_CHECK(__LINE__, seen.n == 1 && seen.ready[0] == 9 && seen.busy[0] == 1, "published %d",
            seen.n);
    atr_hb_monitor_close(m);
}

static int load(void *ud, unsigned *ready, unsigned *busy)
{
    (void)ud;
    *ready = 3;
    *busy = 4;
    return 0;
}

/* Our beat, as mod_heartbeat's bytes, then signed. */
static void test_sender(uv_loop_t *loop, int rx, const struct sockaddr_in *rx_addr)
{
    char buf[512];
    int rc;
    for (int signed_ = 0; signed_ < 2; signed_++) {
        atr_hb_sender_t *s = atr_hb_sender_new(loop, (const struct sockaddr *)rx_addr, 60000,
                                               signed_ ? KEY : NULL, 32, load, NULL, &rc);
        T_CHECK(__LINE__, s != NULL, "sender: %d", rc);
        pump(loop, sent_count, sent_count() + 1, 2000);
        ssize_t n = recv(rx, buf, sizeof buf - 1, MSG_DONTWAIT);
        buf[n > 0 ? n : 0] = '\0';
        if (!signed_)
            T_CHECK(__LINE__, strcmp(buf, "v=1&ready=3&busy=4") == 0, "got '%s'", buf);
        else
            T_CHECK(__LINE__,
                    strncmp(buf, "v=1&ready=3&busy=4&ts=", 22) == 0 &&
                        strlen(strstr(buf, "&mac=")) == ATR_HB_MAC_FIELD_LEN,
                    "got '%s'", buf);
        atr_hb_sender_close(s);
    }
}

static struct sockaddr_in bound_udp(int *fd)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    *fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (bind(*fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(*fd, (struct sockaddr *)&a, &len) < 0)
        abort();
    return a;
}

int main(void)
{
    uv_loop_t loop;
    char dir[] = "/tmp/atr-test-hb-XXXXXX", cmd[64];
    int cli, rx;
    if (mkdtemp(dir) == NULL || uv_loop_init(&loop) != 0)
        return 2;
    struct sockaddr_in rx_addr = bound_udp(&rx);
    bound_udp(&cli);
    /* a free port for the monitor: take one, let it go */
    int tmp;
    struct sockaddr_in mon = bound_udp(&tmp);
    close(tmp);
    test_monitor(&loop, cli, &mon, dir);
    test_signed(&loop, cli, &mon);
    test_sender(&loop, rx, &rx_addr);
    uv_run(&loop, UV_RUN_DEFAULT); /* the close callbacks */
    T_CHECK(__LINE__, uv_loop_close(&loop) == 0, "loop closed with handles left");
    close(cli);
    close(rx);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    T_DONE();
}
