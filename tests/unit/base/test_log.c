/* Error log and access log: exact combined and json lines (escaping of
 * hostile bytes, cut fields), shared handles, reopen after rotation while
 * other threads keep logging. Runs with TZ=UTC so times are fixed. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "t.h"

#define T0 1700000000123LL /* 2023-11-14 22:13:20.123 UTC */
#define S(lit) ATR_STR(lit)

static char dir[] = "/tmp/atr_test_log.XXXXXX";

static char *path_in_dir(const char *name)
{
    static char buf[4][256];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
    return p;
}

/* Whole file as a NUL-terminated string (caller frees); "" when missing. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *s = atr_xmalloc(1 << 20);
    size_t n = f ? fread(s, 1, (1 << 20) - 1, f) : 0;
    if (f)
        fclose(f);
    s[n] = '\0';
    if (len)
        *len = n;
    return s;
}

static const atr_access_entry_t proxied = {
    .client_addr = "192.0.2.7",
    .time_unix_ms = T0,
    .method = S("GET"), .target = S("/app/x?q=1"), .version_minor = 1,
    .status = 200, .bytes_sent = 1234,
    .referer = S("http://example.com/"), .user_agent = S("curl/7.88.1"), .host = S("example.com"),
    .request_time_us = 12345,
    .upstream_addr = "127.0.0.1:9001", .upstream_time_us = 10001, .upstream_status = 200,
};

/* A client that never got a head through: nothing proxied, nothing parsed. */
static const atr_access_entry_t unparsed = {
    .client_addr = "::1",
    .time_unix_ms = T0 + 2000,
    .status = 400, .bytes_sent = 0,
    .request_time_us = 999,
    .upstream_time_us = -1,
};

/* Quotes, backslashes, control bytes, DEL and UTF-8 in every string field. */
static const atr_access_entry_t tricky = {
    .client_addr = "10.0.0.1",
    .time_unix_ms = T0 + 61000,
    .method = S("POST"), .target = S("/a\"b\\c\x01\n\x7f\xc3\xa9"), .version_minor = 0,
    .status = 502, .bytes_sent = 0,
    .referer = S("\""), .user_agent = S("Mozilla \"x\"\t\\"), .host = S("h\xff"),
    .request_time_us = 1500000,
    .upstream_addr = "127.0.0.1:9002", .upstream_time_us = 0, .upstream_status = 0,
};

