/* libFuzzer target: the TLS transport (net/tls.c) on a real worker loop,
 * server side, with garbage during and after the handshake. Per input, a
 * sock on atr_transport_tls adopts one end of a socketpair; the target
 * drives the other end by hand. The first byte picks the mode:
 *   0  raw: the input's pieces are the ClientHello and whatever follows;
 *   1  an in-process BoringSSL client (memory BIOs) completes a handshake,
 *      then the pieces go on the socket raw (bad, truncated records, alerts);
 *   2  after a handshake the client encrypts each piece as application data
 *      (a piece may still go raw, or ask for a KeyUpdate first), then ends
 *      with or without close_notify.
 * Pieces are written whole, split, or held back and sent with the next, so
 * records split and merge across reads. The owner collects plaintext,
 * stops and starts reading, keeps bytes until its buffer is full, echoes
 * with one or several bufs (some larger than one record, some while a
 * write is pending), may stop reading until its write completes (a proxy's
 * backpressure), and may close itself from any callback; the stash and
 * kick paths of the transport run that way.
 *
 * Checks: the plaintext delivered is always a prefix of what the client
 * encrypted, and all of it when the exchange ran clean to close_notify;
 * what the client decrypts is a prefix of what the owner wrote, and all of
 * it when the owner closed with no write pending; no owner callback after
 * atr_sock_close; on_free exactly once; no handle, kick or cached buffer
 * left on the loop between inputs (ASan and LeakSanitizer do the rest).
 *
 * Input: [mode+flags] [close-at] then pieces of [len] [how] [owner] bytes. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/sock.h"
#include "net/tls.h"
#include "net/worker.h"

#include "fuzz.h"

enum { MODE_RAW, MODE_AFTER, MODE_DATA };

/* data[0] after the mode (two bits) */
#define F_TLS12 0x04        /* the client offers TLS 1.2 only */
#define F_CLOSE_NOTIFY 0x08 /* mode 2 ends with close_notify */
#define F_END_SHIFT 4       /* two bits: how the exchange ends (END_*) */
#define F_GREET 0x40        /* the owner writes once the handshake is done */
#define F_LATE 0x80         /* the owner starts reading after the first piece */
enum { END_OWNER, END_SHUT, END_CLOSE, END_SHUT_LATE };

/* a piece's len byte */
#define L_SCALE 0x40  /* length * 32 */
#define L_REPEAT 0x80 /* the bytes 40 times over (more than the owner's buffer) */
/* a piece's how byte (the driver) */
#define H_START 0x01   /* atr_sock_read_start before the piece */
#define H_SPLIT 0x02   /* written in several sends, the loop run between */
#define H_HOLD 0x04    /* not sent yet: goes with the next piece */
#define H_RAW 0x08     /* mode 2: the piece goes raw, not encrypted */
#define H_NODRAIN 0x10 /* the peer does not read this turn */
#define H_CONSUME 0x20 /* the owner gives up what it kept */
/* a piece's owner byte */
#define O_STOP 0x01         /* stop reading at the next read */
#define O_KEEP 0x02         /* keep the bytes (the buffer fills: ENOBUFS) */
#define O_ECHO 0x04         /* write back what came */
#define O_GATHER 0x08       /* ... as three bufs */
#define O_BIG 0x10          /* ... with 20 KiB more (more than one record) */
#define O_AGAIN 0x20        /* ... even with a write pending */
#define O_KEYUPDATE 0x40    /* mode 2: the client sends a KeyUpdate first */
#define O_BACKPRESSURE 0x80 /* stop reading while a write is pending, start in on_written */

typedef struct owner {
    atr_sock_t s; /* first, as the real owners have it */
} owner_t;

