/* Syslog targets (base/syslog.c) and the error log's syslog sink (log.c):
 * the spelling and its faults, the canonical text, the RFC 3164 header, and
 * a real unix datagram receiver: exact messages, a missing server (dropped,
 * counted, then found again), a full one (never blocks). Runs with TZ=UTC. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/syslog.h"
#include "t.h"

static char dir[] = "/tmp/atr_test_syslog.XXXXXX";

/* good spellings, and how they are spelled out in full */
static void test_parse(void)
{
    static const struct {
        int line;
        enum atr_syslog_use use;
        const char *in, *want;
    } c[] = {
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog",
          "syslog:server=unix:/dev/log,facility=daemon,tag=atrium" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG,
          "syslog:", "syslog:server=unix:/dev/log,facility=daemon,tag=atrium" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:facility=local3,tag=atrium,server=unix:/dev/log",
          "syslog:server=unix:/dev/log,facility=local3,tag=atrium" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:server=127.0.0.1",
          "syslog:server=127.0.0.1:514,facility=daemon,tag=atrium" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:server=127.0.0.1:5514,nohostname,tag=a-b_c.d",
          "syslog:server=127.0.0.1:5514,facility=daemon,tag=a-b_c.d,nohostname" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:server=[::1]:6514,facility=kern",
          "syslog:server=[::1]:6514,facility=kern,tag=atrium" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:server=[2001:db8::1]",
          "syslog:server=[2001:db8::1]:514,facility=daemon,tag=atrium" },
        { __LINE__, ATR_SYSLOG_ACCESS_LOG, "syslog",
          "syslog:server=unix:/dev/log,facility=local7,tag=atrium,severity=info" },
        { __LINE__, ATR_SYSLOG_ACCESS_LOG, "syslog:severity=notice,facility=local0",
          "syslog:server=unix:/dev/log,facility=local0,tag=atrium,severity=notice" },
    };
    for (size_t i = 0; i < ATR_ARRAY_SIZE(c); i++) {
        atr_syslog_spec_t s, s2;
        char err[256], text[320];
        size_t at;
        int rc = atr_syslog_parse(c[i].in, c[i].use, &s, err, sizeof err, &at);
        T_CHECK(c[i].line, rc == 0, "%s: %s", c[i].in, err);
        if (rc != 0)
            continue;
        atr_syslog_text(&s, c[i].use, text, sizeof text);
        T_CHECK(c[i].line, strcmp(text, c[i].want) == 0, "got %s", text);
        rc = atr_syslog_parse(text, c[i].use, &s2, err, sizeof err, &at);
        T_CHECK(c[i].line, rc == 0 && memcmp(&s, &s2, sizeof s) == 0, "%s does not parse back",
                text);
    }
}

/* faults: the message, and where in the word it starts */
static void test_parse_errors(void)
{
    static const struct {
        int line;
        enum atr_syslog_use use;
        const char *in;
        size_t at;
        const char *want;
    } c[] = {
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:facility=local9", 16,
          "unknown syslog facility 'local9' (expected kern, user, " },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:tag=x,facility=", 22,
          "unknown syslog facility ''" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:server=300.1.1.1:514", 14,
          "expected an IP address, IP:PORT, [IPv6]:PORT or unix:PATH (no host names)" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:server=localhost", 14, "(no host names)" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:server=127.0.0.1:0", 14,
          "expected a port from 1" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:server=127.0.0.1:65536", 14, "expected a port" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:server=127.0.0.1:", 14, "expected a port" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:server=[::1", 14, "expected [IPv6]:PORT" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:server=[::1]x", 14, "expected [IPv6]:PORT" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:server=unix:dev/log", 14, "absolute path" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:server=", 14, "server= needs an address" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:tag=a,bogus=1", 13,
          "unknown syslog parameter 'bogus' (expected server, facility, tag, nohostname)" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:tag=a,tag=b", 13, "given twice" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:,", 7, "expected KEY=VALUE" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:tag=a,", 13, "expected KEY=VALUE" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:tag=a b", 11, "a tag is 1 to 32" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:tag=abcdefghijklmnopqrstuvwxyz0123456", 11,
          "a tag is 1 to 32" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslog:severity=info", 16,
          "severity= is for the access log" },
        { __LINE__, ATR_SYSLOG_ACCESS_LOG, "syslog:severity=loud", 16,
          "unknown syslog severity 'loud' (expected emerg, alert, crit, err, warning, notice, info or debug)" },
        { __LINE__, ATR_SYSLOG_ERROR_LOG, "syslogd", 0, "expected syslog or syslog:KEY=VALUE" },
    };
    for (size_t i = 0; i < ATR_ARRAY_SIZE(c); i++) {
        atr_syslog_spec_t s;
        char err[512] = "";
        size_t at = 999;
        int rc = atr_syslog_parse(c[i].in, c[i].use, &s, err, sizeof err, &at);
        T_CHECK(c[i].line, rc == -1, "%s parsed", c[i].in);
        T_CHECK(c[i].line, strstr(err, c[i].want) != NULL, "%s: got '%s'", c[i].in, err);
        T_CHECK(c[i].line, at == c[i].at, "%s: at %zu, want %zu", c[i].in, at, c[i].at);
    }
}

