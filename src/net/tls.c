/* The TLS transport (net/tls.h). Reads: libuv reads ciphertext into a
 * per-thread scratch buffer, BoringSSL takes it through our BIO (it reads
 * no further ahead than the record it is on), and plaintext goes into the
 * owner's input buffer. What BoringSSL has not taken when the owner stops
 * reading (its buffer full, or it paused) is kept in a stash, and handed
 * over on a kick when the owner reads again: no readiness event would come
 * for bytes already read. Writes: records are gathered in a per-thread
 * staging buffer while one SSL call runs, then written to the socket in one
 * try-write; what the socket does not take is queued in order, and the
 * owner's atr_sock_write completes when the queue has drained. */
#include "net/tls.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/x509v3.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/socache.h"
#include "base/util.h"
#include "net/worker.h"
#include "tls/ctx.h"

/* "10.0.0.7", "::1": an address, not a name. */
typedef struct tls {
    SSL *ssl;                 /* first: atr_tls_ssl reads it */
    const uint8_t *in;        /* ciphertext offered to BoringSSL (scratch or stash) */
    size_t in_len;
    uint8_t *stash;           /* read, not yet taken */
    size_t stash_len;
    int inflight;             /* ciphertext writes queued */
    uv_write_t *owner_wr[4];  /* the owner's writes, completed when inflight reaches 0 */
    uint8_t nowner;
    int write_status;         /* the first error of the queued writes */
    uint32_t err;             /* the error that failed the handshake (ERR_get_error) */
    SSL_SESSION *found;       /* a session cache lookup's answer, until BoringSSL asks again */
    uint8_t lookup;           /* LOOKUP_*: the session cache lookup of this handshake */
    unsigned client : 1, handshake_done : 1, raw_reading : 1, raw_eof : 1, raw_reset : 1,
        failed : 1, connecting : 1;
} tls_t;

/* A queued ciphertext write. */
typedef struct chunk {
    uv_write_t wr;
    size_t len;
    char data[];
} chunk_t;

/* Per thread: ciphertext read (used only inside one read callback), and
 * records made for one sock (stage.owner), sent together: the records of an
 * SSL call, and a server's handshake end (its session ticket) with the
 * answer to the request that came with the client's Finished, when the
 * owner answers at once. Whoever stages for another sock sends the owner's
 * bytes first, so nothing is held past the work that made it. */
#define SCRATCH (32u << 10)
#define STAGE (64u << 10)
#define ONE_RECORD 16384
static __thread uint8_t scratch[SCRATCH];
static __thread struct {
    char buf[STAGE];
    size_t len;
    atr_sock_t *owner;
} stage;

enum { LOOKUP_NONE = 0, LOOKUP_PENDING, LOOKUP_SYNC, LOOKUP_DONE };

static tls_t *tls_of(const atr_sock_t *s)
{
    return s->tp_state;
}

/* ---- writing ciphertext ---- */

static void chunk_written(uv_write_t *wr, int status)
{
    atr_sock_t *s = wr->data;
    tls_t *t = tls_of(s);
    free(wr);
    t->inflight--;
    if (status < 0 && t->write_status == 0)
        t->write_status = status;
    if (t->inflight == 0) {
        int n = t->nowner;
        t->nowner = 0;
        for (int i = 0; i < n; i++)
            atr_sock_written(t->owner_wr[i], t->write_status);
    }
    atr_sock_release(s);
}

/* Send p[0..n): try-write when nothing is queued, queue the rest. */
static int send_raw(atr_sock_t *s, const char *p, size_t n)
{
    tls_t *t = tls_of(s);
    if (t->write_status < 0)
        return t->write_status;
    if (t->inflight == 0) {
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
        int rc = uv_try_write(&s->io.stream, &b, 1);
        if (rc >= 0) {
            p += rc;
            n -= (size_t)rc;
        } else if (rc != UV_EAGAIN) {
            return t->write_status = rc;
        }
        if (n == 0)
            return 0;
    }
    chunk_t *c = atr_xmalloc(sizeof *c + n);
    memcpy(c->data, p, n);
    c->len = n;
    c->wr.data = s;
    uv_buf_t b = uv_buf_init(c->data, (unsigned)n);
    int rc = uv_write(&c->wr, &s->io.stream, &b, 1, chunk_written);
    if (rc < 0) {
        free(c);
        return t->write_status = rc;
    }
    t->inflight++;
    atr_sock_hold(s);
    return 0;
}

