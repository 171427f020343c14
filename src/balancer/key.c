/* Request keys for the methods that hash one: the arguments of `balance NAME
 * ARG...;` handed to the method's parser, and the hash of a request's key
 * computed from plain strings, so the proxy core never learns what a key
 * kind means. The hash has no seed: every worker, a reload and a restart
 * map a key to the same server. */
#include "balancer/balancer.h"

#include <stdio.h>
#include <string.h>

int atr_lb_parse_args(const atr_lb_ops_t *ops, atr_lb_args_t *args, const char *const *argv,
                      int argc, int *bad, char *err, size_t errlen)
{
    memset(args, 0, sizeof(*args));
    for (int i = 0; i < argc; i++) {
        *bad = i;
        if (ops->parse == NULL) {
            snprintf(err, errlen, "'%s' takes no argument", ops->name);
            return -1;
        }
        if (ops->parse(args, argv[i], err, errlen) < 0)
            return -1;
    }
    *bad = argc;
    /* NULL: the arguments are over, settle the defaults (hash: the address) */
    return ops->parse != NULL ? ops->parse(args, NULL, err, errlen) : 0;
}

void atr_lb_format(const atr_lb_ops_t *ops, const atr_lb_args_t *args, char *buf, size_t cap)
{
    size_t len;
    snprintf(buf, cap, "%s", ops->name);
    len = strlen(buf);
    if (ops->format != NULL && len < cap)
        ops->format(args, buf + len, cap - len);
}

uint64_t atr_lb_hash(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    /* FNV's low bits are weak for short, similar inputs (10.0.0.1, .2):
     * murmur3's finalizer spreads every input bit over the word */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

int atr_lb_cookie(const char *cookie, size_t len, const char *name, const char **val, size_t *vlen)
{
    size_t nlen = strlen(name), i = 0;
    while (i < len) {
        size_t start, end;
        while (i < len && (is_ows(cookie[i]) || cookie[i] == ';'))
            i++;
        start = i;
        while (i < len && cookie[i] != ';')
            i++;
        end = i;
        while (end > start && is_ows(cookie[end - 1]))
            end--;
        if (end - start > nlen && cookie[start + nlen] == '=' &&
            memcmp(cookie + start, name, nlen) == 0) {
            *val = cookie + start + nlen + 1;
            *vlen = end - (start + nlen + 1);
            return 0;
        }
    }
    return -1;
}

uint64_t atr_lb_key(const atr_lb_args_t *args, const atr_lb_key_in_t *in)
{
    const char *v = NULL;
    size_t vlen = 0;

    switch (args->key) {
    case ATR_LB_KEY_URI:
        v = in->uri, vlen = in->uri_len;
        break;
    case ATR_LB_KEY_HEADER:
        v = in->header, vlen = in->header_len;
        break;
    case ATR_LB_KEY_COOKIE:
        if (in->cookie == NULL || atr_lb_cookie(in->cookie, in->cookie_len, args->name, &v, &vlen) < 0)
            v = NULL;
        break;
    default:
        break;
    }
    if (v == NULL) /* the address key, or a missing header or cookie */
        v = in->addr, vlen = in->addr_len;
    return atr_lb_hash(v != NULL ? v : "", v != NULL ? vlen : 0);
}
