/* allow / deny in routes (conf/conf_acl.c): rules read from a config, then
 * matched against client addresses. Table-driven. */
#include "conf/conf.h"
#include "t.h"

#include <stdio.h>
#include <string.h>

static char err[1024];

/* allow / deny: the first rule whose network holds the client decides. */
static void test_acl(void)
{
    static const struct {
        int line;
        const char *rules; /* the route's rules, as written */
        const char *peer;
        int want;
    } c[] = {
        { __LINE__, "allow 127.0.0.1; deny all;", "127.0.0.1", 1 },
        { __LINE__, "allow 127.0.0.1; deny all;", "127.0.0.2", 0 },
        { __LINE__, "allow 10.0.0.0/8; deny all;", "10.200.3.4", 1 },
        { __LINE__, "allow 10.0.0.0/8; deny all;", "11.0.0.1", 0 },
        { __LINE__, "deny 10.1.0.0/16; allow 10.0.0.0/8;", "10.1.2.3", 0 },
        { __LINE__, "deny 10.1.0.0/16; allow 10.0.0.0/8;", "10.2.2.3", 1 },
        { __LINE__, "deny 192.0.2.0/24;", "198.51.100.1", 1 },          /* none matched */
        { __LINE__, "allow 2001:db8::/32; deny all;", "2001:db8:1::5", 1 },
        { __LINE__, "allow 2001:db8::/32; deny all;", "2001:db9::5", 0 },
        { __LINE__, "allow ::/0; deny all;", "192.0.2.1", 0 },           /* families apart */
        { __LINE__, "allow 0.0.0.0/0; deny all;", "192.0.2.1", 1 },
        { __LINE__, "allow 10.0.0.7/8; deny all;", "10.9.9.9", 1 },      /* host bits cleared */
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "listen 8080; host * { route / { return 200; %s } }", c[i].rules);
        atr_conf_t *conf = atr_conf_load_string("t.conf", text, strlen(text), err, sizeof err);
        T_CHECK(c[i].line, conf != NULL, "%s", err);
        if (conf == NULL)
            continue;
        const atr_conf_route_t *r = &conf->hosts[0].routes[0];
        T_CHECK(c[i].line, atr_conf_acl_allows(r->acl, r->nacl, c[i].peer) == c[i].want, "%s %s",
                c[i].rules, c[i].peer);
        atr_conf_free(conf);
    }
}

int main(void)
{
    test_acl();
    T_DONE();
}
