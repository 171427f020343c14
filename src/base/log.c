/* The error log: one process-wide sink, one write(2) per line so workers
 * never interleave or lock.
 *
 * Reopening while workers write. Closing the old descriptor after swapping in
 * a new one is not safe: a worker that loaded the old number just before the
 * swap may write after the close, when the number can already belong to a
 * freshly accepted client socket. So once the log has a file of its own its
 * descriptor number never changes: a reopen opens the file again and dup3()s
 * it onto that number, which atomically redirects it. The atomic swap is only
 * used once, to move off stderr (fd 2, never closed) onto our own number.
 *
 * Syslog (base/syslog.h) uses the same number: its datagram socket is dup3()ed
 * onto it like a reopened file, and the published sink says how to frame the
 * lines. A sink is never freed (a worker may still be reading the one just
 * replaced); reloads between the same few targets reuse theirs. A line the
 * socket does not take at once is dropped and counted, and the count is
 * reported with the next line that goes through. */
#include "base/log.h"
#include "base/syslog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum atr_log_level atr_log_level = ATR_LOG_INFO;

static atomic_int sink_fd = 2; /* where lines go; 2 until a file was opened */
static int sink_owned;         /* sink_fd is our own number (control thread only) */
static char *sink_path;        /* the file to reopen; NULL = stderr (control thread only) */

struct syslog_sink {
    atr_syslog_spec_t spec;
    char host[64]; /* the HOST field, "" for none */
    int pid;
    struct syslog_sink *next; /* every sink made (control thread only) */
};
static _Atomic(struct syslog_sink *) sink_syslog; /* NULL: plain lines to sink_fd */
static struct syslog_sink *syslog_sinks;
static atomic_ulong dropped_total, dropped_unreported;

#define LINE_MAX_BYTES 2048

static const char *const level_names[] = { "debug", "info", "notice", "warn", "error", "crit", "alert" };

const char *atr_log_level_name(enum atr_log_level l)
{
    return (unsigned)l < ATR_ARRAY_SIZE(level_names) ? level_names[l] : "unknown";
}

int atr_log_level_find(const char *name, enum atr_log_level *out)
{
    for (size_t i = 0; i < ATR_ARRAY_SIZE(level_names); i++) {
        if (strcmp(level_names[i], name) == 0) {
            *out = (enum atr_log_level)i;
            return 0;
        }
    }
    return -1;
}

