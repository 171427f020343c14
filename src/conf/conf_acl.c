/* allow / deny in routes: the rules (atr_conf_acl_t), read here from the
 * config and matched against a client's address on the request path. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf_priv.h"

/* addr[0..len) with every bit past the first `bits` cleared. */
static void mask(uint8_t *addr, int len, int bits)
{
    for (int i = 0; i < len; i++) {
        int keep = bits - 8 * i;
        addr[i] &= keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
    }
}

/* "10.0.0.0/8", "::1", "all" into *a; 0 or -1. */
static int parse_net(const char *s, atr_conf_acl_t *a)
{
    char ip[64];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (strcmp(s, "all") == 0) {
        a->family = 0;
        return 0;
    }
    if (n == 0 || n >= sizeof ip)
        return -1;
    memcpy(ip, s, n);
    ip[n] = '\0';
    if (inet_pton(AF_INET, ip, a->addr) == 1)
        a->family = AF_INET;
    else if (inet_pton(AF_INET6, ip, a->addr) == 1)
        a->family = AF_INET6;
    else
        return -1;
    int max = a->family == AF_INET ? 32 : 128;
    a->bits = max;
    if (slash) {
        char *end;
        long b = strtol(slash + 1, &end, 10);
        if (slash[1] == '\0' || *end != '\0' || b < 0 || b > max)
            return -1;
        a->bits = (int)b;
    }
    mask(a->addr, max / 8, a->bits);
    return 0;
}

int atr__conf_d_acl(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                    atr_conf_acl_t *out)
{
    memset(out, 0, sizeof *out);
    out->allow = d->name[0] == 'a'; /* allow, or deny */
    if (parse_net(n->args[0].s, out) < 0)
        return atr__conf_fail(b, &n->args[0].pos, "invalid address '%s' for '%s' (expected "
                              "all, an address or a network, e.g. 10.0.0.0/8 or ::1)",
                              n->args[0].s, d->name);
    return 0;
}

int atr_conf_acl_allows(const atr_conf_acl_t *acl, int n, const char *peer)
{
    uint8_t a[16];
    int family = strchr(peer, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(family, peer, a) != 1)
        family = 0; /* a unix socket's client: only `all` matches */
    for (int i = 0; i < n; i++) {
        if (acl[i].family == 0)
            return acl[i].allow;
        if (acl[i].family != family)
            continue;
        uint8_t m[16];
        int len = family == AF_INET ? 4 : 16;
        memcpy(m, a, (size_t)len);
        mask(m, len, acl[i].bits);
        if (memcmp(m, acl[i].addr, (size_t)len) == 0)
            return acl[i].allow;
    }
    return 1;
}

void atr__conf_dump_acl(const atr_conf_acl_t *acl, int n, FILE *out)
{
    for (int i = 0; i < n; i++) {
        char ip[64] = "all";
        if (acl[i].family)
            inet_ntop(acl[i].family, acl[i].addr, ip, sizeof ip);
        int full = acl[i].bits == (acl[i].family == AF_INET ? 32 : 128);
        if (acl[i].family && !full)
            fprintf(out, "        %s %s/%d;\n", acl[i].allow ? "allow" : "deny", ip, acl[i].bits);
        else
            fprintf(out, "        %s %s;\n", acl[i].allow ? "allow" : "deny", ip);
    }
}