/* One input's state (the owner is freed by on_free; this outlives it). */
static struct {
    owner_t *o;
    int peer; /* the fuzzer's end of the socketpair */
    SSL *cl;  /* the client, modes 1 and 2 */
    int mode, flags, close_at;
    uint8_t owner_bits; /* the current piece's owner byte */
    int calls, closed, freed, ends, pending, no_drain;
    ssize_t end_code;
    uint64_t progress; /* owner callbacks + bytes the peer read */
    /* plaintext the client encrypted (sent), and what the owner got of it */
    uint8_t *sent;
    size_t nsent, cap_sent, got;
    int sent_broken; /* bytes were dropped or sent raw: no full-equality check */
    /* what the owner wrote, and what the client decrypted of it */
    uint8_t *wrote;
    size_t nwrote, cap_wrote, heard;
    int wrote_broken; /* a write failed */
    int cut;          /* the owner closed with a write pending */
    int paused;       /* reading stopped until on_written */
    int peer_eof;
    uint8_t *held; /* bytes held back for the next send */
    size_t nheld;
} run;

static atr_worker_t *w;
static SSL_CTX *server_ctx, *client_ctx;
static int baseline_handles;
static char big[20 * 1024];

/* ---- the owner ---- */

static void owner_close(void)
{
    run.closed = 1;
    run.cut = run.pending > 0;
    run.pending = 0; /* cancelled: no callback follows */
    atr_sock_close(&run.o->s);
}

/* Called at the top of every owner callback but on_free. */
static void enter(void)
{
    CHECK(!run.closed);
    CHECK(!run.freed);
    run.progress++;
    run.calls++;
}

/* The owner's own close, at its close_at-th callback; 1 when it closed. */
static int maybe_close(void)
{
    if (run.close_at != 0 && run.calls == run.close_at && !run.closed) {
        owner_close();
        return 1;
    }
    return 0;
}

/* Append p[0..n) to the record *buf of *len bytes in *cap. */
static void note(uint8_t **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (*len + n > *cap) {
        *cap = (*len + n) * 2;
        *buf = realloc(*buf, *cap);
        CHECK(*buf != NULL);
    }
    memcpy(*buf + *len, p, n);
    *len += n;
}

/* Write p[0..n) as the owner byte says: one buf, or three, with 20 KiB more. */
static void owner_write(const char *p, size_t n)
{
    atr_sock_t *s = &run.o->s;
    if (run.wrote_broken || (run.pending > 0 && !(run.owner_bits & O_AGAIN)) || run.pending >= 4)
        return;
    uv_buf_t b[4];
    unsigned nb = 0;
    if ((run.owner_bits & O_GATHER) && n >= 3) {
        b[nb++] = uv_buf_init((char *)p, (unsigned)(n / 3));
        b[nb++] = uv_buf_init((char *)p + n / 3, (unsigned)(n / 3));
        b[nb++] = uv_buf_init((char *)p + 2 * (n / 3), (unsigned)(n - 2 * (n / 3)));
    } else {
        b[nb++] = uv_buf_init((char *)p, (unsigned)n);
    }
    if (run.owner_bits & O_BIG)
        b[nb++] = uv_buf_init(big, sizeof big);
    for (unsigned i = 0; i < nb; i++)
        note(&run.wrote, &run.nwrote, &run.cap_wrote, b[i].base, b[i].len);
    int rc = atr_sock_write(s, b, nb);
    if (rc < 0)
        run.wrote_broken = 1; /* what the peer got is still a prefix of all that */
    else if (rc == 1)
        run.pending++;
    if (rc == 1 && (run.owner_bits & O_BACKPRESSURE)) {
        atr_sock_read_stop(s);
        run.paused = 1;
    }
}

static void on_read(atr_sock_t *s, ssize_t nread)
{
    enter();
    if (nread == UV_ENOBUFS) {
        CHECK(!s->reading);
    } else if (nread < 0) {
        CHECK(!s->reading && s->eof);
        run.ends++;
        run.end_code = nread;
        CHECK(run.ends == 1);
        if ((run.flags >> F_END_SHIFT & 3) != END_SHUT_LATE) { /* else the driver closes */
            owner_close();
            return;
        }
    } else {
        /* What arrived is the next part of what the client encrypted. */
        CHECK(run.got + (size_t)nread <= run.nsent);
        CHECK(memcmp(s->buf + s->len, run.sent + run.got, (size_t)nread) == 0);
        run.got += (size_t)nread;
        const char *p = s->buf + s->len;
        s->len += (uint32_t)nread;
        if (!(run.owner_bits & O_KEEP))
            s->off = s->len;
        if (run.owner_bits & O_ECHO)
            owner_write(p, (size_t)nread);
        if (run.owner_bits & O_STOP)
            atr_sock_read_stop(s);
    }
    maybe_close();
}

