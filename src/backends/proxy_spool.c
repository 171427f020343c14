/* Chunked request bodies for protocols that need the length first (FastCGI,
 * SCGI and CGI send CONTENT_LENGTH before the body). The core reads the whole
 * body into an unlinked temporary file under spool_dir, then sends the
 * request as if it had come with that Content-Length, reading the file back
 * one piece per backend write. The client's head is copied before it leaves
 * the input buffer, since the encoder needs it after the body. Limits are
 * the client's: max_body_size (413) and body_timeout (408). Reads and writes
 * of the file are synchronous: it lives in the page cache, as static files
 * do. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/log.h"
#include "backends/proxy_priv.h"

#define PIECE (64 * 1024) /* bytes read back per backend write */

struct atr_spool {
    int fd;
    uint64_t size, off;   /* bytes spooled; bytes handed to the backend so far */
    char *head_copy;      /* the arena behind msg's views */
    atr_http_msg_t msg;   /* the client's head, with its views copied */
    char buf[PIECE];
};

static int open_spool(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
        return fd;
    /* A filesystem without O_TMPFILE: create, then unlink at once. */
    char path[4096];
    snprintf(path, sizeof path, "%s/atrium-spool-XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    return fd;
}

void atr__px_spool_start(atr_proxy_t *px)
{
    atr_req_t *r = px->r;
    const char *dir = px->wg->gen->conf->spool_dir;
    atr_spool_t *sp = atr_xmalloc(sizeof *sp);
    sp->fd = open_spool(dir);
    sp->size = sp->off = 0;
    sp->head_copy = atr_http_msg_copy(r->msg, &sp->msg);
    px->spool = sp;
    px->phase = PX_SPOOLING;
    atr_req_head_done(r);
    if (sp->fd < 0) {
        ATR_ERROR("spool_dir %s: cannot create a temporary file: %s", dir, strerror(errno));
        atr__px_fail(px, 500, "cannot spool the request body");
        return;
    }
    atr__px_spool_pump(px);
}

void atr__px_spool_pump(atr_proxy_t *px)
{
    atr_req_t *r = px->r;
    atr_spool_t *sp = px->spool;
    for (;;) {
        atr_str_t v[ATR_MAX_OUT_BUFS];
        int n = 0;
        int rc = atr_req_body_read(r, v, ATR_MAX_OUT_BUFS, &n);
        if (rc == ATR_ERROR) {
            r->resp_close = 1;
            atr__px_fail(px, r->body_error ? r->body_error : 400,
                         r->body_error ? "bad request body" : "client went away during the body");
            return;
        }
        for (int i = 0; i < n; i++) {
            if (atr_write_all(sp->fd, v[i].p, v[i].n) < 0) {
                ATR_ERROR("spool_dir %s: cannot write the request body: %s",
                          px->wg->gen->conf->spool_dir, strerror(errno));
                r->resp_close = 1;
                atr__px_fail(px, 500, "cannot spool the request body");
                return;
            }
            sp->size += v[i].n;
        }
        if (r->body_pending)
            atr_req_body_consumed(r);
        if (rc == ATR_DONE)
            break;
        if (n == 0)
            return; /* atr_proxy_on_body_ready resumes */
    }
    /* The whole body is here: the request goes on with a length. */
    sp->msg.body = ATR_BODY_LENGTH;
    sp->msg.content_length = sp->size;
    px->req_framing = ATR_BODY_LENGTH;
    atr__px_begin(px, &sp->msg);
}

int atr__px_spool_next(atr_proxy_t *px, atr_str_t *v)
{
    atr_spool_t *sp = px->spool;
    size_t want = (size_t)ATR_MIN(sp->size - sp->off, (uint64_t)PIECE);
    ssize_t got;
    do
        got = pread(sp->fd, sp->buf, want, (off_t)sp->off);
    while (got < 0 && errno == EINTR);
    if (want > 0 && got <= 0)
        return ATR_ERROR;
    *v = (atr_str_t){ sp->buf, want ? (size_t)got : 0 };
    sp->off += v->n;
    return sp->off == sp->size ? ATR_DONE : ATR_AGAIN;
}

void atr__px_spool_free(atr_proxy_t *px)
{
    atr_spool_t *sp = px->spool;
    if (sp == NULL)
        return;
    if (sp->fd >= 0)
        close(sp->fd);
    free(sp->head_copy);
    free(sp);
    px->spool = NULL;
}
