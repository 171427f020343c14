/* Syslog as a log sink: the target's spelling, the RFC 3164 header, and a
 * non-blocking datagram sender. No glibc syslog(3): it takes a lock and its
 * send may block on a full /dev/log, and a worker must never wait on either.
 *
 * Spelling (nginx's, so operators recognise it), one config word:
 *   syslog   syslog:      (every default)
 *   syslog:server=unix:/dev/log,facility=local3,tag=atrium,nohostname
 *   syslog:server=127.0.0.1:514   syslog:server=[::1]:5514
 * Keys in any order, each at most once. server is unix:ABSOLUTE_PATH or a
 * numeric address with an optional port (514); default unix:/dev/log.
 * severity= is the access log's only (the error log takes each line's level).
 *
 * The wire format is RFC 3164's, as glibc and nginx write it:
 *   <PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MESSAGE
 * with PRI = facility * 8 + severity. HOST is left out on a unix socket (the
 * local daemon adds its own, as for glibc's messages) and with nohostname. */
#ifndef ATR_SYSLOG_H
#define ATR_SYSLOG_H

#include <stddef.h>
#include <sys/socket.h>
#include <time.h>

#include "base/log.h"

#define ATR_SYSLOG_TAG_MAX 32

typedef struct atr_syslog_spec {
    int facility;                     /* 0..23 (daemon = 3, local0 = 16) */
    int severity;                     /* 0..7, or -1: from each line's level */
    int nohostname;                   /* 1: no HOST field, even over UDP */
    char tag[ATR_SYSLOG_TAG_MAX + 1]; /* [A-Za-z0-9_.-]+, default "atrium" */
    struct sockaddr_storage addr;     /* AF_UNIX, AF_INET or AF_INET6 */
    socklen_t addrlen;
} atr_syslog_spec_t;

/* Who reads the spec: the error log (severity per line, facility daemon by
 * default) or the access log (severity= allowed, default info, facility
 * local7 by default as nginx's). */
enum atr_syslog_use { ATR_SYSLOG_ERROR_LOG, ATR_SYSLOG_ACCESS_LOG };

/* 1 when target is a syslog spelling ("syslog" or "syslog:..."), else 0. */
int atr_syslog_is(const char *target);

/* Parse a syslog target into *out. 0, or -1 with a message in err (what is
 * wrong and what was expected) and *at = the byte offset in text where the
 * fault starts, for FILE:LINE:COL. */
int atr_syslog_parse(const char *text, enum atr_syslog_use use, atr_syslog_spec_t *out, char *err,
                     size_t errlen, size_t *at);

/* The spec spelled out in full (every key, fixed order) into buf[0..cap);
 * parses back to the same spec. Returns the length (cut to fit cap - 1). */
size_t atr_syslog_text(const atr_syslog_spec_t *s, enum atr_syslog_use use, char *buf, size_t cap);

/* The facility's name ("local3"); "?" outside 0..23. Static storage. */
const char *atr_syslog_facility_name(int facility);

/* The syslog severity of an Atrium level: debug 7, info 6, notice 5, warn 4,
 * error 3, crit 2, alert 1. */
int atr_syslog_severity(enum atr_log_level level);

/* "<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: " for the local time of now into
 * buf[0..cap) (host NULL or empty: no HOST field). Returns its length; cap
 * must hold it (ATR_SYSLOG_HEADER_MAX). */
#define ATR_SYSLOG_HEADER_MAX 160
size_t atr_syslog_header(char *buf, size_t cap, int pri, time_t now, const char *host,
                         const char *tag, int pid);

/* The host name for the HOST field (up to the first dot), or "" when the
 * spec goes to a unix socket or says nohostname. */
void atr_syslog_host(const atr_syslog_spec_t *s, char *out, size_t cap);

/* A datagram socket for the spec: non-blocking, close-on-exec, connected
 * when the server is there. A server that is missing now is not an error
 * (atr_syslog_send connects later). fd, or -errno when no socket could be made. */
int atr_syslog_socket(const atr_syslog_spec_t *s);

/* Send one fully formatted message with one send(2); never blocks. When the
 * server was missing or went away (ENOENT, ECONNREFUSED, ENOTCONN, ...) it
 * connects again once and retries. 0, or -errno: the message is dropped
 * (the caller counts it). Thread-safe: any thread may send on one fd. */
int atr_syslog_send(int fd, const atr_syslog_spec_t *s, const char *msg, size_t len);

#endif
