/* The access log: nginx's combined format (alone, or plus upstream timings) or one
 * JSON object per line.
 *
 * Write path: format into a stack buffer, one write(2) with O_APPEND; no lock.
 * The registry of open logs takes a mutex only at open, unref and reopen,
 * which happen on config load and SIGUSR1, never per request. Generations
 * that name the same (target, format) share one handle. A reopen redirects
 * the handle's descriptor number with dup3 instead of replacing it, so a
 * worker writing concurrently never writes to a closed or reused number (see
 * log.c). A syslog handle owns a datagram socket for its life, and frames
 * each line as one message (severity= in the target, default info). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/syslog.h"

struct atr_access_log {
    char *target;
    enum atr_access_format fmt;
    int fd;       /* fixed for the handle's life; 1 or 2 for stdout/stderr */
    int is_file;  /* reopened on SIGUSR1, closed when the last ref goes */
    int refs;     /* under registry_lock */
    atr_syslog_spec_t *syslog; /* NULL unless the target is syslog:... (fd is its socket) */
    char host[64];             /* its HOST field */
    int pid;
    struct atr_access_log *next;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct atr_access_log *registry;

/* ---- registry ---- */

static atomic_ulong syslog_dropped; /* lines a syslog socket did not take */

unsigned long atr_access_log_dropped(void)
{
    return atomic_load(&syslog_dropped);
}

static int open_syslog(atr_access_log_t *l)
{
    atr_syslog_spec_t spec;
    char err[256];
    size_t at;
    int fd;
    if (atr_syslog_parse(l->target, ATR_SYSLOG_ACCESS_LOG, &spec, err, sizeof err, &at) < 0)
        return -EINVAL; /* the config checked it */
    if ((fd = atr_syslog_socket(&spec)) < 0)
        return fd;
    l->syslog = atr_xmalloc(sizeof spec);
    *l->syslog = spec;
    atr_syslog_host(&spec, l->host, sizeof l->host);
    l->pid = (int)getpid();
    return fd;
}

static int open_target(atr_access_log_t *l, int *is_file)
{
    const char *target = l->target;
    *is_file = 0;
    if (atr_syslog_is(target)) {
        *is_file = 1; /* its socket is its own: closed with the handle, not reopened */
        return open_syslog(l);
    }
    if (strcmp(target, "stdout") == 0)
        return 1;
    if (strcmp(target, "stderr") == 0)
        return 2;
    *is_file = 1;
    return atr__log_open_file(target);
}

