/* HTTP/1.1 message heads (requests, backend responses, CGI header blocks).
 *
 * The grammar decides the structure of a head; the tokenizer in http_parse.c
 * decides byte classes and limits and pushes one complete token at a time.
 * Token values are spans {offset, length} of the caller's head buffer.
 *
 * A field line (name ":" OWS value OWS CRLF) is a regular language, so the
 * tokenizer validates it and hands over one FIELD token carrying both spans:
 * one grammar step per field instead of four keeps Lemon off the profile. The
 * start line stays token by token so that its shape (single SP, version
 * last, optional reason) is decided here.
 *
 *   requests:       START_REQUEST METHOD SP TARGET SP VERSION CRLF FIELD* CRLF
 *   responses:      START_RESPONSE VERSION SP STATUS [SP [REASON]] CRLF FIELD* CRLF
 *   CGI responses:  START_RESPONSE FIELD+ CRLF
 *
 * then token 0 (end of input), at which Lemon accepts. The first syntax error
 * is fatal (YYNOERRORRECOVERY): the tokenizer stops feeding at once. */

%name atr_http_head
%token_prefix ATR_HT_
%token_type {atr_http_tok_t}
%extra_context {atr_http_parser_t *ctx}
%stack_size 64
%start_symbol head

%include {
/* No tracing globals in the generated code (lempar.c keeps them under
 * !NDEBUG), no error recovery: a protocol parser stops at the first error. */
#ifndef NDEBUG
#define NDEBUG 1
#endif
#define YYNOERRORRECOVERY 1
#define YYPARSEFREENEVERNULL 1
#define ATR_HTTP_INTERNAL 1
#include <stddef.h>
#include "http_parse.h"
}

%code {
size_t atr__http_head_size(void)
{
    return sizeof(yyParser);
}
}

%token_destructor { (void)ctx; (void)$$; }
%syntax_error { (void)yyminor; atr__http_syntax_error(ctx, yymajor); }
%stack_overflow { atr__http_fail(ctx, 400, "head nesting too deep"); }
%parse_accept { atr__http_on_accept(ctx); }
%parse_failure { atr__http_fail(ctx, 400, "malformed head"); }

/* Fix the token numbering (the order they are first seen). */
%token START_REQUEST START_RESPONSE METHOD TARGET VERSION STATUS REASON
       FIELD SP CRLF.

head ::= START_REQUEST request_line fields CRLF.   { atr__http_on_end(ctx); }
head ::= START_RESPONSE status_line fields CRLF.   { atr__http_on_end(ctx); }
head ::= START_RESPONSE cgi_fields CRLF.           { atr__http_on_end(ctx); }

request_line ::= METHOD(M) SP TARGET(T) SP VERSION(V) CRLF.
    { atr__http_on_request_line(ctx, M, T, V); }

status_line ::= VERSION(V) SP STATUS(S) SP REASON(R) CRLF.
    { atr__http_on_status_line(ctx, V, S, R); }
status_line ::= VERSION(V) SP STATUS(S) SP(W) CRLF.
    { atr_http_tok_t r = { W.off + 1, 0, 0, 0 }; atr__http_on_status_line(ctx, V, S, r); }
status_line ::= VERSION(V) SP STATUS(S) CRLF.
    { atr_http_tok_t r = { S.off + S.len, 0, 0, 0 }; atr__http_on_status_line(ctx, V, S, r); }

/* Left-recursive: the stack stays shallow whatever the field count. */
fields ::= .
fields ::= fields FIELD(F).              { atr__http_on_field(ctx, &F); }

/* A CGI header block has at least one field (RFC 3875 §6.2). */
cgi_fields ::= FIELD(F).                 { atr__http_on_field(ctx, &F); }
cgi_fields ::= cgi_fields FIELD(F).      { atr__http_on_field(ctx, &F); }
