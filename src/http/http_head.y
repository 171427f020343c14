/* HTTP/1.1 message heads (requests, backend responses, CGI header blocks).
 *
 * The grammar decides the structure of a head; the tokenizer in http_parse.c
 * decides byte classes, limits and the shape of each line, and pushes one
 * complete line at a time. Token values are spans {offset, length} of the
 * caller's head buffer.
 *
 * Every line of a head is a regular language, so the tokenizer validates it
 * and hands over one token per line: a request line (method SP target SP
 * version), a status line (version SP status [SP [reason]]), or a field line
 * (name ":" OWS value OWS, both spans in the token). The empty line that ends
 * the head is end of input (token 0), at which Lemon accepts. One grammar
 * step per line instead of one per word keeps Lemon off the profile: a
 * proxied request costs 13 steps instead of 27.
 *
 *   requests:       REQUEST_LINE FIELD*
 *   responses:      STATUS_LINE FIELD*
 *   CGI responses:  FIELD+              (RFC 3875 §6.2: at least one field)
 *
 * The parts of a start line are recorded by the tokenizer as it scans them
 * (atr_http_parser's start-line spans); the actions read them there. The
 * first syntax error is fatal (YYNOERRORRECOVERY): the tokenizer stops
 * feeding at once. */

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
#include "http/http_parse.h"
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
%token REQUEST_LINE STATUS_LINE FIELD.

head ::= request_line fields.            { atr__http_on_end(ctx); }
head ::= status_line fields.             { atr__http_on_end(ctx); }
head ::= cgi_fields.                     { atr__http_on_end(ctx); }

request_line ::= REQUEST_LINE.           { atr__http_on_request_line(ctx); }
status_line ::= STATUS_LINE.             { atr__http_on_status_line(ctx); }

/* Left-recursive: the stack stays shallow whatever the field count. */
fields ::= .
fields ::= fields FIELD(F).              { atr__http_on_field(ctx, &F); }

cgi_fields ::= FIELD(F).                 { atr__http_on_field(ctx, &F); }
cgi_fields ::= cgi_fields FIELD(F).      { atr__http_on_field(ctx, &F); }
