/* The heartbeat directives of the main context (docs/heartbeat.md):
 * heartbeat_listen, heartbeat_send, heartbeat_key and heartbeat_storage.
 * heartbeat_interval and heartbeat_max_servers are plain values in
 * conf_build.c's table. Files are read and checked here, at load, so that a
 * missing key or storage directory is a FILE:LINE:COL error of -t and of a
 * reload, not a surprise on the control loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "conf/conf_priv.h"

/* A shorter shared secret is guessable; a longer one is surely a wrong file. */
#define KEY_MIN 16
#define KEY_MAX 4096

static int is_any(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)(const void *)ss)->sin_addr.s_addr == INADDR_ANY;
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr);
}

/* heartbeat_listen ADDR:PORT: a multicast group (joined), a local unicast
 * address, or the wildcard (0.0.0.0:PORT, unicast beats to any address).
 * heartbeat_send ADDR:PORT: a multicast group or one monitor's address. */
int atr__conf_d_hb_addr(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                        const atr__conf_directive_t *d, void *obj)
{
    atr_conf_heartbeat_t *hb = &((atr_conf_t *)obj)->hb;
    int send = strcmp(d->name, "heartbeat_send") == 0;
    struct sockaddr_storage *ss = send ? &hb->send_addr : &hb->listen_addr;
    if (atr__conf_parse_addr(n->args[0].s, ss, send ? &hb->send_addrlen : &hb->listen_addrlen) < 0)
        return atr__conf_fail(b, &n->args[0].pos,
                              "invalid %s address '%s' (expected IP:PORT, "
                              "e.g. 239.0.0.1:27999)",
                              d->name, n->args[0].s);
    if (send && is_any(ss))
        return atr__conf_fail(b, &n->args[0].pos,
                              "heartbeat_send needs a destination, not "
                              "the wildcard '%s' (a multicast group or a monitor's address)",
                              n->args[0].s);
    *(send ? &hb->send : &hb->listen) = atr__conf_tokdup(b, &n->args[0]);
    *(send ? &hb->send_pos : &hb->listen_pos) = n->args[0].pos;
    return 0;
}

/* heartbeat_key FILE: the shared HMAC key, the file's bytes without the
 * blanks and newlines at its end (so `echo secret > FILE` works). */
int atr__conf_d_hb_key(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                       const atr__conf_directive_t *d, void *obj)
{
    atr_conf_heartbeat_t *hb = &((atr_conf_t *)obj)->hb;
    const atr__conf_tok_t *t = &n->args[0];
    char *text;
    size_t len;
    (void)d;
    if (t->len == 0)
        return atr__conf_fail(b, &t->pos, "'heartbeat_key' needs a path");
    char *path = atr__conf_pathdup(b, t);
    int rc = atr_read_file(path, 64 * 1024, &text, &len);
    if (rc < 0)
        return atr__conf_fail(b, &t->pos, "heartbeat_key '%s': %s", path,
                              rc == -EFBIG ? "file too large" : strerror(-rc));
    while (len > 0 && strchr(" \t\r\n", text[len - 1]) != NULL)
        len--;
    if (len < KEY_MIN || len > KEY_MAX) {
        free(text);
        return atr__conf_fail(b, &t->pos,
                              "heartbeat_key '%s': the key is %zu bytes "
                              "(expected %d to %d)",
                              t->s, len, KEY_MIN, KEY_MAX);
    }
    hb->key = atr__conf_alloc(b->a, len);
    memcpy(hb->key, text, len);
    hb->keylen = len;
    explicit_bzero(text, len);
    free(text);
    hb->key_file = path;
    hb->key_pos = t->pos;
    return 0;
}

/* heartbeat_storage FILE: written by rename from FILE.tmp.XXXXXX, so the
 * directory must exist and be writable. */
int atr__conf_d_hb_storage(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                           const atr__conf_directive_t *d, void *obj)
{
    atr_conf_heartbeat_t *hb = &((atr_conf_t *)obj)->hb;
    const atr__conf_tok_t *t = &n->args[0];
    char dir[4096];
    (void)d;
    if (t->len == 0 || t->s[t->len - 1] == '/')
        return atr__conf_fail(b, &t->pos, "'heartbeat_storage' needs a file path");
    char *path = atr__conf_pathdup(b, t);
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    if (access(dir, W_OK | X_OK) < 0)
        return atr__conf_fail(b, &t->pos, "heartbeat_storage '%s': directory %s: %s", path, dir,
                              strerror(errno));
    hb->storage = path;
    hb->storage_pos = t->pos;
    return 0;
}

/* After the whole file: what only makes sense together. */
int atr__conf_check_heartbeat(atr__conf_bctx_t *b)
{
    const atr_conf_heartbeat_t *hb = &b->c->hb;
    if (hb->storage != NULL && hb->listen == NULL)
        return atr__conf_fail(b, &hb->storage_pos,
                              "heartbeat_storage needs heartbeat_listen "
                              "(it records the beats received)");
    return 0;
}
