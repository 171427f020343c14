/* Internals shared by the config files only (conf_parse.c, the generated
 * conf_grammar.c, conf_build.c, conf_dump.c). Nothing outside src/core/conf_*
 * includes this; the runtime sees conf.h.
 *
 * The pipeline: conf_parse.c tokenizes a file and pushes the tokens into the
 * Lemon grammar (conf_grammar.y), which builds a generic directive tree
 * (name, arguments with positions, children); includes are spliced into that
 * tree; conf_build.c then walks it with one directive table per context and
 * fills the atr_conf_t. Every byte of the tree and of the conf lives in one
 * arena owned by the conf and freed in one go by atr_conf_free. */
#ifndef ATR_CONF_PRIV_H
#define ATR_CONF_PRIV_H

#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>

#include "conf/conf.h"

/* ---- arena: bump allocation in chunks, freed all at once ---------------- */

typedef struct atr__conf_chunk atr__conf_chunk_t;

typedef struct atr__conf_arena {
    atr__conf_chunk_t *chunks; /* newest first */
    char *cur;                 /* free space in the newest chunk */
    size_t left;
} atr__conf_arena_t;

/* Zeroed memory, aligned for any type; aborts on allocation failure. */
void *atr__conf_alloc(atr__conf_arena_t *a, size_t n);
char *atr__conf_strndup(atr__conf_arena_t *a, const char *s, size_t n);
char *atr__conf_strdup(atr__conf_arena_t *a, const char *s);
void atr__conf_arena_free(atr__conf_arena_t *a);

/* The allocation behind every atr_conf_t: the conf first, so that
 * atr_conf_free can find its arena from the public pointer. */
typedef struct atr__conf_whole {
    atr_conf_t conf;
    atr__conf_arena_t arena;
} atr__conf_whole_t;

/* ---- the generic directive tree ------------------------------------------ */

/* One word or quoted string; `s` is NUL-terminated with escapes resolved. */
typedef struct atr__conf_tok {
    const char *s;
    size_t len;
    int quoted;
    atr_conf_pos_t pos;
} atr__conf_tok_t;

typedef struct atr__conf_node atr__conf_node_t;
struct atr__conf_node {
    atr__conf_tok_t name;
    atr__conf_tok_t *args;
    int nargs;
    int block;               /* written with { ... } (possibly empty) */
    atr_conf_pos_t brace;    /* position of '{' when block */
    atr__conf_node_t *child; /* first directive inside the block */
    atr__conf_node_t *next;  /* next sibling */
};

/* Parse `text` (the contents of `file`, which must be interned in `a`) into a
 * list of top-level nodes with every include expanded. `dir` is the directory
 * relative include patterns are resolved against (NULL = the current one);
 * `realpath_self` is the canonical path of `file` or NULL when it is not a
 * file (atr_conf_load_string). Returns 0, or -1 with one line in err. */
int atr__conf_parse(atr__conf_arena_t *a, const char *file, const char *text, size_t len,
                    const char *dir, const char *realpath_self, atr__conf_node_t **out, char *err,
                    size_t errlen);

/* The largest config file read (atr_read_file, base/util.h). */
#define ATR__CONF_MAX_FILE (16u << 20)

/* Write "FILE:LINE:COL: message" into err (control bytes shown as '?').
 * Always returns -1 so callers can `return atr__conf_err(...)`. */