/* Send what is staged, to the sock it was staged for. */
static int stage_send(void)
{
    atr_sock_t *s = stage.owner;
    size_t n = stage.len;
    stage.owner = NULL;
    stage.len = 0;
    return n > 0 ? send_raw(s, stage.buf, n) : 0;
}

/* Send what was staged for s. */
static int flush(atr_sock_t *s)
{
    return stage.owner == s ? stage_send() : 0;
}

/* Forget what was staged for s (it is failing or going). */
static void stage_drop(atr_sock_t *s)
{
    if (stage.owner == s) {
        stage.owner = NULL;
        stage.len = 0;
    }
}

/* ---- the BIO between BoringSSL and the sock ---- */

static int bio_read(BIO *b, char *out, int len)
{
    tls_t *t = tls_of(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    if (t->in_len == 0) {
        if (t->raw_eof)
            return 0;
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = ATR_MIN((size_t)len, t->in_len);
    memcpy(out, t->in, n);
    t->in += n;
    t->in_len -= n;
    return (int)n;
}

static int bio_write(BIO *b, const char *p, int len)
{
    atr_sock_t *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (stage.owner != s && stage.owner != NULL)
        stage_send();
    if (stage.len + (size_t)len > sizeof stage.buf && flush(s) < 0)
        return -1;
    stage.owner = s;
    if ((size_t)len > sizeof stage.buf)
        return send_raw(s, p, (size_t)len) < 0 ? -1 : len;
    memcpy(stage.buf + stage.len, p, (size_t)len);
    stage.len += (size_t)len;
    return len;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_method_init(void)
{
    bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "atrium-sock");
    BIO_meth_set_read(bio_method, bio_read);
    BIO_meth_set_write(bio_method, bio_write);
    BIO_meth_set_ctrl(bio_method, bio_ctrl);
}

/* ---- setting up ---- */

static int tls_new(atr_sock_t *s, SSL_CTX *ctx)
{
    pthread_once(&bio_once, bio_method_init);
    tls_t *t = atr_xcalloc(1, sizeof *t);
    t->ssl = SSL_new(ctx);
    BIO *bio = BIO_new(bio_method);
    if (t->ssl == NULL || bio == NULL) {
        SSL_free(t->ssl);
        BIO_free(bio);
        free(t);
        return UV_ENOMEM;
    }
    BIO_set_data(bio, s);
    BIO_set_init(bio, 1);
    SSL_set_bio(t->ssl, bio, bio); /* one reference, taken by the SSL */
    /* What only the handshake needs is freed after it: less per idle connection. */
    SSL_set_shed_handshake_config(t->ssl, 1);
    s->tp_state = t;
    return 0;
}

int atr_tls_accept(atr_sock_t *s, SSL_CTX *ctx)
{
    int rc = tls_new(s, ctx);
    if (rc == 0)
        SSL_set_accept_state(tls_of(s)->ssl);
    return rc;
}

int atr_tls_client(atr_sock_t *s, SSL_CTX *ctx, const char *sni, SSL_SESSION *session)
{
    int rc = tls_new(s, ctx);
    if (rc < 0)
        return rc;
    tls_t *t = tls_of(s);
    t->client = 1;
    SSL_set_connect_state(t->ssl);
    SSL_set_renegotiate_mode(t->ssl, ssl_renegotiate_never);
    if (atr_tls_client_set_name(t->ssl, sni) < 0)
        return UV_ENOMEM;
    if (session)
        SSL_set_session(t->ssl, session);
    return 0;
}

static void tls_destroy(atr_sock_t *s)
{
    tls_t *t = tls_of(s);
    if (t == NULL)
        return;
    stage_drop(s);
    SSL_free(t->ssl);
    SSL_SESSION_free(t->found);
    free(t->stash);
    free(t);
    s->tp_state = NULL;
}

const char *atr_tls_why(const atr_sock_t *s, char *buf, size_t n)
{
    tls_t *t = tls_of(s);
    long v = t && t->ssl ? SSL_get_verify_result(t->ssl) : X509_V_OK;
    if (t && t->client && v != X509_V_OK)
        snprintf(buf, n, "certificate verify failed: %s", X509_verify_cert_error_string(v));
    else if (t && t->err)
        snprintf(buf, n, "%s", ERR_reason_error_string(t->err));
    else if (t && t->write_status < 0)
        snprintf(buf, n, "%s", uv_strerror(t->write_status));
    else
        snprintf(buf, n, "handshake failed");
    return buf;
}

/* ---- reading ---- */

static void raw_start(atr_sock_t *s);
static void raw_stop(atr_sock_t *s);

/* The handshake failed: remember why; the owner hears of it. */
static void fail(atr_sock_t *s)
{
    tls_t *t = tls_of(s);
    t->failed = 1;
    t->err = (uint32_t)ERR_peek_last_error();
    ERR_clear_error();
    flush(s); /* the alert */
    raw_stop(s);
}

static void connected(atr_sock_t *s, int status)
{
    tls_t *t = tls_of(s);
    t->connecting = 0;
    if (!s->reading)
        raw_stop(s);
    if (!s->closing)
        s->cb->on_connect(s, status);
    atr_sock_release(s); /* the handshake's */
}

/* Run the handshake; 1 when done, 0 waiting for the peer, -1 failed. */
static int handshake(atr_sock_t *s)
{
    tls_t *t = tls_of(s);
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
        /* What the handshake's end wrote (a server's ticket, a client's
         * Finished) waits for the owner's first bytes: drive flushes. */
        t->handshake_done = 1;
        if (t->connecting)
            connected(s, 0);
        else if (s->cb->on_connect)
            s->cb->on_connect(s, 0); /* a server's handshake is done */
        return !s->closing;
    }
    int e = SSL_get_error(t->ssl, rc);
    if ((e == SSL_ERROR_WANT_READ && !t->raw_eof) || e == SSL_ERROR_PENDING_SESSION ||
        e == SSL_ERROR_WANT_CERTIFICATE_VERIFY) {
        flush(s);
        return 0; /* the peer's next bytes, or the session cache's or OCSP's answer (a kick) */
    }
    fail(s);
    if (t->connecting)
        connected(s, UV_EPROTO);
    else if (s->reading)
        atr_sock_deliver(s, UV_EPROTO, 0);
    return -1;
}

/* Plaintext to the owner while it reads. */
static void pump(atr_sock_t *s)
{
    tls_t *t = tls_of(s);
    while (s->reading && !s->closing) {
        char *base;
        size_t room;
        atr_sock_room(s, &base, &room);
        if (room == 0) {
            atr_sock_deliver(s, UV_ENOBUFS, 0);
            return;
        }
        int n = SSL_read(t->ssl, base, (int)ATR_MIN(room, (size_t)INT32_MAX));
        int e = n > 0 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, n);
        if (n > 0) {
            atr_sock_deliver(s, n, (size_t)n == room);
            /* Nothing read and not taken, nothing decrypted and not handed out:
             * another SSL_read could only say "want read". */
            if (t->in_len == 0 && !t->raw_eof && SSL_pending(t->ssl) == 0)
                return;
            continue;
        }
        if (e == SSL_ERROR_WANT_READ && !t->raw_eof)
            return;
        if (e != SSL_ERROR_ZERO_RETURN)
            ERR_clear_error();
        /* close_notify is a clean end; a cut connection (or bad record) is not */
        atr_sock_deliver(s, e == SSL_ERROR_ZERO_RETURN ? UV_EOF : t->raw_reset ? UV_ECONNRESET
                                                                                : UV_EPROTO, 0);
        return;
    }
}

