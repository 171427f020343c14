/* Error log and access log.
 *
 * Error log: one process-wide sink (stderr, a file or syslog), a level
 * threshold, thread-safe (each line is one write(2) or send(2) of a fully
 * formatted line, so lines from different workers never interleave). Lines look like
 *   2026/11/21 22:30:01 [error] w1 c42: upstream app: connect to 127.0.0.1:9001 failed: connection refused
 * and to syslog (base/syslog.h), with the level as the severity in PRI:
 *   <27>Nov 21 22:30:01 atrium[4242]: [error] w1 c42: upstream app: connect ...
 *
 * Access log: one sink per configuration generation (stdout, stderr or a
 * file), format combined or json; each worker formats into a small stack
 * buffer and writes one line with one write(2) (O_APPEND), so no lock. */
#ifndef ATR_LOG_H
#define ATR_LOG_H

#include <stdint.h>
#include "base/util.h"

enum atr_log_level { ATR_LOG_DEBUG = 0, ATR_LOG_INFO, ATR_LOG_NOTICE, ATR_LOG_WARN,
                     ATR_LOG_ERROR, ATR_LOG_CRIT, ATR_LOG_ALERT };

/* combined: nginx's and Apache's, byte for byte; timed: combined, then the
 * request time and the upstream's address, status and time; json. */
enum atr_access_format { ATR_ACCESS_OFF = 0, ATR_ACCESS_COMBINED, ATR_ACCESS_JSON, ATR_ACCESS_TIMED };

/* Set where the error log goes ("stderr", a path, or a syslog target as
 * atr_syslog_parse reads it) and its threshold. Opens the new file or socket
 * first and swaps only if that worked; returns 0 or -errno (the old sink
 * keeps working then). A syslog server that is not there yet is not an
 * error: its lines are dropped and counted until it is. Called from the
 * control loop. */
int atr_log_open(const char *target, enum atr_log_level level);

/* Reopen the current error log file (SIGUSR1, after rotation); for syslog,
 * a fresh socket to the same server. */
int atr_log_reopen(void);

/* 1 when target names a file (not stderr, not syslog): what a config check
 * opens to see that it can. */
int atr_log_target_is_file(const char *target);

/* Error log lines dropped because syslog did not take them at once (full,
 * missing or refusing), since the start. */
unsigned long atr_log_dropped(void);

/* 1 when the error log goes to stderr (a message for the operator at start
 * then needs no second copy there). */
int atr_log_to_stderr(void);

/* Current threshold, for cheap checks before formatting. */
extern enum atr_log_level atr_log_level;

void atr_log(enum atr_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define atr_log_at(lvl, ...) do { if ((lvl) >= atr_log_level) atr_log((lvl), __VA_ARGS__); } while (0)
#define ATR_DEBUG(...) atr_log_at(ATR_LOG_DEBUG, __VA_ARGS__)
#define ATR_INFO(...) atr_log_at(ATR_LOG_INFO, __VA_ARGS__)
#define ATR_NOTICE(...) atr_log_at(ATR_LOG_NOTICE, __VA_ARGS__)
#define ATR_WARN(...) atr_log_at(ATR_LOG_WARN, __VA_ARGS__)
#define ATR_ERROR(...) atr_log_at(ATR_LOG_ERROR, __VA_ARGS__)
#define ATR_CRIT(...) atr_log_at(ATR_LOG_CRIT, __VA_ARGS__)

/* The level's name as lines and the config write it ("warn"); "unknown"
 * for a value outside the enum. Static storage. */
const char *atr_log_level_name(enum atr_log_level l);

/* The level named `name` into *out: 0, or -1 (and *out untouched) when no
 * level has that name. The one table of level names is log.c's. */
int atr_log_level_find(const char *name, enum atr_log_level *out);

/* ---- access log ---- */

typedef struct atr_access_log atr_access_log_t;

/* One finished request, as the access log sees it. Views are borrowed for
 * the duration of the atr_access_log_write call. */
typedef struct atr_access_entry {
    const char *client_addr;   /* "127.0.0.1" */
    int64_t time_unix_ms;      /* when the request started (wall clock) */
    atr_str_t method, target;  /* request line parts; empty when the head never parsed */
    int version_minor;
    int status;                /* status sent (0 = none: connection closed before a response) */
    uint64_t bytes_sent;       /* body bytes sent to the client */
    atr_str_t referer, user_agent, host;
    uint64_t request_time_us;  /* start of request to last byte sent */
    const char *upstream_addr; /* "127.0.0.1:9001", NULL when not proxied */
    int64_t upstream_time_us;  /* connect start to end of response; -1 when none */
    int upstream_status;       /* 0 when none */
} atr_access_entry_t;

/* Open target ("stdout", "stderr", a path or a syslog target) with a format. NULL with errno
 * set on failure. Refcounted: generations that share the same target and
 * format share one handle. */
atr_access_log_t *atr_access_log_open(const char *target, enum atr_access_format fmt);
void atr_access_log_unref(atr_access_log_t *l);
/* Access log lines a syslog target did not take at once (dropped). */
unsigned long atr_access_log_dropped(void);
/* Reopen every open access log file (SIGUSR1). */
void atr_access_log_reopen_all(void);

/* Format and write one line. Thread-safe, never blocks on a lock. */
void atr_access_log_write(atr_access_log_t *l, const atr_access_entry_t *e);

/* Format one line (with its '\n') into buf[0..cap) as atr_access_log_write
 * would; returns its length. Long fields are cut (ending in "...") so the
 * line always fits and json stays valid; cap should be ATR_ACCESS_LINE_MAX.
 * ATR_ACCESS_OFF formats nothing and returns 0. */
#define ATR_ACCESS_LINE_MAX 8192
size_t atr_access_log_format(char *buf, size_t cap, enum atr_access_format fmt,
                             const atr_access_entry_t *e);

/* ---- shared by log.c and access_log.c only ---- */

/* open(path, O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC, 0644): fd or -errno. */
int atr__log_open_file(const char *path);
/* Point the descriptor number fd at newfd's file (dup3, O_CLOEXEC kept) and
 * close newfd. fd's number never changes, so a thread that loaded it just
 * before can write without racing a close. 0 or -errno (newfd closed anyway). */
int atr__log_redirect(int newfd, int fd);

#endif
