/* Body decoding shared by both directions (client request bodies, backend
 * response bodies): Content-Length, chunked, or until close. Pure code. */
#ifndef ATR_BODY_H
#define ATR_BODY_H

#include "http/chunked.h"
#include "http/http_parse.h"

enum atr_body_mode { ATR_BM_NONE = 0, ATR_BM_LENGTH, ATR_BM_CHUNKED, ATR_BM_CLOSE };

/* Body decoding state for one message (client request or backend response). */
typedef struct atr_body {
    enum atr_body_mode mode;
    uint64_t remaining;          /* ATR_BM_LENGTH */
    atr_chunked_t chunked;       /* ATR_BM_CHUNKED */
    uint64_t total;              /* data bytes seen */
    int done;
} atr_body_t;

void atr_body_init(atr_body_t *b, enum atr_http_body framing, uint64_t length);
/* Decode body bytes from in[0..len): up to max views of data into out[],
 * *consumed input bytes used. Returns ATR_AGAIN (more input wanted or out[]
 * full), ATR_DONE (body complete) or ATR_ERROR (bad framing). */
int atr_body_decode(atr_body_t *b, const char *in, size_t len, size_t *consumed,
                    atr_str_t *out, int max, int *nout);

#endif
