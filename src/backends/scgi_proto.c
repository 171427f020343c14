/* The SCGI netstring header block (specs-digest §3.2). */
#include "backends/scgi_proto.h"

#include <stdio.h>
#include <string.h>

char *atr_scgi_encode_request(const atr_cgi_env_t *env, size_t *len)
{
    const char *cl = atr_cgi_env_get(env, "CONTENT_LENGTH");
    size_t body = 0, cln, off;
    char head[24], *buf, *p;
    int i, hn;

    if (!cl)
        cl = "0";
    cln = strlen(cl);
    body = sizeof "CONTENT_LENGTH" + cln + 1 + sizeof "SCGI" + 2;
    for (i = 0; i < env->n; i++)
        if (strcmp(env->names[i], "CONTENT_LENGTH") && strcmp(env->names[i], "SCGI"))
            body += env->name_lens[i] + 1 + env->value_lens[i] + 1;
    hn = snprintf(head, sizeof head, "%zu:", body);
    p = buf = atr_xmalloc((size_t)hn + body + 1);
    memcpy(p, head, (size_t)hn);
    p += hn;
    memcpy(p, "CONTENT_LENGTH", sizeof "CONTENT_LENGTH");
    p += sizeof "CONTENT_LENGTH";
    memcpy(p, cl, cln + 1);
    p += cln + 1;
    memcpy(p, "SCGI\0" "1", sizeof "SCGI\0" "1");
    p += sizeof "SCGI\0" "1";
    for (i = 0; i < env->n; i++) {
        if (!strcmp(env->names[i], "CONTENT_LENGTH") || !strcmp(env->names[i], "SCGI"))
            continue;
        off = env->name_lens[i] + 1;
        memcpy(p, env->names[i], off);
        p += off;
        off = env->value_lens[i] + 1;
        memcpy(p, env->values[i], off);
        p += off;
    }
    *p++ = ',';
    *len = (size_t)(p - buf);
    return buf;
}
