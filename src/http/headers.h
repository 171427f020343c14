/* Header handling shared by every backend encoder: hop-by-hop filtering and
 * the route's set/add/remove operations, writing into a growable buffer. */
#ifndef ATR_HEADERS_H
#define ATR_HEADERS_H

#include <string.h>

#include "http/http_parse.h"

/* A header operation of a route (conf/: request_header, response_header). */
enum atr_hdr_op_kind { ATR_HDR_SET = 0, ATR_HDR_ADD, ATR_HDR_REMOVE };

/* request_header set|add|remove NAME [VALUE];  response_header set|add|remove NAME [VALUE]; */
typedef struct atr_hdr_op {
    enum atr_hdr_op_kind op;
    char *name;  /* as written */
    char *value; /* NULL for remove */
} atr_hdr_op_t;

typedef struct atr_buf {
    char *p;
    size_t n, cap;
} atr_buf_t;

/* Make room for more bytes (out of line: the rare path). */
void atr_buf_grow(atr_buf_t *b, size_t more);

/* Inline: an encoder makes some forty small appends per request, most of them
 * literals the compiler turns into a couple of stores. */
static inline void atr_buf_put(atr_buf_t *b, const char *s, size_t n)
{
    if (n > b->cap - b->n)
        atr_buf_grow(b, n);
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

void atr_buf_puts(atr_buf_t *b, const char *s);
void atr_buf_printf(atr_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void atr_buf_header(atr_buf_t *b, atr_str_t name, atr_str_t value);

/* Which fields of one message must not be forwarded: the fixed hop-by-hop
 * set (RFC 9110 §7.6.1), every name the message's Connection header lists,
 * and the kinds in `regen` (ATR_HK_BIT set) that the caller regenerates.
 * Built once per message; a field then costs a bit test, plus name compares
 * only when Connection lists names of its own. */
typedef struct atr_hdr_filter {
    uint32_t drop;             /* ATR_HK_BIT set: hop-by-hop and regenerated kinds */
    atr_str_t listed[16];      /* Connection-listed names */
    int nlisted;
    const atr_http_msg_t *m;   /* for the rare message listing more than 16 */
} atr_hdr_filter_t;

void atr_hdr_filter_init(atr_hdr_filter_t *f, const atr_http_msg_t *m, uint32_t regen);
/* 1 when field i of the message must be dropped. */
int atr_hdr_filter_drop(const atr_hdr_filter_t *f, uint32_t i);

/* Decimal number. */
void atr_buf_put_u64(atr_buf_t *b, uint64_t v);

/* 1 when a set/remove op of ops[] names this field (the op replaces it). */
int atr_hdr_overridden(const atr_hdr_op_t *ops, int n, atr_str_t name);

/* Append the set/add values of ops[]. */
void atr_hdr_apply(atr_buf_t *b, const atr_hdr_op_t *ops, int n);

/* 1 when the field name contains '_' (dropped unless underscores_in_headers). */
int atr_hdr_has_underscore(atr_str_t name);

#endif