static const struct {
    int line;
    const atr_access_entry_t *e;
    enum atr_access_format fmt;
    const char *want;
} line_cases[] = {
    /* combined: nginx's and Apache's, nothing after the user agent */
    { __LINE__, &proxied, ATR_ACCESS_COMBINED,
      "192.0.2.7 - - [14/Nov/2023:22:13:20 +0000] \"GET /app/x?q=1 HTTP/1.1\" 200 1234 "
      "\"http://example.com/\" \"curl/7.88.1\"\n" },
    { __LINE__, &unparsed, ATR_ACCESS_COMBINED,
      "::1 - - [14/Nov/2023:22:13:22 +0000] \"-\" 400 0 \"-\" \"-\"\n" },
    /* timed: combined, then the request time and the upstream's address, status, time */
    { __LINE__, &proxied, ATR_ACCESS_TIMED,
      "192.0.2.7 - - [14/Nov/2023:22:13:20 +0000] \"GET /app/x?q=1 HTTP/1.1\" 200 1234 "
      "\"http://example.com/\" \"curl/7.88.1\" rt=0.012 ua=\"127.0.0.1:9001\" us=200 ut=0.010\n" },
    { __LINE__, &unparsed, ATR_ACCESS_TIMED,
      "::1 - - [14/Nov/2023:22:13:22 +0000] \"-\" 400 0 \"-\" \"-\" rt=0.000 ua=\"-\" us=- ut=-\n" },
    { __LINE__, &tricky, ATR_ACCESS_TIMED,
      "10.0.0.1 - - [14/Nov/2023:22:14:21 +0000] \"POST /a\\\"b\\\\c\\x01\\x0A\\x7F\\xC3\\xA9 HTTP/1.0\" "
      "502 0 \"\\\"\" \"Mozilla \\\"x\\\"\\x09\\\\\" rt=1.500 ua=\"127.0.0.1:9002\" us=- ut=0.000\n" },
    { __LINE__, &proxied, ATR_ACCESS_JSON,
      "{\"time\":\"2023-11-14T22:13:20+00:00\",\"remote_addr\":\"192.0.2.7\",\"method\":\"GET\","
      "\"uri\":\"/app/x?q=1\",\"protocol\":\"HTTP/1.1\",\"status\":200,\"bytes_sent\":1234,"
      "\"referer\":\"http://example.com/\",\"user_agent\":\"curl/7.88.1\",\"host\":\"example.com\","
      "\"request_time\":0.012,\"upstream_addr\":\"127.0.0.1:9001\",\"upstream_status\":200,"
      "\"upstream_time\":0.010}\n" },
    { __LINE__, &unparsed, ATR_ACCESS_JSON,
      "{\"time\":\"2023-11-14T22:13:22+00:00\",\"remote_addr\":\"::1\",\"method\":\"\",\"uri\":\"\","
      "\"protocol\":\"\",\"status\":400,\"bytes_sent\":0,\"referer\":\"\",\"user_agent\":\"\","
      "\"host\":\"\",\"request_time\":0.000,\"upstream_addr\":null,\"upstream_status\":null,"
      "\"upstream_time\":null}\n" },
    { __LINE__, &tricky, ATR_ACCESS_JSON,
      "{\"time\":\"2023-11-14T22:14:21+00:00\",\"remote_addr\":\"10.0.0.1\",\"method\":\"POST\","
      "\"uri\":\"/a\\\"b\\\\c\\u0001\\u000a\\u007f\\u00c3\\u00a9\",\"protocol\":\"HTTP/1.0\","
      "\"status\":502,\"bytes_sent\":0,\"referer\":\"\\\"\",\"user_agent\":\"Mozilla \\\"x\\\"\\u0009\\\\\","
      "\"host\":\"h\\u00ff\",\"request_time\":1.500,\"upstream_addr\":\"127.0.0.1:9002\","
      "\"upstream_status\":null,\"upstream_time\":0.000}\n" },
};

static void test_format(void)
{
    for (size_t c = 0; c < ATR_ARRAY_SIZE(line_cases); c++) {
        char buf[ATR_ACCESS_LINE_MAX];
        size_t n = atr_access_log_format(buf, sizeof(buf), line_cases[c].fmt, line_cases[c].e);
        buf[n] = '\0';
        T_CHECK(line_cases[c].line, n == strlen(line_cases[c].want) && strcmp(buf, line_cases[c].want) == 0,
                "\n got: %s want: %s", buf, line_cases[c].want);
    }
}

/* Both formats through real handles into one temp file, read back exactly. */
static void test_write_file(void)
{
    const char *path = path_in_dir("access.log");
    atr_access_log_t *comb = atr_access_log_open(path, ATR_ACCESS_COMBINED);
    atr_access_log_t *json = atr_access_log_open(path, ATR_ACCESS_JSON);
    atr_access_log_t *timed = atr_access_log_open(path, ATR_ACCESS_TIMED);
    char want[8 * ATR_ACCESS_LINE_MAX] = "";
    char *got;

    T_CHECK(__LINE__, comb != NULL && json != NULL && timed != NULL && comb != json,
            "open: %s", strerror(errno));
    if (comb == NULL || json == NULL || timed == NULL)
        return;
    for (size_t c = 0; c < ATR_ARRAY_SIZE(line_cases); c++) {
        enum atr_access_format f = line_cases[c].fmt;
        atr_access_log_write(f == ATR_ACCESS_JSON ? json : f == ATR_ACCESS_TIMED ? timed : comb,
                             line_cases[c].e);
        strcat(want, line_cases[c].want);
    }
    got = slurp(path, NULL);
    T_CHECK(__LINE__, strcmp(got, want) == 0, "file holds:\n%s", got);
    free(got);
    atr_access_log_unref(comb);
    atr_access_log_unref(json);
    atr_access_log_unref(timed);
}

