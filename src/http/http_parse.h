/* HTTP/1.1 message heads: a resumable tokenizer feeding a Lemon grammar.
 *
 * One parser object per connection direction. Bytes arrive in a contiguous
 * head buffer owned by the caller; the caller appends to it and calls
 * atr_http_parse_*() again with the whole buffer (base and length). The parser
 * remembers how far it got (offsets, so the buffer may be realloc'ed between
 * calls), so bytes that trickle in one at a time cost no more than one read:
 * nothing is tokenized twice.
 *
 * Pure code over bytes: no libuv, no allocation after init. */
#ifndef ATR_HTTP_PARSE_H
#define ATR_HTTP_PARSE_H

#include <stdint.h>
#include "base/util.h"

#define ATR_HTTP_MAX_HEADERS_HARD 256 /* array capacity; the configured limit is <= this */

typedef struct atr_http_header {
    atr_str_t name;  /* as received (case preserved), token chars only */
    atr_str_t value; /* leading/trailing OWS stripped */
} atr_http_header_t;

/* What a field name is, decided once by the parser (it compares the names it
 * interprets anyway), so that filters and encoders test a byte instead of
 * comparing strings for every field. Names nobody treats specially are
 * ATR_HK_OTHER. */
enum atr_http_hkind {
    ATR_HK_OTHER = 0,
    ATR_HK_HOP,            /* the rest of the fixed hop-by-hop set (RFC 9110 §7.6.1):
                              TE, Trailer, Keep-Alive, Proxy-Connection,
                              Proxy-Authenticate, Proxy-Authorization */
    ATR_HK_CONNECTION,     /* hop-by-hop too */
    ATR_HK_UPGRADE,        /* hop-by-hop too */
    ATR_HK_TRANSFER_ENCODING, /* hop-by-hop too */
    ATR_HK_HOST,
    ATR_HK_CONTENT_LENGTH,
    ATR_HK_EXPECT,
    ATR_HK_VIA,
    ATR_HK_X_FORWARDED_FOR,
    ATR_HK_X_FORWARDED_PROTO,
    ATR_HK_X_FORWARDED_HOST,
    ATR_HK_FORWARDED,
    ATR_HK_STATUS,
    ATR_HK_LOCATION
};
#define ATR_HK_BIT(k) (1u << (k))
#define ATR_HK_HOP_SET                                                        \
    (ATR_HK_BIT(ATR_HK_HOP) | ATR_HK_BIT(ATR_HK_CONNECTION) | ATR_HK_BIT(ATR_HK_UPGRADE) | \
     ATR_HK_BIT(ATR_HK_TRANSFER_ENCODING))

typedef struct atr_http_limits {
    uint32_t max_request_line; /* bytes incl. CRLF: over -> 414 (default 8192) */
    uint32_t max_head;         /* whole head incl. request/status line: over -> 431 (default 32768) */
    uint32_t max_headers;      /* field count: over -> 431 (default 100, <= ATR_HTTP_MAX_HEADERS_HARD) */
} atr_http_limits_t;

/* Request methods we know by name; anything else that is a valid token is
 * ATR_M_OTHER and is forwarded as written. */
enum atr_http_method {
    ATR_M_OTHER = 0, ATR_M_GET, ATR_M_HEAD, ATR_M_POST, ATR_M_PUT, ATR_M_DELETE,
    ATR_M_OPTIONS, ATR_M_TRACE, ATR_M_CONNECT, ATR_M_PATCH
};

/* Message framing, decided once here (reliability.md §0.1) and used by
 * everything after. */
enum atr_http_body {
    ATR_BODY_NONE = 0,    /* no body (no CL/TE on a request, or a bodiless response) */
    ATR_BODY_LENGTH,      /* content_length bytes */
    ATR_BODY_CHUNKED,     /* Transfer-Encoding: chunked (the only coding) */
    ATR_BODY_UNTIL_CLOSE  /* responses only: read until the peer closes */
};

/* The result of a parsed head. All views point into the buffer given to the
 * call that returned ATR_DONE, and stay valid while that buffer is unchanged. */
typedef struct atr_http_msg {
    /* request line (requests only) */
    enum atr_http_method method;
    atr_str_t method_str;
    atr_str_t target;      /* request-target as received (origin-form, absolute-form, '*', authority-form) */
    /* status line or CGI Status: (responses only) */
    int status;            /* 100..599 */
    atr_str_t reason;      /* may be empty */
    int version_minor;     /* 0 or 1 (HTTP/1.x); responses in CGI form: 1 */
    int cgi_form;          /* response only: 1 when there was no status line (CGI header block) */

    atr_http_header_t headers[ATR_HTTP_MAX_HEADERS_HARD];
    uint8_t hkind[ATR_HTTP_MAX_HEADERS_HARD]; /* enum atr_http_hkind of headers[i] */
    uint32_t hkinds;           /* ATR_HK_BIT of every kind present */
    uint32_t nheaders;

    /* Interpretation, computed once */
    enum atr_http_body body;
    uint64_t content_length;   /* valid when body == ATR_BODY_LENGTH */
    atr_str_t host;            /* the single Host value (requests), empty if none */
    unsigned host_token : 1;   /* the Host value is all tchar (no ':' port, no [IPv6]) */
    atr_str_t location;        /* CGI Location: value (responses), empty if none */
    unsigned keep_alive : 1;   /* by version and Connection tokens */
    unsigned conn_close : 1;   /* Connection: close seen */
    unsigned upgrade : 1;      /* Connection: upgrade + Upgrade: present */
    unsigned expect_continue : 1; /* Expect: 100-continue (requests, HTTP/1.1 only) */
    unsigned conn_lists : 1;   /* Connection names a field beyond close/keep-alive/upgrade */
    uint32_t head_len;         /* bytes of the head incl. the final empty line */
} atr_http_msg_t;