int atr__conf_err(char *err, size_t errlen, const atr_conf_pos_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int atr__conf_verr(char *err, size_t errlen, const atr_conf_pos_t *pos, const char *fmt,
                   va_list ap);

/* Sizes and durations written back in the largest exact unit ("64k",
 * "1m"; "750ms", "2s", "5m"), as conf_dump.c prints them. */
char *atr__conf_fmt_size(char *buf, size_t n, uint64_t v);
char *atr__conf_fmt_duration(char *buf, size_t n, uint64_t ms);

/* ---- the grammar driver, called from the generated parser ---------------- */

typedef struct atr__conf_pctx {
    atr__conf_arena_t *arena;
    atr__conf_node_t *root;  /* set on accept */
    int failed;              /* a syntax error was reported */
    int in_directive;        /* a directive name was seen, no ';' '{' yet */
    int depth;               /* open blocks */
    atr_conf_pos_t open[32]; /* '{' positions of the open blocks */
    atr_conf_pos_t last;     /* the token being pushed (at the end: end of input) */
    char *err;
    size_t errlen;
} atr__conf_pctx_t;

/* Lists the grammar builds while reducing. */
typedef struct atr__conf_arglist {
    struct atr__conf_argcell *first, *last;
    int n;
} atr__conf_arglist_t;
typedef struct atr__conf_argcell {
    atr__conf_tok_t *tok;
    struct atr__conf_argcell *next;
} atr__conf_argcell_t;
typedef struct atr__conf_nodelist {
    atr__conf_node_t *first, *last;
} atr__conf_nodelist_t;

void atr__conf_syntax_error(atr__conf_pctx_t *ctx, int major, atr__conf_tok_t *tok);
atr__conf_node_t *atr__conf_node_new(atr__conf_pctx_t *ctx, atr__conf_tok_t *name,
                                     atr__conf_arglist_t *args, atr__conf_tok_t *brace,
                                     atr__conf_nodelist_t *children);

/* The Lemon-generated parser (conf_grammar.y, %name atr_conf_grammar). */
void *atr_conf_grammarAlloc(void *(*mallocProc)(size_t));
void atr_conf_grammar(void *p, int major, atr__conf_tok_t *minor, atr__conf_pctx_t *ctx);
void atr_conf_grammarFree(void *p, void (*freeProc)(void *));

/* ---- the builder: conf_build.c (walker, values, main context, loading),
 * conf_upstream.c (listen, upstream, server), conf_host.c (host, route) ---- */

typedef struct atr__conf_bctx {
    atr__conf_arena_t *a;
    atr_conf_t *c;
    unsigned flags; /* ATR_CONF_* */
    char *err;
    size_t errlen;
    const atr__conf_node_t **hosts; /* host blocks, built once every upstream is known */
    int nhosts;
    int nerrors;    /* errors so far: the walk goes on past a bad directive to list them all */
} atr__conf_bctx_t;

/* The most errors one load lists (the first ATR__CONF_MAX_ERRORS lines). */
#define ATR__CONF_MAX_ERRORS 20

enum atr__conf_kind {
    ATR__CONF_NONE = 0,
    ATR__CONF_SIZE32,
    ATR__CONF_SIZE64,
    ATR__CONF_DURATION,
    ATR__CONF_INT,
    ATR__CONF_ONOFF
};
enum atr__conf_ctx {
    ATR__CONF_MAIN = 0,
    ATR__CONF_UPSTREAM,
    ATR__CONF_HOST,
    ATR__CONF_ROUTE,
    ATR__CONF_TLS,
    ATR__CONF_NCTX
};

typedef struct atr__conf_directive atr__conf_directive_t;
/* A directive's handler; `obj` is what the block builds (the conf, an
 * upstream, a host or route under construction). Returns 0 or -1 (err set). */
typedef int (*atr__conf_handler_fn)(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                                    const atr__conf_directive_t *d, void *obj);

struct atr__conf_directive {
    const char *name;
    int nmin, nmax; /* argument count; nmax < 0: no limit */
    int block;      /* 1: takes { ... }, 0: ends with ';' */
    int multi;      /* may be repeated */
    atr__conf_handler_fn fn;
    enum atr__conf_kind kind; /* for atr__conf_set_value: what the field at `off` holds */
    size_t off;
    uint64_t lo, hi; /* accepted range */
};

#define ATR__KB 1024ull
#define ATR__MB (1024ull * 1024)
#define ATR__MAXDUR (365ull * 86400000) /* durations stop at 365d */
#define ATR__CONF_ONE(nm, fn)                                                                      \
    {                                                                                              \
        nm, 1, 1, 0, 0, fn, ATR__CONF_NONE, 0, 0, 0                                                \
    }
#define ATR__CONF_FIELD(nm, k, type, field, lo, hi)                                                \
    {                                                                                              \
        nm, 1, 1, 0, 0, atr__conf_set_value, k, offsetof(type, field), lo, hi                      \
    }
#define ATR__CONF_SIZE(nm, type, field, lo, hi)                                                    \
    ATR__CONF_FIELD(nm, sizeof(((type *)0)->field) == 4 ? ATR__CONF_SIZE32 : ATR__CONF_SIZE64,     \
                    type, field, lo, hi)
#define ATR__CONF_DUR(nm, type, field, lo)                                                         \
    ATR__CONF_FIELD(nm, ATR__CONF_DURATION, type, field, lo, ATR__MAXDUR)
#define ATR__CONF_INT(nm, type, field, lo, hi)                                                     \
    ATR__CONF_FIELD(nm, ATR__CONF_INT, type, field, lo, hi)
#define ATR__CONF_ONOFF(nm, type, field) ATR__CONF_FIELD(nm, ATR__CONF_ONOFF, type, field, 0, 1)

extern const atr__conf_directive_t atr__conf_upstream_tab[], atr__conf_host_tab[],
    atr__conf_route_tab[], atr__conf_tls_tab[];
extern const size_t atr__conf_upstream_ntab, atr__conf_host_ntab, atr__conf_route_ntab,
    atr__conf_tls_ntab;

/* Check every directive of `list` against the context's table and run its handler. */
int atr__conf_run_block(atr__conf_bctx_t *b, enum atr__conf_ctx ctx, const atr__conf_node_t *list,
                        void *obj);
int atr__conf_set_value(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                        const atr__conf_directive_t *d, void *obj);
int atr__conf_fail(atr__conf_bctx_t *b, const atr_conf_pos_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
char *atr__conf_tokdup(atr__conf_bctx_t *b, const atr__conf_tok_t *t);
int atr__conf_count(const atr__conf_node_t *list, const char *name);
/* Decimal digits at *sp (at least one), advancing *sp past them: 0, -1 if
 * there are none, ATR_CONF_TOO_LARGE beyond 64 bits (*out then unset). */
int atr__conf_digits(const char **sp, uint64_t *out);
/* A whole string of digits: 0, -1 or ATR_CONF_TOO_LARGE. */
int atr__conf_uint(const char *s, uint64_t *out);
int atr__conf_number(atr__conf_bctx_t *b, const atr__conf_tok_t *t, const char *what, uint64_t lo,
                     uint64_t hi, uint64_t *out);
int atr__conf_lookup(const char *const *words, const char *s); /* index or -1 */
int atr__conf_is_token(const char *s);                         /* RFC 9110 token */

int atr__conf_d_listen(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                       const atr__conf_directive_t *d, void *obj);
int atr__conf_d_upstream(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                         const atr__conf_directive_t *d, void *obj);
int atr__conf_build_host(atr__conf_bctx_t *b, const atr__conf_node_t *n);
/* A host's `tls { ... }` block (conf_tls.c). */
int atr__conf_build_tls(atr__conf_bctx_t *b, const atr__conf_node_t *n, atr_conf_tls_t **out);
int atr__conf_d_session_cache(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                              const atr__conf_directive_t *d, void *obj);
/* After the whole file: every tls listener has a host with certificates. */
int atr__conf_check_tls(atr__conf_bctx_t *b);
/* A string-valued directive: a non-empty path into the char * at d->off. */
int atr__conf_d_path(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                     const atr__conf_directive_t *d, void *obj);
/* A file named in a TLS directive: the path into the char * at d->off and
 * its position into the atr_conf_pos_t at d->lo (tls/ctx.c reads the file
 * and reports against it). */
int atr__conf_d_tls_file(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                         const atr__conf_directive_t *d, void *obj);
/* The heartbeat directives (conf_cluster.c) and their check after the file. */
int atr__conf_d_hb_addr(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                        const atr__conf_directive_t *d, void *obj);
int atr__conf_d_hb_key(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                       const atr__conf_directive_t *d, void *obj);
int atr__conf_d_hb_storage(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                           const atr__conf_directive_t *d, void *obj);
int atr__conf_check_heartbeat(atr__conf_bctx_t *b);
/* "IP:PORT" or "[IPv6]:PORT", numeric: 0 or -1. */
int atr__conf_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/* path (as atr__conf_pathdup made it) names an existing directory; `what`
 * names it in the message, at t. 0, or -1 with the error set. */
int atr__conf_need_dir(atr__conf_bctx_t *b, const atr__conf_tok_t *t, const char *path,
                       const char *what);

/* A path argument as the program will use it: an absolute one as written,
 * a relative one resolved against the directory of the file that holds it
 * (as `include` is), whatever the working directory. Arena memory. */
char *atr__conf_pathdup(atr__conf_bctx_t *b, const atr__conf_tok_t *t);
/* A path-valued directive: atr__conf_pathdup into the char * at d->off. */
int atr__conf_d_file(atr__conf_bctx_t *b, const atr__conf_node_t *n,
                     const atr__conf_directive_t *d, void *obj);

/* allow / deny (conf_acl.c): one rule from the directive n into *out, and
 * the rules as -T writes them inside a route. */
int atr__conf_d_acl(atr__conf_bctx_t *b, const atr__conf_node_t *n, const atr__conf_directive_t *d,
                    struct atr_conf_acl *out);
void atr__conf_dump_acl(const struct atr_conf_acl *acl, int n, FILE *out);

#endif
