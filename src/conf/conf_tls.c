/* TLS in the config language: a host's `tls { ... }` block, the process-wide
 * tls_* directives and an https upstream's. Only the words are checked here;
 * the files are read and the certificates checked by tls/ctx.c, which
 * reports against the positions kept here. */
#include <stddef.h>
#include <string.h>

#include "base/util.h"
#include "conf/conf_priv.h"

/* ---- the tls block ------------------------------------------------------- */

static int d_certificate(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                         const atr__conf_directive_t *d, void *obj)
{
    atr_conf_tls_t *t = obj;
    (void)d;
    if (t->ncerts > 0 && t->certs[t->ncerts - 1].key == NULL)
        return atr__conf_fail(b, &n->name.pos, "certificate %s has no key (expected key FILE; "
                              "after each certificate)", t->certs[t->ncerts - 1].cert);
    atr_conf_cert_t *c = &t->certs[t->ncerts++];
    c->cert = atr__conf_pathdup(b, &n->args[0]);
    c->cert_pos = n->args[0].pos;
    return 0;
}

static int d_key(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                 void *obj)
{
    atr_conf_tls_t *t = obj;
    (void)d;
    if (t->ncerts == 0 || t->certs[t->ncerts - 1].key != NULL)
        return atr__conf_fail(b, &n->name.pos, "key without a certificate before it");
    atr_conf_cert_t *c = &t->certs[t->ncerts - 1];
    c->key = atr__conf_pathdup(b, &n->args[0]);
    c->key_pos = n->args[0].pos;
    return 0;
}

static int d_stapling(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                      const atr__conf_directive_t *d, void *obj)
{
    atr_conf_tls_t *t = obj;
    (void)d;
    t->stapling_pos = n->args[0].pos;
    if (strcmp(n->args[0].s, "off") == 0)
        return 0;
    t->stapling = 1;
    if (strcmp(n->args[0].s, "on") != 0)
        t->stapling_file = atr__conf_pathdup(b, &n->args[0]);
    return 0;
}

static int d_client_certificate(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                                const atr__conf_directive_t *d, void *obj)
{
    atr_conf_tls_t *t = obj;
    (void)d;
    t->client_ca = atr__conf_pathdup(b, &n->args[0]);
    t->client_ca_pos = n->args[0].pos;
    return 0;
}

static int d_word(atr__conf_bctx_t *b, const atr__conf_node_t *n, const char *const *words,
                  const char *expected, int *out)
{
    int i = atr__conf_lookup(words, n->args[0].s);
    if (i < 0)
        return atr__conf_fail(b, &n->args[0].pos, "invalid %s '%s' (expected %s)", n->name.s,
                              n->args[0].s, expected);
    *out = i;
    return 0;
}

static int d_client_verify(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                           const atr__conf_directive_t *d, void *obj)
{
    static const char *const words[] = { "off", "optional", "required", NULL };
    atr_conf_tls_t *t = obj;
    int v;
    (void)d;
    if (d_word(b, n, words, "off, optional or required", &v) < 0)
        return -1;
    t->client_verify = (enum atr_client_verify)v;
    return 0;
}

static int d_client_ocsp_fail(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                              const atr__conf_directive_t *d, void *obj)
{
    static const char *const words[] = { "closed", "open", NULL };
    (void)d;
    return d_word(b, n, words, "open or closed", &((atr_conf_tls_t *)obj)->client_ocsp_fail_open);
}

#define TLS atr_conf_tls_t
const atr__conf_directive_t atr__conf_tls_tab[] = {
    { "certificate", 1, 1, 0, 1, d_certificate, ATR__CONF_NONE, 0, 0, 0 },
    { "key", 1, 1, 0, 1, d_key, ATR__CONF_NONE, 0, 0, 0 },
    ATR__CONF_ONE("stapling", d_stapling),
    ATR__CONF_ONE("client_certificate", d_client_certificate),
    ATR__CONF_ONE("client_verify", d_client_verify),
    ATR__CONF_ONOFF("client_ocsp", TLS, client_ocsp),
    ATR__CONF_ONE("client_ocsp_fail", d_client_ocsp_fail),
};
const size_t atr__conf_tls_ntab = ATR_ARRAY_SIZE(atr__conf_tls_tab);

int atr__conf_build_tls(atr__conf_bctx_t *b, const atr__conf_node_t *n, atr_conf_tls_t **out)
{
    atr_conf_tls_t *t = atr__conf_alloc(b->a, sizeof *t);
    int nc = atr__conf_count(n->child, "certificate");
    t->certs = atr__conf_alloc(b->a, sizeof *t->certs * (size_t)(nc ? nc : 1));
    t->pos = n->name.pos;
    t->client_verify = -1; /* not said: follows client_certificate */
    if (atr__conf_run_block(b, ATR__CONF_TLS, n->child, t) < 0)
        return -1;
    if (t->ncerts == 0)
        return atr__conf_fail(b, &n->name.pos, "tls block has no certificate (expected "
                              "certificate FILE; key FILE;)");
    if (t->certs[t->ncerts - 1].key == NULL)
        return atr__conf_fail(b, &t->certs[t->ncerts - 1].cert_pos, "certificate %s has no key "
                              "(expected key FILE; after it)", t->certs[t->ncerts - 1].cert);
    if ((int)t->client_verify < 0)
        t->client_verify = t->client_ca ? ATR_CLIENT_VERIFY_REQUIRED : ATR_CLIENT_VERIFY_OFF;
    if (t->client_verify != ATR_CLIENT_VERIFY_OFF && t->client_ca == NULL)
        return atr__conf_fail(b, &n->name.pos, "client_verify needs client_certificate FILE "
                              "(the CAs client certificates must chain to)");
    if (t->client_ocsp && t->client_verify == ATR_CLIENT_VERIFY_OFF)
        return atr__conf_fail(b, &n->name.pos, "client_ocsp needs client certificates "
                              "(client_certificate FILE;)");
    *out = t;
    return 0;
}