static void on_written(atr_sock_t *s, int status)
{
    enter();
    CHECK(run.pending > 0);
    run.pending--;
    if (status < 0)
        run.wrote_broken = 1;
    if (run.paused && run.pending == 0) {
        run.paused = 0;
        atr_sock_read_start(s);
    }
    maybe_close();
}

/* A server's handshake is done. */
static void on_connect(atr_sock_t *s, int status)
{
    enter();
    CHECK(status == 0 && atr_tls_ssl(s) != NULL);
    CHECK(run.mode != MODE_RAW); /* nobody forges an ECDHE handshake */
    if (run.flags & F_GREET)
        owner_write("hello\n", 6);
    maybe_close();
}

static void on_free(atr_sock_t *s)
{
    CHECK(run.closed && !run.freed);
    CHECK(s->refs == 0 && s->buf == NULL && s->tp_state == NULL);
    run.freed = 1;
    free(s);
    run.o = NULL;
}

static const atr_sock_cbs_t cbs = {
    .on_read = on_read,
    .on_written = on_written,
    .on_connect = on_connect,
    .on_free = on_free,
};

/* ---- the peer ---- */

/* Plaintext the client decrypted: the next part of what the owner wrote. */
static void client_read(void)
{
    char buf[16384];
    if (run.cl == NULL || !SSL_is_init_finished(run.cl))
        return;
    for (;;) {
        int n = SSL_read(run.cl, buf, sizeof buf);
        if (n <= 0)
            break;
        CHECK(run.heard + (size_t)n <= run.nwrote);
        CHECK(memcmp(buf, run.wrote + run.heard, (size_t)n) == 0);
        run.heard += (size_t)n;
    }
    ERR_clear_error();
}

/* Read what the server sent; the client takes it. */
static void peer_drain(void)
{
    char buf[65536];
    for (int i = 0; i < 64 && !run.peer_eof; i++) {
        ssize_t n = recv(run.peer, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EINTR))
                run.peer_eof = 1;
            break;
        }
        run.progress += (uint64_t)n;
        if (run.cl)
            BIO_write(SSL_get_rbio(run.cl), buf, (int)n);
    }
    client_read();
}

static int idle(void)
{
    return w->nkicks == 0;
}

/* Run the loop (and the peer's reads) until nothing moves for two turns. */
static void settle(void)
{
    int quiet = 0;
    for (int i = 0; i < 400 && quiet < 2; i++) {
        uint64_t before = run.progress;
        uv_run(&w->loop, UV_RUN_NOWAIT);
        if (!run.no_drain)
            peer_drain();
        quiet = run.progress == before && idle() ? quiet + 1 : 0;
    }
}

/* Send p[0..n) on the socket, the loop run while it is full. 0, or -1 when
 * some could not go. */
static int peer_send(const uint8_t *p, size_t n)
{
    for (int tries = 0; n > 0 && tries < 50;) {
        ssize_t k = send(run.peer, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
        } else if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
            settle();
            tries++;
        } else {
            break; /* the server is gone */
        }
    }
    return n == 0 ? 0 : -1;
}

/* The client's records to the socket, held or not. */
static int client_flush(void)
{
    const uint8_t *p;
    size_t n;
    BIO *wb = SSL_get_wbio(run.cl);
    BIO_mem_contents(wb, &p, &n);
    int rc = peer_send(p, n);
    BIO_reset(wb);
    return rc;
}

static size_t cap_held;

static void hold(const uint8_t *p, size_t n)
{
    note(&run.held, &run.nheld, &cap_held, p, n);
}

/* Send what is held, in one send or in steps of about a third. */
static int send_held(int split, int step)
{
    int rc = 0;
    size_t off = 0, chunk = split ? run.nheld / (size_t)(3 + step) + 1 : run.nheld;
    while (off < run.nheld && rc == 0) {
        size_t n = run.nheld - off < chunk ? run.nheld - off : chunk;
        rc = peer_send(run.held + off, n);
        off += n;
        if (split)
            settle();
    }
    run.nheld = 0;
    return rc;
}

