/* The error log: one process-wide sink, one write(2) per line so workers
 * never interleave or lock.
 *
 * Reopening while workers write. Closing the old descriptor after swapping in
 * a new one is not safe: a worker that loaded the old number just before the
 * swap may write after the close, when the number can already belong to a
 * freshly accepted client socket. So once the log has a file of its own its
 * descriptor number never changes: a reopen opens the file again and dup3()s
 * it onto that number, which atomically redirects it. The atomic swap is only
 * used once, to move off stderr (fd 2, never closed) onto our own number. */
#include "base/log.h"

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

int atr_log_open(const char *target, enum atr_log_level level)
{
    int fd, r;

    if (strcmp(target, "stderr") == 0) {
        if (sink_owned) {
            /* Keep our number, point it back at stderr. */
            fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
            if (fd < 0)
                return -errno;
            if ((r = install(fd)) < 0)
                return r;
        }
        free(sink_path);
        sink_path = NULL;
    } else {
        if ((fd = atr__log_open_file(target)) < 0)
            return fd;
        if ((r = install(fd)) < 0)
            return r;
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
    if ((fd = atr__log_open_file(sink_path)) < 0)
        return fd;
    return install(fd);
}

void atr_log(enum atr_log_level level, const char *fmt, ...)
{
    char buf[LINE_MAX_BYTES];
    struct tm tm;
    time_t now = time(NULL);
    size_t n;
    int m;
    va_list ap;

    if (level < atr_log_level)
        return;
    localtime_r(&now, &tm);
    n = (size_t)snprintf(buf, sizeof(buf), "%04d/%02d/%02d %02d:%02d:%02d [%s] ", tm.tm_year + 1900,
                         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                         atr_log_level_name(level));
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
    buf[n++] = '\n';
    /* Nowhere to report a failing log: the line is dropped. */
    (void)atr_write_all(atomic_load_explicit(&sink_fd, memory_order_relaxed), buf, n);
}
