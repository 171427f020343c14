/* error_log and access_log to syslog in the config: the spellings load,
 * dump spelled out in full and load back to the same dump; faults name
 * FILE:LINE:COL at the offending part of the word. Table-driven. */
#include "conf/conf.h"
#include "t.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char err[2048];

static char *dump(const atr_conf_t *c)
{
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    atr_conf_dump(c, f);
    fclose(f);
    return s;
}

static void test_good(void)
{
    static const struct {
        int line;
        const char *directives, *want; /* want: a line of the dump */
    } c[] = {
        { __LINE__, "error_log syslog;",
          "error_log syslog:server=unix:/dev/log,facility=daemon,tag=atrium info;\n" },
        { __LINE__, "error_log syslog warn;",
          "error_log syslog:server=unix:/dev/log,facility=daemon,tag=atrium warn;\n" },
        { __LINE__, "error_log syslog:facility=local3,tag=atrium,server=unix:/dev/log debug;",
          "error_log syslog:server=unix:/dev/log,facility=local3,tag=atrium debug;\n" },
        { __LINE__, "error_log 'syslog:server=127.0.0.1:5514,nohostname' error;",
          "error_log syslog:server=127.0.0.1:5514,facility=daemon,tag=atrium,nohostname error;\n" },
        { __LINE__, "error_log syslog:server=[::1];",
          "error_log syslog:server=[::1]:514,facility=daemon,tag=atrium info;\n" },
        { __LINE__, "access_log syslog: combined;",
          "access_log syslog:server=unix:/dev/log,facility=local7,tag=atrium,severity=info combined;\n" },
        { __LINE__, "access_log syslog:severity=notice,tag=web json;",
          "access_log syslog:server=unix:/dev/log,facility=local7,tag=web,severity=notice json;\n" },
        { __LINE__, "access_log syslog;",
          "access_log syslog:server=unix:/dev/log,facility=local7,tag=atrium,severity=info combined;\n" },
    };
    for (size_t i = 0; i < ATR_ARRAY_SIZE(c); i++) {
        char text[512];
        snprintf(text, sizeof text, "%s\nlisten 8080; host * { route / { return 200; } }",
                 c[i].directives);
        atr_conf_t *conf = atr_conf_load_string("t.conf", text, strlen(text), err, sizeof err);
        T_CHECK(c[i].line, conf != NULL, "%s", err);
        if (conf == NULL)
            continue;
        char *d1 = dump(conf);
        T_CHECK(c[i].line, strstr(d1, c[i].want) != NULL, "not in the dump:\n%s", d1);
        atr_conf_t *c2 = atr_conf_load_string("t.conf", d1, strlen(d1), err, sizeof err);
        T_CHECK(c[i].line, c2 != NULL, "the dump does not load: %s\n%s", err, d1);
        if (c2 != NULL) {
            char *d2 = dump(c2);
            T_CHECK(c[i].line, strcmp(d1, d2) == 0, "dumps differ:\n%s\n----\n%s", d1, d2);
            free(d2);
            atr_conf_free(c2);
        }
        free(d1);
        atr_conf_free(conf);
    }
}

static void test_bad(void)
{
    static const struct {
        int line;
        const char *directive, *want; /* want: the whole first error line */
    } c[] = {
        { __LINE__, "error_log syslog:facility=local9;",
          "t.conf:1:27: unknown syslog facility 'local9' (expected kern, user, mail, daemon, auth, "
          "syslog, lpr, news, uucp, cron, authpriv, ftp, ntp, audit, alert, clock, local0, local1, "
          "local2, local3, local4, local5, local6 or local7)" },
        { __LINE__, "error_log syslog:server=10.0.0.300 info;",
          "t.conf:1:25: expected an IP address, IP:PORT, [IPv6]:PORT or unix:PATH (no host names)" },
        { __LINE__, "error_log 'syslog:server=unix:log';",
          "t.conf:1:26: a unix socket needs an "
          "absolute path (server=unix:/dev/log)" },
        { __LINE__, "error_log syslog:tag=a,port=1;",
          "t.conf:1:24: unknown syslog parameter 'port' (expected server, facility, tag, nohostname)" },
        { __LINE__, "error_log syslog:severity=err;",
          "t.conf:1:27: severity= is for the access log: the error log sends each line's level" },
        { __LINE__, "error_log syslog loud;",
          "t.conf:1:18: unknown log level 'loud' (expected debug, info, notice, warn, error or crit)" },
        { __LINE__, "  access_log syslog:severity=loud combined;",
          "t.conf:1:30: unknown syslog severity 'loud' (expected emerg, alert, crit, err, warning, "
          "notice, info or debug)" },
        { __LINE__, "access_log syslog:server=127.0.0.1:99999 combined;",
          "t.conf:1:26: expected a port from 1 to 65535" },
    };
    for (size_t i = 0; i < ATR_ARRAY_SIZE(c); i++) {
        char text[512];
        snprintf(text, sizeof text, "%s\nlisten 8080; host * { route / { return 200; } }",
                 c[i].directive);
        atr_conf_t *conf = atr_conf_load_string("t.conf", text, strlen(text), err, sizeof err);
        T_CHECK(c[i].line, conf == NULL, "loaded");
        if (conf != NULL) {
            atr_conf_free(conf);
            continue;
        }
        err[strcspn(err, "\n")] = '\0';
        T_CHECK(c[i].line, strcmp(err, c[i].want) == 0, "got\n  %s\nwant\n  %s", err, c[i].want);
    }
}

int main(void)
{
    test_good();
    test_bad();
    T_DONE();
}