/* ---- process-wide and upstream directives -------------------------------- */

int atr__conf_d_tls_file(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                         const atr__conf_directive_t *d, void *obj)
{
    if (atr__conf_d_file(b, n, d, obj) < 0)
        return -1;
    *(atr_conf_pos_t *)(void *)((char *)obj + d->lo) = n->args[0].pos;
    return 0;
}

int atr__conf_d_session_cache(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                              const atr__conf_directive_t *d, void *obj)
{
    atr_conf_t *c = obj;
    const char *kind = n->args[0].s;
    (void)d;
    if (strcmp(kind, "off") == 0 && n->nargs == 1) {
        c->tls_session_cache = ATR_SESSION_CACHE_OFF;
        return 0;
    }
    if (strcmp(kind, "shared") == 0 && n->nargs == 2) {
        uint64_t v;
        if (atr_conf_parse_size(n->args[1].s, &v) < 0 || v < 64 * ATR__KB || v > 64 * 1024 * ATR__MB)
            return atr__conf_fail(b, &n->args[1].pos, "invalid tls_session_cache size '%s' "
                                  "(expected 64k to 64g, e.g. 10m)", n->args[1].s);
        c->tls_session_cache = ATR_SESSION_CACHE_SHARED;
        c->tls_session_cache_size = v;
        return 0;
    }
    if (strcmp(kind, "memcached") == 0 && n->nargs >= 2) {
        c->tls_session_cache = ATR_SESSION_CACHE_MEMCACHED;
        c->tls_memcached = atr__conf_alloc(b->a, sizeof *c->tls_memcached * (size_t)n->nargs);
        c->ntls_memcached = 0;
        for (int i = 1; i < n->nargs; i++) {
            socklen_t len;
            if (atr__conf_parse_addr(n->args[i].s, &c->tls_memcached[c->ntls_memcached], &len) < 0)
                return atr__conf_fail(b, &n->args[i].pos, "invalid memcached address '%s' "
                                      "(expected IP:PORT, e.g. 10.0.0.5:11211)", n->args[i].s);
            c->ntls_memcached++;
        }
        return 0;
    }
    return atr__conf_fail(b, &n->args[0].pos, "invalid tls_session_cache (expected off, shared "
                          "SIZE or memcached ADDR:PORT...)");
}

/* Every `listen ... tls` needs a host with certificates to show. */
int atr__conf_check_tls(atr__conf_bctx_t *b)
{
    const atr_conf_t *c = b->c;
    for (int i = 0; i < c->nlistens; i++)
        if (c->listens[i].tls && atr_conf_default_tls_host(c) == NULL)
            return atr__conf_fail(b, &c->listens[i].pos, "listen %s tls: no host has a tls "
                                  "block (expected tls { certificate FILE; key FILE; } in a host)",
                                  c->listens[i].text);
    return 0;
}

/* ---- hosts by name -------------------------------------------------------- */

/* "*.example.com" matches "a.example.com" (not "example.com") */
static int wildcard_matches(const char *name, atr_str_t host)
{
    size_t nl = strlen(name);
    return host.n > nl - 1 &&
           atr_str_ieq((atr_str_t){ host.p + host.n - (nl - 1), nl - 1 }, name + 1);
}

const atr_conf_host_t *atr_conf_match_host(const atr_conf_t *c, const char *p, size_t n)
{
    atr_str_t host = { p, n }, bare = host;
    /* the port; IPv6 literals keep their brackets */
    for (size_t i = host.n; i > 0; i--) {
        if (host.p[i - 1] == ':') {
            bare.n = i - 1;
            break;
        }
        if (host.p[i - 1] == ']')
            break;
    }
    if (bare.n > 1 && bare.p[bare.n - 1] == '.')
        bare.n--;
    const atr_conf_host_t *wild = NULL;
    size_t wild_len = 0;
    for (int pass = 0; pass < 2; pass++) {
        atr_str_t want = pass == 0 ? host : bare;
        for (int i = 0; i < c->nhosts; i++) {
            const atr_conf_host_t *h = &c->hosts[i];
            for (int j = 0; j < h->nnames; j++) {
                const char *name = h->names[j];
                if (name[0] != '*') {
                    if (atr_str_ieq(want, name))
                        return h;
                } else if (pass == 1 && name[1] == '.' && strlen(name) > wild_len &&
                           wildcard_matches(name, bare)) {
                    wild = h;
                    wild_len = strlen(name);
                }
            }
        }
    }
    return wild;
}

const atr_conf_host_t *atr_conf_default_tls_host(const atr_conf_t *c)
{
    const atr_conf_host_t *first = NULL;
    for (int i = 0; i < c->nhosts; i++) {
        const atr_conf_host_t *h = &c->hosts[i];
        if (h->tls == NULL)
            continue;
        for (int j = 0; j < h->nnames; j++)
            if (strcmp(h->names[j], "*") == 0)
                return h;
        if (first == NULL)
            first = h;
    }
    return first;
}