/* Keep what BoringSSL has not taken. */
static void keep_rest(tls_t *t)
{
    if (t->in_len == 0) {
        free(t->stash);
        t->stash = NULL;
        t->stash_len = 0;
    } else if (t->in != t->stash) {
        uint8_t *p = atr_xmalloc(t->in_len);
        memcpy(p, t->in, t->in_len);
        free(t->stash);
        t->stash = p;
        t->stash_len = t->in_len;
    } else {
        t->stash_len = t->in_len;
    }
    t->in = NULL;
    t->in_len = 0;
}

static void drive(atr_sock_t *s)
{
    tls_t *t = tls_of(s);
    if (!t->failed && (t->handshake_done || handshake(s) > 0))
        pump(s);
    flush(s); /* what the handshake's end or a KeyUpdate left staged */
}

static void on_raw_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    atr_sock_t *s = stream->data;
    tls_t *t = tls_of(s);
    if (nread == 0 || s->closing)
        return;
    atr_sock_hold(s);
    if (nread < 0) {
        t->raw_eof = 1;
        t->raw_reset = nread != UV_EOF;
        raw_stop(s);
    } else if (t->stash_len > 0) {
        t->stash = atr_xrealloc(t->stash, t->stash_len + (size_t)nread);
        memcpy(t->stash + t->stash_len, buf->base, (size_t)nread);
        t->stash_len += (size_t)nread;
    }
    if (t->stash_len > 0) {
        t->in = t->stash;
        t->in_len = t->stash_len;
    } else if (nread > 0) {
        t->in = (const uint8_t *)buf->base;
        t->in_len = (size_t)nread;
    }
    drive(s);
    keep_rest(t);
    atr_sock_release(s);
}

