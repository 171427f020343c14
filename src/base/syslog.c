/* Syslog targets: parsing their spelling, the RFC 3164 header, and a
 * datagram sender that never blocks (see syslog.h). */
#include "base/syslog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/registry.h"

/* RFC 5424's numbering; 13 and 14 are "log audit" and "log alert". */
static const char *const facilities[] = {
    "kern",   "user",   "mail",     "daemon", "auth",   "syslog", "lpr",    "news",
    "uucp",   "cron",   "authpriv", "ftp",    "ntp",    "audit",  "alert",  "clock",
    "local0", "local1", "local2",   "local3", "local4", "local5", "local6", "local7",
};

static const char *const severities[] = { "emerg",   "alert",  "crit", "err",
                                          "warning", "notice", "info", "debug" };

int atr_syslog_is(const char *target)
{
    return strncmp(target, "syslog", 6) == 0 && (target[6] == '\0' || target[6] == ':');
}

const char *atr_syslog_facility_name(int facility)
{
    return facility >= 0 && (size_t)facility < ATR_ARRAY_SIZE(facilities) ? facilities[facility]
                                                                          : "?";
}

int atr_syslog_severity(enum atr_log_level level)
{
    static const int map[] = { 7, 6, 5, 4, 3, 2, 1 }; /* debug .. alert */
    return (unsigned)level < ATR_ARRAY_SIZE(map) ? map[level] : 3;
}

static int find(const char *const *names, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
            return (int)i;
    return -1;
}

/* "unix:/path", "1.2.3.4[:port]" or "[v6][:port]" into s->addr. */
static const char *parse_server(const char *v, size_t len, atr_syslog_spec_t *s)
{
    char host[INET6_ADDRSTRLEN + 8];
    memset(&s->addr, 0, sizeof s->addr);
    if (len >= 5 && memcmp(v, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)&s->addr;
        if (len == 5 || v[5] != '/')
            return "a unix socket needs an absolute path (server=unix:/dev/log)";
        if (len - 5 >= sizeof un->sun_path)
            return "the unix socket path is too long";
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, v + 5, len - 5);
        s->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len - 5 + 1);
        return NULL;
    }
    const char *port = NULL, *end = v + len;
    if (v[0] == '[') {
        const char *close = memchr(v, ']', len);
        if (close == NULL || close - v - 1 >= (ptrdiff_t)sizeof host)
            return "expected [IPv6]:PORT";
        memcpy(host, v + 1, (size_t)(close - v - 1));
        host[close - v - 1] = '\0';
        if (close + 1 < end && close[1] != ':')
            return "expected [IPv6]:PORT";
        port = close + 1 < end ? close + 2 : NULL;
    } else {
        const char *colon = memchr(v, ':', len);
        size_t hl = colon ? (size_t)(colon - v) : len;
        if (hl >= sizeof host)
            return "expected an IP address, IP:PORT or unix:PATH";
        memcpy(host, v, hl);
        host[hl] = '\0';
        port = colon ? colon + 1 : NULL;
    }
    unsigned long p = 514;
    if (port != NULL) {
        char *e;
        if (port == end || *port < '0' || *port > '9' || (p = strtoul(port, &e, 10), e != end) ||
            p == 0 || p > 65535)
            return "expected a port from 1 to 65535";
    }
    struct sockaddr_in *in4 = (struct sockaddr_in *)&s->addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&s->addr;
    if (v[0] != '[' && inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)p);
        s->addrlen = sizeof *in4;
    } else if (v[0] == '[' && inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)p);
        s->addrlen = sizeof *in6;
    } else {
        return "expected an IP address, IP:PORT, [IPv6]:PORT or unix:PATH (no host names)";
    }
    return NULL;
}

static void defaults(enum atr_syslog_use use, atr_syslog_spec_t *s)
{
    memset(s, 0, sizeof *s);
    s->facility = use == ATR_SYSLOG_ACCESS_LOG ? 23 : 3; /* local7 as nginx's, daemon */
    s->severity = use == ATR_SYSLOG_ACCESS_LOG ? 6 : -1;
    snprintf(s->tag, sizeof s->tag, "atrium");
    parse_server("unix:/dev/log", 13, s);
}

/* The value named v[0..vl) among names into *out: NULL, or msg saying which
 * names there are. */
static const char *pick(const char *const *names, size_t n, const char *what, const char *v,
                        size_t vl, int *out, char *msg, size_t msglen)
{
    char list[400];
    if ((*out = find(names, n, v, vl)) >= 0)
        return NULL;
    snprintf(msg, msglen, "unknown syslog %s '%.*s' (expected %s)", what, (int)vl, v,
             atr_words_join(names, n, list, sizeof list));
    return msg;
}

