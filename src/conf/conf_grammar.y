/* The configuration language's block structure (lighttpd configparser.y is
 * the pattern). The tokenizer in conf_parse.c pushes one token at a time;
 * this grammar only builds the generic tree: a directive is a name, its
 * arguments and, for a block, its children. What the names mean is decided
 * by the directive tables in conf_build.c. Everything is allocated from the
 * conf's arena, so no destructor frees anything. */

%name atr_conf_grammar
%token_prefix ATR_CT_
%token_type {atr__conf_tok_t *}
%extra_argument {atr__conf_pctx_t *ctx}
%stack_size 200

%include {
/* No globals in the generated parser: its trace hooks exist only without NDEBUG. */
#ifndef NDEBUG
#define NDEBUG
#endif
#include <assert.h>
#include <stddef.h>
#include "conf/conf_priv.h"
}

%token_destructor { (void)ctx; (void)$$; }
%syntax_error { atr__conf_syntax_error(ctx, yymajor, TOKEN); }
%parse_failure { ctx->failed = 1; }
%stack_overflow { ctx->failed = 1; atr__conf_syntax_error(ctx, -1, NULL); }

%token WORD STRING SEMI LBRACE RBRACE.

%type items {atr__conf_nodelist_t}
%type args {atr__conf_arglist_t}
%type directive {atr__conf_node_t *}
%type arg {atr__conf_tok_t *}

/* No empty rule may stand right after a token: with Lemon 3.40 a state whose
 * only action is a default reduction gets no yy_shift_ofst[] entry, and
 * yy_find_shift_action reads past that table (found by ASan). So blocks and
 * argument lists are spelled out with and without their contents. */
conf ::= items(L). { ctx->root = L.first; }
conf ::= . { ctx->root = NULL; }

items(A) ::= directive(D). { A.first = A.last = D; }
items(A) ::= items(B) directive(D). {
    A = B;
    A.last->next = D;
    A.last = D;
}

directive(D) ::= WORD(N) SEMI. { D = atr__conf_node_new(ctx, N, NULL, NULL, NULL); }
directive(D) ::= WORD(N) args(A) SEMI. { D = atr__conf_node_new(ctx, N, &A, NULL, NULL); }
directive(D) ::= WORD(N) LBRACE(B) RBRACE. { D = atr__conf_node_new(ctx, N, NULL, B, NULL); }
directive(D) ::= WORD(N) LBRACE(B) items(L) RBRACE. {
    D = atr__conf_node_new(ctx, N, NULL, B, &L);
}
directive(D) ::= WORD(N) args(A) LBRACE(B) RBRACE. {
    D = atr__conf_node_new(ctx, N, &A, B, NULL);
}
directive(D) ::= WORD(N) args(A) LBRACE(B) items(L) RBRACE. {
    D = atr__conf_node_new(ctx, N, &A, B, &L);
}

args(A) ::= arg(T). {
    atr__conf_argcell_t *c = atr__conf_alloc(ctx->arena, sizeof(*c));
    c->tok = T;
    A.first = A.last = c;
    A.n = 1;
}
args(A) ::= args(B) arg(T). {
    atr__conf_argcell_t *c = atr__conf_alloc(ctx->arena, sizeof(*c));
    c->tok = T;
    A = B;
    A.last->next = c;
    A.last = c;
    A.n++;
}

arg(T) ::= WORD(W). { T = W; }
arg(T) ::= STRING(S). { T = S; }