static void raw_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init((char *)scratch, sizeof scratch);
}

static void raw_start(atr_sock_t *s)
{
    tls_t *t = tls_of(s);
    if (!t->raw_reading && !t->raw_eof && !t->failed &&
        uv_read_start(&s->io.stream, raw_alloc, on_raw_read) == 0)
        t->raw_reading = 1;
}

static void raw_stop(atr_sock_t *s)
{
    tls_t *t = tls_of(s);
    if (t->raw_reading) {
        uv_read_stop(&s->io.stream);
        t->raw_reading = 0;
    }
}

/* The owner reads again: what is held (stash, a decrypted record, an end
 * already seen) is handed over on the loop's next turn. */
static void tls_kick(atr_sock_t *s)
{
    tls_t *t = tls_of(s);
    atr_sock_hold(s);
    if (t->stash_len > 0) {
        t->in = t->stash;
        t->in_len = t->stash_len;
    }
    drive(s);
    keep_rest(t);
    atr_sock_release(s);
}

static int tls_read_start(atr_sock_t *s)
{
    tls_t *t = tls_of(s);
    if (t == NULL || t->failed)
        return UV_EPROTO;
    raw_start(s);
    if (t->stash_len > 0 || SSL_pending(t->ssl) > 0 || (t->raw_eof && t->handshake_done))
        atr_sock_kick(s);
    return 0;
}

static void tls_read_stop(atr_sock_t *s)
{
    tls_t *t = tls_of(s);
    if (t && !t->connecting)
        raw_stop(s);
}

/* ---- connecting (client side) ---- */

static void on_tcp_connect(uv_connect_t *req, int status)
{
    atr_sock_t *s = req->data;
    tls_t *t = tls_of(s);
    free(req);
    if (s->closing) {
        atr_sock_release(s); /* the connect request's */
        return;
    }
    if (status < 0) {
        s->cb->on_connect(s, status);
        atr_sock_release(s);
        return;
    }
    uv_tcp_nodelay(&s->io.tcp, 1);
    /* The connect request's reference becomes the handshake's. */
    t->connecting = 1;
    raw_start(s);
    handshake(s);
    flush(s);
}

static int tls_connect(atr_sock_t *s, uv_connect_t *req, const struct sockaddr *addr)
{
    if (tls_of(s) == NULL)
        return UV_EINVAL; /* atr_tls_client first */
    return uv_tcp_connect(req, &s->io.tcp, addr, on_tcp_connect);
}

/* ---- writing plaintext ---- */