typedef struct atr_http_parser atr_http_parser_t; /* opaque, fixed size */

/* Allocate a parser for requests (is_response = 0) or backend responses
 * (is_response = 1). The limits are copied; limits == NULL or a 0 field means
 * the default, max_headers is capped at ATR_HTTP_MAX_HEADERS_HARD. One
 * allocation (~6 KB, the Lemon parser included), none after. Free with
 * atr_http_parser_free. */
atr_http_parser_t *atr_http_parser_new(int is_response, const atr_http_limits_t *limits);
void atr_http_parser_free(atr_http_parser_t *p);

/* Forget any partial message; the next call starts a new head. */
void atr_http_parser_reset(atr_http_parser_t *p);

/* For responses: the request method they answer (HEAD and CONNECT change the
 * framing rules), set before the first feed of each response. The value is
 * kept across atr_http_parser_reset (so set-then-reset and reset-then-set both
 * work); it starts as ATR_M_OTHER. */
void atr_http_parser_set_request_method(atr_http_parser_t *p, enum atr_http_method m);

/* For responses from CGI-family backends (CGI, FastCGI, SCGI): accept LF
 * alone as a line end, as scripts commonly write it (RFC 3875 output is
 * re-serialised, never forwarded, so this cannot split a message). Bare CR,
 * NUL and the other rules still apply. Survives atr_http_parser_reset. */
void atr_http_parser_set_lenient_lf(atr_http_parser_t *p, int on);

/* The limits a parser enforces (as atr_http_parser_new takes them): a parser
 * kept for reuse gets the generation's current ones each time it is taken. */
void atr_http_parser_set_limits(atr_http_parser_t *p, const atr_http_limits_t *limits);

/* Feed the head buffer: buf[0..len) holds every byte of this message received
 * so far (len only grows between calls for one message; the buffer may
 * move). Pass the same msg for every call of one head: the parser writes the
 * field lines into it as they arrive, so until ATR_DONE it holds a partial head.
 * Returns:
 *   ATR_AGAIN  more bytes needed (no limit crossed yet);
 *   ATR_DONE   head complete: *msg filled, msg->head_len bytes used; bytes
 *              after head_len belong to the body or the next message;
 *   ATR_ERROR  the message is invalid: *status is the HTTP status to answer
 *              (requests: 400, 414, 431, 501, 505; responses: 502) and
 *              *reason a static string naming the rule broken, for the log.
 *              After an error the connection must be closed.
 * Both ATR_DONE and ATR_ERROR are sticky until atr_http_parser_reset (a
 * further call returns the same result). Requests: up to 8 empty lines before
 * the request line are skipped and counted in head_len. */
int atr_http_parse(atr_http_parser_t *p, const char *buf, size_t len,
                   atr_http_msg_t *msg, int *status, const char **reason);

/* Find a header by lowercase name; NULL if absent. */
const atr_http_header_t *atr_http_find(const atr_http_msg_t *m, const char *lower_name);

/* A copy of m whose views point into one new allocation, returned (free it
 * after the copy); m's buffer may then change. */
char *atr_http_msg_copy(const atr_http_msg_t *m, atr_http_msg_t *out);

/* 1 if the Connection header lists this lowercase token. */
int atr_http_connection_has(const atr_http_msg_t *m, const char *lower_token);

/* 1 for the bytes allowed in a field-name / method (RFC 9110 tchar). */
int atr_http_is_tchar(unsigned char c);

/* The kind of a field name, as the parser gives it to headers[i]. */
enum atr_http_hkind atr_http_hkind(atr_str_t name);

/* Identify a method by its exact (case-sensitive) name; ATR_M_OTHER if unknown. */
enum atr_http_method atr_http_method_from(atr_str_t name);

#ifdef ATR_HTTP_INTERNAL
/* Internal: shared only by the tokenizer (http_parse.c), the grammar
 * (http_head.y, compiled by Lemon) and its actions (http_interp.c). Other
 * modules must not define ATR_HTTP_INTERNAL. A token is a span of the head buffer given as offsets,
 * so it survives the buffer being realloc'ed between calls; a FIELD token
 * carries two spans (name in off/len, value in voff/vlen). */
typedef struct atr_http_tok {
    uint32_t off;
    uint32_t len;
    uint32_t voff;
    uint32_t vlen;
} atr_http_tok_t;

/* Generated by Lemon from http_head.y (%name atr_http_head). */
size_t atr__http_head_size(void); /* sizeof the embedded Lemon parser */
void atr_http_headInit(void *lemon, atr_http_parser_t *ctx);
void atr_http_headFinalize(void *lemon);
void atr_http_head(void *lemon, int token, atr_http_tok_t value);

/* Grammar actions, implemented in http_interp.c. Each may fail the parse. */
void atr__http_on_request_line(atr_http_parser_t *p); /* reads the start-line spans */
void atr__http_on_status_line(atr_http_parser_t *p);
void atr__http_on_field(atr_http_parser_t *p, const atr_http_tok_t *field);
void atr__http_on_end(atr_http_parser_t *p);
void atr__http_on_accept(atr_http_parser_t *p);
void atr__http_syntax_error(atr_http_parser_t *p, int token);
void atr__http_fail(atr_http_parser_t *p, int status, const char *reason);
/* The reason phrase of a status code ("Not Found"); a generic one for codes
 * without their own. Never NULL. */
const char *atr_http_reason(int status);

#endif

/* The reason phrase of a status code ("Not Found"); a generic one for codes
 * without their own. Never NULL. */
const char *atr_http_reason(int status);

#endif