static void test_header(void)
{
    static const struct {
        int line;
        int pri;
        time_t t;
        const char *host, *tag, *want;
    } c[] = {
        { __LINE__, 3 * 8 + 3, 1700000000, NULL, "atrium", "<27>Nov 14 22:13:20 atrium[42]: " },
        { __LINE__, 19 * 8 + 6, 1700000000, "", "atrium", "<158>Nov 14 22:13:20 atrium[42]: " },
        { __LINE__, 0, 1704070861, "web1", "x",
          "<0>Jan  1 01:01:01 web1 x[42]: " }, /* day padded */
        { __LINE__, 191, 1704070861, "web1", "x", "<191>Jan  1 01:01:01 web1 x[42]: " },
    };
    for (size_t i = 0; i < ATR_ARRAY_SIZE(c); i++) {
        char buf[ATR_SYSLOG_HEADER_MAX];
        size_t n = atr_syslog_header(buf, sizeof buf, c[i].pri, c[i].t, c[i].host, c[i].tag, 42);
        T_CHECK(c[i].line, n == strlen(c[i].want) && memcmp(buf, c[i].want, n) == 0, "got '%s'",
                buf);
    }
    static const int want[] = { 7, 6, 5, 4, 3, 2, 1 };
    for (int l = ATR_LOG_DEBUG; l <= ATR_LOG_ALERT; l++)
        T_CHECK(__LINE__, atr_syslog_severity((enum atr_log_level)l) == want[l], "level %d", l);

    atr_syslog_spec_t s;
    char err[256], host[64];
    size_t at;
    atr_syslog_parse("syslog", ATR_SYSLOG_ERROR_LOG, &s, err, sizeof err, &at);
    atr_syslog_host(&s, host, sizeof host);
    T_CHECK(__LINE__, host[0] == '\0', "a unix socket gets no HOST: '%s'", host);
    atr_syslog_parse("syslog:server=127.0.0.1", ATR_SYSLOG_ERROR_LOG, &s, err, sizeof err, &at);
    atr_syslog_host(&s, host, sizeof host);
    T_CHECK(__LINE__, host[0] != '\0' && strpbrk(host, ". ") == NULL, "UDP gets a HOST: '%s'",
            host);
    atr_syslog_parse("syslog:server=127.0.0.1,nohostname", ATR_SYSLOG_ERROR_LOG, &s, err,
                     sizeof err, &at);
    atr_syslog_host(&s, host, sizeof host);
    T_CHECK(__LINE__, host[0] == '\0', "nohostname: '%s'", host);
}

/* A unix datagram receiver bound at path: fd. */
static int receiver(const char *path, int rcvbuf)
{
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (bind(fd, (struct sockaddr *)&un, sizeof un) < 0)
        perror("bind");
    return fd;
}

/* The next datagram as a string ("" when none is waiting). */
static const char *next_msg(int fd)
{
    static char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    buf[n < 0 ? 0 : n] = '\0';
    return buf;
}

/* Header without the date: "<PRI>" and "TAG[PID]: " around it. */
static int is_msg(const char *got, int pri, const char *tag, const char *text)
{
    char head[32], tail[600];
    snprintf(head, sizeof head, "<%d>", pri);
    snprintf(tail, sizeof tail, " %s[%d]: %s", tag, (int)getpid(), text);
    return strncmp(got, head, strlen(head)) == 0 &&
           strlen(got) == strlen(head) + 15 + strlen(tail) &&
           strcmp(got + strlen(head) + 15, tail) == 0;
}

