/* The HTTP head parser's private parts, shared by its two halves: the
 * tokenizer (http_parse.c: bytes, limits, lines, the parser's life) and the
 * grammar's actions (http_interp.c: what a head means). Nothing else
 * includes this. */
#ifndef ATR_HTTP_PARSE_PRIV_H
#define ATR_HTTP_PARSE_PRIV_H

#define ATR_HTTP_INTERNAL 1
#include "http/http_parse.h"

#define ATR_ALWAYS_INLINE inline __attribute__((always_inline))

/* Byte classes. */
enum { C_TCHAR = 1, C_VCHAR = 2, C_VALUE = 4, C_HOST = 8 };
extern const unsigned char atr__http_cls[256];

/* Tokenizer states. */
enum {
    S_LEAD,        /* request: before the request line, skipping empty lines */
    S_LEAD_LF,     /* request: CR of a leading empty line seen */
    S_RESP_START,  /* response: status line or CGI header block? */
    S_METHOD,
    S_TARGET,
    S_VERSION,
    S_SL_VERSION,
    S_SL_STATUS,
    S_SL_REASON,
    S_START_LF,    /* CR ending the start line seen */
    S_LINE,        /* start of a field line or of the final empty line */
    S_NAME,
    S_OWS,
    S_VALUE,
    S_LF,          /* CR ending a field line seen */
    S_END_LF,      /* CR of the final empty line seen */
    S_DONE,
    S_FAILED
};

/* Everything learned about one message; cleared by reset. */
typedef struct sem {
    atr_http_tok_t method, target, reason, authority;
    enum atr_http_method mcode;
    int status;
    int version_minor;
    int saw_status_line;
    int accepted;
    int host_idx, status_idx, location_idx;
    uint32_t nhost, ncl, nte;
    uint64_t content_length;
    unsigned te_last_chunked : 1, te_chunked_twice : 1, te_chunked : 1, te_other : 1;
    unsigned conn_close : 1, conn_keep_alive : 1, conn_upgrade : 1, conn_lists : 1;
    unsigned has_upgrade : 1, expect : 1, absolute_form : 1, host_token : 1;
    enum atr_http_body body;
    uint32_t nfields;
    uint32_t hkinds;
} sem_t;

struct atr_http_parser {
    void *lemon; /* Lemon's yyParser, allocated right after this struct */
    atr_http_limits_t lim;
    int is_response;
    enum atr_http_method req_method; /* responses: the method they answer */
    int lf_ok;                       /* responses from CGI-family backends: LF alone ends a line */
    const char *buf;                 /* valid during one atr_http_parse call */
    int state;
    uint32_t pos;   /* next byte to look at */
    uint32_t tok;   /* start of the token being scanned */
    uint32_t line;  /* start of the start line (the 414 limit counts from here) */
    atr_http_tok_t sl[3]; /* the start line's parts as scanned: method, target,
                           * version; or version, status, reason */
    uint32_t name_off, name_len, val_end; /* the field line being scanned */
    uint32_t nlead; /* leading empty lines skipped */
    uint32_t nnames;
    int err_status;
    const char *err_reason;
    sem_t s;
    /* Field lines go straight into the caller's message as they are parsed
     * (views into buf); mbuf is the buffer those views point into, so they
     * can follow the bytes when the caller's buffer moves between calls. */
    atr_http_msg_t *m;
    const char *mbuf;
};

/* Copy what the parser learned into the caller's message (head done). */
void atr__http_fill(const atr_http_parser_t *p, const char *b, atr_http_msg_t *m);

#endif