/* Generations naming the same (target, format) share one handle. */
static void test_sharing(void)
{
    const char *path = path_in_dir("shared.log");
    atr_access_log_t *a = atr_access_log_open(path, ATR_ACCESS_COMBINED);
    atr_access_log_t *b = atr_access_log_open(path, ATR_ACCESS_COMBINED);
    atr_access_log_t *c = atr_access_log_open(path, ATR_ACCESS_JSON);
    atr_access_log_t *o1 = atr_access_log_open("stdout", ATR_ACCESS_JSON);
    atr_access_log_t *o2 = atr_access_log_open("stdout", ATR_ACCESS_JSON);
    atr_access_log_t *b2, *bad;

    T_CHECK(__LINE__, a != NULL && a == b, "same target+format not shared");
    T_CHECK(__LINE__, c != NULL && c != a, "different format shared");
    T_CHECK(__LINE__, o1 != NULL && o1 == o2, "stdout not shared");
    atr_access_log_unref(a);
    b2 = atr_access_log_open(path, ATR_ACCESS_COMBINED); /* a reference taken after a release */
    T_CHECK(__LINE__, b2 == b, "reopened target+format not shared");
    atr_access_log_unref(b2);
    atr_access_log_write(b, &proxied); /* still one ref left */
    atr_access_log_unref(b);
    atr_access_log_unref(c);
    atr_access_log_unref(o1);
    atr_access_log_unref(o2);

    errno = 0;
    bad = atr_access_log_open(path_in_dir("no/such/dir.log"), ATR_ACCESS_JSON);
    T_CHECK(__LINE__, bad == NULL && errno == ENOENT, "bad path: %p errno %d", (void *)bad, errno);
}

/* Hostile sizes: the line is cut field by field, never mid-escape, and stays
 * one complete line (json still closes). */
static void test_cut(void)
{
    static char big[20000];
    char buf[ATR_ACCESS_LINE_MAX];
    atr_access_entry_t e = tricky;
    size_t n;

    memset(big, '\x01', sizeof(big));
    e.target = (atr_str_t){ big, sizeof(big) };
    e.referer = e.user_agent = e.host = e.method = e.target;

    n = atr_access_log_format(buf, sizeof(buf), ATR_ACCESS_JSON, &e);
    buf[n] = '\0';
    T_CHECK(__LINE__, n < sizeof(buf) && strcmp(buf + n - 23, "\"upstream_time\":0.000}\n") == 0,
            "json tail: %s", buf + (n > 40 ? n - 40 : 0));
    T_CHECK(__LINE__, strstr(buf, "\\u0001...\",\"protocol\"") != NULL, "cut uri not marked");
    T_CHECK(__LINE__, strchr(buf, '\n') == buf + n - 1, "newline inside the line");

    n = atr_access_log_format(buf, sizeof(buf), ATR_ACCESS_TIMED, &e);
    buf[n] = '\0';
    T_CHECK(__LINE__, n < sizeof(buf) && strcmp(buf + n - 10, " ut=0.000\n") == 0,
            "combined tail: %s", buf + (n > 40 ? n - 40 : 0));
    T_CHECK(__LINE__, strstr(buf, "\\x01... HTTP/1.0\"") != NULL, "cut uri not marked");

    T_CHECK(__LINE__, atr_access_log_format(buf, sizeof(buf), ATR_ACCESS_OFF, &e) == 0, "off wrote");
}