static SSL *client_new(void)
{
    SSL *cl = SSL_new(client_ctx);
    CHECK(cl != NULL);
    SSL_set_bio(cl, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_connect_state(cl);
    if (run.flags & F_TLS12)
        SSL_set_max_proto_version(cl, TLS1_2_VERSION);
    return cl;
}

/* A real handshake with the server, the loop run between flights. */
static int client_handshake(void)
{
    for (int i = 0; i < 20; i++) {
        int rc = SSL_do_handshake(run.cl);
        if (client_flush() < 0)
            return 0;
        if (rc == 1) {
            settle(); /* the server takes the Finished */
            return 1;
        }
        if (SSL_get_error(run.cl, rc) != SSL_ERROR_WANT_READ)
            break;
        settle();
    }
    ERR_clear_error();
    return 0;
}

/* ---- one input ---- */

static void piece(const uint8_t *p, size_t n, uint8_t how, uint8_t own)
{
    atr_sock_t *s = run.o ? &run.o->s : NULL;
    run.owner_bits = own;
    run.no_drain = (how & H_NODRAIN) != 0;
    if (s && !run.closed && (how & H_CONSUME))
        s->off = s->len;
    if (s && !run.closed && (how & H_START))
        atr_sock_read_start(s);
    if (run.mode == MODE_DATA && !(how & H_RAW) && run.cl && !run.sent_broken) {
        if ((own & O_KEYUPDATE) && SSL_version(run.cl) == TLS1_3_VERSION)
            SSL_key_update(run.cl, SSL_KEY_UPDATE_REQUESTED);
        if (n > 0 && SSL_write(run.cl, p, (int)n) == (int)n) {
            note(&run.sent, &run.nsent, &run.cap_sent, p, n);
        }
        ERR_clear_error();
        const uint8_t *c;
        size_t nc;
        BIO_mem_contents(SSL_get_wbio(run.cl), &c, &nc);
        hold(c, nc);
        BIO_reset(SSL_get_wbio(run.cl));
    } else {
        if (run.mode == MODE_DATA && n > 0)
            run.sent_broken = 1;
        hold(p, n);
    }
    if (!(how & H_HOLD) && send_held(how & H_SPLIT, how >> 6) < 0)
        run.sent_broken = 1;
    settle();
    run.no_drain = 0;
}

/* The end: the owner closes, or the peer shuts its side or closes it, as
 * the flags say; then whoever has not closed does. */
static void finish(void)
{
    int end = run.flags >> F_END_SHIFT & 3;
    run.owner_bits = 0;
    if (send_held(0, 0) < 0)
        run.sent_broken = 1;
    if (run.cl && run.mode == MODE_DATA && (run.flags & F_CLOSE_NOTIFY) && !run.sent_broken) {
        SSL_shutdown(run.cl);
        if (client_flush() < 0)
            run.sent_broken = 1;
    }
    if (!run.closed) {
        atr_sock_t *s = &run.o->s;
        s->off = s->len; /* make room: the end must reach the owner */
        atr_sock_read_start(s);
    }
    settle();
    if (end == END_OWNER) {
        if (!run.closed)
            owner_close();
    } else if (end == END_CLOSE) {
        close(run.peer);
        run.peer = -1;
    } else {
        shutdown(run.peer, SHUT_WR);
    }
    settle();
    /* The exchange ran clean: everything arrived, and the end is as sent. */
    int clean = run.mode == MODE_DATA && !run.sent_broken && run.close_at == 0 &&
                end != END_OWNER && (run.flags & F_CLOSE_NOTIFY) && run.ends == 1;
    if (clean) {
        CHECK(run.got == run.nsent);
        CHECK(run.end_code == UV_EOF);
    }
    if (!run.closed)
        owner_close();
    int wrote_all = !run.cut && !run.wrote_broken;
    if (run.peer >= 0) {
        for (int i = 0; i < 100 && !run.peer_eof; i++)
            settle();
        if (run.mode == MODE_DATA && wrote_all && run.cl && SSL_is_init_finished(run.cl))
            CHECK(run.heard == run.nwrote);
        close(run.peer);
        run.peer = -1;
    }
    settle();
}

static void walk_count(uv_handle_t *h, void *arg)
{
    (void)h;
    ++*(int *)arg;
}

static int handles(void)
{
    int n = 0;
    uv_walk(&w->loop, walk_count, &n);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    memset(&run, 0, sizeof run);
    run.mode = data[0] & 3;
    if (run.mode > MODE_DATA)
        run.mode = MODE_DATA;
    run.flags = data[0];
    run.close_at = data[1] >= 0xc0 ? (data[1] & 0x3f) + 1 : 0;
    cap_held = 0;

    int sv[2], small = 8192;
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    /* Small socket buffers: large writes queue on both sides, reads split. */
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    run.peer = sv[1];
    run.o = calloc(1, sizeof *run.o);
    CHECK(run.o != NULL);
    atr_sock_t *s = &run.o->s;
    atr_sock_init(s, w, &atr_transport_tls, &cbs);
    CHECK(atr_sock_open(s, sv[0]) == 0);
    CHECK(atr_tls_accept(s, server_ctx) == 0);
    if (!(run.flags & F_LATE))
        atr_sock_read_start(s);

    if (run.mode != MODE_RAW) {
        run.cl = client_new();
        if (!client_handshake())
            run.sent_broken = 1;
    }
    const uint8_t *p = data + 2, *end = data + size;
    int first = 1;
    while (end - p >= 3) {
        size_t n = p[0] & 0x3f;
        if (p[0] & L_SCALE)
            n *= 32;
        uint8_t how = p[1], own = p[2];
        int times = p[0] & L_REPEAT ? 40 : 1;
        p += 3;
        if (n > (size_t)(end - p))
            n = (size_t)(end - p);
        uint8_t *many = malloc(n * (size_t)times + 1);
        CHECK(many != NULL);
        for (int i = 0; i < times; i++)
            memcpy(many + (size_t)i * n, p, n);
        piece(many, n * (size_t)times, how, own);
        free(many);
        p += n;
        if (first && (run.flags & F_LATE) && !run.closed)
            atr_sock_read_start(&run.o->s);
        first = 0;
    }
    if (p < end)
        piece(p, (size_t)(end - p), 0, 0);
    finish();

    CHECK(run.freed == 1);
    CHECK(w->nkicks == 0);
    CHECK(handles() == baseline_handles);
    SSL_free(run.cl);
    ERR_clear_error();
    free(run.sent);
    free(run.wrote);
    free(run.held);
    atr_cache_flush(w);
    return 0;
}

/* ---- start-up: a loop, a key and a certificate made here ---- */

static EVP_PKEY *make_key(void)
{
    EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    CHECK(ec != NULL && EC_KEY_generate_key(ec));
    EVP_PKEY *key = EVP_PKEY_new();
    CHECK(key != NULL && EVP_PKEY_assign_EC_KEY(key, ec));
    return key;
}

static X509 *make_cert(EVP_PKEY *key)
{
    X509 *x = X509_new();
    CHECK(x != NULL);
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const uint8_t *)"fuzz.test", -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    CHECK(X509_sign(x, key, EVP_sha256()) > 0);
    return x;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN); /* as main.c does: a closed peer is an error, not a signal */
    memset(big, 'B', sizeof big);
    w = atr_worker_new(1);
    baseline_handles = handles();

    EVP_PKEY *key = make_key();
    X509 *cert = make_cert(key);
    server_ctx = SSL_CTX_new(TLS_method());
    CHECK(server_ctx != NULL);
    CHECK(SSL_CTX_use_certificate(server_ctx, cert) == 1);
    CHECK(SSL_CTX_use_PrivateKey(server_ctx, key) == 1);
    SSL_CTX_set_min_proto_version(server_ctx, TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(server_ctx, SSL_SESS_CACHE_OFF); /* inputs stay apart */
    X509_free(cert);
    EVP_PKEY_free(key);

    client_ctx = SSL_CTX_new(TLS_method());
    CHECK(client_ctx != NULL);
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(client_ctx, SSL_SESS_CACHE_OFF);
    return 0;
}