/* One key=value item; NULL or what is wrong with it. */
static const char *parse_item(const char *k, size_t kl, const char *v, size_t vl, int has_v,
                              enum atr_syslog_use use, atr_syslog_spec_t *s, char *msg,
                              size_t msglen)
{
    if (kl == 10 && memcmp(k, "nohostname", 10) == 0 && !has_v) {
        s->nohostname = 1;
        return NULL;
    }
    if (!has_v)
        return "expected KEY=VALUE (server, facility, tag, severity) or nohostname";
    if (kl == 6 && memcmp(k, "server", 6) == 0)
        return vl == 0 ? "server= needs an address" : parse_server(v, vl, s);
    if (kl == 8 && memcmp(k, "facility", 8) == 0)
        return pick(facilities, ATR_ARRAY_SIZE(facilities), "facility", v, vl, &s->facility, msg,
                    msglen);
    if (kl == 3 && memcmp(k, "tag", 3) == 0) {
        if (vl == 0 || vl > ATR_SYSLOG_TAG_MAX ||
            strspn(v, "abcdefghijklmnopqrstuvwxyz"
                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") < vl)
            return "a tag is 1 to 32 letters, digits, '_', '.' or '-'";
        memcpy(s->tag, v, vl);
        s->tag[vl] = '\0';
        return NULL;
    }
    if (kl == 8 && memcmp(k, "severity", 8) == 0) {
        if (use != ATR_SYSLOG_ACCESS_LOG)
            return "severity= is for the access log: the error log sends each line's level";
        return pick(severities, ATR_ARRAY_SIZE(severities), "severity", v, vl, &s->severity, msg,
                    msglen);
    }
    snprintf(msg, msglen,
             "unknown syslog parameter '%.*s' (expected server, facility, tag, %s"
             "nohostname)",
             (int)kl, k, use == ATR_SYSLOG_ACCESS_LOG ? "severity, " : "");
    return msg;
}

int atr_syslog_parse(const char *text, enum atr_syslog_use use, atr_syslog_spec_t *out, char *err,
                     size_t errlen, size_t *at)
{
    static const char *const keys[] = { "server", "facility", "tag", "severity", "nohostname" };
    unsigned seen = 0;
    const char *why = NULL, *p;

    defaults(use, out);
    *at = 0;
    if (!atr_syslog_is(text)) {
        why = "expected syslog or syslog:KEY=VALUE,...";
        goto fail;
    }
    if (text[6] == '\0' || text[7] == '\0') /* "syslog" or "syslog:": every default */
        return 0;
    for (p = text + 7;; p++) {
        size_t len = strcspn(p, ",");
        const char *eq = memchr(p, '=', len);
        size_t kl = eq ? (size_t)(eq - p) : len;
        int k = find(keys, ATR_ARRAY_SIZE(keys), p, kl);
        *at = (size_t)(p - text);
        if (k >= 0 && (seen & (1u << k))) {
            why = "this syslog parameter is given twice";
            goto fail;
        }
        if (k >= 0)
            seen |= 1u << k;
        if (eq != NULL)
            *at = (size_t)(eq + 1 - text);
        why = parse_item(p, kl, eq ? eq + 1 : NULL, eq ? len - kl - 1 : 0, eq != NULL, use, out,
                         err, errlen);
        if (why != NULL) {
            if (k < 0)
                *at = (size_t)(p - text);
            goto fail;
        }
        p += len;
        if (*p == '\0')
            return 0;
    }
fail:
    if (why != err)
        snprintf(err, errlen, "%s", why);
    return -1;
}

size_t atr_syslog_text(const atr_syslog_spec_t *s, enum atr_syslog_use use, char *buf, size_t cap)
{
    char server[sizeof((struct sockaddr_un *)0)->sun_path + 8];
    if (s->addr.ss_family == AF_UNIX)
        snprintf(server, sizeof server, "unix:%s",
                 ((const struct sockaddr_un *)&s->addr)->sun_path);
    else
        atr_sockaddr_text(&s->addr, server, sizeof server);
    int n = snprintf(buf, cap, "syslog:server=%s,facility=%s,tag=%s%s%s%s", server,
                     atr_syslog_facility_name(s->facility), s->tag,
                     use == ATR_SYSLOG_ACCESS_LOG ? ",severity=" : "",
                     use == ATR_SYSLOG_ACCESS_LOG ? severities[s->severity & 7] : "",
                     s->nohostname ? ",nohostname" : "");
    return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}

size_t atr_syslog_header(char *buf, size_t cap, int pri, time_t now, const char *host,
                         const char *tag, int pid)
{
    static const char months[][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    struct tm tm;
    localtime_r(&now, &tm);
    int n = snprintf(buf, cap, "<%d>%s %2d %02d:%02d:%02d %s%s%s[%d]: ", pri,
                     months[tm.tm_mon % 12], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     host ? host : "", host && *host ? " " : "", tag, pid);
    return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}

void atr_syslog_host(const atr_syslog_spec_t *s, char *out, size_t cap)
{
    out[0] = '\0';
    if (s->nohostname || s->addr.ss_family == AF_UNIX)
        return;
    if (gethostname(out, cap) < 0)
        snprintf(out, cap, "-");
    out[cap - 1] = '\0';
    out[strcspn(out, ". ")] = '\0'; /* RFC 3164: the name without its domain */
    if (out[0] == '\0')
        snprintf(out, cap, "-");
}

int atr_syslog_socket(const atr_syslog_spec_t *s)
{
    int fd = socket(s->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    (void)connect(fd, (const struct sockaddr *)&s->addr, s->addrlen); /* may come later */
    return fd;
}

int atr_syslog_send(int fd, const atr_syslog_spec_t *s, const char *msg, size_t len)
{
    for (int tries = 0;; tries++) {
        if (send(fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
            return 0;
        int e = errno;
        if (e == EINTR)
            continue;
        /* The server was not there at the last connect, or went away (a
         * restarted syslogd binds a new socket at the same path). A full
         * queue (EAGAIN) is not retried: that is what must never stall us. */
        if (tries > 0 || !(e == ENOTCONN || e == EDESTADDRREQ || e == ECONNREFUSED ||
                           e == ECONNRESET || e == ENOENT))
            return -e;
        if (connect(fd, (const struct sockaddr *)&s->addr, s->addrlen) < 0)
            return -errno;
    }
}