atr_access_log_t *atr_access_log_open(const char *target, enum atr_access_format fmt)
{
    atr_access_log_t *l;
    int fd, is_file, err = 0;

    pthread_mutex_lock(&registry_lock);
    for (l = registry; l != NULL; l = l->next)
        if (l->fmt == fmt && strcmp(l->target, target) == 0)
            break;
    if (l != NULL) {
        l->refs++;
    } else {
        l = atr_xcalloc(1, sizeof(*l));
        l->target = atr_xstrdup(target);
        if ((fd = open_target(l, &is_file)) < 0) {
            err = -fd;
            free(l->target);
            free(l);
            l = NULL;
        } else {
            l->fmt = fmt;
            l->fd = fd;
            l->is_file = is_file;
            l->refs = 1;
            l->next = registry;
            registry = l;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    if (l == NULL)
        errno = err;
    return l;
}

void atr_access_log_unref(atr_access_log_t *l)
{
    atr_access_log_t **pp;

    if (l == NULL)
        return;
    pthread_mutex_lock(&registry_lock);
    if (--l->refs > 0) {
        pthread_mutex_unlock(&registry_lock);
        return;
    }
    for (pp = &registry; *pp != l; pp = &(*pp)->next)
        ;
    *pp = l->next;
    pthread_mutex_unlock(&registry_lock);
    if (l->is_file)
        close(l->fd);
    free(l->syslog);
    free(l->target);
    free(l);
}

void atr_access_log_reopen_all(void)
{
    pthread_mutex_lock(&registry_lock);
    for (atr_access_log_t *l = registry; l != NULL; l = l->next) {
        int fd, r;
        if (!l->is_file || l->syslog != NULL) /* a socket has nothing to reopen */
            continue;
        /* On failure the handle keeps writing to the old (renamed) file. */
        if ((fd = atr__log_open_file(l->target)) < 0)
            ATR_ERROR("access_log: reopen %s failed: %s", l->target, strerror(-fd));
        else if ((r = atr__log_redirect(fd, l->fd)) < 0)
            ATR_ERROR("access_log: reopen %s failed: %s", l->target, strerror(-r));
    }
    pthread_mutex_unlock(&registry_lock);
}

/* ---- output buffer: never overflows; what does not fit is cut ---- */

typedef struct out {
    char *p;
    size_t n, cap;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    if (n > o->cap - o->n)
        n = o->cap - o->n;
    memcpy(o->p + o->n, s, n);
    o->n += n;
}

static void puts_(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

static void putf(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(out_t *o, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    int m;

    va_start(ap, fmt);
    m = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (m > 0)
        put(o, tmp, ATR_MIN((size_t)m, sizeof(tmp) - 1));
}

/* Seconds with three decimals from microseconds: 1234567 -> "1.234". */
static void put_secs(out_t *o, uint64_t us)
{
    putf(o, "%" PRIu64 ".%03" PRIu64, us / 1000000, us / 1000 % 1000);
}

/* Per-field output budgets: together with the fixed text they stay below
 * ATR_ACCESS_LINE_MAX, so every line ends complete (and json stays valid)
 * whatever a client sent. */
enum { B_ADDR = 128, B_METHOD = 64, B_URI = 3072, B_REFERER = 1536, B_UA = 1536, B_HOST = 256 };

static const char hex_upper[] = "0123456789ABCDEF", hex_lower[] = "0123456789abcdef";

/* Escaped form of byte c into e[]; returns its length. json: \" \\ \u00xx
 * (also for bytes >= 0x80 so any input gives valid JSON); combined: \" \\
 * \xHH for control bytes and bytes >= 0x7f, as nginx does. */
static size_t esc(unsigned char c, int json, char e[6])
{
    if (c == '"' || c == '\\') {
        e[0] = '\\';
        e[1] = (char)c;
        return 2;
    }
    if (c >= 0x20 && c < 0x7f) {
        e[0] = (char)c;
        return 1;
    }
    if (json) {
        memcpy(e, "\\u00", 4);
        e[4] = hex_lower[c >> 4];
        e[5] = hex_lower[c & 15];
        return 6;
    }
    e[0] = '\\';
    e[1] = 'x';
    e[2] = hex_upper[c >> 4];
    e[3] = hex_upper[c & 15];
    return 4;
}

/* Escape s using at most budget bytes of output; a cut value ends in "...". */
static void put_esc(out_t *o, atr_str_t s, size_t budget, int json)
{
    size_t used = 0, i;
    char e[6];

    for (i = 0; i < s.n; i++) {
        size_t k = esc((unsigned char)s.p[i], json, e);
        if (used + k > budget - 3)
            break;
        put(o, e, k);
        used += k;
    }
    if (i < s.n)
        put(o, "...", 3);
}

static atr_str_t cstr(const char *s)
{
    return (atr_str_t){ s ? s : "", s ? strlen(s) : 0 };
}

/* ---- time: formatted once per second per thread (localtime_r takes a
 * libc lock; a busy worker logs thousands of lines a second) ---- */

typedef struct tcache {
    int64_t sec;
    int valid;
    char clf[80]; /* 21/Nov/2026:22:30:01 +0100 (room for any int gcc can imagine) */
    char iso[80]; /* 2026-11-21T22:30:01+01:00 */
} tcache_t;

static _Thread_local tcache_t tcache;

static const tcache_t *times_for(int64_t unix_ms)
{
    static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    int64_t sec = unix_ms >= 0 ? unix_ms / 1000 : (unix_ms - 999) / 1000;
    time_t t = (time_t)sec;
    struct tm tm;
    long off;
    char sign;

    if (tcache.valid && tcache.sec == sec)
        return &tcache;
    localtime_r(&t, &tm);
    off = tm.tm_gmtoff / 60;
    sign = off < 0 ? '-' : '+';
    off = off < 0 ? -off : off;
    snprintf(tcache.clf, sizeof(tcache.clf), "%02d/%s/%04d:%02d:%02d:%02d %c%02ld%02ld", tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, sign,
             off / 60 % 100, off % 60);
    snprintf(tcache.iso, sizeof(tcache.iso), "%04d-%02d-%02dT%02d:%02d:%02d%c%02ld:%02ld",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, sign,
             off / 60 % 100, off % 60);
    tcache.sec = sec;
    tcache.valid = 1;
    return &tcache;
}

/* ---- the two formats ---- */

/* "value" with "-" for an empty value, like nginx's unset variables. */
static void put_clf_quoted(out_t *o, atr_str_t s, size_t budget)
{
    put(o, "\"", 1);
    if (s.n == 0)
        put(o, "-", 1);
    else
        put_esc(o, s, budget, 0);
    put(o, "\"", 1);
}

static void format_combined(out_t *o, const atr_access_entry_t *e, int timed)
{
    put_esc(o, cstr(e->client_addr ? e->client_addr : "-"), B_ADDR, 0);
    putf(o, " - - [%s] \"", times_for(e->time_unix_ms)->clf);
    if (e->method.n == 0) {
        put(o, "-", 1);
    } else {
        put_esc(o, e->method, B_METHOD, 0);
        put(o, " ", 1);
        put_esc(o, e->target, B_URI, 0);
        putf(o, " HTTP/1.%d", e->version_minor);
    }
    putf(o, "\" %03d %" PRIu64 " ", e->status, e->bytes_sent);
    put_clf_quoted(o, e->referer, B_REFERER);
    put(o, " ", 1);
    put_clf_quoted(o, e->user_agent, B_UA);
    if (!timed)
        return;
    puts_(o, " rt=");
    put_secs(o, e->request_time_us);
    puts_(o, " ua=");
    put_clf_quoted(o, cstr(e->upstream_addr), B_ADDR);
    if (e->upstream_status > 0)
        putf(o, " us=%d", e->upstream_status);
    else
        puts_(o, " us=-");
    puts_(o, " ut=");
    if (e->upstream_time_us >= 0)
        put_secs(o, (uint64_t)e->upstream_time_us);
    else
        put(o, "-", 1);
}

static void put_json_str(out_t *o, const char *key, atr_str_t s, size_t budget)
{
    putf(o, ",\"%s\":\"", key);
    put_esc(o, s, budget, 1);
    put(o, "\"", 1);
}

static void format_json(out_t *o, const atr_access_entry_t *e)
{
    putf(o, "{\"time\":\"%s\"", times_for(e->time_unix_ms)->iso);
    put_json_str(o, "remote_addr", cstr(e->client_addr), B_ADDR);
    put_json_str(o, "method", e->method, B_METHOD);
    put_json_str(o, "uri", e->target, B_URI);
    if (e->method.n == 0)
        puts_(o, ",\"protocol\":\"\"");
    else
        putf(o, ",\"protocol\":\"HTTP/1.%d\"", e->version_minor);
    putf(o, ",\"status\":%d,\"bytes_sent\":%" PRIu64, e->status, e->bytes_sent);
    put_json_str(o, "referer", e->referer, B_REFERER);
    put_json_str(o, "user_agent", e->user_agent, B_UA);
    put_json_str(o, "host", e->host, B_HOST);
    puts_(o, ",\"request_time\":");
    put_secs(o, e->request_time_us);
    if (e->upstream_addr != NULL)
        put_json_str(o, "upstream_addr", cstr(e->upstream_addr), B_ADDR);
    else
        puts_(o, ",\"upstream_addr\":null");
    if (e->upstream_status > 0)
        putf(o, ",\"upstream_status\":%d", e->upstream_status);
    else
        puts_(o, ",\"upstream_status\":null");
    puts_(o, ",\"upstream_time\":");
    if (e->upstream_time_us >= 0)
        put_secs(o, (uint64_t)e->upstream_time_us);
    else
        puts_(o, "null");
    put(o, "}", 1);
}

size_t atr_access_log_format(char *buf, size_t cap, enum atr_access_format fmt,
                             const atr_access_entry_t *e)
{
    out_t o = { buf, 0, cap - 1 }; /* keep room for the '\n' */

    if (cap == 0 || fmt == ATR_ACCESS_OFF)
        return 0;
    if (fmt == ATR_ACCESS_JSON)
        format_json(&o, e);
    else
        format_combined(&o, e, fmt == ATR_ACCESS_TIMED);
    buf[o.n++] = '\n';
    return o.n;
}

/* One message: the syslog header, then the line without its '\n'. */
static void write_syslog(atr_access_log_t *l, const atr_access_entry_t *e)
{
    char buf[ATR_SYSLOG_HEADER_MAX + ATR_ACCESS_LINE_MAX];
    int pri = l->syslog->facility * 8 + l->syslog->severity;
    size_t h = atr_syslog_header(buf, ATR_SYSLOG_HEADER_MAX, pri, time(NULL),
                                 l->host, l->syslog->tag, l->pid);
    size_t n = atr_access_log_format(buf + h, ATR_ACCESS_LINE_MAX, l->fmt, e);
    if (n > 0 && buf[h + n - 1] == '\n')
        n--;
    if (n > 0 && atr_syslog_send(l->fd, l->syslog, buf, h + n) < 0)
        atomic_fetch_add(&syslog_dropped, 1);
}

void atr_access_log_write(atr_access_log_t *l, const atr_access_entry_t *e)
{
    char buf[ATR_ACCESS_LINE_MAX];
    size_t n;

    if (l == NULL)
        return;
    if (l->syslog != NULL) {
        write_syslog(l, e);
        return;
    }
    n = atr_access_log_format(buf, sizeof(buf), l->fmt, e);
    if (n > 0)
        (void)atr_write_all(l->fd, buf, n); /* a failing log drops the line */
}
