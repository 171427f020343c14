/* A server line typed at run time (atr_conf_server_parse, for `atrium ctl add
 * server`): the config's own checks, no DNS, no `resolve`. Table-driven. */
#include "conf/conf.h"
#include "t.h"

#include <stdlib.h>
#include <string.h>

static void test_server_lines(void)
{
    static const struct {
        int line;
        const char *words[5];
        int ok, weight, max_conns, backup;
        const char *err; /* a part of the refusal */
    } c[] = {
        { __LINE__, { "127.0.0.1:9001" }, 1, 1, 0, 0, NULL },
        { __LINE__, { "127.0.0.1:9001", "weight=7", "max_conns=20", "backup" }, 1, 7, 20, 1, NULL },
        { __LINE__, { "[::1]:9001", "slow_start=30s" }, 1, 1, 0, 0, NULL },
        { __LINE__, { "unix:/run/app.sock" }, 1, 1, 0, 0, NULL },
        { __LINE__, { "app.internal:80" }, 0, 0, 0, 0, "'app.internal:80' is not an address" },
        { __LINE__, { "127.0.0.1" }, 0, 0, 0, 0, "is not an address" },
        { __LINE__, { "127.0.0.1:0" }, 0, 0, 0, 0, "is not an address" },
        { __LINE__, { "127.0.0.1:80", "resolve" }, 0, 0, 0, 0, "'resolve' belongs in the config file" },
        { __LINE__, { "127.0.0.1:80", "weight=0" }, 0, 0, 0, 0, "'weight' must be between 1 and 1000" },
        { __LINE__, { "127.0.0.1:80", "weight=2", "weight=3" }, 0, 0, 0, 0, "duplicate server parameter" },
        { __LINE__, { "127.0.0.1:80", "wieght=2" }, 0, 0, 0, 0, "unknown server parameter 'wieght=2'" },
        { __LINE__, { "unix:" }, 0, 0, 0, 0, "invalid unix socket path" },
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char err[512] = "";
        int n = 0;
        while (n < 5 && c[i].words[n] != NULL)
            n++;
        atr_conf_server_t sv;
        int rc = atr_conf_server_parse(c[i].words, n, &sv, err, sizeof err);
        T_CHECK(c[i].line, (rc == 0) == c[i].ok, "rc %d: %s", rc, err);
        if (rc == 0 && c[i].ok) {
            T_CHECK(c[i].line, strcmp(sv.text, c[i].words[0]) == 0 && sv.addrlen > 0 &&
                                   sv.weight == c[i].weight && sv.max_conns == c[i].max_conns &&
                                   sv.backup == c[i].backup && !sv.resolve,
                    "%s: weight %d max_conns %d backup %d", sv.text, sv.weight, sv.max_conns,
                    sv.backup);
            free(sv.text);
        }
        if (!c[i].ok)
            T_CHECK(c[i].line, strstr(err, c[i].err) != NULL && strchr(err, '\n') == NULL,
                    "got '%s'", err);
    }
}

int main(void)
{
    test_server_lines();
    T_DONE();
}
