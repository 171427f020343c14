/* FastCGI 1.0 records from the web-server side (specs-digest §3.1): encoding
 * a responder request on request id 1 and de-framing the application's
 * records in place. Pure code over bytes; the backend glue is fastcgi.c.
 * Applications are untrusted: every record is checked. */
#ifndef ATR_FCGI_PROTO_H
#define ATR_FCGI_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "backends/cgi_env.h"
#include "base/util.h"

enum { ATR_FCGI_BEGIN_REQUEST = 1, ATR_FCGI_ABORT_REQUEST = 2, ATR_FCGI_END_REQUEST = 3,
       ATR_FCGI_PARAMS = 4, ATR_FCGI_STDIN = 5, ATR_FCGI_STDOUT = 6, ATR_FCGI_STDERR = 7,
       ATR_FCGI_DATA = 8, ATR_FCGI_GET_VALUES = 9, ATR_FCGI_GET_VALUES_RESULT = 10,
       ATR_FCGI_UNKNOWN_TYPE = 11 };

#define ATR_FCGI_HEADER_LEN 8
#define ATR_FCGI_MAX_CONTENT 65535

/* BEGIN_REQUEST (role RESPONDER, FCGI_KEEP_CONN when keep_conn) followed by
 * the PARAMS stream (pairs split across records of at most 65535 bytes,
 * padded to a multiple of 8) and its empty terminating record. Returns a
 * malloc'ed buffer and its length. */
char *atr_fcgi_encode_request(const atr_cgi_env_t *env, int keep_conn, size_t *len);

/* The 8-byte header of a STDIN record carrying n bytes (n <= 65535; n = 0 is
 * the end-of-stream record). No padding is used for STDIN. */
void atr_fcgi_stdin_header(unsigned char out[ATR_FCGI_HEADER_LEN], size_t n);

/* The ABORT_REQUEST record for request id 1. */
void atr_fcgi_abort_record(unsigned char out[ATR_FCGI_HEADER_LEN]);

typedef struct atr_fcgi_dec {
    int state;
    unsigned char hdr[ATR_FCGI_HEADER_LEN];
    int hdr_len;
    int type;
    uint32_t content_left;   /* of the current record */
    uint32_t padding_left;
    unsigned char end_body[8];
    int end_len;
    int ended;               /* END_REQUEST seen: no further byte is allowed */
    int protocol_status;     /* from END_REQUEST: 0 complete, 1 cant-mpx, 2 overloaded, 3 unknown role */
    uint32_t app_status;
    int stdout_closed;       /* the empty STDOUT record was seen */
    /* STDERR content, as it arrives (may be called several times per record). */
    void (*on_stderr)(void *arg, const char *p, size_t n);
    void *arg;
} atr_fcgi_dec_t;

void atr_fcgi_dec_init(atr_fcgi_dec_t *d, void (*on_stderr)(void *, const char *, size_t),
                       void *arg);

/* De-frame in[0..len) (raw bytes from the application): STDOUT content is
 * written to out (out <= in is allowed: in-place compaction; out must have
 * room for len bytes), *produced bytes of it; every input byte is consumed
 * (partial headers are kept inside d). Returns:
 *   ATR_AGAIN  more input wanted;
 *   ATR_DONE   END_REQUEST complete (*consumed tells where it ended; bytes
 *              after it are an error for the caller to treat: the connection
 *              must not be reused);
 *   ATR_ERROR  malformed: bad version, request id != 1 (id 0 management
 *              records other than GET_VALUES_RESULT/UNKNOWN_TYPE are errors too),
 *              unknown type, BEGIN/PARAMS/STDIN types from the application,
 *              END_REQUEST body not 8 bytes, STDOUT after its end record. */
int atr_fcgi_decode(atr_fcgi_dec_t *d, char *out, const char *in, size_t len, size_t *consumed,
                    size_t *produced);

#endif