static int tls_try_write(atr_sock_t *s, uv_buf_t **bufs, unsigned *n)
{
    tls_t *t = tls_of(s);
    if (t == NULL || !t->handshake_done || t->failed)
        return UV_EPROTO;
    uv_buf_t *b = *bufs;
    size_t total = 0;
    for (unsigned i = 0; i < *n; i++)
        total += b[i].len;
    /* A small gather (a head and a short body) becomes one record. */
    char one[ONE_RECORD];
    uv_buf_t whole;
    unsigned nb = *n;
    if (nb > 1 && total <= sizeof one) {
        size_t off = 0;
        for (unsigned i = 0; i < nb; i++) {
            memcpy(one + off, b[i].base, b[i].len);
            off += b[i].len;
        }
        whole = uv_buf_init(one, (unsigned)total);
        b = &whole;
        nb = 1;
    }
    for (unsigned i = 0; i < nb; i++) {
        size_t off = 0;
        while (off < b[i].len) {
            int chunk = (int)ATR_MIN(b[i].len - off, (size_t)1 << 30);
            int rc = SSL_write(t->ssl, b[i].base + off, chunk);
            if (rc <= 0) {
                ERR_clear_error();
                stage_drop(s);
                return t->write_status < 0 ? t->write_status : UV_EPROTO;
            }
            off += (size_t)rc;
        }
    }
    int rc = flush(s);
    if (rc < 0)
        return rc;
    *bufs += *n;
    *n = 0;
    return t->inflight > 0;
}

/* Everything is encrypted and queued already: complete wr when it is sent. */
static int tls_write(atr_sock_t *s, uv_write_t *wr, const uv_buf_t *bufs, unsigned n)
{
    tls_t *t = tls_of(s);
    (void)bufs;
    (void)n;
    if (t->nowner == ATR_ARRAY_SIZE(t->owner_wr))
        return UV_EBUSY; /* owners write again only after on_written */
    t->owner_wr[t->nowner++] = wr;
    return 0;
}

/* close_notify before the connection closes, so that the peer can tell our
 * end from a cut (a body that ends with the connection needs it). Sent only
 * when nothing is queued before it, and never queued itself. */
static void tls_closing(atr_sock_t *s)
{
    tls_t *t = tls_of(s);
    if (t == NULL || !t->handshake_done || t->failed || t->inflight > 0 || s->reset) {
        stage_drop(s);
        return;
    }
    SSL_shutdown(t->ssl); /* staged after whatever waits there for s */
    ERR_clear_error();
    if (stage.owner == s) {
        uv_buf_t b = uv_buf_init(stage.buf, (unsigned)stage.len);
        uv_try_write(&s->io.stream, &b, 1);
        stage_drop(s);
    }
}

static void tls_init(atr_sock_t *s, uv_loop_t *loop)
{
    uv_tcp_init(loop, &s->io.tcp);
}

const atr_transport_t atr_transport_tls = {
    .name = "tls",
    .init = tls_init,
    .connect = tls_connect,
    .read_start = tls_read_start,
    .read_stop = tls_read_stop,
    .try_write = tls_try_write,
    .write = tls_write,
    .kick = tls_kick,
    .closing = tls_closing,
    .destroy = tls_destroy,
};

/* ---- TLS 1.2 session IDs in the worker's session cache ---- */

static atr_sock_t *sock_of_ssl(SSL *ssl)
{
    return BIO_get_data(SSL_get_rbio(ssl));
}

/* "tls:" + the session ID (at most 32 bytes). */
static size_t session_key(uint8_t *key, const uint8_t *id, size_t len)
{
    memcpy(key, "tls:", 4);
    memcpy(key + 4, id, len);
    return 4 + len;
}

static int session_new(SSL *ssl, SSL_SESSION *sess)
{
    atr_worker_t *w = atr_sock_worker(sock_of_ssl(ssl));
    unsigned idlen;
    const uint8_t *id = SSL_SESSION_get_id(sess, &idlen);
    uint8_t key[4 + SSL_MAX_SSL_SESSION_ID_LENGTH], *der;
    size_t n;
    if (w->session_local == NULL || idlen == 0 || idlen > SSL_MAX_SSL_SESSION_ID_LENGTH ||
        !SSL_SESSION_to_bytes(sess, &der, &n))
        return 0;
    atr_socache_set(w->session_local, key, session_key(key, id, idlen), der, n,
                    (uint32_t)SSL_SESSION_get_timeout(sess));
    OPENSSL_free(der);
    return 0; /* the session stays BoringSSL's */
}

static void session_found(void *arg, int status, const uint8_t *val, size_t len)
{
    atr_sock_t *s = arg;
    tls_t *t = tls_of(s);
    if (t && status == 1)
        t->found = SSL_SESSION_from_bytes(val, len, SSL_get_SSL_CTX(t->ssl));
    if (t) {
        int async = t->lookup == LOOKUP_PENDING;
        t->lookup = LOOKUP_DONE;
        if (async)
            atr_sock_kick(s); /* run the handshake on */
    }
    atr_sock_release(s);
}