/* SIGUSR1 after logrotate renamed the file: new lines go to a new file. */
static void test_access_reopen(void)
{
    const char *path = path_in_dir("rot.log"), *old = path_in_dir("rot.log.1");
    atr_access_log_t *l = atr_access_log_open(path, ATR_ACCESS_TIMED);
    char *a, *b;

    atr_access_log_write(l, &proxied);
    T_CHECK(__LINE__, rename(path, old) == 0, "rename");
    atr_access_log_write(l, &unparsed); /* still the renamed file */
    atr_access_log_reopen_all();
    atr_access_log_write(l, &tricky);
    a = slurp(old, NULL);
    b = slurp(path, NULL);
    /* line_cases[2..4]: the timed lines of proxied, unparsed, tricky */
    T_CHECK(__LINE__, strncmp(a, line_cases[2].want, strlen(line_cases[2].want)) == 0 &&
                          strcmp(a + strlen(line_cases[2].want), line_cases[3].want) == 0,
            "rotated file:\n%s", a);
    T_CHECK(__LINE__, strcmp(b, line_cases[4].want) == 0, "new file:\n%s", b);
    free(a);
    free(b);
    atr_access_log_unref(l);
}

/* ---- error log ---- */

/* "2023/11/14 22:13:20 [error] " : date shape only, the clock is real. */
static int line_shape_ok(const char *s, const char *level)
{
    static const char shape[] = "dddd/dd/dd dd:dd:dd [";
    for (size_t i = 0; i < sizeof(shape) - 1; i++)
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
            return 0;
    s += sizeof(shape) - 1;
    return strncmp(s, level, strlen(level)) == 0 && strncmp(s + strlen(level), "] ", 2) == 0;
}

static const struct {
    int line;
    enum atr_log_level threshold, level;
    const char *msg, *want; /* want: the text after "[level] "; NULL = filtered */
} err_cases[] = {
    { __LINE__, ATR_LOG_INFO, ATR_LOG_ERROR, "upstream app: connect failed", "upstream app: connect failed\n" },
    { __LINE__, ATR_LOG_INFO, ATR_LOG_INFO, "with newline\n", "with newline\n" },
    { __LINE__, ATR_LOG_INFO, ATR_LOG_DEBUG, "hidden", NULL },
    { __LINE__, ATR_LOG_WARN, ATR_LOG_NOTICE, "hidden", NULL },
    { __LINE__, ATR_LOG_WARN, ATR_LOG_WARN, "shown", "shown\n" },
    { __LINE__, ATR_LOG_DEBUG, ATR_LOG_DEBUG, "shown", "shown\n" },
    { __LINE__, ATR_LOG_ERROR, ATR_LOG_ALERT, "shown", "shown\n" },
};

static void test_error_log(void)
{
    const char *path = path_in_dir("error.log");

    for (size_t c = 0; c < ATR_ARRAY_SIZE(err_cases); c++) {
        char *got;
        const char *name = atr_log_level_name(err_cases[c].level);
        unlink(path);
        T_CHECK(err_cases[c].line, atr_log_open(path, err_cases[c].threshold) == 0, "open");
        atr_log_at(err_cases[c].level, "%s", err_cases[c].msg);
        got = slurp(path, NULL);
        if (err_cases[c].want == NULL)
            T_CHECK(err_cases[c].line, got[0] == '\0', "not filtered: %s", got);
        else
            T_CHECK(err_cases[c].line,
                    line_shape_ok(got, name) && strcmp(got + 23 + strlen(name), err_cases[c].want) == 0,
                    "got: %s", got);
        free(got);
    }
}

