/* The config language's lexical layer: the arena, error formatting, the
 * tokenizer that pushes tokens into the Lemon grammar (conf_grammar.y), the
 * include expansion over the resulting tree, and the size/duration syntax.
 * What a directive means is conf_build.c's business. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf_grammar.h"
#include "conf/conf_priv.h"
#include "base/util.h"

/* ---- arena ---------------------------------------------------------------- */

struct atr__conf_chunk {
    atr__conf_chunk_t *next;
    _Alignas(16) char mem[];
};

#define CHUNK_SIZE 8192u
#define ALIGN 16u

void *atr__conf_alloc(atr__conf_arena_t *a, size_t n)
{
    n = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (n == 0)
        n = ALIGN;
    if (n > a->left) {
        size_t want = n > CHUNK_SIZE / 2 ? n : CHUNK_SIZE;
        atr__conf_chunk_t *c = atr_xmalloc(sizeof(*c) + want);
        c->next = a->chunks;
        a->chunks = c;
        if (n > CHUNK_SIZE / 2) /* a big block gets its own chunk; keep the current one */
            return memset(c->mem, 0, n);
        a->cur = c->mem;
        a->left = want;
    }
    void *p = a->cur;
    a->cur += n;
    a->left -= n;
    return memset(p, 0, n);
}