/* BoringSSL asks for a session by ID: the answer when a lookup finished,
 * "pending" while it runs (the handshake waits for a kick). */
static SSL_SESSION *session_get(SSL *ssl, const uint8_t *id, int len, int *copy)
{
    atr_sock_t *s = sock_of_ssl(ssl);
    tls_t *t = tls_of(s);
    atr_worker_t *w = atr_sock_worker(s);
    *copy = 0;
    if (t->lookup == LOOKUP_NONE && w->session_local && len > 0 &&
        len <= SSL_MAX_SSL_SESSION_ID_LENGTH) {
        uint8_t key[4 + SSL_MAX_SSL_SESSION_ID_LENGTH];
        t->lookup = LOOKUP_SYNC;
        atr_sock_hold(s);
        atr_socache_get(w->session_local, key, session_key(key, id, (size_t)len), session_found,
                        s);
        if (t->lookup == LOOKUP_SYNC)
            t->lookup = LOOKUP_PENDING;
    }
    if (t->lookup == LOOKUP_PENDING)
        return SSL_magic_pending_session_ptr();
    SSL_SESSION *found = t->found; /* our reference goes to BoringSSL */
    t->found = NULL;
    return found;
}

static const atr_tls_session_hooks_t session_hooks = {
    .new_session = session_new,
    .get_session = session_get,
};

void atr_tls_sessions_register(void)
{
    atr_tls_use_session_hooks(&session_hooks);
}

/* ---- what gateways are told ---- */

typedef struct vars {
    const char **kv;
    int n;
    char *buf;
    size_t cap, used;
} vars_t;

static void var(vars_t *v, const char *name, const char *value)
{
    if (value == NULL || v->n == ATR_TLS_VARS || v->used + strlen(value) + 1 > v->cap)
        return;
    size_t len = strlen(value) + 1;
    memcpy(v->buf + v->used, value, len);
    v->kv[2 * v->n] = name;
    v->kv[2 * v->n + 1] = v->buf + v->used;
    v->used += len;
    v->n++;
}

/* A name as mod_ssl writes it (RFC 2253). */
static void name_var(vars_t *v, const char *name, X509_NAME *xn)
{
    char text[512] = "";
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return;
    X509_NAME_print_ex(b, xn, 0, XN_FLAG_RFC2253);
    int n = BIO_read(b, text, sizeof text - 1);
    text[n > 0 ? n : 0] = '\0';
    BIO_free(b);
    var(v, name, text);
}

static void client_cert_vars(vars_t *v, SSL *ssl)
{
    X509 *peer = SSL_get_peer_certificate(ssl);
    if (peer == NULL) {
        var(v, "SSL_CLIENT_VERIFY", "NONE");
        return;
    }
    long rc = SSL_get_verify_result(ssl);
    char verify[128];
    snprintf(verify, sizeof verify, rc == X509_V_OK ? "SUCCESS" : "FAILED:%s",
             X509_verify_cert_error_string(rc));
    var(v, "SSL_CLIENT_VERIFY", verify);
    name_var(v, "SSL_CLIENT_S_DN", X509_get_subject_name(peer));
    name_var(v, "SSL_CLIENT_I_DN", X509_get_issuer_name(peer));
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(peer), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    if (hex)
        var(v, "SSL_CLIENT_M_SERIAL", hex);
    OPENSSL_free(hex);
    BN_free(bn);
    X509_free(peer);
}

int atr_tls_vars(const atr_sock_t *s, const char **kv, char *buf, size_t cap)
{
    vars_t v = { kv, 0, buf, cap, 0 };
    SSL *ssl = atr_tls_ssl(s);
    kv[0] = NULL;
    if (ssl == NULL)
        return 0;
    var(&v, "SSL_PROTOCOL", SSL_get_version(ssl));
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    if (c)
        var(&v, "SSL_CIPHER", SSL_CIPHER_get_name(c));
    var(&v, "SSL_SESSION_RESUMED", SSL_session_reused(ssl) ? "Resumed" : "Initial");
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (sni)
        var(&v, "SSL_TLS_SNI", sni);
    client_cert_vars(&v, ssl);
    kv[2 * v.n] = NULL;
    return v.n;
}