static void test_error_log_misc(void)
{
    const char *path = path_in_dir("error2.log"), *old = path_in_dir("error2.log.1");
    char msg[5000], *got;
    size_t n;

    T_CHECK(__LINE__, strcmp(atr_log_level_name(ATR_LOG_WARN), "warn") == 0, "warn");
    T_CHECK(__LINE__, strcmp(atr_log_level_name(ATR_LOG_CRIT), "crit") == 0, "crit");
    T_CHECK(__LINE__, strcmp(atr_log_level_name((enum atr_log_level)42), "unknown") == 0, "42");

    /* Every name comes back to its level; anything else is refused untouched. */
    for (enum atr_log_level l = ATR_LOG_DEBUG; l <= ATR_LOG_ALERT; l++) {
        enum atr_log_level got = (enum atr_log_level)99;
        T_CHECK(__LINE__, atr_log_level_find(atr_log_level_name(l), &got) == 0 && got == l,
                "%s", atr_log_level_name(l));
    }
    static const char *const not_levels[] = { "", "Warn", "warning", "unknown", "crit " };
    for (size_t i = 0; i < ATR_ARRAY_SIZE(not_levels); i++) {
        enum atr_log_level got = ATR_LOG_NOTICE;
        T_CHECK(__LINE__, atr_log_level_find(not_levels[i], &got) == -1 && got == ATR_LOG_NOTICE,
                "'%s'", not_levels[i]);
    }

    /* A long message is cut to one line of 2047 bytes ending "...\n". */
    T_CHECK(__LINE__, atr_log_open(path, ATR_LOG_INFO) == 0, "open");
    memset(msg, 'x', sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = '\0';
    ATR_ERROR("%s", msg);
    got = slurp(path, &n);
    T_CHECK(__LINE__, n == 2047 && strcmp(got + n - 4, "...\n") == 0 && strchr(got, '\n') == got + n - 1,
            "long line: %zu bytes", n);
    free(got);

    /* A failing open keeps the old sink and the old level. */
    T_CHECK(__LINE__, atr_log_open(path_in_dir("no/such/dir"), ATR_LOG_DEBUG) == -ENOENT, "bad open");
    T_CHECK(__LINE__, atr_log_level == ATR_LOG_INFO, "level changed by failed open");
    ATR_ERROR("after failed open");
    got = slurp(path, &n);
    T_CHECK(__LINE__, strstr(got, "] after failed open\n") != NULL, "old sink lost");
    free(got);

    /* Rotation: rename, reopen, next line in the new file. */
    rename(path, old);
    ATR_ERROR("to old");
    T_CHECK(__LINE__, atr_log_reopen() == 0, "reopen");
    ATR_ERROR("to new");
    got = slurp(old, NULL);
    T_CHECK(__LINE__, strstr(got, "] to old\n") != NULL && strstr(got, "to new") == NULL, "old:\n%s", got);
    free(got);
    got = slurp(path, NULL);
    T_CHECK(__LINE__, line_shape_ok(got, "error") && strstr(got, "] to new\n") != NULL, "new:\n%s", got);
    free(got);
}

/* Workers log while the control thread rotates: every line lands whole in
 * exactly one of the files. */
#define NTHREADS 4
#define NLINES 3000

static void *logger(void *arg)
{
    for (int i = 0; i < NLINES; i++)
        ATR_ERROR("worker %d line %05d end", (int)(intptr_t)arg, i);
    return NULL;
}

static void test_reopen_under_load(void)
{
    const char *path = path_in_dir("busy.log");
    pthread_t th[NTHREADS];
    int rotations = 0, lines = 0, bad = 0;

    T_CHECK(__LINE__, atr_log_open(path, ATR_LOG_INFO) == 0, "open");
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&th[i], NULL, logger, (void *)(intptr_t)i);
    for (; rotations < 20; rotations++) {
        char name[32];
        snprintf(name, sizeof(name), "busy.log.%d", rotations);
        rename(path, path_in_dir(name));
        atr_log_reopen();
        usleep(200);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);

    for (int r = 0; r <= rotations; r++) {
        char name[32], *s, *line;
        snprintf(name, sizeof(name), r < rotations ? "busy.log.%d" : "busy.log", r);
        s = slurp(path_in_dir(name), NULL);
        for (line = strtok(s, "\n"); line != NULL; line = strtok(NULL, "\n")) {
            int w, k, end = 0;
            lines++;
            if (!line_shape_ok(line, "error") || sscanf(line + 28, "worker %d line %d end%n", &w, &k, &end) != 2 ||
                line[28 + end] != '\0')
                bad++;
        }
        free(s);
    }
    T_CHECK(__LINE__, lines == NTHREADS * NLINES && bad == 0, "%d lines (want %d), %d malformed", lines,
            NTHREADS * NLINES, bad);
}

static void cleanup(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_format();
    test_write_file();
    test_sharing();
    test_cut();
    test_access_reopen();
    test_error_log();
    test_error_log_misc();
    test_reopen_under_load();
    atr_log_open("stderr", ATR_LOG_INFO);
    cleanup();
    T_DONE();
}