static void test_error_log_to_syslog(void)
{
    char path[256], target[320];
    snprintf(path, sizeof path, "%s/log", dir);
    snprintf(target, sizeof target, "syslog:server=unix:%s,facility=local3,tag=t1", path);

    /* No server yet: the sink opens anyway, lines are dropped and counted. */
    unsigned long d0 = atr_log_dropped();
    T_CHECK(__LINE__, atr_log_open(target, ATR_LOG_INFO) == 0, "open without a server");
    atr_log(ATR_LOG_ERROR, "lost %d", 1);
    atr_log(ATR_LOG_DEBUG, "below the threshold");
    T_CHECK(__LINE__, atr_log_dropped() == d0 + 1, "dropped %lu", atr_log_dropped() - d0);

    /* The server appears: the next line reconnects, then the drop is reported. */
    int r = receiver(path, 0);
    atr_log(ATR_LOG_ERROR, "upstream app: connect to 127.0.0.1:9001 failed: %s\n", "refused");
    const char *m = next_msg(r);
    T_CHECK(__LINE__,
            is_msg(m, 19 * 8 + 3, "t1",
                   "[error] upstream app: connect to 127.0.0.1:9001 failed: refused"),
            "got '%s'", m);
    m = next_msg(r);
    T_CHECK(__LINE__,
            is_msg(m, 19 * 8 + 4, "t1",
                   "[warn] error_log: 1 line dropped while syslog did not take them"),
            "got '%s'", m);
    atr_log(ATR_LOG_NOTICE, "started");
    T_CHECK(__LINE__, is_msg(next_msg(r), 19 * 8 + 5, "t1", "[notice] started"), "notice");
    T_CHECK(__LINE__, atr_log_reopen() == 0, "reopen");
    atr_log(ATR_LOG_CRIT, "after reopen");
    T_CHECK(__LINE__, is_msg(next_msg(r), 19 * 8 + 2, "t1", "[crit] after reopen"), "crit");

    /* The server restarts (a new socket at the same path): found again. */
    close(r);
    r = receiver(path, 0);
    atr_log(ATR_LOG_WARN, "after restart");
    m = next_msg(r);
    T_CHECK(__LINE__, is_msg(m, 19 * 8 + 4, "t1", "[warn] after restart"), "got '%s'", m);

    /* A server that reads nothing: its queue fills, lines are dropped, the
     * caller never waits (a blocking send would hang this test). */
    d0 = atr_log_dropped();
    for (int i = 0; i < 2000; i++)
        atr_log(ATR_LOG_ERROR, "line %d %0400d", i, 0);
    T_CHECK(__LINE__, atr_log_dropped() > d0, "nothing dropped on a full socket");
    close(r);
    unlink(path);

    /* Back to stderr: syslog sees nothing more. */
    T_CHECK(__LINE__, atr_log_open("stderr", ATR_LOG_WARN) == 0, "back to stderr");
    T_CHECK(__LINE__,
            !atr_log_target_is_file("stderr") && !atr_log_target_is_file(target) &&
                atr_log_target_is_file("/var/log/x"),
            "is_file");
}

/* access_log syslog:...: one message per request, severity from the target. */
static void test_access_log_to_syslog(void)
{
    char path[256], target[320];
    snprintf(path, sizeof path, "%s/access", dir);
    snprintf(target, sizeof target, "syslog:server=unix:%s,facility=local7,tag=acc,severity=notice",
             path);
    int r = receiver(path, 0);
    atr_access_log_t *l = atr_access_log_open(target, ATR_ACCESS_COMBINED);
    T_CHECK(__LINE__, l != NULL, "open");
    atr_access_entry_t e = { .client_addr = "192.0.2.7",
                             .time_unix_ms = 1700000000123LL,
                             .method = ATR_STR("GET"),
                             .target = ATR_STR("/"),
                             .version_minor = 1,
                             .status = 204,
                             .upstream_time_us = -1 };
    atr_access_log_write(l, &e);
    T_CHECK(__LINE__,
            is_msg(next_msg(r), 23 * 8 + 5, "acc",
                   "192.0.2.7 - - [14/Nov/2023:22:13:20 +0000] \"GET / HTTP/1.1\" 204 0 "
                   "\"-\" \"-\""),
            "access line");
    atr_access_log_reopen_all(); /* nothing to reopen on a socket */
    atr_access_log_unref(l);
    close(r);
    unlink(path);
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    if (mkdtemp(dir) == NULL)
        return 1;
    test_parse();
    test_parse_errors();
    test_header();
    test_error_log_to_syslog();
    test_access_log_to_syslog();
    rmdir(dir);
    T_DONE();
}