char *atr__conf_strndup(atr__conf_arena_t *a, const char *s, size_t n)
{
    char *p = atr__conf_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *atr__conf_strdup(atr__conf_arena_t *a, const char *s)
{
    return atr__conf_strndup(a, s, strlen(s));
}

void atr__conf_arena_free(atr__conf_arena_t *a)
{
    atr__conf_chunk_t *c = a->chunks, *next;
    for (; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    a->chunks = NULL;
    a->cur = NULL;
    a->left = 0;
}

/* ---- errors --------------------------------------------------------------- */

int atr__conf_verr(char *err, size_t errlen, const atr_conf_pos_t *pos, const char *fmt, va_list ap)
{
    if (err == NULL || errlen == 0)
        return -1;
    size_t n = 0;
    if (pos != NULL && pos->file != NULL) {
        int k = snprintf(err, errlen, "%s:%d:%d: ", pos->file, pos->line, pos->col);
        n = k < 0 ? 0 : (size_t)k;
    }
    if (n < errlen)
        vsnprintf(err + n, errlen - n, fmt, ap);
    /* One line, whatever bytes the offending value carried. */
    for (char *p = err; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return -1;
}

int atr__conf_err(char *err, size_t errlen, const atr_conf_pos_t *pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    atr__conf_verr(err, errlen, pos, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- tokenizer -------------------------------------------------------------- */

typedef struct lexer {
    const char *p, *end;
    int line, col;
    const char *file;
    atr__conf_arena_t *a;
    char *err;
    size_t errlen;
} lexer_t;

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int is_word(int c)
{
    return c != '\0' && !is_space(c) && strchr(";{}#\"'", c) == NULL;
}

static void adv(lexer_t *lx)
{
    if (*lx->p == '\n') {
        lx->line++;
        lx->col = 1;
    } else {
        lx->col++;
    }
    lx->p++;
}

static atr_conf_pos_t here(const lexer_t *lx)
{
    return (atr_conf_pos_t){ lx->file, lx->line, lx->col };
}

/* A quoted string: scan once to validate and measure, then copy unescaped. */
static int lex_string(lexer_t *lx, atr__conf_tok_t *t)
{
    char q = *lx->p;
    const char *s = lx->p + 1, *e;
    size_t n = 0;
    for (e = s; e < lx->end && *e != q; e++, n++) {
        if (*e == '\n' || *e == '\0')
            break;
        if (*e == '\\') {
            if (e + 1 >= lx->end || e[1] == '\n' || e[1] == '\0')
                break;
            if (strchr("\\\"'", e[1]) == NULL) {
                atr_conf_pos_t pos = here(lx);
                pos.col += (int)(e - lx->p);
                return atr__conf_err(lx->err, lx->errlen, &pos,
                                     "invalid escape '\\%c' in string (expected \\\\, \\\" or \\')",
                                     e[1]);
            }
            e++;
        }
    }
    if (e >= lx->end || *e != q)
        return atr__conf_err(lx->err, lx->errlen, &t->pos, "unterminated string");
    char *out = atr__conf_alloc(lx->a, n + 1), *o = out;
    for (const char *c = s; c < e; c++) {
        if (*c == '\\')
            c++;
        *o++ = *c;
    }
    *o = '\0';
    t->s = out;
    t->len = n;
    t->quoted = 1;
    /* The string holds no newline, so only the column moves. */
    lx->col += (int)(e + 1 - lx->p);
    lx->p = e + 1;
    return ATR_CT_STRING;
}

/* Next token: its code (>0), 0 at the end of input, -1 on error. */
static int lex(lexer_t *lx, atr__conf_tok_t **out)
{
    for (;;) {
        while (lx->p < lx->end && is_space((unsigned char)*lx->p))
            adv(lx);
        if (lx->p < lx->end && *lx->p == '#') {
            while (lx->p < lx->end && *lx->p != '\n')
                adv(lx);
            continue;
        }
        break;
    }
    atr__conf_tok_t *t = atr__conf_alloc(lx->a, sizeof(*t));
    t->pos = here(lx);
    *out = t;
    if (lx->p >= lx->end) {
        t->s = "";
        return 0;
    }
    char c = *lx->p;
    switch (c) {
    case ';':
        t->s = ";";
        t->len = 1;
        adv(lx);
        return ATR_CT_SEMI;
    case '{':
        t->s = "{";
        t->len = 1;
        adv(lx);
        return ATR_CT_LBRACE;
    case '}':
        t->s = "}";
        t->len = 1;
        adv(lx);
        return ATR_CT_RBRACE;
    case '"':
    case '\'': return lex_string(lx, t);
    case '\0': return atr__conf_err(lx->err, lx->errlen, &t->pos, "unexpected NUL byte");
    default: break;
    }
    const char *s = lx->p;
    while (lx->p < lx->end && is_word((unsigned char)*lx->p))
        adv(lx);
    t->s = atr__conf_strndup(lx->a, s, (size_t)(lx->p - s));
    t->len = (size_t)(lx->p - s);
    return ATR_CT_WORD;
}

/* ---- grammar driver ------------------------------------------------------- */

#define MAX_NESTING ((int)ATR_ARRAY_SIZE(((atr__conf_pctx_t *)0)->open))

static void describe(char *buf, size_t n, int major, const atr__conf_tok_t *tok)
{
    switch (major) {
    case ATR_CT_WORD: snprintf(buf, n, "'%.60s'", tok->s); break;
    case ATR_CT_STRING: snprintf(buf, n, "string \"%.60s\"", tok->s); break;
    case ATR_CT_SEMI: snprintf(buf, n, "';'"); break;
    case ATR_CT_LBRACE: snprintf(buf, n, "'{'"); break;
    case ATR_CT_RBRACE: snprintf(buf, n, "'}'"); break;
    default: snprintf(buf, n, "end of file"); break;
    }
}

/* Lemon knows that the token is wrong; the driver knows where we are, which
 * is all it takes to say what was expected in a grammar this small. */
void atr__conf_syntax_error(atr__conf_pctx_t *ctx, int major, atr__conf_tok_t *tok)
{
    char what[96];
    ctx->failed = 1;
    if (major < 0) {
        atr__conf_err(ctx->err, ctx->errlen, &ctx->last, "blocks nested too deeply");
        return;
    }
    describe(what, sizeof(what), major, tok);
    if (major == 0) {
        if (ctx->in_directive)
            atr__conf_err(ctx->err, ctx->errlen, &ctx->last,
                          "unexpected end of file, expected ';'");
        else
            atr__conf_err(ctx->err, ctx->errlen, &ctx->open[ctx->depth - 1],
                          "unexpected end of file, expected '}'");
        return;
    }
    if (ctx->in_directive)
        atr__conf_err(ctx->err, ctx->errlen, &tok->pos, "unexpected %s, expected ';'", what);
    else if (major == ATR_CT_RBRACE)
        atr__conf_err(ctx->err, ctx->errlen, &tok->pos, "unexpected '}', no block is open");
    else
        atr__conf_err(ctx->err, ctx->errlen, &tok->pos, "unexpected %s, expected a directive name",
                      what);
}

atr__conf_node_t *atr__conf_node_new(atr__conf_pctx_t *ctx, atr__conf_tok_t *name,
                                     atr__conf_arglist_t *args, atr__conf_tok_t *brace,
                                     atr__conf_nodelist_t *children)
{
    atr__conf_node_t *n = atr__conf_alloc(ctx->arena, sizeof(*n));
    n->name = *name;
    if (args != NULL && args->n > 0) {
        n->nargs = args->n;
        n->args = atr__conf_alloc(ctx->arena, sizeof(*n->args) * (size_t)args->n);
        int i = 0;
        for (atr__conf_argcell_t *c = args->first; c != NULL; c = c->next)
            n->args[i++] = *c->tok;
    }
    if (brace != NULL) {
        n->block = 1;
        n->brace = brace->pos;
        n->child = children != NULL ? children->first : NULL;
    }
    return n;
}

/* Tokenize `text` and push it through the grammar. */
static int parse_text(atr__conf_arena_t *a, const char *file, const char *text, size_t len,
                      atr__conf_node_t **out, char *err, size_t errlen)
{
    lexer_t lx = { text, text + len, 1, 1, file, a, err, errlen };
    atr__conf_pctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.arena = a;
    ctx.err = err;
    ctx.errlen = errlen;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) /* a UTF-8 byte order mark */
        lx.p += 3;

    void *parser = atr_conf_grammarAlloc(malloc);
    if (parser == NULL)
        abort();
    int rc = 0;
    for (;;) {
        atr__conf_tok_t *tok;
        int code = lex(&lx, &tok);
        if (code < 0) {
            rc = -1;
            break;
        }
        ctx.last = tok->pos;
        if (code == ATR_CT_LBRACE && ctx.depth == MAX_NESTING) {
            rc = atr__conf_err(err, errlen, &tok->pos, "blocks nested more than %d deep",
                               MAX_NESTING);
            break;
        }
        atr_conf_grammar(parser, code, tok, &ctx);
        if (ctx.failed) {
            rc = -1;
            break;
        }
        if (code == 0)
            break;
        switch (code) {
        case ATR_CT_WORD: ctx.in_directive = 1; break;
        case ATR_CT_SEMI: ctx.in_directive = 0; break;
        case ATR_CT_LBRACE:
            ctx.in_directive = 0;
            ctx.open[ctx.depth++] = tok->pos;
            break;
        case ATR_CT_RBRACE: ctx.depth--; break;
        default: break;
        }
    }
    atr_conf_grammarFree(parser, free);
    *out = rc == 0 ? ctx.root : NULL;
    return rc;
}

/* ---- files and includes --------------------------------------------------- */


#define MAX_INCLUDE_DEPTH 16

typedef struct ictx {
    atr__conf_arena_t *a;
    char *err;
    size_t errlen;
    const char *stack[MAX_INCLUDE_DEPTH + 1]; /* canonical paths being read */
    int nstack;
} ictx_t;

static int expand(ictx_t *ic, atr__conf_node_t **list, const char *dir, int depth);

static const char *file_error(int rc)
{
    return rc == -EFBIG ? "file too large (more than 16m)" : strerror(-rc);
}

/* Read, parse and expand one included file; its nodes are returned in *out. */
static int include_file(ictx_t *ic, const atr__conf_tok_t *arg, const char *path, int depth,
                        atr__conf_node_t **out)
{
    char *text;
    size_t len;
    int rc = atr_read_file(path, ATR__CONF_MAX_FILE, &text, &len);
    if (rc < 0)
        return atr__conf_err(ic->err, ic->errlen, &arg->pos, "cannot open '%s': %s", path,
                             file_error(rc));
    char *canon = realpath(path, NULL);
    if (canon == NULL)
        canon = atr_xstrdup(path);
    for (int i = 0; i < ic->nstack; i++) {
        if (strcmp(ic->stack[i], canon) == 0) {
            atr__conf_err(ic->err, ic->errlen, &arg->pos,
                          "include loop: '%s' is already being read", path);
            free(canon);
            free(text);
            return -1;
        }
    }
    const char *file = atr__conf_strdup(ic->a, path);
    ic->stack[ic->nstack++] = atr__conf_strdup(ic->a, canon);
    free(canon);

    const char *slash = strrchr(file, '/');
    const char *sub = slash == NULL   ? NULL
                      : slash == file ? "/"
                                      : atr__conf_strndup(ic->a, file, (size_t)(slash - file));
    rc = parse_text(ic->a, file, text, len, out, ic->err, ic->errlen);
    free(text);
    if (rc == 0)
        rc = expand(ic, out, sub, depth);
    ic->nstack--;
    return rc;
}

/* Relative patterns are relative to the including file's directory; when
 * globbing, that directory's own bytes must not act as wildcards. */
static char *join(const char *dir, const char *pattern, int escape)
{
    if (dir == NULL || pattern[0] == '/')
        return atr_xstrdup(pattern);
    size_t dn = strlen(dir), pn = strlen(pattern);
    char *s = atr_xmalloc(2 * dn + pn + 2), *o = s;
    for (size_t i = 0; i < dn; i++) {
        if (escape && strchr("*?[]\\", dir[i]) != NULL)
            *o++ = '\\';
        *o++ = dir[i];
    }
    if (dn > 0 && dir[dn - 1] != '/')
        *o++ = '/';
    memcpy(o, pattern, pn + 1);
    return s;
}

static void append(atr__conf_node_t **first, atr__conf_node_t **last, atr__conf_node_t *list)
{
    if (list == NULL)
        return;
    if (*last != NULL)
        (*last)->next = list;
    else
        *first = list;
    while (list->next != NULL)
        list = list->next;
    *last = list;
}

static int include(ictx_t *ic, const atr__conf_node_t *n, const char *dir, int depth,
                   atr__conf_node_t **out)
{
    if (n->nargs != 1)
        return atr__conf_err(ic->err, ic->errlen, &n->name.pos, "'include' takes 1 argument");
    if (n->block)
        return atr__conf_err(ic->err, ic->errlen, &n->brace,
                             "'include' takes no block, expected ';'");
    const atr__conf_tok_t *arg = &n->args[0];
    if (arg->len == 0 || memchr(arg->s, '\0', arg->len) != NULL)
        return atr__conf_err(ic->err, ic->errlen, &arg->pos, "empty include path");
    if (depth >= MAX_INCLUDE_DEPTH)
        return atr__conf_err(ic->err, ic->errlen, &arg->pos,
                             "includes nested more than %d deep (include loop?)",
                             MAX_INCLUDE_DEPTH);
    *out = NULL;
    if (strpbrk(arg->s, "*?[") == NULL) {
        char *path = join(dir, arg->s, 0);
        int rc = include_file(ic, arg, path, depth + 1, out);
        free(path);
        return rc;
    }
    char *pattern = join(dir, arg->s, 1);
    glob_t g;
    int grc = glob(pattern, 0, NULL, &g);
    free(pattern);
    if (grc == GLOB_NOMATCH)
        return 0;
    if (grc != 0) {
        if (grc == GLOB_NOSPACE)
            abort();
        return atr__conf_err(ic->err, ic->errlen, &arg->pos, "cannot read '%s'", arg->s);
    }
    atr__conf_node_t *last = NULL;
    int rc = 0;
    for (size_t i = 0; i < g.gl_pathc && rc == 0; i++) { /* glob sorts its results */
        atr__conf_node_t *list = NULL;
        rc = include_file(ic, arg, g.gl_pathv[i], depth + 1, &list);
        if (rc == 0)
            append(out, &last, list);
    }
    globfree(&g);
    return rc;
}

/* Replace every `include` in the list (and in blocks below it) by the
 * directives of the files it names. */
static int expand(ictx_t *ic, atr__conf_node_t **list, const char *dir, int depth)
{
    atr__conf_node_t **pp = list;
    while (*pp != NULL) {
        atr__conf_node_t *n = *pp;
        if (strcmp(n->name.s, "include") != 0) {
            if (n->child != NULL && expand(ic, &n->child, dir, depth) < 0)
                return -1;
            pp = &n->next;
            continue;
        }
        atr__conf_node_t *sub = NULL;
        if (include(ic, n, dir, depth, &sub) < 0)
            return -1;
        if (sub == NULL) {
            *pp = n->next;
            continue;
        }
        *pp = sub;
        while (sub->next != NULL)
            sub = sub->next;
        sub->next = n->next;
        pp = &sub->next; /* included nodes are already expanded */
    }
    return 0;
}

int atr__conf_parse(atr__conf_arena_t *a, const char *file, const char *text, size_t len,
                    const char *dir, const char *realpath_self, atr__conf_node_t **out, char *err,
                    size_t errlen)
{
    ictx_t ic;
    memset(&ic, 0, sizeof(ic));
    ic.a = a;
    ic.err = err;
    ic.errlen = errlen;
    if (realpath_self != NULL)
        ic.stack[ic.nstack++] = realpath_self;
    if (parse_text(a, file, text, len, out, err, errlen) < 0)
        return -1;
    return expand(&ic, out, dir, 0);
}

/* ---- sizes and durations -------------------------------------------------- */

int atr__conf_digits(const char **sp, uint64_t *out)
{
    const char *s = *sp;
    uint64_t v = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) {
            while (isdigit((unsigned char)*s))
                s++;
            *sp = s;
            return ATR_CONF_TOO_LARGE;
        }
        v = v * 10 + d;
    }
    *sp = s;
    *out = v;
    return 0;
}

int atr_conf_parse_size(const char *s, uint64_t *out)
{
    uint64_t v;
    unsigned shift = 0;
    int too_large;
    if (s == NULL || (too_large = atr__conf_digits(&s, &v)) == -1)
        return -1;
    switch (*s) {
    case 'k':
    case 'K':
        shift = 10;
        s++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        s++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        s++;
        break;
    default: break;
    }
    if (*s != '\0')
        return -1;
    if (too_large || v > (UINT64_MAX >> shift))
        return ATR_CONF_TOO_LARGE;
    *out = v << shift;
    return 0;
}

/* "750ms", "2s", "5m", "1h", "1d", compounds such as "1h30m"; a bare number
 * is seconds. */
int atr_conf_parse_duration(const char *s, uint64_t *out_ms)
{
    uint64_t total = 0;
    int segments = 0, too_large = 0;
    if (s == NULL || *s == '\0')
        return -1;
    while (*s != '\0') {
        uint64_t v, mult;
        int rc = atr__conf_digits(&s, &v);
        if (rc == -1)
            return -1;
        char c = (char)tolower((unsigned char)*s);
        if (c == 'm' && tolower((unsigned char)s[1]) == 's') {
            mult = 1;
            s += 2;
        } else if (c == 's' || c == 'm' || c == 'h' || c == 'd') {
            mult = c == 's' ? 1000 : c == 'm' ? 60000 : c == 'h' ? 3600000 : 86400000;
            s++;
        } else if (c == '\0' && segments == 0) {
            mult = 1000;
        } else {
            return -1;
        }
        if (rc == ATR_CONF_TOO_LARGE || v > UINT64_MAX / mult || total > UINT64_MAX - v * mult)
            too_large = 1; /* keep going: a malformed rest still says malformed */
        else
            total += v * mult;
        segments++;
    }
    if (too_large)
        return ATR_CONF_TOO_LARGE;
    *out_ms = total;
    return 0;
}