int atr__log_open_file(const char *path)
{
    int fd;
    do
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

int atr__log_redirect(int newfd, int fd)
{
    int r;
    /* dup3 keeps O_CLOEXEC on fd (dup2 would drop it and leak the log into
     * CGI children); EBUSY is Linux's transient race with a concurrent open. */
    do
        r = dup3(newfd, fd, O_CLOEXEC);
    while (r < 0 && (errno == EINTR || errno == EBUSY));
    r = r < 0 ? -errno : 0;
    close(newfd);
    return r;
}

/* Make newfd (ours, just opened) the sink. */
static int install(int newfd)
{
    if (sink_owned)
        return atr__log_redirect(newfd, atomic_load(&sink_fd));
    atomic_store(&sink_fd, newfd);
    sink_owned = 1;
    return 0;
}

int atr_log_target_is_file(const char *target)
{
    return strcmp(target, "stderr") != 0 && !atr_syslog_is(target);
}

unsigned long atr_log_dropped(void)
{
    return atomic_load(&dropped_total);
}

/* The sink for spec: one made before for the same spec, or a new one. */
static struct syslog_sink *syslog_sink_for(const atr_syslog_spec_t *spec)
{
    struct syslog_sink *k;
    for (k = syslog_sinks; k != NULL; k = k->next)
        if (memcmp(&k->spec, spec, sizeof *spec) == 0)
            return k;
    k = atr_xcalloc(1, sizeof *k);
    k->spec = *spec; /* parsed from a zeroed struct: memcmp above is exact */
    atr_syslog_host(spec, k->host, sizeof k->host);
    k->pid = (int)getpid();
    k->next = syslog_sinks;
    syslog_sinks = k;
    return k;
}

/* Switch to (or reconnect) the syslog target. */
static int open_syslog(const char *target)
{
    atr_syslog_spec_t spec;
    char err[256];
    size_t at;
    int fd, r;

    if (atr_syslog_parse(target, ATR_SYSLOG_ERROR_LOG, &spec, err, sizeof err, &at) < 0)
        return -EINVAL; /* the config checked it: not reached from a loaded one */
    if ((fd = atr_syslog_socket(&spec)) < 0)
        return fd;
    if ((r = install(fd)) < 0)
        return r;
    atomic_store_explicit(&sink_syslog, syslog_sink_for(&spec), memory_order_release);
    return 0;
}

int atr_log_open(const char *target, enum atr_log_level level)
{
    int fd, r;

    if (atr_syslog_is(target)) {
        if ((r = open_syslog(target)) < 0)
            return r;
        free(sink_path);
        sink_path = atr_xstrdup(target);
    } else if (strcmp(target, "stderr") == 0) {
        if (sink_owned) {
            /* Keep our number, point it back at stderr. */
            fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
            if (fd < 0)
                return -errno;
            if ((r = install(fd)) < 0)
                return r;
        }
        atomic_store(&sink_syslog, NULL);
        free(sink_path);
        sink_path = NULL;
    } else {
        if ((fd = atr__log_open_file(target)) < 0)
            return fd;
        if ((r = install(fd)) < 0)
            return r;
        atomic_store(&sink_syslog, NULL);
        free(sink_path);
        sink_path = atr_xstrdup(target);
    }
    atr_log_level = level;
    return 0;
}

int atr_log_to_stderr(void)
{
    return sink_path == NULL;
}

int atr_log_reopen(void)
{
    int fd;

    if (sink_path == NULL)
        return 0;
    if (atr_syslog_is(sink_path))
        return open_syslog(sink_path); /* a fresh socket: harmless, and finds a moved server */
    if ((fd = atr__log_open_file(sink_path)) < 0)
        return fd;
    return install(fd);
}

/* Frame a line for syslog and send it; counts it when dropped, and reports
 * earlier drops once the socket takes lines again. */
static void send_syslog(const struct syslog_sink *k, enum atr_log_level level, time_t now,
                        const char *line, size_t len)
{
    char buf[ATR_SYSLOG_HEADER_MAX + LINE_MAX_BYTES];
    int fd = atomic_load_explicit(&sink_fd, memory_order_relaxed);
    int pri = k->spec.facility * 8 + atr_syslog_severity(level);
    size_t n = atr_syslog_header(buf, ATR_SYSLOG_HEADER_MAX, pri, now, k->host, k->spec.tag, k->pid);

    memcpy(buf + n, line, len);
    if (atr_syslog_send(fd, &k->spec, buf, n + len) < 0) {
        atomic_fetch_add(&dropped_total, 1);
        atomic_fetch_add(&dropped_unreported, 1);
        return;
    }
    if (atomic_load_explicit(&dropped_unreported, memory_order_relaxed) == 0)
        return;
    unsigned long lost = atomic_exchange(&dropped_unreported, 0);
    if (lost == 0)
        return;
    pri = k->spec.facility * 8 + atr_syslog_severity(ATR_LOG_WARN);
    n = atr_syslog_header(buf, ATR_SYSLOG_HEADER_MAX, pri, now, k->host, k->spec.tag, k->pid);
    n += (size_t)snprintf(buf + n, LINE_MAX_BYTES, "[warn] error_log: %lu line%s dropped while "
                          "syslog did not take them", lost, lost == 1 ? "" : "s");
    if (atr_syslog_send(fd, &k->spec, buf, n) < 0)
        atomic_fetch_add(&dropped_unreported, lost);
}

void atr_log(enum atr_log_level level, const char *fmt, ...)
{
    char buf[LINE_MAX_BYTES];
    struct tm tm;
    time_t now = time(NULL);
    size_t n, date;
    int m;
    va_list ap;

    if (level < atr_log_level)
        return;
    localtime_r(&now, &tm);
    date = (size_t)snprintf(buf, sizeof(buf), "%04d/%02d/%02d %02d:%02d:%02d ", tm.tm_year + 1900,
                            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    n = date + (size_t)snprintf(buf + date, sizeof(buf) - date, "[%s] ", atr_log_level_name(level));
    va_start(ap, fmt);
    m = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap); /* keep 1 byte for '\n' */
    va_end(ap);
    if (m < 0)
        m = 0;
    if ((size_t)m >= sizeof(buf) - n - 1) {
        n = sizeof(buf) - 1 - 1; /* vsnprintf's NUL sits here */
        memcpy(buf + n - 3, "...", 3);
    } else {
        n += (size_t)m;
        if (n > 0 && buf[n - 1] == '\n') /* callers that add their own newline */
            n--;
    }
    /* Syslog stamps the line itself: it gets "[level] message", no date, no '\n'. */
    const struct syslog_sink *k = atomic_load_explicit(&sink_syslog, memory_order_acquire);
    if (k != NULL) {
        send_syslog(k, level, now, buf + date, n - date);
        return;
    }
    buf[n++] = '\n';
    /* Nowhere to report a failing log: the line is dropped. */
    (void)atr_write_all(atomic_load_explicit(&sink_fd, memory_order_relaxed), buf, n);
}
